"""Writing TCP traffic as a pcap with synthetic Ethernet/IPv4/TCP framing.

Used to build captures from bytes we saw some other way (a recording proxy, a benchmark
that multiplies sessions); Wireshark and our reader both read the result.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from spicetool.capture.reader import TCP_ACK

MAX_SEGMENT = 65000  # payload bytes per synthetic segment (IPv4 total length is 16 bits)
_ETH = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"


def _ipv4(endpoint: str) -> tuple[bytes, int]:
    host, port = endpoint.rsplit(":", 1)
    return bytes(int(x) for x in host.split(".")), int(port)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class PcapWriter:
    """A classic pcap (microsecond, Ethernet) written a segment at a time."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        stream.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self._ip_id = 0

    def segment(self, time: float, src: str, dst: str, seq: int, ack: int, flags: int = TCP_ACK,
                payload: bytes = b"") -> int:
        """Write one or more frames carrying `payload`; returns the sequence number after it."""
        if not payload:
            self._frame(time, src, dst, seq, ack, flags, b"")
            return seq
        for off in range(0, len(payload), MAX_SEGMENT):
            chunk = payload[off : off + MAX_SEGMENT]
            self._frame(time, src, dst, seq, ack, flags, chunk)
            seq = (seq + len(chunk)) & 0xFFFFFFFF
        return seq

    def _frame(self, time: float, src: str, dst: str, seq: int, ack: int, flags: int, payload: bytes) -> None:
        saddr, sport = _ipv4(src)
        daddr, dport = _ipv4(dst)
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), self._ip_id, 0x4000, 64, 6, 0,
                         saddr, daddr)
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        frame = _ETH + ip + tcp + payload
        sec = int(time)
        usec = int(round((time - sec) * 1e6))
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        self.stream.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
        self.stream.write(frame)
