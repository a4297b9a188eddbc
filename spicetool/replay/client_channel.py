"""One channel connection of the replaying client: the link stage, then the data phase.

The stack's client endpoint (ClientLink, over the dissector's observer) runs the link stage
and splits what the server sends; this module reads the socket, writes what the endpoint
says, and waits. What the server sends is answered the way spice-gtk does (the stack's
FlowAnswers): SET_ACK by ACK_SYNC and an ACK every `window` messages, PING by PONG; agent
data by agent tokens (the session). Every byte either way goes to the channel's synthetic TCP
stream in the recording.
"""
from __future__ import annotations

import asyncio
import os
import time
from typing import Awaitable, Callable

from spicetool.replay.client_plan import ChannelPlan
from spicetool.stack import (
    ChannelEndpoint,
    ClientLink,
    FlowAnswers,
    LinkAccepted,
    LinkFailed,
    Message,
    ProtocolError,
    Role,
)
from spicetool.stack import LinkRefused as Refusal

READ_SIZE = 256 * 1024
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
        self.endpoint: ChannelEndpoint | None = None   # made by link()
        self.flow: FlowAnswers | None = None           # once linked
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.stream = None
        self.cuts = None
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

    async def link(self, connection_id: int) -> None:
        """LinkMess with the captured capabilities, auth mechanism, ticket, link result."""
        fields = dict(self.plan.link or {"channel_type": self.plan.channel_type,
                                         "channel_id": self.plan.channel_id,
                                         "common_caps": DEFAULT_COMMON_CAPS, "channel_caps": []})
        fields["connection_id"] = connection_id
        fields.pop("size", None)  # the header's size follows from the caps
        self.endpoint = ChannelEndpoint(Role.CLIENT, ClientLink(fields, self.password))
        self._reader_task = asyncio.create_task(self._read())
        await self.send_bytes(self.endpoint.data_to_send())
        ev = await self._link_event()
        if isinstance(ev, Refusal):
            raise LinkRefused(self.name, str(ev.error))
        if isinstance(ev, LinkFailed):
            if ev.what == "protocol":
                raise ReplayFailure(f"{self.name}: bad link stage from the server: {ev.reason}")
            if ev.what == "sasl":
                raise ReplayFailure(f"{self.name}: {ev.reason}, which replay does not do")
            raise ReplayFailure(f"{self.name}: {ev.reason}")

    async def _link_event(self):
        """The link stage's outcome; each record awaited gets its own `timeout`."""
        link = self.endpoint.link
        deadline = time.monotonic() + self.timeout
        waiting = link.waiting_for
        while True:
            left = deadline - time.monotonic()
            try:
                ev = await asyncio.wait_for(self._events.get(), max(left, 0.001))
            except asyncio.TimeoutError:
                name = (link.waiting_for or "link_reply").replace("_", " ")
                raise ReplayFailure(f"{self.name}: no {name} from the server "
                                    f"within {self.timeout:g} s") from None
            if ev is None:
                raise ReplayFailure(f"{self.name}: {self.closed_by_server} during the link stage")
            if isinstance(ev, (LinkAccepted, Refusal, LinkFailed)):
                return ev
            if link.waiting_for != waiting:   # the reply came: the result has its own time
                waiting = link.waiting_for
                deadline = time.monotonic() + self.timeout

    # --- sending ---

    async def send_bytes(self, data: bytes) -> None:
        if self.writer is None or self.writer.is_closing():
            return
        if self.stream is not None:
            for piece in self.cuts.split(True, data):
                self.stream.data(time.time(), True, piece)
        self.sent["bytes"] += len(data)
        self.writer.write(data)
        try:
            await self.writer.drain()
        except (ConnectionError, OSError):
            pass  # the reader sees the close

    async def send(self, name: str, fields: dict) -> None:
        """A message built by the stack from its fields (answers, made up by us)."""
        assert self.endpoint is not None
        data = self.endpoint.send(name, fields)
        self.sent["messages"] += 1
        self.sent["answered"] += 1
        await self.send_bytes(data)

    async def replay(self, msg: Message) -> None:
        """A captured message, rebuilt by the stack, with this connection's header."""
        assert self.endpoint is not None
        data = self.endpoint.resend(msg)
        self.sent["messages"] += 1
        self.sent["replayed"] += 1
        await self.send_bytes(data)

    # --- receiving ---

    async def _read(self) -> None:
        assert self.reader is not None and self.endpoint is not None
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
                events = self.endpoint.receive_data(data)
                out = self.endpoint.data_to_send()   # the link stage's answer
                if out:
                    await self.send_bytes(out)
                for ev in events:
                    await self._event(ev)
                if self.endpoint.link.waiting_for is not None:
                    await self._events.put("progress")   # a link record came: time restarts
        except (ConnectionError, OSError) as e:
            reason = f"the connection broke ({os.strerror(e.errno) if e.errno else e})"
            if self.stream is not None:
                self.stream.reset(time.time(), False)
        except asyncio.CancelledError:
            return
        except Exception as e:  # a message we cannot answer (e.g. a PING without its fields)
            reason = f"the server sent what we cannot answer ({type(e).__name__}: {e})"
        if self.endpoint.state != "closed":   # a refused link is link()'s to report
            self.closed_by_server = self.closed_by_server or reason
        if self.stream is not None:
            self.stream.fin(time.time(), False)
        await self._events.put(None)

    async def _event(self, ev) -> None:
        if isinstance(ev, LinkAccepted):
            assert self.endpoint is not None
            self.flow = FlowAnswers(self.endpoint.peer_mini_header)
        if isinstance(ev, (LinkAccepted, Refusal, LinkFailed)):
            await self._events.put(ev)
            return
        if isinstance(ev, ProtocolError):
            if ev.fatal:
                self.closed_by_server = f"the server sent undecodable data ({ev.reason})"
            return
        if not isinstance(ev, Message) or self.flow is None:
            return
        self.received["messages"] += 1
        for name, fields in self.flow.received(ev):   # ACK, ACK_SYNC, PONG as spice-gtk
            await self.send(name, fields)
        await self.on_message(self, ev)

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
