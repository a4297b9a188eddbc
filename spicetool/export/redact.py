"""`export --redact`: what the user typed, copied and sent, replaced by filler of the same length.

Replaced: the inputs channel's KEY_DOWN / KEY_UP codes and KEY_SCANCODE bytes (the presses stay,
at their times, with no key in them), the data of the vdagent's CLIPBOARD messages (both ways)
and of its FILE_XFER_DATA messages. Every message is rebuilt through the stack's message
description (the same engine that parsed it), with the same length, and written over its bytes
in the connection's stream; nothing else changes. An agent message may be spread over several
MAIN AGENT_DATA messages: its rebuilt bytes are cut at the same places and each AGENT_DATA
message rebuilt around its piece.

A message to redact that cannot be found again in the stream, or whose rebuilt bytes differ
from the captured ones where they should not, stops the export (RedactFailure): a capture that
claims to be redacted must be.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from spicetool.capture import PlainStreams, Record
from spicetool.stack import AgentMessage, Direction, Message, build_agent_message, message_bytes
from spicetool.stack.enums import AgentCap, AgentMsg, ChannelType
from spicetool.stack.vdagent import HEADER as AGENT_HEADER

KEY_FILLER = 0  # no key: the scancode decoders make nothing of it
DATA_FILLER = b"*"  # clipboard text and file bytes
KEY_MESSAGES = {"key_down": "code", "key_up": "code", "key_scancode": "data"}
AGENT_MESSAGES = {int(AgentMsg.CLIPBOARD), int(AgentMsg.FILE_XFER_DATA)}
INPUTS, MAIN = int(ChannelType.INPUTS), int(ChannelType.MAIN)


class RedactFailure(Exception):
    """Something that should be redacted cannot be: its text is the one line to print."""


@dataclass
class _Chunk:
    """One AGENT_DATA message: where it sits in the stream and which agent bytes it carries."""

    message: Message
    pos: int  # stream offset of its header
    agent_start: int  # offset in the direction's agent stream of its first data byte
    data: bytearray


@dataclass
class _AgentStream:
    """One direction of a main channel's agent stream, as the AGENT_DATA messages carry it."""

    chunks: list[_Chunk] = field(default_factory=list)
    length: int = 0  # agent bytes carried so far
    consumed: int = 0  # agent bytes of the whole agent messages seen so far


@dataclass
class _Located:
    delta: int = 0  # stream offset minus the stack's offset (they differ after a resynchronisation)
    end: int = 0  # stream offset just after the last message found


class Redactor:
    """Fed every record of the capture in order; patches the PlainStreams' bytes in place."""

    def __init__(self, streams: PlainStreams) -> None:
        self.streams = streams
        self._located: dict[tuple[int, bool], _Located] = {}
        self._agents: dict[tuple[int, Direction], _AgentStream] = {}
        self.counts = {"keys": 0, "clipboard": 0, "file_data": 0}

    def record(self, rec: Record) -> None:
        ev = rec.event
        ch = rec.channel
        if isinstance(ev, Message):
            if ch.channel_type == INPUTS and ev.direction is Direction.CLIENT and ev.name in KEY_MESSAGES:
                self._key(rec, ev)
            elif ch.channel_type == MAIN and ev.name == "agent_data":
                self._agent_data(rec, ev)
        elif isinstance(ev, AgentMessage) and ch.channel_type == MAIN:
            self._agent_message(rec, ev)

    # -- finding a message's bytes -----------------------------------------------------------
    def _buffer(self, rec: Record) -> tuple[bytearray, tuple[int, bool]]:
        pc = self.streams.of_channel(rec.channel)
        if pc is None:
            raise RedactFailure(f"frame {rec.frame}: the bytes of {rec.channel.channel} channel's {rec.type} "
                                "were not collected")
        from_client = rec.direction is Direction.CLIENT
        return pc.buffers[from_client], (id(pc), from_client)

    def _locate(self, rec: Record, ev: Message) -> tuple[bytearray, int, bytes]:
        """(buffer, stream offset, captured bytes) of a message."""
        buf, key = self._buffer(rec)
        loc = self._located.setdefault(key, _Located())
        original = message_bytes(ev) if ev.error is None else None
        size = ev.header_size + ev.size
        pos = ev.offset + loc.delta
        if buf[pos + ev.header_size:pos + size] != ev.body or (original is not None and buf[pos:pos + size] != original):
            # the stack started counting again (after a hole it resynchronised over): find it
            found = buf.find(original, loc.end) if original is not None else -1
            if found < 0:
                raise RedactFailure(f"frame {rec.frame}: {rec.channel.channel} channel's {rec.type} not found "
                                    "in its stream; nothing written")
            pos = found
            loc.delta = pos - ev.offset
        loc.end = pos + size
        return buf, pos, bytes(buf[pos:pos + size])

    def _overwrite(self, rec: Record, buf: bytearray, pos: int, old: bytes, new: bytes) -> None:
        if len(new) != len(old):
            raise RedactFailure(f"frame {rec.frame}: {rec.type} rebuilt to {len(new)} bytes, not {len(old)}")
        buf[pos:pos + len(new)] = new

    # -- keys -------------------------------------------------------------------------------
    def _key(self, rec: Record, ev: Message) -> None:
        buf, pos, old = self._locate(rec, ev)
        name = KEY_MESSAGES[ev.name]
        if ev.error is None:
            value = ev.fields.get(name)
            filler = KEY_FILLER if name == "code" else bytes(len(value or b""))
            new = message_bytes(replace(ev, fields={**ev.fields, name: filler}))
        else:  # a body the stack could not decode goes out as raw bytes: blank them all
            new = message_bytes(replace(ev, body=bytes(ev.size)))
        self._overwrite(rec, buf, pos, old, new)
        self.counts["keys"] += 1

    # -- the agent ------------------------------------------------------------------------------
    def _agent_data(self, rec: Record, ev: Message) -> None:
        data = ev.fields.get("data")
        if ev.error is not None or not isinstance(data, (bytes, bytearray)):
            return
        _buf, pos, _old = self._locate(rec, ev)
        stream = self._agents.setdefault((rec.channel.index, ev.direction), _AgentStream())
        stream.chunks.append(_Chunk(ev, pos, stream.length, bytearray(data)))
        stream.length += len(data)

    def _agent_message(self, rec: Record, ev: AgentMessage) -> None:
        stream = self._agents.get((rec.channel.index, ev.direction))
        if stream is None:
            raise RedactFailure(f"frame {rec.frame}: agent message {ev.name} without its AGENT_DATA")
        start = stream.consumed
        end = start + AGENT_HEADER.size + ev.size
        stream.consumed = end
        if ev.type_id in AGENT_MESSAGES and ev.fields.get("data"):
            self._redact_agent(rec, ev, stream, start, end)
        # the chunks wholly before the next agent message are done with
        while stream.chunks and stream.chunks[0].agent_start + len(stream.chunks[0].data) <= stream.consumed:
            stream.chunks.pop(0)

    def _redact_agent(self, rec: Record, ev: AgentMessage, stream: _AgentStream, start: int, end: int) -> None:
        caps = {int(AgentCap.CLIPBOARD_SELECTION)} if "selection" in ev.fields else set()
        fields = {k: v for k, v in ev.fields.items() if k != "error"}
        original = build_agent_message(ev.type_id, fields, ev.opaque, caps)
        redacted = build_agent_message(ev.type_id, {**fields, "data": DATA_FILLER * len(ev.fields["data"])},
                                       ev.opaque, caps)
        if self._agent_bytes(stream, start, end) != original or len(redacted) != len(original):
            raise RedactFailure(f"frame {rec.frame}: agent {ev.name} does not match its AGENT_DATA bytes; "
                                "nothing written")
        for chunk in stream.chunks:  # each AGENT_DATA message that carries part of it, rebuilt
            lo, hi = max(start, chunk.agent_start), min(end, chunk.agent_start + len(chunk.data))
            if lo >= hi:
                continue
            chunk.data[lo - chunk.agent_start:hi - chunk.agent_start] = redacted[lo - start:hi - start]
            pc = self.streams.of_channel(rec.channel)
            assert pc is not None  # its AGENT_DATA were located in it
            buf = pc.buffers[ev.direction is Direction.CLIENT]
            old = bytes(buf[chunk.pos:chunk.pos + chunk.message.header_size + chunk.message.size])
            new = message_bytes(replace(chunk.message, fields={**chunk.message.fields, "data": bytes(chunk.data)}))
            self._overwrite(rec, buf, chunk.pos, old, new)
        self.counts["clipboard" if ev.type_id == AgentMsg.CLIPBOARD else "file_data"] += 1

    @staticmethod
    def _agent_bytes(stream: _AgentStream, start: int, end: int) -> bytes:
        out = bytearray()
        for chunk in stream.chunks:
            lo, hi = max(start, chunk.agent_start), min(end, chunk.agent_start + len(chunk.data))
            if lo < hi:
                out += chunk.data[lo - chunk.agent_start:hi - chunk.agent_start]
        return bytes(out)
