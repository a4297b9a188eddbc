"""Pixels -> the fields of a SPICE Image (spice.proto `Image`), built by the stack.

BITMAP (uncompressed 32BIT, top-down), or compressed by the Rust encoders (QUIC, LZ, GLZ, LZ4)
as the server setting or the client's PREFERRED_COMPRESSION asks, like spice-server's
image-encoders.cpp. Tiny images stay BITMAP, as there.

QUIC, LZ, LZ4 and BITMAP are stateless: one image encodes to the same bytes for every client,
so the worker encodes it once per codec and shares the result (`ClientImages.shared`). GLZ
matches into the images the client decoded before, so each display channel has its own window.
"""
from __future__ import annotations

import itertools
from collections import Counter

import numpy as np

from .pixmap_cache import PixmapCache

BITMAP_FLAG_TOP_DOWN = 4
IMAGE_FLAG_CACHE_ME = 1
COMPRESSIONS = ("off", "quic", "lz", "glz", "lz4")
MIN_PIXELS_TO_COMPRESS = 54   # spice-server's MIN_SIZE_TO_COMPRESS
QUIC_RGB32, LZ_RGB32, BITMAP_32BIT = 4, 8, 8
# SpiceImageCompression names (PREFERRED_COMPRESSION) -> what we send
CLIENT_PREFERENCES = {"OFF": "off", "AUTO_GLZ": "glz", "AUTO_LZ": "lz", "QUIC": "quic", "GLZ": "glz",
                      "LZ": "lz", "LZ4": "lz4"}

_unique = itertools.count(1)


def available_compressions() -> tuple[str, ...]:
    from spicetool import _native
    have = {"quic": "encode_quic", "lz": "encode_lz", "lz4": "encode_lz4", "glz": "GlzEncoder"}
    return ("off",) + tuple(n for n in COMPRESSIONS[1:] if hasattr(_native, have[n]))


def new_image_id() -> int:
    """A QXL-style image id ((unique << 32) | group): the key of the client's pixmap cache."""
    return next(_unique) << 32


def _descriptor(kind: str, w: int, h: int, image_id: int | None) -> dict:
    return {"id": new_image_id() if image_id is None else image_id, "type": kind, "flags": 0,
            "width": w, "height": h}


def effective_codec(compression: str, lz4_allowed: bool = True) -> str:
    """What a channel sends for a setting: LZ for LZ4 when the client lacks LZ4_COMPRESSION,
    BITMAP ('off') for a codec this build has no encoder for."""
    if compression == "lz4" and not lz4_allowed:
        compression = "lz"
    if compression == "off" or compression not in available_compressions():
        return "off"
    return compression


def encode_image(pixels: np.ndarray, codec: str, glz=None, image_id: int | None = None) -> dict:
    """Image fields of (h, w, 4) BGRX pixels in `codec` (a stateless one unless `glz` is given)."""
    h, w = pixels.shape[:2]
    if codec == "off" or w * h < MIN_PIXELS_TO_COMPRESS:
        return bitmap_image(pixels, image_id)
    try:
        return _compressed(pixels, w, h, codec, glz, image_id)
    except ValueError:  # the encoder refused this image: send it as it is
        return bitmap_image(pixels, image_id)


def _compressed(pixels: np.ndarray, w: int, h: int, codec: str, glz, image_id: int | None) -> dict:
    from spicetool import _native
    raw = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    if codec == "quic":
        data = _native.encode_quic(raw, w, h, QUIC_RGB32)
        return {"descriptor": _descriptor("QUIC", w, h, image_id), "quic": {"data_size": len(data), "data": data}}
    if codec == "lz":
        data = _native.encode_lz(raw, w, h, LZ_RGB32)
        return {"descriptor": _descriptor("LZ_RGB", w, h, image_id), "lz_rgb": {"data_size": len(data), "data": data}}
    if codec == "glz":
        data = glz.encode(raw, w, h, LZ_RGB32)
        return {"descriptor": _descriptor("GLZ_RGB", w, h, image_id), "lz_rgb": {"data_size": len(data), "data": data}}
    data = _native.encode_lz4(raw, BITMAP_32BIT)
    return {"descriptor": _descriptor("LZ4", w, h, image_id), "lz4": {"data_size": len(data), "data": data}}


def with_flags(image: dict, flags: int) -> dict:
    """The same image with other descriptor flags (the pixels' encoding is shared)."""
    return {**image, "descriptor": {**image["descriptor"], "flags": flags}}


def from_cache_image(image_id: int, w: int, h: int) -> dict:
    """An image the client holds in its pixmap cache: the descriptor alone."""
    return {"descriptor": {"id": image_id, "type": "FROM_CACHE", "flags": 0, "width": w, "height": h}}


def bitmap_image(pixels: np.ndarray, image_id: int | None = None) -> dict:
    """An uncompressed 32BIT top-down image of (h, w, 4) BGRX pixels."""
    h, w = pixels.shape[:2]
    data = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    return {
        "descriptor": _descriptor("BITMAP", w, h, image_id),
        "bitmap": {"format": "32BIT", "flags": BITMAP_FLAG_TOP_DOWN, "x": w, "y": h, "stride": w * 4,
                   "palette": None, "data": data},
    }


class ClientImages:
    """The images of one display channel: its codec, its GLZ window, the server's counts."""

    def __init__(self, compression: str, lz4_allowed: bool, stats: Counter):
        self.lz4_allowed, self.stats = lz4_allowed, stats
        self.cache: PixmapCache | None = None   # from the client's DISPLAY_INIT
        self.set_compression(compression)

    def set_compression(self, compression: str) -> None:
        self.codec = effective_codec(compression, self.lz4_allowed)
        self.shared = self.codec != "glz"   # GLZ depends on what this client decoded before
        if self.codec == "glz":
            from spicetool import _native
            self.glz = _native.GlzEncoder(16)
        else:
            self.glz = None

    def encode(self, pixels: np.ndarray, image_id: int | None = None) -> dict:
        """This client's own encoding (GLZ, or a picture no other client gets)."""
        return encode_image(pixels, self.codec, self.glz, image_id)

    def count(self, image: dict) -> None:
        self.stats["images_" + image["descriptor"]["type"]] += 1


def cursor_fields(shape, visible: bool = True) -> dict:
    """The Cursor struct of cursor INIT/SET: an ALPHA shape, or flags NONE when there is none."""
    if shape is None:
        return {"flags": 1, "data": b""}  # SPICE_CURSOR_FLAGS_NONE
    h, w = shape.pixels.shape[:2]
    return {"flags": 0,
            "header": {"unique": shape.unique, "type": "ALPHA", "width": w, "height": h,
                       "hot_spot_x": shape.hot_x, "hot_spot_y": shape.hot_y},
            "data": np.ascontiguousarray(shape.pixels, dtype=np.uint8).tobytes()}
