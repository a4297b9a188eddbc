"""Classic pcap files (tcpdump's format): their records, read a record at a time, and PcapWriter.

A file header (magic, version, time zone, snaplen, link type) then one 16-byte record header
(seconds, micro- or nanoseconds, captured and original lengths) before each frame; the magic
says the byte order and the time unit.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Iterator

from spicetool.capture.errors import CaptureDamaged
from spicetool.capture.frames import LINKTYPE_ETHERNET, MAX_RECORD, SNAPLEN, SegmentWriter, split_time
from spicetool.capture.source import RecordSource

PCAP_MAGICS = {  # the first four bytes of the file -> (byte order, seconds per tick)
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_HEADER = struct.Struct("<IHHiIII")  # what PcapWriter writes: microseconds, little-endian
_RECORD = struct.Struct("<IIII")


def pcap_records(src: RecordSource) -> Iterator[tuple[int, float, bytes]]:
    """(link type, time, frame bytes) of each record after the magic `src` has read."""
    endian, unit = PCAP_MAGICS[src.magic]
    rest = src.read(20, "the file header")
    _vmaj, _vmin, _zone, _sig, _snap, linktype = struct.unpack(endian + "HHiIII", rest)
    linktype &= 0x0FFFFFFF
    rec = struct.Struct(endian + "IIII")
    while True:
        head = src.read_next(16, "a record header")
        if not head:
            return
        sec, frac, caplen, _origlen = rec.unpack(head)
        if caplen > MAX_RECORD:
            raise CaptureDamaged(f"corrupt record after frame {src.frames}: length {caplen}")
        yield linktype, sec + frac * unit, src.read(caplen, f"frame {src.frames + 1}")


class PcapWriter(SegmentWriter):
    """A classic pcap (microsecond, Ethernet) written a segment at a time."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self.stream = stream
        stream.write(_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))

    def frame(self, time: float, data: bytes) -> None:
        sec, usec = split_time(time)
        self.stream.write(_RECORD.pack(sec, usec, len(data), len(data)))
        self.stream.write(data)
