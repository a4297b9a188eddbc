"""A pcapng flavour of PcapWriter: same `segment()` API, one Enhanced Packet Block per frame.

The frame bytes come from PcapWriter itself (its synthetic Ethernet/IPv4/TCP framing), so the two
formats cannot drift apart: we let it write a classic pcap record into a scratch buffer and re-wrap it.
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO

from spicetool.capture.pcap_writer import PcapWriter

_SHB_MAGIC = 0x1A2B3C4D
_LINKTYPE_ETHERNET = 1


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


class PcapngWriter(PcapWriter):
    """pcapng with one Ethernet interface, microsecond timestamps."""

    def __init__(self, stream: BinaryIO, application: str = "spicetool record") -> None:
        self._out = stream
        super().__init__(io.BytesIO())  # the classic file header lands in a scratch buffer
        shb = struct.pack("<IHHq", _SHB_MAGIC, 1, 0, -1) + _option(4, application.encode()) + _option(0, b"")
        stream.write(_block(0x0A0D0D0A, shb))
        idb = struct.pack("<HHI", _LINKTYPE_ETHERNET, 0, 262144) + _option(9, b"\x06") + _option(0, b"")
        stream.write(_block(1, idb))

    def _frame(self, time: float, src: str, dst: str, seq: int, ack: int, flags: int, payload: bytes) -> None:
        self.stream = scratch = io.BytesIO()
        super()._frame(time, src, dst, seq, ack, flags, payload)
        record = scratch.getvalue()
        sec, usec, caplen, origlen = struct.unpack_from("<IIII", record)
        ticks = sec * 1_000_000 + usec
        epb = struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, caplen, origlen) + record[16:]
        self._out.write(_block(6, epb))
