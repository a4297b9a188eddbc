"""Drawing surfaces and the regions draw commands touch (box, clip rects, masks)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spicetool.stack.enums import SurfaceFmt, by_schema_name

MAX_SURFACE_PIXELS = 64 << 20  # a bound on a hostile SURFACE_CREATE

# SpiceSurfaceFmt names -> bits per pixel of the real format
FORMAT_BITS = {"1_A": 1, "8_A": 8, "16_555": 16, "16_565": 16, "32_xRGB": 32, "32_ARGB": 32}
FORMAT_BY_NUMBER = {v: n for n, v in by_schema_name(SurfaceFmt).items() if v != SurfaceFmt.INVALID}


class SurfaceError(ValueError):
    pass


@dataclass
class Surface:
    """One surface, stored as HxWx4 B,G,R,A bytes whatever its wire format."""

    id: int
    width: int
    height: int
    format: str = "32_xRGB"
    primary: bool = False
    pixels: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if isinstance(self.format, int):
            self.format = FORMAT_BY_NUMBER.get(self.format, "32_xRGB")
        if self.width <= 0 or self.height <= 0 or self.width * self.height > MAX_SURFACE_PIXELS:
            raise SurfaceError(f"surface {self.id}: unusable size {self.width}x{self.height}")
        if self.pixels is None:
            self.pixels = np.zeros((self.height, self.width, 4), np.uint8)

    def settle(self, y0: int, y1: int, x0: int, x1: int) -> None:
        """Bring freshly drawn pixels back to what the surface format can hold."""
        fmt = self.format
        if fmt in ("32_xRGB", "32_ARGB"):
            return
        view = self.pixels[y0:y1, x0:x1]
        if fmt == "16_555":
            view[..., :3] = _widen(view[..., :3] >> 3, 5)
        elif fmt == "16_565":
            view[..., 0] = _widen(view[..., 0] >> 3, 5)
            view[..., 1] = _widen(view[..., 1] >> 2, 6)
            view[..., 2] = _widen(view[..., 2] >> 3, 5)
        elif fmt == "8_A":
            view[..., :3] = 0
        elif fmt == "1_A":
            view[..., 3] = np.where(view[..., 3] >= 128, 255, 0)
            view[..., :3] = 0


def _widen(v: np.ndarray, bits: int) -> np.ndarray:
    """An n-bit channel value as 8 bits, high bits repeated into the low ones."""
    return ((v << (8 - bits)) | (v >> (2 * bits - 8))).astype(np.uint8)


@dataclass
class Region:
    """The part of a surface a command may touch: a rectangle plus an optional boolean mask."""

    y0: int
    y1: int
    x0: int
    x1: int
    mask: np.ndarray | None = None  # (y1-y0, x1-x0) bool, None = all of it

    @property
    def empty(self) -> bool:
        return self.y1 <= self.y0 or self.x1 <= self.x0 or (self.mask is not None and not self.mask.any())

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    def restrict(self, keep: np.ndarray) -> None:
        self.mask = keep if self.mask is None else (self.mask & keep)


def clip_rects(clip: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The parsed rects of a Clip field (Rect fields), None for no clipping."""
    if not clip or clip.get("type") in ("NONE", 0, None):
        return None
    rects = clip.get("rects")
    if isinstance(rects, dict):
        rects = rects.get("rects", [])
    return list(rects or [])


def region_for(surface: Surface, box: dict[str, Any], clip: dict[str, Any] | None) -> Region:
    """The box cut to the surface, with the clip rects as a mask when there are any."""
    # every draw comes here: the Rect fields are read as ints in place (a Rect object per box
    # and clip rect would cost more than the rest of this)
    top, left, bottom, right = int(box["top"]), int(box["left"]), int(box["bottom"]), int(box["right"])
    reg = Region(max(top, 0), min(bottom, surface.height), max(left, 0), min(right, surface.width))
    rects = clip_rects(clip)
    if rects is None:
        return reg
    edges = [(int(c["top"]), int(c["left"]), int(c["bottom"]), int(c["right"])) for c in rects]
    if not reg.empty:
        keep = np.zeros(reg.shape, bool)
        for t, l, b, r in edges:
            t, b = max(t, reg.y0) - reg.y0, min(b, reg.y1) - reg.y0
            l, r = max(l, reg.x0) - reg.x0, min(r, reg.x1) - reg.x0
            if t < b and l < r:
                keep[t:b, l:r] = True
        reg.mask = keep
    return reg


def put(surface: Surface, reg: Region, values: np.ndarray) -> None:
    """Write ``values`` (the region's shape) into the surface where the region allows."""
    view = surface.pixels[reg.y0:reg.y1, reg.x0:reg.x1]
    if reg.mask is None:
        view[...] = values
    else:
        view[reg.mask] = values[reg.mask] if values.ndim == 3 else values
    surface.settle(reg.y0, reg.y1, reg.x0, reg.x1)
