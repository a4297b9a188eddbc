"""One channel connection of the replaying client: the link stage, then the data phase.

The stack's ChannelConnection observes both directions (what we send and what the server
answers), so the link stage and the header kind follow the same rules as the dissector. What
the server sends is answered the way spice-gtk does: SET_ACK by ACK_SYNC and an ACK every
`window` messages, PING by PONG, agent data by agent tokens. Every byte either way goes to the
channel's synthetic TCP stream in the recording.
"""
from __future__ import annotations

import asyncio
import itertools
import os
import time
from typing import Awaitable, Callable

from spicetool.replay.client_plan import ChannelPlan
from spicetool.stack import (
    ChannelConnection,
    Direction,
    LinkRecord,
    Message,
    ProtocolError,
    build_auth_mechanism,
    build_link_mess,
    build_message,
    encrypt_ticket,
)
from spicetool.stack.headers import pack_full_header, pack_mini_header
from spicetool.stack.messages import message_bytes
from spicetool.stack.schema import BuildError

READ_SIZE = 256 * 1024
CLIENT, SERVER = Direction.CLIENT, Direction.SERVER
DEFAULT_COMMON_CAPS = ["protocol_auth_selection", "auth_spice", "mini_header"]


class ReplayFailure(Exception):
    """The replay cannot go on (one line, for the user)."""


class LinkRefused(ReplayFailure):
    def __init__(self, channel: str, error: str):
        super().__init__(f"{channel}: the server refused the link: {error}")
        self.error = error


class ClientChannel:
    def __init__(self, plan: ChannelPlan, password: bytes, stream_factory: Callable | None,
                 on_message: Callable[["ClientChannel", Message], Awaitable[None]]):
        self.plan = plan
        self.name = plan.name
        self.password = password
        self.stream_factory = stream_factory   # (local, peer, time) -> TcpStream, or None
        self.on_message = on_message           # the session's hook (main INIT, agent state)
        self.conn = ChannelConnection()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.stream = None
        self.cuts = None
        self.mini = True
        self.serial = itertools.count(1)
        self.ack_window = 0
        self.ack_left = 0
        self.sent = {"messages": 0, "bytes": 0, "replayed": 0, "answered": 0}
        self.received = {"messages": 0, "bytes": 0}
        self.last_receive = time.monotonic()
        self.closed_by_server: str | None = None   # why the channel ended on the server's side
        self._events: asyncio.Queue = asyncio.Queue()
        self._reader_task: asyncio.Task | None = None
        self.timeout = 10.0   # for the connection and each link-stage answer

    # --- connection and link stage ---

    async def connect(self, host: str, port: int, timeout: float) -> None:
        self.timeout = timeout
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=READ_SIZE), timeout)
        except asyncio.TimeoutError:
            raise ReplayFailure(f"cannot connect to {host}:{port}: no answer in {timeout:g} s") from None
        except OSError as e:  # asyncio's text names no reason: the errno does
            why = os.strerror(e.errno) if e.errno else str(e)
            raise ReplayFailure(f"cannot connect to {host}:{port}: {why}") from None
        if self.stream_factory is not None:
            from spicetool.capture import LinkStageCuts
            local = self.writer.get_extra_info("sockname")[:2]
            peer = self.writer.get_extra_info("peername")[:2]
            self.stream = self.stream_factory(local, peer, time.time())
            self.stream.accept(time.time())
            self.cuts = LinkStageCuts()
        self._reader_task = asyncio.create_task(self._read())

    async def link(self, connection_id: int) -> None:
        """LinkMess with the captured capabilities, auth mechanism, ticket, link result."""
        fields = dict(self.plan.link or {"channel_type": self.plan.channel_type,
                                         "channel_id": self.plan.channel_id,
                                         "common_caps": DEFAULT_COMMON_CAPS, "channel_caps": []})
        fields["connection_id"] = connection_id
        fields.pop("size", None)  # the header's size follows from the caps
        await self.send_bytes(build_link_mess(fields))
        reply = await self._link_record("link_reply")
        if reply.fields["error"] != "OK":
            raise LinkRefused(self.name, str(reply.fields["error"]))
        caps = reply.fields["common_caps"]
        if "auth_spice" not in caps and "auth_sasl" in caps:
            raise ReplayFailure(f"{self.name}: the server wants SASL authentication, which "
                                "replay does not do")
        if "protocol_auth_selection" in caps:   # spice-gtk sends it when the server offers it
            await self.send_bytes(build_auth_mechanism({"auth_mechanism": 1}))
        try:
            ticket = encrypt_ticket(reply.fields["pub_key"], self.password)
        except ValueError as e:  # not an RSA public key
            raise ReplayFailure(f"{self.name}: the server's public key is unusable: {e}") from None
        await self.send_bytes(ticket)
        result = await self._link_record("link_result")
        if result.fields["error"] != "OK":
            raise LinkRefused(self.name, str(result.fields["error"]))
        self.mini = "mini_header" in caps   # the header we send, as the server announced

    async def _link_record(self, name: str) -> LinkRecord:
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            try:
                ev = await asyncio.wait_for(self._events.get(), max(left, 0.001))
            except asyncio.TimeoutError:
                raise ReplayFailure(f"{self.name}: no {name.replace('_', ' ')} from the server "
                                    f"within {self.timeout:g} s") from None
            if ev is None:
                raise ReplayFailure(f"{self.name}: {self.closed_by_server} during the link stage")
            if isinstance(ev, ProtocolError):
                raise ReplayFailure(f"{self.name}: bad link stage from the server: {ev.reason}")
            if isinstance(ev, LinkRecord) and ev.name == name:
                return ev

    # --- sending ---

    async def send_bytes(self, data: bytes) -> None:
        if self.writer is None or self.writer.is_closing():
            return
        self.conn.receive(CLIENT, data)
        if self.stream is not None:
            for piece in self.cuts.split(True, data):
                self.stream.data(time.time(), True, piece)
        self.sent["bytes"] += len(data)
        self.writer.write(data)
        try:
            await self.writer.drain()
        except (ConnectionError, OSError):
            pass  # the reader sees the close

    def _header(self, type_id: int, size: int) -> bytes:
        if self.mini:
            return pack_mini_header(type_id, size)
        return pack_full_header(next(self.serial), type_id, size)

    async def send(self, name: str, fields: dict) -> None:
        """A message built by the stack from its fields (answers, made up by us)."""
        data = build_message(self.plan.channel_type, CLIENT, name, fields, self.mini,
                             None if self.mini else next(self.serial))
        self.sent["messages"] += 1
        self.sent["answered"] += 1
        await self.send_bytes(data)

    async def replay(self, msg: Message) -> None:
        """A captured message, rebuilt by the stack, with this connection's header."""
        try:
            body = message_bytes(msg)[msg.header_size:]
        except BuildError:  # fields that do not rebuild: the captured body as it was
            body = bytes(msg.body)
        self.sent["messages"] += 1
        self.sent["replayed"] += 1
        await self.send_bytes(self._header(msg.type_id, len(body)) + body)

    # --- receiving ---

    async def _read(self) -> None:
        assert self.reader is not None
        reason = "the server closed the connection"
        try:
            while True:
                data = await self.reader.read(READ_SIZE)
                if not data:
                    break
                self.last_receive = time.monotonic()
                self.received["bytes"] += len(data)
                if self.stream is not None:
                    for piece in self.cuts.split(False, data):
                        self.stream.data(time.time(), False, piece)
                for ev in self.conn.receive(SERVER, data):
                    await self._event(ev)
        except (ConnectionError, OSError) as e:
            reason = f"the connection broke ({os.strerror(e.errno) if e.errno else e})"
            if self.stream is not None:
                self.stream.reset(time.time(), False)
        except asyncio.CancelledError:
            return
        except Exception as e:  # a message we cannot answer (e.g. a PING without its fields)
            reason = f"the server sent what we cannot answer ({type(e).__name__}: {e})"
        self.closed_by_server = self.closed_by_server or reason
        if self.stream is not None:
            self.stream.fin(time.time(), False)
        await self._events.put(None)

    async def _event(self, ev) -> None:
        if getattr(ev, "direction", SERVER) is not SERVER:
            return
        if isinstance(ev, LinkRecord):
            await self._events.put(ev)
            return
        if isinstance(ev, ProtocolError):
            await self._events.put(ev)
            if ev.fatal:
                self.closed_by_server = f"the server sent undecodable data ({ev.reason})"
            return
        if not isinstance(ev, Message):
            return
        self.received["messages"] += 1
        if ev.serial is not None or self.conn.mini_header:  # sub-messages do not count
            await self._count_ack()
        if ev.name == "set_ack":
            self.ack_window = self.ack_left = ev.fields.get("window", 0)
            await self.send("ack_sync", {"generation": ev.fields.get("generation", 0)})
        elif ev.name == "ping":
            await self.send("pong", {"id": ev.fields["id"], "timestamp": ev.fields["timestamp"]})
        await self.on_message(self, ev)

    async def _count_ack(self) -> None:
        if not self.ack_window:
            return
        self.ack_left -= 1
        if self.ack_left <= 0:
            self.ack_left = self.ack_window
            await self.send("ack", {})

    # --- the end ---

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)
        if self.writer is not None:
            self.writer.close()
            try:
                await asyncio.wait_for(self.writer.wait_closed(), 2.0)
            except (asyncio.TimeoutError, ConnectionError, OSError):
                pass
        if self.stream is not None:
            self.stream.close(time.time())
