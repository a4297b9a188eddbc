"""Streaming pcap and pcapng reading, down to TCP segments.

Hand-written because it is the hot loop of every command and small: a record at a time,
never the whole file in memory. Link types: Ethernet, Linux cooked (SLL, SLL2), raw IP,
BSD loopback. IPv4 and IPv6 (no fragments), TCP only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterator


class CaptureError(Exception):
    """The file cannot be read as a capture at all (one line, for the user)."""


class CaptureDamaged(Exception):
    """The capture ends or breaks in the middle: what came before is good."""


@dataclass(slots=True)
class Segment:
    """One TCP segment as captured."""

    time: float  # seconds since the epoch
    frame: int  # 1-based packet number in the file, as Wireshark counts
    src: str  # "ip:port"
    dst: str
    seq: int
    ack: int
    flags: int
    payload: bytes


TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10

# link-layer header types (tcpdump.org/linktypes)
LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LOOP = 0, 1, 101, 108
LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_SLL, LINKTYPE_SLL2 = 228, 229, 113, 276
LINKTYPE_RAW_OLD = 12  # raw IP on OpenBSD-era files

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
MAX_RECORD = 256 * 1024 * 1024  # no sane snaplen comes near this

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBB")


_endpoints: dict[tuple[bytes, int], str] = {}  # (address bytes, port) -> "ip:port", built once each


def _endpoint(addr: bytes, port: int) -> str:
    key = (addr, port)
    text = _endpoints.get(key)
    if text is None:
        if len(addr) == 4:
            host = "%d.%d.%d.%d" % tuple(addr)
        else:
            import ipaddress

            host = "[%s]" % ipaddress.IPv6Address(addr)
        if len(_endpoints) > 100_000:  # a scan of many addresses: do not grow without bound
            _endpoints.clear()
        text = _endpoints[key] = f"{host}:{port}"
    return text


def _tcp_from_ip(data: bytes, time: float, frame: int) -> Segment | None:
    """Parse an IP packet that starts at data[0]; None when it is not TCP."""
    if len(data) < 20:
        return None
    version = data[0] >> 4
    if version == 4:
        vhl, _tos, total, _id, frag, _ttl, proto, _sum, src, dst = _IPV4.unpack_from(data)
        ihl = (vhl & 0x0F) * 4
        if proto != 6 or ihl < 20 or len(data) < ihl + 20 or frag & 0x3FFF:  # fragments are not ours
            return None
        end = total if ihl <= total < len(data) else len(data)
        tcp_at = ihl
    elif version == 6:
        if len(data) < 60 or data[6] != 6:  # extension headers are not followed
            return None
        plen = int.from_bytes(data[4:6], "big")
        src, dst = data[8:24], data[24:40]
        end = min(len(data), 40 + plen) if plen else len(data)
        tcp_at = 40
    else:
        return None
    if end - tcp_at < 20:
        return None
    sport, dport, seq, ack, off, flags = _TCP.unpack_from(data, tcp_at)
    hlen = (off >> 4) * 4
    if hlen < 20 or tcp_at + hlen > end:
        return None
    return Segment(time, frame, _endpoint(src, sport), _endpoint(dst, dport), seq, ack, flags,
                   data[tcp_at + hlen : end])


def _strip_link(linktype: int, data: bytes) -> bytes | None:
    """Return the IP packet inside one link-layer frame, or None."""
    if linktype == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return None
        ethertype = int.from_bytes(data[12:14], "big")
        off = 14
        while ethertype in (0x8100, 0x88A8) and len(data) >= off + 4:  # VLAN tags
            ethertype = int.from_bytes(data[off + 2 : off + 4], "big")
            off += 4
        return data[off:] if ethertype in (0x0800, 0x86DD) else None
    if linktype in (LINKTYPE_RAW, LINKTYPE_RAW_OLD, LINKTYPE_IPV4, LINKTYPE_IPV6):
        return data
    if linktype == LINKTYPE_SLL:
        return data[16:] if len(data) >= 16 and data[14:16] in (b"\x08\x00", b"\x86\xdd") else None
    if linktype == LINKTYPE_SLL2:
        return data[20:] if len(data) >= 20 and data[0:2] in (b"\x08\x00", b"\x86\xdd") else None
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        return data[4:] if len(data) >= 4 else None
    return None


class CaptureReader:
    """Iterate the TCP segments of a pcap or pcapng file, a record at a time.

    `damage` is set (and iteration ends) when the file breaks off or is corrupt.
    """

    def __init__(self, stream: BinaryIO, name: str = "capture") -> None:
        self.stream = stream
        self.name = name
        self.damage: str | None = None
        self.frames = 0
        self.bytes_read = 0
        head = stream.read(4)
        if len(head) < 4:
            raise CaptureError(f"{name}: empty or too short to be a capture")
        self._head = head
        if head in PCAP_MAGICS:
            self.format = "pcap"
        elif head == PCAPNG_SHB:
            self.format = "pcapng"
        else:
            raise CaptureError(f"{name}: not a pcap or pcapng capture (starts with {head.hex()})")

    def __iter__(self) -> Iterator[Segment]:
        records = self._pcap_records() if self.format == "pcap" else self._pcapng_records()
        try:
            for linktype, time, data in records:
                self.frames += 1
                ip = _strip_link(linktype, data)
                if ip is None:
                    continue
                seg = _tcp_from_ip(ip, time, self.frames)
                if seg is not None:
                    yield seg
        except CaptureDamaged as exc:
            self.damage = str(exc)

    def _read(self, n: int, what: str) -> bytes:
        data = self.stream.read(n)
        self.bytes_read += len(data)
        if len(data) < n:
            raise CaptureDamaged(
                f"capture truncated in {what} after frame {self.frames} "
                f"(byte {self.bytes_read + 4} of the file)"
            )
        return data

    def _pcap_records(self) -> Iterator[tuple[int, float, bytes]]:
        endian, unit = PCAP_MAGICS[self._head]
        rest = self._read(20, "the file header")
        _vmaj, _vmin, _zone, _sig, _snap, linktype = struct.unpack(endian + "HHiIII", rest)
        linktype &= 0x0FFFFFFF
        rec = struct.Struct(endian + "IIII")
        while True:
            head = self.stream.read(16)
            if not head:
                return
            self.bytes_read += len(head)
            if len(head) < 16:
                raise CaptureDamaged(f"capture truncated in a record header after frame {self.frames}")
            sec, frac, caplen, _origlen = rec.unpack(head)
            if caplen > MAX_RECORD:
                raise CaptureDamaged(f"corrupt record after frame {self.frames}: length {caplen}")
            yield linktype, sec + frac * unit, self._read(caplen, f"frame {self.frames + 1}")

    def _pcapng_records(self) -> Iterator[tuple[int, float, bytes]]:
        endian = "<"
        interfaces: list[tuple[int, float]] = []  # (linktype, seconds per tick)
        first = True
        while True:
            if first:
                btype_raw = self._head
                first = False
            else:
                btype_raw = self.stream.read(4)
                if not btype_raw:
                    return
                self.bytes_read += len(btype_raw)
                if len(btype_raw) < 4:
                    raise CaptureDamaged(f"capture truncated in a block header after frame {self.frames}")
            if btype_raw == PCAPNG_SHB:
                raw_len = self._read(4, "a section header")
                bom = self._read(4, "a section header")
                endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
                if bom not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                    raise CaptureDamaged(f"corrupt section header after frame {self.frames}")
                blen = struct.unpack(endian + "I", raw_len)[0]
                if blen < 28 or blen > MAX_RECORD or blen % 4:
                    raise CaptureDamaged(f"corrupt section header after frame {self.frames}")
                self._read(blen - 12, "a section header")
                interfaces = []
                continue
            btype = struct.unpack(endian + "I", btype_raw)[0]
            blen = struct.unpack(endian + "I", self._read(4, "a block header"))[0]
            if blen < 12 or blen > MAX_RECORD or blen % 4:
                raise CaptureDamaged(f"corrupt block (length {blen}) after frame {self.frames}")
            body = self._read(blen - 8, f"frame {self.frames + 1}")[:-4]
            if btype == 1:  # interface description
                linktype = struct.unpack_from(endian + "H", body)[0]
                interfaces.append((linktype, _if_tsresol(body[8:], endian)))
            elif btype == 6 and len(body) >= 20:  # enhanced packet
                ifid, ts_hi, ts_lo, caplen = struct.unpack_from(endian + "IIII", body)
                if ifid >= len(interfaces) or caplen > len(body) - 20:
                    raise CaptureDamaged(f"corrupt packet block after frame {self.frames}")
                linktype, tick = interfaces[ifid]
                yield linktype, ((ts_hi << 32) | ts_lo) * tick, body[20 : 20 + caplen]
            elif btype == 3 and interfaces:  # simple packet
                linktype, _tick = interfaces[0]
                yield linktype, 0.0, body[4:]


def _if_tsresol(options: bytes, endian: str) -> float:
    """Seconds per timestamp tick from an interface block's if_tsresol option."""
    off = 0
    while off + 4 <= len(options):
        code, length = struct.unpack_from(endian + "HH", options, off)
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = options[off + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        off += 4 + ((length + 3) & ~3)
    return 1e-6


def open_capture(path: str) -> CaptureReader:
    """Open a capture file; CaptureError (one line) when it cannot be."""
    try:
        stream = open(path, "rb", buffering=1024 * 1024)
    except OSError as exc:
        raise CaptureError(f"{path}: {exc.strerror or exc}") from None
    try:
        return CaptureReader(stream, path)
    except CaptureError:
        stream.close()
        raise
