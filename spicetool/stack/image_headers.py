"""Cheap decoding of the inner headers of compressed image payloads (QUIC, LZ, GLZ, LZ4).

Only headers: the pixel data is left to the Rust codecs.  Returns None when the
payload is too short or the magic is wrong, so a damaged image never raises.
"""
from __future__ import annotations

import struct
import zlib

QUIC_MAGIC = 0x43495551
LZ_MAGIC = 0x20205A4C
QUIC_TYPES = {0: "INVALID", 1: "GRAY", 2: "RGB16", 3: "RGB24", 4: "RGB32", 5: "RGBA"}
LZ_TYPES = {0: "INVALID", 1: "PLT1_LE", 2: "PLT1_BE", 3: "PLT4_LE", 4: "PLT4_BE", 5: "PLT8",
            6: "RGB16", 7: "RGB24", 8: "RGB32", 9: "RGBA", 10: "XXXA", 11: "A8"}
BITMAP_FMTS = {0: "INVALID", 1: "1BIT_LE", 2: "1BIT_BE", 3: "4BIT_LE", 4: "4BIT_BE", 5: "8BIT",
               6: "16BIT", 7: "24BIT", 8: "32BIT", 9: "RGBA", 10: "8BIT_A"}

_quic = struct.Struct("<5I")
_lz = struct.Struct(">7I")
_glz = struct.Struct(">IIBIIIQI")


def quic_header(data: bytes) -> dict | None:
    if len(data) < _quic.size:
        return None
    magic, version, typ, width, height = _quic.unpack_from(data)
    if magic != QUIC_MAGIC:
        return None
    return {"version": version, "type": QUIC_TYPES.get(typ, typ), "width": width, "height": height}


def lz_header(data: bytes) -> dict | None:
    if len(data) < _lz.size:
        return None
    magic, version, typ, width, height, stride, top_down = _lz.unpack_from(data)
    if magic != LZ_MAGIC:
        return None
    return {"version": version, "type": LZ_TYPES.get(typ, typ), "width": width, "height": height,
            "stride": stride, "top_down": top_down}


def glz_header(data: bytes) -> dict | None:
    if len(data) < _glz.size:
        return None
    magic, version, tb, width, height, stride, image_id, win_head_dist = _glz.unpack_from(data)
    if magic != LZ_MAGIC:
        return None
    return {"version": version, "type": LZ_TYPES.get(tb & 0x0F, tb & 0x0F), "top_down": tb >> 4,
            "width": width, "height": height, "stride": stride, "image_id": image_id,
            "win_head_dist": win_head_dist}


def lz4_header(data: bytes) -> dict | None:
    if len(data) < 2:
        return None
    return {"top_down": data[0], "format": BITMAP_FMTS.get(data[1], data[1])}


def zlib_glz_header(data: bytes) -> dict | None:
    """GLZ header inside a ZLIB_GLZ_RGB payload: inflate only its first bytes."""
    try:
        head = zlib.decompressobj().decompress(data, _glz.size)
    except zlib.error:
        return None
    return glz_header(head)
