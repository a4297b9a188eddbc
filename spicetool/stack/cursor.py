"""The cursor channel's state: pointer shapes (spice.proto Cursor: ALPHA, MONO, COLOR*), as
pixels, position and visibility, the shape cache. The one cursor shape and state of the project:
the renderer keeps the captured pointer in them (and draws it, render/cursor.py), the QXL device
its guest's pointer.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spicetool.stack.enums import CursorFlags

CACHE_ME, FROM_CACHE, NONE = int(CursorFlags.CACHE_ME), int(CursorFlags.FROM_CACHE), int(CursorFlags.NONE)
MAX_SIDE = 512  # a cursor larger than this is not a cursor
MAX_CACHED = 256


@dataclass
class CursorShape:
    """A pointer shape: (h, w, 4) uint8 pixels in B, G, R, A byte order, straight alpha (an ALPHA
    cursor's ARGB little-endian words, as the wire and guest memory hold them), the hot spot,
    the pixels a mono cursor inverts (XOR), and the CursorHeader's unique id."""
    unique: int
    pixels: np.ndarray
    hot_x: int = 0
    hot_y: int = 0
    invert: np.ndarray | None = field(default=None, repr=False)

    @property
    def rgba(self) -> np.ndarray:
        """The pixels as R, G, B, A (a copy)."""
        return self.pixels[..., [2, 1, 0, 3]]


def _bits(data: bytes, offset: int, w: int, h: int) -> np.ndarray:
    stride = (w + 7) // 8
    raw = np.frombuffer(data, np.uint8, stride * h, offset).reshape(h, stride)
    return np.unpackbits(raw, axis=1)[:, :w].astype(bool)


def decode_shape(header: dict[str, Any], data: bytes) -> CursorShape:
    kind = str(header["type"])
    w, h = int(header["width"]), int(header["height"])
    if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
        raise ValueError(f"cursor of {w}x{h}")
    hot = int(header["hot_spot_x"]), int(header["hot_spot_y"])
    unique = int(header.get("unique", 0))
    n = w * h
    if kind == "ALPHA":
        bgra = np.frombuffer(data, np.uint8, n * 4).reshape(h, w, 4).copy()
        return CursorShape(unique, bgra, *hot)
    rgba = np.zeros((h, w, 4), np.uint8)
    invert = None
    if kind == "MONO":
        and_mask = _bits(data, 0, w, h)
        xor_mask = _bits(data, ((w + 7) // 8) * h, w, h)
        rgba[..., :3] = np.where(xor_mask, 255, 0)[..., None]
        rgba[..., 3] = np.where(~and_mask, 255, 0)
        invert = and_mask & xor_mask
    else:
        sizes = {"COLOR32": 4, "COLOR24": 3, "COLOR16": 2, "COLOR8": 1, "COLOR4": 0}
        if kind not in sizes:
            raise ValueError(f"cursor type {kind}")
        bpp = sizes[kind]
        if bpp == 4 or bpp == 3:
            px = np.frombuffer(data, np.uint8, n * bpp).reshape(h, w, bpp)
            rgba[..., :3] = px[..., [2, 1, 0]]
            offset = n * bpp
        elif bpp == 2:
            v = np.frombuffer(data, "<u2", n).reshape(h, w).astype(np.uint16)
            for i, shift in enumerate((10, 5, 0)):
                c = (v >> shift) & 31
                rgba[..., i] = (c << 3) | (c >> 2)
            offset = n * 2
        else:
            entries = 16 if bpp == 0 else 256
            stride = (w + 1) // 2 if bpp == 0 else w
            idx = np.frombuffer(data, np.uint8, stride * h, 0).reshape(h, stride)
            if bpp == 0:
                idx = np.stack([idx >> 4, idx & 15], axis=2).reshape(h, -1)[:, :w]
            pal = np.frombuffer(data, "<u4", entries, stride * h)
            c = pal[idx]
            rgba[..., 0], rgba[..., 1], rgba[..., 2] = (c >> 16) & 255, (c >> 8) & 255, c & 255
            offset = stride * h + entries * 4
        and_mask = _bits(data, offset, w, h)
        rgba[..., 3] = np.where(and_mask, 0, 255)
    return CursorShape(unique, rgba[..., [2, 1, 0, 3]], *hot, invert)


@dataclass
class CursorState:
    """Where the pointer is, whether it shows, its shape; for a cursor channel also its shape
    cache and what was wrong in its messages (handle)."""
    x: int = 0
    y: int = 0
    visible: bool = False
    shape: CursorShape | None = None
    cache: OrderedDict[int, CursorShape] = field(default_factory=OrderedDict, compare=False, repr=False)
    warnings: Counter[str] = field(default_factory=Counter, compare=False, repr=False)

    def handle(self, name: str, f: dict[str, Any]) -> bool:
        """One cursor message; True when what the pointer looks like or where it is changed."""
        if name in ("init", "set"):
            self.x, self.y = int(f["position"]["x"]), int(f["position"]["y"])
            self.visible = bool(f.get("visible", 1))
            self._set_shape(f["cursor"])
        elif name == "move":
            self.x, self.y = int(f["position"]["x"]), int(f["position"]["y"])
            self.visible = True
        elif name == "hide":
            self.visible = False
        elif name == "reset":
            self.visible, self.shape = False, None
            self.cache.clear()
        elif name == "inval_one":
            self.cache.pop(int(f["id"]), None)
        elif name == "inval_all":
            self.cache.clear()
        else:
            return False
        return True

    def _set_shape(self, cursor: dict[str, Any]) -> None:
        flags = int(cursor.get("flags", 0))
        if flags & NONE:
            self.shape = None
            return
        header = cursor["header"]
        uid = int(header["unique"])
        if flags & FROM_CACHE:
            self.shape = self.cache.get(uid)
            if self.shape is None:
                self.warnings["cursor shape from before the capture"] += 1
            return
        try:
            self.shape = decode_shape(header, bytes(cursor.get("data", b"")))
        except ValueError as exc:
            self.warnings[f"cursor shape undecodable ({str(exc)[:60]})"] += 1
            self.shape = None
            return
        if flags & CACHE_ME:
            self.cache[uid] = self.shape
            while len(self.cache) > MAX_CACHED:
                self.cache.popitem(last=False)
