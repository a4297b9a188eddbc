"""pcapng files: their blocks, read a block at a time, and PcapngWriter.

Blocks read: Section Header (byte order; interfaces start again), Interface Description (link
type, if_tsresol), Enhanced and Simple Packet (frames), Decryption Secrets (kept for the
caller: a TLS key log injected into the capture, as `editcap --inject-secrets` writes it).
Other blocks (statistics, name resolution, custom) are skipped.

A Decryption Secrets block whose secrets length claims more than the block holds is damage that
does not stop the reading (the packets around it are whole): its bytes up to the block's end are
kept, and the reader is told in `src.problems`. With `packets=False` the packet blocks are passed
over unread: the same walk finds a file's secrets ahead of its reader (files.capture_secrets).
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Iterator

from spicetool.capture.errors import CaptureDamaged
from spicetool.capture.frames import LINKTYPE_ETHERNET, MAX_RECORD, SNAPLEN, SegmentWriter, split_time
from spicetool.capture.source import RecordSource

BLOCK_SECTION_HEADER = 0x0A0D0D0A
BLOCK_INTERFACE = 0x00000001
BLOCK_SIMPLE_PACKET = 0x00000003
BLOCK_ENHANCED_PACKET = 0x00000006
BLOCK_DECRYPTION_SECRETS = 0x0000000A
SECRETS_TLS_KEY_LOG = 0x544C534B  # "TLSK": an NSS key log
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"  # the section header's block type, the same in either byte order
_BOM_LE, _BOM_BE = b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"
_OPT_END, _OPT_SHB_USERAPPL, _OPT_IF_TSRESOL = 0, 4, 9
_U32 = {e: struct.Struct(e + "I").unpack for e in "<>"}
_EPB_HEAD = {e: struct.Struct(e + "IIII").unpack_from for e in "<>"}  # interface, time high and low, caplen


def pcapng_records(src: RecordSource, packets: bool = True) -> Iterator[tuple[int, float, bytes]]:
    """(link type, time, frame bytes) of each packet block, from the section header whose type
    `src` has read; Decryption Secrets blocks land in `src.secrets` as they come. `packets=False`:
    packet blocks are skipped, not read, and nothing is yielded (a look for the secrets alone)."""
    endian = "<"
    u32, epb_head = _U32["<"], _EPB_HEAD["<"]  # the section's byte order, compiled once
    interfaces: list[tuple[int, float]] = []  # (linktype, seconds per tick)
    btype_raw = src.magic
    while True:
        if btype_raw == PCAPNG_SHB:
            raw_len = src.read(4, "a section header")
            bom = src.read(4, "a section header")
            if bom not in (_BOM_LE, _BOM_BE):
                raise CaptureDamaged(f"corrupt section header after frame {src.frames}")
            endian = "<" if bom == _BOM_LE else ">"
            u32, epb_head = _U32[endian], _EPB_HEAD[endian]
            blen = u32(raw_len)[0]
            if blen < 28 or blen > MAX_RECORD or blen % 4:
                raise CaptureDamaged(f"corrupt section header after frame {src.frames}")
            src.read(blen - 12, "a section header")
            interfaces = []
        else:
            btype = u32(btype_raw)[0]
            blen = u32(src.read(4, "a block header"))[0]
            if blen < 12 or blen > MAX_RECORD or blen % 4:
                raise CaptureDamaged(f"corrupt block (length {blen}) after frame {src.frames}")
            body: bytes | None = None
            if not packets and btype in (BLOCK_ENHANCED_PACKET, BLOCK_SIMPLE_PACKET):
                src.skip(blen - 8)  # (passed over: a look for the secrets alone)
                src.frames += 1
            else:
                body = src.read(blen - 8, _what(btype, src))[:-4]
            if body is None:
                pass
            elif btype == BLOCK_ENHANCED_PACKET and len(body) >= 20:
                ifid, ts_hi, ts_lo, caplen = epb_head(body)
                if ifid >= len(interfaces) or caplen > len(body) - 20:
                    raise CaptureDamaged(f"corrupt packet block after frame {src.frames}")
                linktype, tick = interfaces[ifid]
                yield linktype, ((ts_hi << 32) | ts_lo) * tick, body[20 : 20 + caplen]
            elif btype == BLOCK_INTERFACE:
                if len(body) < 8:
                    raise CaptureDamaged(f"corrupt interface block after frame {src.frames}")
                linktype = struct.unpack_from(endian + "H", body)[0]
                interfaces.append((linktype, _if_tsresol(body[8:], endian)))
            elif btype == BLOCK_SIMPLE_PACKET and interfaces:
                linktype, _tick = interfaces[0]
                yield linktype, 0.0, body[4:]
            elif btype == BLOCK_DECRYPTION_SECRETS:
                src.dsb_count += 1
                where = f"corrupt decryption secrets block after frame {src.frames} " \
                        f"(block {src.dsb_count}, at byte {src.bytes_read + 4 - blen})"
                if len(body) < 8:
                    raise CaptureDamaged(where)
                kind, length = struct.unpack_from(endian + "II", body)
                if length > len(body) - 8:
                    src.problems.append(f"{where}: its secrets length {length} is more than the {len(body) - 8} "
                                        "bytes it holds (those were read)")
                src.secrets.append((kind, body[8 : 8 + length]))
        btype_raw = src.read_next(4, "a block header")
        if not btype_raw:
            return


def _what(btype: int, src: RecordSource) -> str:
    """The block a truncation is in, as told."""
    if btype == BLOCK_DECRYPTION_SECRETS:
        return f"decryption secrets block {src.dsb_count + 1}"  # (its number among the file's blocks)
    if btype == BLOCK_INTERFACE:
        return "an interface block"
    return f"frame {src.frames + 1}"


def _if_tsresol(options: bytes, endian: str) -> float:
    """Seconds per timestamp tick from an interface block's if_tsresol option."""
    off = 0
    while off + 4 <= len(options):
        code, length = struct.unpack_from(endian + "HH", options, off)
        if code == _OPT_END:
            break
        if code == _OPT_IF_TSRESOL and length >= 1:
            v = options[off + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        off += 4 + ((length + 3) & ~3)
    return 1e-6


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


class PcapngWriter(SegmentWriter):
    """pcapng with one Ethernet interface, microsecond timestamps; the same `segment()` as PcapWriter."""

    def __init__(self, stream: BinaryIO, application: str = "spicetool record") -> None:
        super().__init__()
        self.stream = stream
        shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + _option(_OPT_SHB_USERAPPL, application.encode()) \
            + _option(_OPT_END, b"")
        stream.write(_block(BLOCK_SECTION_HEADER, shb))
        idb = struct.pack("<HHI", LINKTYPE_ETHERNET, 0, SNAPLEN) + _option(_OPT_IF_TSRESOL, b"\x06") \
            + _option(_OPT_END, b"")
        stream.write(_block(BLOCK_INTERFACE, idb))

    def frame(self, time: float, data: bytes) -> None:
        sec, usec = split_time(time)
        ticks = sec * 1_000_000 + usec
        epb = struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)) + data
        self.stream.write(_block(BLOCK_ENHANCED_PACKET, epb))

    def secrets(self, data: bytes, kind: int = SECRETS_TLS_KEY_LOG) -> None:
        """A Decryption Secrets block (by default a TLS key log), for the packets after it."""
        self.stream.write(_block(BLOCK_DECRYPTION_SECRETS, struct.pack("<II", kind, len(data)) + data))
