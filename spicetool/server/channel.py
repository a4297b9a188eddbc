"""One linked channel connection on the server side: the stack's endpoint reads client messages
and builds ours, a send pipe with spice-server's ACK window, pings with measured latency.

Flow control as spice-server keeps it (the stack's AckWindow): channels that handle acks send
SET_ACK {generation, window}; the client answers ACK_SYNC {generation}, then one ACK per
`window` messages; the server stops sending while more than 2 x window messages are unacked.
The pipe of messages not yet sent is bounded: a channel whose client does not keep up gets its
droppable items (draws) replaced by one refresh of the current picture (see DisplayChannel).
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Callable

from spicetool.qxl.worker import Msg, Shared
from spicetool.server.link import MAX_CLIENT_MESSAGE, LinkedChannel
from spicetool.server.session import Session
from spicetool.server.state import ServerState
from spicetool.stack import AckWindow, ChannelEndpoint, Message, PingTracker, ProtocolError, Role
from spicetool.stack.enums import Msgc
from spicetool.stack.events import AgentMessage
from spicetool.stack.flow import ACK_WINDOW

PING_INTERVAL = 10.0
YIELD_EVERY = 64                  # messages: a flooding client must not starve the others
# bytes handed to the stack at a time: what it parses stays alive until handled, and 64 KiB of 6-byte
# ACKs is 11,000 messages (some 4 MiB of objects) per flooding connection, all of them at once
FEED_SIZE = 4096


class ClientDropped(Exception):
    """The client broke the protocol; the connection is closed with this reason."""


class PipeItem:
    __slots__ = ("make", "droppable", "size")

    def __init__(self, make: Callable[[], list[Msg]], droppable: bool, size: int):
        self.make, self.droppable, self.size = make, droppable, size


class ChannelClient:
    name = "channel"
    handle_acks = False
    max_pipe_items = 400
    max_pipe_bytes = 48 * 1024 * 1024

    def __init__(self, server: ServerState, session: Session, link: LinkedChannel,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str):
        self.session, self.link = session, link
        self.server = server
        self.reader, self.writer, self.peer = reader, writer, peer
        self.mini = link.mini_header
        self.endpoint = link.endpoint or ChannelEndpoint(
            Role.SERVER, channel_type=link.channel_type, channel_id=link.channel_id,
            mini_header=self.mini, max_message_size=MAX_CLIENT_MESSAGE)
        self.pipe: deque[PipeItem] = deque()
        self.pipe_bytes = 0
        self.wakeup = asyncio.Event()
        self.acks = AckWindow(ACK_WINDOW)    # spice-server's ack_data
        self.acked = asyncio.Event()
        self.pings = PingTracker()
        self.latency_ms: float | None = None
        self.sent_messages = 0
        self.received_messages = 0
        self.closed = False

    # --- what subclasses provide ---

    def on_connect(self) -> None:
        """Queue the first messages of the channel."""

    def on_message(self, msg: Message) -> None:
        raise ClientDropped(f"unexpected message {msg.name}")

    def on_agent_message(self, msg: AgentMessage) -> None:
        pass

    def on_close(self) -> None:
        pass

    def collapse(self) -> PipeItem | None:
        """The item that replaces dropped items when the pipe overflows (None: drop the client)."""
        return None

    # --- the pipe ---

    def push(self, name: str, fields: dict) -> None:
        self.push_item(PipeItem(lambda: [(name, fields)], False, 64))

    def push_item(self, item: PipeItem) -> None:
        if self.closed:
            return
        self.pipe.append(item)
        self.pipe_bytes += item.size
        if len(self.pipe) > self.max_pipe_items or self.pipe_bytes > self.max_pipe_bytes:
            self._overflow()
        self.wakeup.set()

    def _overflow(self) -> None:
        replacement = self.collapse()
        kept = deque(i for i in self.pipe if not i.droppable)
        if replacement is None or len(kept) > self.max_pipe_items // 2:
            self.server.log(f"{self.peer} {self.name}: client too slow, {len(self.pipe)} messages "
                            "pending; disconnecting")
            self.close()
            return
        kept.append(replacement)
        self.pipe = kept
        self.pipe_bytes = sum(i.size for i in kept)
        self.server.stats["pipe_collapses"] += 1

    def push_set_ack(self) -> None:
        # the generation and the count start when it is sent, not when it is queued
        self.push_item(PipeItem(lambda: [("set_ack", self.acks.set_ack())], False, 16))

    def push_ping(self) -> None:
        self.push_item(PipeItem(lambda: [("ping", self.pings.ping())], False, 32))

    def _window_full(self) -> bool:
        return self.handle_acks and self.acks.full

    def _encode(self, msg) -> bytes:
        ep = self.endpoint
        if isinstance(msg, Shared):
            return msg.with_mini_header() if ep.mini_header else ep.frame(msg.type_id, msg.body())
        name, fields = msg
        return ep.send(name, fields)

    async def _send_loop(self) -> None:
        while True:
            while not self.pipe:
                self.wakeup.clear()
                await self.wakeup.wait()
            while self._window_full():
                self.acked.clear()
                await self.acked.wait()
            item = self.pipe.popleft()
            self.pipe_bytes -= item.size
            msgs = item.make()
            # nothing of the item outlives its writing: a client that stops reading holds the
            # bytes in the transport, not also the snapshot they were made from
            item = None
            for msg in msgs:
                self.writer.write(self._encode(msg))
                self.acks.sent()
                self.sent_messages += 1
            msgs = msg = None
            await self.writer.drain()

    # --- reading ---

    async def _read_loop(self) -> None:
        events = self.link.backlog   # what came with the ticket
        n = 0
        while True:
            for ev in events:
                if isinstance(ev, ProtocolError):
                    raise ClientDropped(ev.reason)
                if isinstance(ev, AgentMessage):
                    self.on_agent_message(ev)
                    continue
                if not isinstance(ev, Message):
                    continue
                if ev.error:
                    raise ClientDropped(f"malformed {ev.name}: {ev.error}")
                if ev.name.startswith("unknown_"):
                    raise ClientDropped(f"unknown message type {ev.type_id}")
                self.received_messages += 1
                self._common(ev)
                n += 1
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            data = await self.reader.read(FEED_SIZE)   # (the transport buffers the rest)
            if not data:   # partial: the client left in the middle of a message
                raise asyncio.IncompleteReadError(b"\0" * self.endpoint.pending(), None)
            events = self.endpoint.receive_data(data)

    def _common(self, msg: Message) -> None:
        f = msg.fields
        if msg.type_id == Msgc.ACK_SYNC:
            self.acks.ack_sync(f["generation"])
        elif msg.type_id == Msgc.ACK:
            if self.acks.ack():
                self.acked.set()
        elif msg.type_id == Msgc.PONG:
            latency = self.pings.pong(f)
            if latency is not None:
                self.latency_ms = latency
                self.server.log(f"{self.peer} {self.name}: latency {self.latency_ms:.2f} ms", verbose=True)
        elif msg.type_id in (Msgc.MIGRATE_FLUSH_MARK, Msgc.MIGRATE_DATA):  # migration is not offered
            raise ClientDropped(f"{msg.name} without a migration")
        elif msg.type_id == Msgc.DISCONNECTING:
            raise ClientDropped("client is disconnecting")
        else:
            self.on_message(msg)

    async def _ping_loop(self) -> None:
        while True:
            self.push_ping()
            await asyncio.sleep(self.server.ping_interval)

    # --- lifetime ---

    async def run(self) -> str:
        """Serve until the client goes or breaks the protocol; returns why it ended."""
        self.on_connect()
        tasks = [asyncio.create_task(self._read_loop()), asyncio.create_task(self._send_loop()),
                 asyncio.create_task(self._ping_loop())]
        self._tasks = tasks
        reason = "closed by server"
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t.cancelled():
                    continue
                e = t.exception()
                if isinstance(e, ClientDropped):
                    reason = str(e)
                elif isinstance(e, (asyncio.IncompleteReadError, ConnectionError)):
                    reason = "client disconnected" if not getattr(e, "partial", b"") else \
                        "client disconnected in the middle of a message"
                elif e is not None:
                    reason = f"internal error: {type(e).__name__}: {e}"
                    self.server.stats["internal_errors"] += 1
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.close()
        return reason

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.pipe.clear()
        self.on_close()
        transport = self.writer.transport
        if transport.get_write_buffer_size():
            transport.abort()  # a client that stopped reading must not hold its buffer forever
        else:
            self.writer.close()
        for t in getattr(self, "_tasks", []):
            t.cancel()
