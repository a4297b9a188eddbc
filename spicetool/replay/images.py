"""Pixels -> the fields of a SPICE Image (spice.proto `Image`), built by the stack.

Only BITMAP (uncompressed 32BIT, top-down) for now: the QUIC/LZ/GLZ/LZ4 encoders are being
written in the Rust core; `available_compressions` reports which ones exist in this build.
"""
from __future__ import annotations

import itertools

import numpy as np

BITMAP_FLAG_TOP_DOWN = 4
COMPRESSIONS = ("off", "quic", "lz", "glz", "lz4")

_unique = itertools.count(1)


def available_compressions() -> tuple[str, ...]:
    from spicetool import _native
    names = ["off"]
    for name in COMPRESSIONS[1:]:
        if hasattr(_native, f"encode_{name}"):
            names.append(name)
    return tuple(names)


def bitmap_image(pixels: np.ndarray) -> dict:
    """An uncompressed 32BIT top-down image of (h, w, 4) BGRX pixels, not cached by the client."""
    h, w = pixels.shape[:2]
    data = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    return {
        # The id is only a cache key; QXL uses (unique << 32) | group. We never set CACHE_ME.
        "descriptor": {"id": next(_unique) << 32, "type": "BITMAP", "flags": 0, "width": w, "height": h},
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
