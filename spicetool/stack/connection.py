"""ChannelConnection: the sans-I/O observer of one SPICE channel connection (h11 style).

Feed it each direction's TCP payload in any chunking; it returns events in wire order.
"""
from __future__ import annotations

from .events import Direction, Event, LinkRecord, Message, ProtocolError
from .headers import FULL, FULL_SIZE, MAX_MESSAGE_SIZE, MINI, MINI_SIZE, sub_messages
from .link import (TICKET_SIZE, LinkError, link_err_name, parse_link_mess, parse_link_reply,
                   parse_u32)
from .messages import parse_body
from .types import CAP_AUTH_SASL
from .vdagent import AgentReassembler

CLIENT, SERVER = Direction.CLIENT, Direction.SERVER
_AGENT_DATA = {SERVER: 109, CLIENT: 107}
_COMPACT_AT = 1 << 20
AUTH_MECHANISMS = {1: "AUTH_SPICE", 2: "AUTH_SASL"}
SASL_MAX = 1024 * 1024  # spice-gtk's SASL_MAX_DATA_LEN
MAX_LINK_BACKLOG = MAX_MESSAGE_SIZE


class _Stream:
    """Unparsed bytes of one direction and where they sit in the stream."""

    __slots__ = ("buf", "pos", "base", "state", "lost")

    def __init__(self, state: str):
        self.buf = bytearray()
        self.pos = 0      # index in buf of the first unparsed byte
        self.base = 0     # stream offset of buf[0]
        self.state = state
        self.lost: list[tuple[int, int]] = []  # stream ranges a gap filled with zeros

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def consume(self, n: int) -> None:
        self.pos += n
        if self.pos >= _COMPACT_AT or self.pos == len(self.buf):
            del self.buf[:self.pos]
            self.base += self.pos
            self.pos = 0


def _lost_in(s: _Stream, lo: int, hi: int) -> tuple[tuple[int, int], ...]:
    """The lost ranges of stream bytes [lo, hi) relative to lo; ranges wholly before hi are dropped."""
    out = tuple((max(a, lo) - lo, min(b, hi) - lo) for a, b in s.lost if a < hi and b > lo)
    s.lost = [(a, b) for a, b in s.lost if b > hi]
    return out


def _has(caps: list, name: str) -> bool:
    return name in caps


class ChannelConnection:
    def __init__(self) -> None:
        self.channel_type: int | None = None
        self.channel_id: int | None = None
        self.connection_id: int | None = None
        self.session_id: int | None = None
        self.broken: set[Direction] = set()
        self.client_caps: list | None = None   # common caps by name, from the LinkMess
        self.server_caps: list | None = None   # from the LinkReply
        self.auth_mechanism: int | None = None
        self.link_error: str | int | None = None
        self._mini: dict[Direction, bool | None] = {CLIENT: None, SERVER: None}
        self._s = {CLIENT: _Stream("link_mess"), SERVER: _Stream("link_reply")}
        self._agent = {CLIENT: AgentReassembler(CLIENT), SERVER: AgentReassembler(SERVER)}
        self._sasl_replies: list[bool] = []  # `complete` flag of each server SASL reply
        self._sasl_steps = 0                  # client steps after the start record
        # a message claiming more is an error (an endpoint may set a tighter bound)
        self.max_message_size = MAX_MESSAGE_SIZE

    @classmethod
    def resume(cls, channel_type: int | None, channel_id: int = 0,
               mini_header: bool = True) -> "ChannelConnection":
        """Start in the data phase (capture began after the link stage)."""
        c = cls()
        c.channel_type, c.channel_id = channel_type, channel_id
        c._mini = {CLIENT: mini_header, SERVER: mini_header}
        for s in c._s.values():
            s.state = "data"
        return c

    @property
    def mini_header(self) -> bool | None:
        return self._mini[SERVER] if self._mini[SERVER] is not None else self._mini[CLIENT]

    def receive(self, direction: Direction, data: bytes) -> list[Event]:
        direction = Direction(direction)
        if direction in self.broken:
            return []
        s = self._s[direction]
        s.buf += data
        events: list[Event] = []
        if s.state == "data":  # the common case: no cross-direction link dependencies
            try:
                self._data(direction, s, events)
            except Exception as e:  # last line of defence: never let bad bytes escape
                self._fail(direction, events, f"internal error: {type(e).__name__}: {e}")
            return events
        # A link step in one direction can unblock the other (the client's auth record
        # depends on the server's caps, the server's result on the client's mechanism).
        progress = True
        while progress:
            progress = False
            for d in (direction, CLIENT if direction is SERVER else SERVER):
                if d in self.broken:
                    continue
                before = len(events)
                try:
                    self._step(d, events)
                except Exception as e:  # last line of defence: never let bad bytes escape
                    self._fail(d, events, f"internal error: {type(e).__name__}: {e}")
                if len(events) > before and d is not direction:
                    progress = True
        return events

    def gap(self, direction: Direction, lost: int) -> tuple[list[Event], bool]:
        """The capture lost `lost` bytes of this direction here: (events, framing kept).

        A gap that ends inside the body of a message whose header was read keeps the framing:
        the hole is filled with zeros, the message comes out with its `lost` ranges, and the
        next message starts where its size says. A gap that swallowed (part of) a header
        cannot be counted through: the message it cut short comes out damaged and the framing
        is lost (False): the caller resynchronises on a fresh connection."""
        d = Direction(direction)
        s = self._s[d]
        events: list[Event] = []
        if d in self.broken or s.state != "data" or lost <= 0:
            return events, lost <= 0 and d not in self.broken
        mini = self._mini[d] is not False
        hsize = MINI_SIZE if mini else FULL_SIZE
        have = len(s.buf) - s.pos
        if have < hsize:
            return events, False  # the next header is (partly) in the hole
        size = MINI.unpack_from(s.buf, s.pos)[1] if mini else FULL.unpack_from(s.buf, s.pos)[2]
        if size > self.max_message_size:
            return events, False
        missing = hsize + size - have
        fill = min(lost, missing)
        start = s.offset + have
        s.lost.append((start, start + fill))
        s.buf += bytes(fill)
        try:
            self._data(d, s, events)
        except Exception as e:  # last line of defence: never let bad bytes escape
            self._fail(d, events, f"internal error: {type(e).__name__}: {e}")
        return events, lost <= missing

    def pending(self, direction: Direction) -> int:
        """Bytes of this direction not yet parsed (a record or message still incomplete)."""
        s = self._s[Direction(direction)]
        return len(s.buf) - s.pos

    # --- internals ---

    def _fail(self, d: Direction, events: list, reason: str) -> None:
        events.append(ProtocolError(d, self._s[d].offset, reason, True))
        self.broken.add(d)

    def _step(self, d: Direction, events: list) -> None:
        s = self._s[d]
        while True:
            if s.state == "data":
                self._data(d, s, events)
                return
            if not self._link(d, s, events):
                if d not in self.broken and len(s.buf) - s.pos > MAX_LINK_BACKLOG:
                    # waiting on a peer that never answers: do not buffer without bound
                    self._fail(d, events, f"link stage stuck in {s.state} with "
                                          f"{len(s.buf) - s.pos} bytes pending")
                return

    def _link(self, d: Direction, s: _Stream, events: list) -> bool:
        """Parse one link record; False when waiting for bytes or for the peer."""
        buf, pos, off = s.buf, s.pos, s.offset
        try:
            if s.state == "link_mess":
                r = parse_link_mess(buf, pos)
                if r is None:
                    return False
                fields, size = r
                self.channel_type, self.channel_id = fields["channel_type"], fields["channel_id"]
                self.connection_id = fields["connection_id"]
                if self.channel_type != 1:
                    self.session_id = self.connection_id
                self.client_caps = fields["common_caps"]
                self._mini[SERVER] = _has(self.client_caps, "mini_header")
                events.append(LinkRecord(d, "link_mess", fields, size, off))
                s.consume(size)
                s.state = "await_reply"
                return True
            if s.state == "link_reply":
                if self.channel_type is None and self._s[CLIENT].state == "link_mess" \
                        and CLIENT not in self.broken:
                    return False  # name the channel caps once the LinkMess is known
                r = parse_link_reply(buf, pos, self.channel_type)
                if r is None:
                    return False
                fields, size = r
                self.server_caps = fields["common_caps"]
                self._mini[CLIENT] = _has(self.server_caps, "mini_header")
                events.append(LinkRecord(d, "link_reply", fields, size, off))
                s.consume(size)
                if fields["error"] != "OK":
                    self.link_error = fields["error"]
                    s.state = "closed"
                else:
                    s.state = "await_auth"
                return True
            if s.state == "await_reply":
                if self.server_caps is None:
                    server_lost = SERVER in self.broken
                    # One-sided capture: the client went on past the auth records, so the
                    # server must have accepted; guess the auth path from the bytes.
                    if self.link_error is None and (server_lost or len(buf) - pos >= 4 + TICKET_SIZE + 6):
                        v = parse_u32(buf, pos)
                        s.state = "auth_mechanism" if v in AUTH_MECHANISMS else "ticket"
                        return True
                    return False
                s.state = "auth_mechanism" if _has(self.server_caps, "protocol_auth_selection") \
                    else "ticket"
                return True
            if s.state == "auth_mechanism":
                v = parse_u32(buf, pos)
                if v is None:
                    return False
                self.auth_mechanism = v
                events.append(LinkRecord(d, "auth_mechanism",
                                         {"auth_mechanism": v,
                                          "name": AUTH_MECHANISMS.get(v, f"unknown_{v}")}, 4, off))
                s.consume(4)
                s.state = "sasl" if v == CAP_AUTH_SASL else "ticket"
                return True
            if s.state == "ticket":
                if len(buf) - pos < TICKET_SIZE:
                    return False
                events.append(LinkRecord(d, "ticket",
                                         {"encrypted_data": bytes(buf[pos:pos + TICKET_SIZE])},
                                         TICKET_SIZE, off))
                s.consume(TICKET_SIZE)
                s.state = "data"
                return True
            if s.state == "await_auth":
                sasl_possible = _has(self.server_caps or [], "auth_sasl")
                if sasl_possible and self.auth_mechanism is None and self._s[CLIENT].state in (
                        "link_mess", "await_reply", "auth_mechanism") and CLIENT not in self.broken:
                    return False
                s.state = "sasl" if self.auth_mechanism == CAP_AUTH_SASL else "link_result"
                return True
            if s.state == "link_result":
                v = parse_u32(buf, pos)
                if v is None:
                    return False
                events.append(LinkRecord(d, "link_result", {"error": link_err_name(v)}, 4, off))
                s.consume(4)
                if v != 0:
                    self.link_error = link_err_name(v)
                    s.state = "closed"
                else:
                    s.state = "data"
                return True
            if s.state == "sasl":
                s.state = "sasl_mechlist" if d is SERVER else "sasl_mechname"
                return True
            if s.state.startswith("sasl_"):
                return self._sasl(d, s, events)
            if s.state == "closed":
                if len(buf) > pos:
                    self._fail(d, events, f"{len(buf) - pos} bytes after the link failed "
                                          f"({self.link_error})")
                return False
        except LinkError as e:
            self._fail(d, events, str(e))
            return False
        return False

    def _sasl(self, d: Direction, s: _Stream, events: list) -> bool:
        """SASL exchange (spice-gtk spice_channel_perform_auth_sasl): length-prefixed blobs.

        server: u32+mechlist, then replies {u32 len, data, u8 complete} until complete;
        client: u32+mechname, u32+start data, then one step {u32 len, data} per
        incomplete server reply.  Data lengths of 0 mean NULL.
        """
        buf, pos, off = s.buf, s.pos, s.offset
        if d is CLIENT and s.state == "sasl_wait":
            replies = self._sasl_replies
            if len(replies) <= self._sasl_steps:
                return False  # is there another step? the server's reply tells
            if replies[self._sasl_steps]:
                s.state = "data"
                return True
            s.state = "sasl_step"
            return True
        n = parse_u32(buf, pos)
        if n is None:
            return False
        if n > SASL_MAX:
            self._fail(d, events, f"SASL record of {n} bytes exceeds {SASL_MAX}")
            return False
        extra = 1 if d is SERVER and s.state == "sasl_reply" else 0
        if len(buf) - pos < 4 + n + extra:
            return False
        data = bytes(buf[pos + 4:pos + 4 + n])
        name = s.state
        fields: dict = {"length": n, "data": data}
        if name in ("sasl_mechlist", "sasl_mechname"):
            fields = {"length": n, name[5:]: data.decode("latin-1")}
        if extra:
            fields["complete"] = buf[pos + 4 + n]
            self._sasl_replies.append(bool(fields["complete"]))
        events.append(LinkRecord(d, name, fields, 4 + n + extra, off))
        s.consume(4 + n + extra)
        if d is SERVER:
            s.state = "link_result" if extra and fields["complete"] else "sasl_reply"
        elif name == "sasl_mechname":
            s.state = "sasl_start"
        else:
            if name == "sasl_step":
                self._sasl_steps += 1
            s.state = "sasl_wait"
        return True

    def _data(self, d: Direction, s: _Stream, events: list) -> None:
        mini = self._mini[d]
        if mini is None:
            mini = True
        hsize = MINI_SIZE if mini else FULL_SIZE
        ctype = self.channel_type
        buf = s.buf
        limit = self.max_message_size
        while len(buf) - s.pos >= hsize:
            pos = s.pos
            if mini:
                tid, size = MINI.unpack_from(buf, pos)
                serial, sub_list = None, 0
            else:
                serial, tid, size, sub_list = FULL.unpack_from(buf, pos)
            if size > limit:
                self._fail(d, events, f"message type {tid} claims {size} bytes "
                                      f"(more than {limit}): stream is corrupt or misaligned"
                           if limit == MAX_MESSAGE_SIZE else
                           f"message type {tid} of {size} bytes exceeds {limit}")
                return
            if len(buf) - pos < hsize + size:
                return
            off = s.offset
            with memoryview(buf) as view:  # one copy, not two
                body = bytes(view[pos + hsize:pos + hsize + size])
            s.consume(hsize + size)
            lost = ()
            if s.lost:  # only after a gap: the holes in this body, relative to it
                lost = _lost_in(s, off + hsize, off + hsize + size)
            if sub_list:
                self._subs(d, body, sub_list, off + hsize, events)
            name, fields, err = parse_body(ctype, d, tid, body)
            events.append(Message(d, ctype or 0, tid, name, size, fields, body, serial, off,
                                  hsize, err, lost))
            if ctype == 1:
                self._main_hooks(d, tid, fields, events, off)

    def _subs(self, d: Direction, body: bytes, sub_list: int, body_off: int, events: list) -> None:
        subs = sub_messages(body, sub_list)
        if isinstance(subs, str):
            events.append(ProtocolError(d, body_off, subs, False))
            return
        for off, tid, size in subs:
            sub_body = body[off + 6:off + 6 + size]
            name, fields, err = parse_body(self.channel_type, d, tid, sub_body)
            events.append(Message(d, self.channel_type or 0, tid, name, size, fields, sub_body,
                                  None, body_off + off, 6, err))

    def _main_hooks(self, d: Direction, tid: int, fields: dict, events: list, off: int) -> None:
        if d is SERVER and tid == 103 and "session_id" in fields:
            self.session_id = fields["session_id"]
        elif tid == _AGENT_DATA[d] and "data" in fields:
            peer = self._agent[CLIENT if d is SERVER else SERVER].caps
            msgs, err = self._agent[d].feed(fields["data"], peer)
            events.extend(msgs)
            if err:
                events.append(ProtocolError(d, off, err, False))
