"""One linked channel connection on the server side: reading client messages through the stack,
a send pipe with spice-server's ACK window, pings with measured latency.

Flow control as spice-server keeps it (red-channel-client.cpp): channels that handle acks send
SET_ACK {generation, window}; the client answers ACK_SYNC {generation}, then one ACK per
`window` messages; the server stops sending while more than 2 x window messages are unacked.
The pipe of messages not yet sent is bounded: a channel whose client does not keep up gets its
droppable items (draws) replaced by one refresh of the current picture (see DisplayChannel).
"""
from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from typing import TYPE_CHECKING, Callable

from spicetool.qxl.worker import Msg, Shared
from spicetool.stack import ChannelConnection, Direction, Message, ProtocolError, build_message
from spicetool.stack.events import AgentMessage
from spicetool.stack.headers import FULL, MINI, pack_full_header

if TYPE_CHECKING:
    from spicetool.server.link import LinkedChannel
    from spicetool.server.session import Session

ACK_WINDOW = 20                   # CLIENT_ACK_WINDOW in spice-server
MAX_CLIENT_MESSAGE = 64 * 1024    # larger client messages are refused (agent data is <= 2 KiB + header)
PING_INTERVAL = 10.0


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

    def __init__(self, session: "Session", link: "LinkedChannel", reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, peer: str):
        self.session, self.link = session, link
        self.server = session.server
        self.reader, self.writer, self.peer = reader, writer, peer
        self.mini = link.mini_header
        self.conn = ChannelConnection.resume(link.channel_type, link.channel_id, self.mini)
        self.serial = itertools.count(1)
        self.pipe: deque[PipeItem] = deque()
        self.pipe_bytes = 0
        self.wakeup = asyncio.Event()
        # ACK window (spice-server's ack_data)
        self.ack_generation = 0
        self.client_generation = 0xFFFFFFFF
        self.messages_window = 0
        self.acked = asyncio.Event()
        # latency
        self.ping_ids = itertools.count(1)
        self.pings: dict[int, int] = {}
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
        def make() -> list[Msg]:
            self.ack_generation += 1
            self.messages_window = 0
            return [("set_ack", {"generation": self.ack_generation, "window": ACK_WINDOW})]
        self.push_item(PipeItem(make, False, 16))

    def push_ping(self) -> None:
        def make() -> list[Msg]:
            pid = next(self.ping_ids)
            ts = time.monotonic_ns()
            self.pings[pid] = ts
            if len(self.pings) > 16:  # a client that never answers keeps at most 16
                self.pings.pop(next(iter(self.pings)))
            return [("ping", {"id": pid, "timestamp": ts, "data": b""})]
        self.push_item(PipeItem(make, False, 32))

    def _window_full(self) -> bool:
        return self.handle_acks and self.messages_window > ACK_WINDOW * 2

    def _encode(self, msg) -> bytes:
        if isinstance(msg, Shared):
            if self.mini:
                return msg.with_mini_header()
            body = msg.body()
            return pack_full_header(next(self.serial), msg.type_id, len(body)) + body
        name, fields = msg
        if self.mini:
            return build_message(self.link.channel_type, Direction.SERVER, name, fields, True)
        return build_message(self.link.channel_type, Direction.SERVER, name, fields, False,
                             next(self.serial))

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
            for msg in item.make():
                self.writer.write(self._encode(msg))
                self.messages_window += 1
                self.sent_messages += 1
            await self.writer.drain()

    # --- reading ---

    async def _read_loop(self) -> None:
        header = MINI if self.mini else FULL
        n = 0
        while True:
            raw = await self.reader.readexactly(header.size)
            if self.mini:
                tid, size = header.unpack(raw)
            else:
                _serial, tid, size, _sub = header.unpack(raw)
            if size > MAX_CLIENT_MESSAGE:
                raise ClientDropped(f"message type {tid} of {size} bytes exceeds {MAX_CLIENT_MESSAGE}")
            body = await self.reader.readexactly(size) if size else b""
            for ev in self.conn.receive(Direction.CLIENT, raw + body):
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
            if n % 64 == 0:
                await asyncio.sleep(0)  # a flooding client must not starve the others

    def _common(self, msg: Message) -> None:
        f = msg.fields
        if msg.type_id == 1:    # ACK_SYNC
            self.client_generation = f["generation"]
        elif msg.type_id == 2:  # ACK
            if self.client_generation == self.ack_generation:
                self.messages_window = max(0, self.messages_window - ACK_WINDOW)
                self.acked.set()
        elif msg.type_id == 3:  # PONG
            sent = self.pings.pop(f["id"], None)
            if sent is not None and sent == f["timestamp"]:
                self.latency_ms = (time.monotonic_ns() - sent) / 1e6
                self.server.log(f"{self.peer} {self.name}: latency {self.latency_ms:.2f} ms", verbose=True)
        elif msg.type_id in (4, 5):  # migration: not offered
            raise ClientDropped(f"{msg.name} without a migration")
        elif msg.type_id == 6:  # DISCONNECTING
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
