"""Pixels -> the fields of a SPICE Image (spice.proto `Image`), built by the stack.

BITMAP (uncompressed 32BIT, top-down), or compressed by the Rust encoders (QUIC, LZ, GLZ, LZ4)
as the server setting or the client's PREFERRED_COMPRESSION asks, like spice-server's
image-encoders.cpp. Tiny images stay BITMAP, as there.
"""
from __future__ import annotations

import itertools
from typing import Callable

import numpy as np

BITMAP_FLAG_TOP_DOWN = 4
COMPRESSIONS = ("off", "quic", "lz", "glz", "lz4")
MIN_PIXELS_TO_COMPRESS = 54   # spice-server's MIN_SIZE_TO_COMPRESS
QUIC_RGB32, LZ_RGB32, BITMAP_32BIT = 4, 8, 8
# SpiceImageCompression names (PREFERRED_COMPRESSION) -> what we send
CLIENT_PREFERENCES = {"OFF": "off", "AUTO_GLZ": "glz", "AUTO_LZ": "lz", "QUIC": "quic", "GLZ": "glz",
                      "LZ": "lz", "LZ4": "lz4"}

_unique = itertools.count(1)

Encoder = Callable[[np.ndarray], dict]


def available_compressions() -> tuple[str, ...]:
    from spicetool import _native
    have = {"quic": "encode_quic", "lz": "encode_lz", "lz4": "encode_lz4", "glz": "GlzEncoder"}
    return ("off",) + tuple(n for n in COMPRESSIONS[1:] if hasattr(_native, have[n]))


def _descriptor(kind: str, w: int, h: int) -> dict:
    # The id is only a cache key; QXL uses (unique << 32) | group. We never set CACHE_ME.
    return {"id": next(_unique) << 32, "type": kind, "flags": 0, "width": w, "height": h}


def image_encoder(compression: str, lz4_allowed: bool = True) -> Encoder:
    """A function pixels -> Image fields for one display channel (GLZ keeps a window per channel)."""
    from spicetool import _native
    if compression == "lz4" and not lz4_allowed:
        compression = "lz"   # the client did not announce LZ4_COMPRESSION
    if compression == "off" or compression not in available_compressions():
        return bitmap_image
    glz = _native.GlzEncoder(16) if compression == "glz" else None

    def encode(pixels: np.ndarray) -> dict:
        h, w = pixels.shape[:2]
        if w * h < MIN_PIXELS_TO_COMPRESS:
            return bitmap_image(pixels)
        try:
            return compressed(pixels, w, h)
        except ValueError:  # the encoder refused this image: send it as it is
            return bitmap_image(pixels)

    def compressed(pixels: np.ndarray, w: int, h: int) -> dict:
        raw = np.ascontiguousarray(pixels, dtype=np.uint8)
        if compression == "quic":
            data = _native.encode_quic(raw.tobytes(), w, h, QUIC_RGB32)
            return {"descriptor": _descriptor("QUIC", w, h), "quic": {"data_size": len(data), "data": data}}
        if compression == "lz":
            data = _native.encode_lz(raw.tobytes(), w, h, LZ_RGB32)
            return {"descriptor": _descriptor("LZ_RGB", w, h), "lz_rgb": {"data_size": len(data), "data": data}}
        if compression == "glz":
            data = glz.encode(raw.tobytes(), w, h, LZ_RGB32)
            return {"descriptor": _descriptor("GLZ_RGB", w, h), "lz_rgb": {"data_size": len(data), "data": data}}
        data = _native.encode_lz4(raw.tobytes(), BITMAP_32BIT)
        return {"descriptor": _descriptor("LZ4", w, h), "lz4": {"data_size": len(data), "data": data}}
    return encode


def bitmap_image(pixels: np.ndarray) -> dict:
    """An uncompressed 32BIT top-down image of (h, w, 4) BGRX pixels, not cached by the client."""
    h, w = pixels.shape[:2]
    data = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    return {
        "descriptor": _descriptor("BITMAP", w, h),
        "bitmap": {"format": "32BIT", "flags": BITMAP_FLAG_TOP_DOWN, "x": w, "y": h, "stride": w * 4,
                   "palette": None, "data": data},
    }


def cursor_fields(shape, visible: bool = True) -> dict:
    """The Cursor struct of cursor INIT/SET: an ALPHA shape, or flags NONE when there is none."""
    if shape is None:
        return {"flags": 1, "data": b""}  # SPICE_CURSOR_FLAGS_NONE
    h, w = shape.pixels.shape[:2]
    return {"flags": 0,
            "header": {"unique": shape.unique, "type": "ALPHA", "width": w, "height": h,
                       "hot_spot_x": shape.hot_x, "hot_spot_y": shape.hot_y},
            "data": np.ascontiguousarray(shape.pixels, dtype=np.uint8).tobytes()}
