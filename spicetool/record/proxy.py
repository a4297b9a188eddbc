"""The recording proxy: accepts client connections, opens one to the server for each, passes
every byte through unchanged in both directions and records both directions as a TCP stream."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass
from typing import Callable

from spicetool.capture import LinkStageCuts, Recording, TcpStream

READ_SIZE = 256 * 1024
CONNECT_TIMEOUT = 15.0


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_hostport(text: str) -> HostPort:
    """'HOST:PORT', '[v6]:PORT' or ':PORT' (all addresses); ValueError with a one-line reason."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    host = host.strip("[]")
    return HostPort(host, int(port))


class RecordingProxy:
    def __init__(self, listen: HostPort, target: HostPort, recording: Recording,
                 listen_tls: ssl.SSLContext | None = None, target_tls: ssl.SSLContext | None = None,
                 log: Callable[[str], None] = lambda _m: None) -> None:
        self.listen, self.target = listen, target
        self.recording = recording
        self.listen_tls, self.target_tls = listen_tls, target_tls
        self.log = log
        self.server: asyncio.AbstractServer | None = None
        self.handlers: set[asyncio.Task] = set()
        self.connections = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, self.listen.host or None, self.listen.port,
                                                 ssl=self.listen_tls, limit=READ_SIZE)

    async def stop(self) -> None:
        """Stop listening, end every open connection (recorded with FINs), leave a complete file."""
        if self.server is not None:
            self.server.close()
        for task in list(self.handlers):
            task.cancel()
        if self.handlers:
            await asyncio.gather(*self.handlers, return_exceptions=True)
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2.0)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        accepted = time.time()
        self.connections += 1
        number = self.connections
        peer = client_w.get_extra_info("peername")[:2]
        stream: TcpStream | None = None
        server_w: asyncio.StreamWriter | None = None
        try:
            try:
                server_r, server_w = await asyncio.wait_for(
                    asyncio.open_connection(self.target.host, self.target.port, ssl=self.target_tls,
                                            server_hostname=self.target.host if self.target_tls else None,
                                            limit=READ_SIZE),
                    CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
                stream = self.recording.new_stream(peer, (self.target.host, self.target.port), accepted)
                stream.refuse(time.time())
                self.log(f"#{number} {stream.client}: cannot reach {self.target}: {exc or 'timeout'}")
                return
            server_peer = server_w.get_extra_info("peername")[:2]
            stream = self.recording.new_stream(peer, server_peer, accepted)
            stream.accept(time.time())
            self.log(f"#{number} {stream.client} -> {stream.server} opened")
            cuts = LinkStageCuts()
            await asyncio.gather(self._pump(client_r, server_w, server_r, stream, cuts, True),
                                 self._pump(server_r, client_w, client_r, stream, cuts, False))
        except asyncio.CancelledError:
            pass  # proxy stopping: the finally below closes the stream
        finally:
            if stream is not None:
                stream.close(time.time())
                if stream.established:
                    late = "".join(f"; {n} bytes from the {who} came after the {other} had closed"
                                   for n, who, other in ((stream.after_close[False], "server", "client"),
                                                         (stream.after_close[True], "client", "server")) if n)
                    self.log(f"#{number} {stream.client} closed ({stream.bytes[True]} bytes from the client, "
                             f"{stream.bytes[False]} from the server{late})")
            for w in (client_w, server_w):
                if w is not None:
                    w.close()
            self.handlers.discard(task)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, dst_reader: asyncio.StreamReader,
                    stream: TcpStream, cuts: LinkStageCuts, from_client: bool) -> None:
        """Copy one direction until EOF; record each chunk at the time it arrived."""
        while True:
            try:
                data = await src.read(READ_SIZE)
            except (ConnectionError, ssl.SSLError, OSError):
                stream.reset(time.time(), from_client)
                dst.close()
                return
            now = time.time()
            if not data:
                stream.fin(now, from_client)
                if dst.can_write_eof():
                    with contextlib.suppress(OSError):
                        dst.write_eof()
                else:  # TLS cannot half-close: close the other side's connection instead
                    dst.close()
                return
            if stream.open[not from_client] and (dst.is_closing() or dst_reader.at_eof()):
                # The far side has closed, but its own pump has not woken yet to say so. A TLS
                # peer's close stops its transport at once (what is written to it now is dropped),
                # so the recording shows its FIN first: these bytes came after it had closed.
                stream.fin(now, not from_client)
            for piece in cuts.split(from_client, data):
                stream.data(now, from_client, piece)
            try:
                dst.write(data)
                await dst.drain()
            except (ConnectionError, ssl.SSLError, OSError):
                stream.reset(time.time(), not from_client)
                return
