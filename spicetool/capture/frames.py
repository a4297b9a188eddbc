"""Link-layer frames to TCP segments and back: what pcap, pcapng and live capture share.

Reading: Ethernet (with VLAN tags), Linux cooked (SLL, SLL2), raw IP, BSD loopback; IPv4 and
IPv6 (no fragments, no extension headers), TCP only. Writing: synthetic Ethernet/IPv4/TCP
frames for bytes we saw some other way (a recording proxy, a replay, a benchmark), which
Wireshark and our reader both read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass


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
    window: int = -1  # the TCP header's window field as sent (unscaled; 0 means zero window), -1 unknown


TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# link-layer header types (tcpdump.org/linktypes)
LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LOOP = 0, 1, 101, 108
LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_SLL, LINKTYPE_SLL2 = 228, 229, 113, 276
LINKTYPE_RAW_OLD = 12  # raw IP on OpenBSD-era files

MAX_RECORD = 256 * 1024 * 1024  # bytes of one captured frame: no sane snaplen comes near this

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBH")  # up to the window: one unpack of the fields a Segment keeps
_ETHERTYPES_IP = (0x0800, 0x86DD)
_ETHERTYPES_VLAN = (0x8100, 0x88A8)
_IP_BYTES = (b"\x08\x00", b"\x86\xdd")

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


def tcp_from_ip(data: bytes, time: float, frame: int) -> Segment | None:
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
    sport, dport, seq, ack, off, flags, window = _TCP.unpack_from(data, tcp_at)
    hlen = (off >> 4) * 4
    if hlen < 20 or tcp_at + hlen > end:
        return None
    return Segment(time, frame, _endpoint(src, sport), _endpoint(dst, dport), seq, ack, flags,
                   data[tcp_at + hlen : end], window)


def strip_link(linktype: int, data: bytes) -> bytes | None:
    """Return the IP packet inside one link-layer frame, or None."""
    if linktype == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return None
        ethertype = data[12] << 8 | data[13]  # (no slice and int.from_bytes: this runs once a frame)
        off = 14
        while ethertype in _ETHERTYPES_VLAN and len(data) >= off + 4:
            ethertype = int.from_bytes(data[off + 2 : off + 4], "big")
            off += 4
        return data[off:] if ethertype in _ETHERTYPES_IP else None
    if linktype in (LINKTYPE_RAW, LINKTYPE_RAW_OLD, LINKTYPE_IPV4, LINKTYPE_IPV6):
        return data
    if linktype == LINKTYPE_SLL:
        return data[16:] if len(data) >= 16 and data[14:16] in _IP_BYTES else None
    if linktype == LINKTYPE_SLL2:
        return data[20:] if len(data) >= 20 and data[0:2] in _IP_BYTES else None
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        return data[4:] if len(data) >= 4 else None
    return None


def segment_of(linktype: int, data: bytes, time: float, frame: int) -> Segment | None:
    """The TCP segment one captured frame carries, or None."""
    ip = strip_link(linktype, data)
    return None if ip is None else tcp_from_ip(ip, time, frame)


# -- writing ----------------------------------------------------------------------------------------
MAX_SEGMENT = 65000  # payload bytes per synthetic segment (IPv4 total length is 16 bits)
SNAPLEN = 262144
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


def ethernet_frame(src: str, dst: str, seq: int, ack: int, flags: int, payload: bytes, ip_id: int) -> bytes:
    """One synthetic Ethernet/IPv4/TCP frame ("a.b.c.d:port" endpoints; TCP checksum left 0)."""
    saddr, sport = _ipv4(src)
    daddr, dport = _ipv4(dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), ip_id, 0x4000, 64, 6, 0,
                     saddr, daddr)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return _ETH + ip + tcp + payload


def split_time(time: float) -> tuple[int, int]:
    """Seconds and microseconds of a time, rounded to the microsecond."""
    sec = int(time)
    usec = int(round((time - sec) * 1e6))
    if usec >= 1_000_000:
        sec, usec = sec + 1, usec - 1_000_000
    return sec, usec


class SegmentWriter:
    """TCP segments written as synthetic Ethernet frames, a frame at a time; a file format
    (PcapWriter, PcapngWriter) says how each frame is recorded."""

    def __init__(self) -> None:
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
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        self.frame(time, ethernet_frame(src, dst, seq, ack, flags, payload, self._ip_id))

    def frame(self, time: float, data: bytes) -> None:
        """Record one Ethernet frame captured at `time`."""
        raise NotImplementedError
