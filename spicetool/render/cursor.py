"""The cursor channel: pointer shapes (alpha, mono, colour), position and visibility, and
drawing the pointer over a frame.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any

import numpy as np

from spicetool.stack.enums import CursorFlags

CACHE_ME, FROM_CACHE, NONE = int(CursorFlags.CACHE_ME), int(CursorFlags.FROM_CACHE), int(CursorFlags.NONE)
MAX_SIDE = 512  # a cursor larger than this is not a cursor
MAX_CACHED = 256


class CursorShape:
    """RGBA pixels (straight alpha) plus the pixels to invert (mono XOR cursors) and the hot spot."""

    def __init__(self, rgba: np.ndarray, invert: np.ndarray | None, hot_x: int, hot_y: int) -> None:
        self.rgba, self.invert, self.hot_x, self.hot_y = rgba, invert, hot_x, hot_y


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
    n = w * h
    rgba = np.zeros((h, w, 4), np.uint8)
    invert = None
    if kind == "ALPHA":
        bgra = np.frombuffer(data, np.uint8, n * 4).reshape(h, w, 4)
        rgba = bgra[..., [2, 1, 0, 3]].copy()
    elif kind == "MONO":
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
    return CursorShape(rgba, invert, *hot)


class CursorState:
    """What the cursor channel has said so far."""

    def __init__(self) -> None:
        self.shape: CursorShape | None = None
        self.x = self.y = 0
        self.visible = False
        self.cache: OrderedDict[int, CursorShape] = OrderedDict()
        self.warnings: Counter[str] = Counter()

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

    def draw(self, frame: np.ndarray, origin_x: int = 0, origin_y: int = 0) -> None:
        """Put the pointer on an RGB frame in place (origin: where the frame sits on the surface)."""
        shape = self.shape
        if not self.visible or shape is None:
            return
        h, w = shape.rgba.shape[:2]
        x = self.x - shape.hot_x - origin_x
        y = self.y - shape.hot_y - origin_y
        fh, fw = frame.shape[:2]
        y0, y1, x0, x1 = max(y, 0), min(y + h, fh), max(x, 0), min(x + w, fw)
        if y0 >= y1 or x0 >= x1:
            return
        src = shape.rgba[y0 - y:y1 - y, x0 - x:x1 - x].astype(np.uint16)
        dst = frame[y0:y1, x0:x1]
        a = src[..., 3:4]
        dst[...] = ((src[..., :3] * a + dst.astype(np.uint16) * (255 - a) + 127) // 255).astype(np.uint8)
        if shape.invert is not None:
            inv = shape.invert[y0 - y:y1 - y, x0 - x:x1 - x]
            dst[inv] = 255 - dst[inv]
