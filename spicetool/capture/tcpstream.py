"""Synthetic TCP framing for a recording: each proxied connection becomes one proper TCP stream.

The proxy sees only payload bytes; readers (Wireshark, tshark, our dissector) want a TCP stream
with a handshake, consistent sequence/ack numbers and a close. This module invents those, writing
through a PcapWriter (or PcapngWriter) and flushing after every write so that a recording cut
short (power loss, SIGKILL) still holds everything up to the last segment.
"""

from __future__ import annotations

import ipaddress
import random
from typing import BinaryIO

from spicetool.capture.frames import TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, SegmentWriter

# Stand-ins for addresses the IPv4-only framing cannot show (documentation ranges, RFC 5737).
_V6_CLIENT, _V6_SERVER = "192.0.2.1", "192.0.2.2"


def ipv4_for(host: str, stand_in: str) -> str:
    """The IPv4 address to show for `host` (IPv4-mapped and ::1 map naturally, other IPv6 to a stand-in)."""
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return stand_in
    if isinstance(addr, ipaddress.IPv4Address):
        return str(addr)
    if addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    if addr.is_loopback:
        return "127.0.0.1"
    return stand_in


class TcpStream:
    """One recorded connection: client side and server side sequence state."""

    def __init__(self, recording: Recording, client: str, server: str, time: float) -> None:
        self.rec = recording
        self.client, self.server = client, server
        self.next = {True: random.getrandbits(32), False: random.getrandbits(32)}  # keyed by from_client
        self.open = {True: True, False: True}
        self.bytes = {True: 0, False: 0}
        # bytes one side sent after the other had closed its side: passed on and recorded, though
        # a peer that closed its whole socket (not only its sending side) never reads them
        self.after_close = {True: 0, False: 0}
        w = recording.writer
        w.segment(time, client, server, self.next[True], 0, TCP_SYN)
        self.next[True] = (self.next[True] + 1) & 0xFFFFFFFF
        self.established = False

    def _ends(self, from_client: bool) -> tuple[str, str]:
        return (self.client, self.server) if from_client else (self.server, self.client)

    def accept(self, time: float) -> None:
        """The server answered: SYN-ACK and the client's ACK."""
        w = self.rec.writer
        w.segment(time, self.server, self.client, self.next[False], self.next[True], TCP_SYN | TCP_ACK)
        self.next[False] = (self.next[False] + 1) & 0xFFFFFFFF
        w.segment(time, self.client, self.server, self.next[True], self.next[False], TCP_ACK)
        self.established = True
        self.rec.flush()

    def refuse(self, time: float) -> None:
        """The server could not be reached: show it as a reset answering the SYN."""
        self.rec.writer.segment(time, self.server, self.client, 0, self.next[True], TCP_RST | TCP_ACK)
        self.open = {True: False, False: False}
        self.rec.flush()

    def data(self, time: float, from_client: bool, payload: bytes) -> None:
        src, dst = self._ends(from_client)
        self.next[from_client] = self.rec.writer.segment(
            time, src, dst, self.next[from_client], self.next[not from_client], TCP_ACK | TCP_PSH, payload)
        self.bytes[from_client] += len(payload)
        if not self.open[not from_client]:
            self.after_close[from_client] += len(payload)
        self.rec.flush()

    def fin(self, time: float, from_client: bool) -> None:
        """One side closed its direction: its FIN, and the other side's ACK of it."""
        if not self.open[from_client] or not self.established:
            return
        src, dst = self._ends(from_client)
        w = self.rec.writer
        w.segment(time, src, dst, self.next[from_client], self.next[not from_client], TCP_FIN | TCP_ACK)
        self.next[from_client] = (self.next[from_client] + 1) & 0xFFFFFFFF
        w.segment(time, dst, src, self.next[not from_client], self.next[from_client], TCP_ACK)
        self.open[from_client] = False
        self.rec.flush()

    def reset(self, time: float, from_client: bool) -> None:
        """One side's connection broke (reset, TLS failure): a RST, and nothing more on this stream."""
        if not any(self.open.values()):
            return
        src, dst = self._ends(from_client)
        self.rec.writer.segment(time, src, dst, self.next[from_client], self.next[not from_client],
                                TCP_RST | TCP_ACK)
        self.open = {True: False, False: False}
        self.rec.flush()

    def close(self, time: float) -> None:
        """The proxy is done with this connection: FIN whatever is still open, client side first."""
        for from_client in (True, False):
            self.fin(time, from_client)


class Recording:
    """The output file, and the synthetic 4-tuples handed out so far (each one used once)."""

    def __init__(self, stream: BinaryIO, writer: SegmentWriter) -> None:
        self.stream = stream
        self.writer = writer
        self.used: set[tuple[str, str]] = set()
        self.streams = 0

    def new_stream(self, client: tuple[str, int], server: tuple[str, int], time: float) -> TcpStream:
        chost, cport = ipv4_for(client[0], _V6_CLIENT), client[1]
        server_ep = f"{ipv4_for(server[0], _V6_SERVER)}:{server[1]}"
        # A client port reused later in a long recording would merge two streams: pick the next free one.
        while (f"{chost}:{cport}", server_ep) in self.used:
            cport = cport + 1 if cport < 65535 else 1024
        client_ep = f"{chost}:{cport}"
        self.used.add((client_ep, server_ep))
        self.streams += 1
        return TcpStream(self, client_ep, server_ep, time)

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()
        self.stream.close()
