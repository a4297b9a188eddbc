"""The asyncio SPICE server: accepts connections, runs the link stage, hands each linked
channel to its channel class, keeps sessions apart."""
from __future__ import annotations

import asyncio
import secrets
from typing import Callable

from spicetool.qxl.device import QxlDevice
from spicetool.server.channel import ChannelClient
from spicetool.server.cursor_channel import CursorChannel
from spicetool.server.display_channel import DisplayChannel
from spicetool.server.inputlog import InputLog
from spicetool.server.inputs_channel import InputsChannel
from spicetool.server.link import LinkRefused, TicketPolicy, accept_link
from spicetool.server.main_channel import MainChannel
from spicetool.server.session import Session
from spicetool.server.state import ServerState
from spicetool.stack.types import CHANNEL_TYPES

MAX_LINKING = 512  # connections in the link stage at once (the oldest makes room for a new one): far above
# any real load (a real client links in milliseconds), so only a flood of silent links reaches it

CHANNEL_CLASSES: dict[int, type[ChannelClient]] = {
    CHANNEL_TYPES["main"]: MainChannel,
    CHANNEL_TYPES["display"]: DisplayChannel,
    CHANNEL_TYPES["cursor"]: CursorChannel,
    CHANNEL_TYPES["inputs"]: InputsChannel,
}


class SpiceServer(ServerState):
    def __init__(self, device: QxlDevice, password: bytes | None, input_log: InputLog | None = None,
                 name: str = "spicetool", link_timeout: float = 10.0, ping_interval: float = 10.0,
                 max_connections: int = 1024, log: Callable[[str], None] | None = None,
                 verbose: bool = False, image_compression: str = "off", agent=None,
                 secure_channels: set[int] | frozenset = frozenset(),
                 displays: dict[int, QxlDevice] | None = None):
        super().__init__(device, input_log, name, ping_interval, log, verbose, image_compression, agent,
                         displays)
        self.secure_channels = set(secure_channels)  # channel types linked over TLS only
        self._tls_server: asyncio.base_events.Server | None = None
        self.policy = TicketPolicy(password)
        self.link_timeout = link_timeout
        self.max_connections = max_connections   # sockets open at once (file descriptors)
        self.max_linking = MAX_LINKING
        self.connections = 0
        # Connections still in the link stage, oldest first. A new one that finds them all taken
        # evicts the oldest: silent or slow link stages cannot lock real clients out (a real
        # client links in milliseconds), and they cost a slot only until newer ones arrive.
        self._linking: dict[asyncio.Task, asyncio.StreamWriter] = {}
        self._evicted: set[asyncio.Task] = set()
        self.refusals: list[tuple[str, str | None, str]] = []  # (peer, link error, reason)
        self._server: asyncio.base_events.Server | None = None
        self._handlers: set[asyncio.Task] = set()

    def channel_available(self, ctype: int, cid: int) -> bool:
        return ctype == CHANNEL_TYPES["main"] and cid == 0 or (ctype, cid) in self.channel_list()

    def session_exists(self, connection_id: int) -> bool:
        return connection_id in self.sessions

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port, reuse_address=True)

    async def start_tls(self, host: str, port: int, context) -> None:
        """Listen for TLS connections too (an ssl.SSLContext for the server side)."""
        self._tls_server = await asyncio.start_server(self._handle, host, port, reuse_address=True,
                                                      ssl=context, ssl_handshake_timeout=self.link_timeout)

    @property
    def tls_port(self) -> int | None:
        return self._tls_server.sockets[0].getsockname()[1] if self._tls_server is not None else None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._tls_server is not None:
            self._tls_server.close()
        for s in list(self.sessions.values()):
            s.close()
        for t in list(self._handlers):  # clients still in the link stage
            t.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        if self._tls_server is not None:
            await self._tls_server.wait_closed()

    def _new_session_id(self) -> int:
        while True:
            sid = secrets.randbits(32)
            if sid and sid not in self.sessions:
                return sid

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        addr = writer.get_extra_info("peername")
        peer = f"{addr[0]}:{addr[1]}" if addr else "?"
        if len(self._linking) >= self.max_linking or self.connections >= self.max_connections:
            self._evict_oldest_link()
        if self.connections - len(self._evicted) >= self.max_connections:   # evicted ones are going
            self.stats["connections_refused"] += 1
            self.log(f"{peer}: refused, {self.connections} connections already")
            writer.transport.abort()
            return
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await self._serve(reader, writer, peer)
        except asyncio.CancelledError:
            pass  # the server is stopping
        except Exception as e:  # a bug must cost one connection, never the server
            self.stats["internal_errors"] += 1
            self.log(f"{peer}: internal error {type(e).__name__}: {e}")
        finally:
            self.connections -= 1
            self._handlers.discard(task)
            self._linking.pop(task, None)
            self._evicted.discard(task)
            writer.close()

    def _evict_oldest_link(self) -> None:
        for task, writer in self._linking.items():
            if task not in self._evicted:
                self._evicted.add(task)
                writer.transport.abort()   # its read ends; _serve says why
                self.stats["links_evicted"] += 1
                return

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        tls = writer.get_extra_info("ssl_object") is not None
        task = asyncio.current_task()
        if task is not None:
            self._linking[task] = writer
        try:
            link = await asyncio.wait_for(
                accept_link(reader, writer, self.policy, self.channel_available, self.session_exists,
                            self.secure_channels.__contains__, tls),
                self.link_timeout)
        except LinkRefused as e:
            self._refused(peer, e.error, e.reason)
            return
        except asyncio.TimeoutError:
            self._refused(peer, None, f"link not completed within {self.link_timeout:g} s")
            return
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            if task in self._evicted:
                self._refused(peer, None, f"link stage not completed before {self.max_linking} newer "
                                          "connections came (the oldest makes room)")
            elif isinstance(e, asyncio.IncompleteReadError):
                self._refused(peer, None, "client closed the connection during the link stage")
            else:
                self._refused(peer, None, f"connection lost during the link stage: {e}")
            return
        finally:
            self._linking.pop(task, None)

        if link.channel_type == CHANNEL_TYPES["main"]:
            sid = link.connection_id if link.connection_id and link.connection_id not in self.sessions \
                else self._new_session_id()
            session = Session(self.sessions, sid, peer)
            self.sessions[sid] = session
            self.log(f"{peer}: new session {sid:#010x}")
        else:
            session = self.sessions[link.connection_id]
        channel = CHANNEL_CLASSES[link.channel_type](self, session, link, reader, writer, peer)
        session.channels.append(channel)
        self.stats["channels_linked"] += 1
        self.log(f"{peer}: {channel.name} channel linked (session {session.session_id:#010x}, "
                 f"{'mini' if link.mini_header else 'full'} headers{', TLS' if tls else ''})", verbose=True)
        reason = await channel.run()
        self.log(f"{peer}: {channel.name} channel ended: {reason}",
                 verbose=reason in ("client disconnected", "closed by server"))
        if reason not in ("client disconnected", "closed by server", "client is disconnecting"):
            self.stats["clients_dropped"] += 1
            self.refusals.append((peer, None, reason))
        if session.closed is False and channel.name == "main":
            session.close()
        if channel in session.channels:
            session.channels.remove(channel)

    def _refused(self, peer: str, error: str | None, reason: str) -> None:
        self.stats["links_refused"] += 1
        self.refusals.append((peer, error, reason))
        del self.refusals[:-100]
        self.log(f"{peer}: link refused ({error or 'closed'}): {reason}")
