"""Alpha compositing of premultiplied B,G,R,A pixels (the pixman operators the canvas uses)."""
from __future__ import annotations

from typing import Any

import numpy as np

from spicetool.stack.enums import CompositeFilter, CompositeFlags, CompositeRepeat


def _shift(bit: CompositeFlags) -> int:
    return int(bit).bit_length() - 1


OP_MASK = 0xFF  # OP0..OP7: the pixman operator
SRC_REPEAT_SHIFT, MASK_REPEAT_SHIFT = _shift(CompositeFlags.SRC_REPEAT0), _shift(CompositeFlags.MASK_REPEAT0)
COMPONENT_ALPHA = int(CompositeFlags.COMPONENT_ALPHA)

# Porter-Duff factors (Fa for the source, Fb for the destination) of pixman's operators,
# as functions of source alpha `sa` and destination alpha `da` (0..1 floats)
_PD = {
    0: (lambda sa, da: 0.0, lambda sa, da: 0.0),            # CLEAR
    1: (lambda sa, da: 1.0, lambda sa, da: 0.0),            # SRC
    2: (lambda sa, da: 0.0, lambda sa, da: 1.0),            # DST
    3: (lambda sa, da: 1.0, lambda sa, da: 1 - sa),         # OVER
    4: (lambda sa, da: 1 - da, lambda sa, da: 1.0),         # OVER_REVERSE
    5: (lambda sa, da: da, lambda sa, da: 0.0),             # IN
    6: (lambda sa, da: 0.0, lambda sa, da: sa),             # IN_REVERSE
    7: (lambda sa, da: 1 - da, lambda sa, da: 0.0),         # OUT
    8: (lambda sa, da: 0.0, lambda sa, da: 1 - sa),         # OUT_REVERSE
    9: (lambda sa, da: da, lambda sa, da: 1 - sa),          # ATOP
    10: (lambda sa, da: 1 - da, lambda sa, da: sa),         # ATOP_REVERSE
    11: (lambda sa, da: 1 - da, lambda sa, da: 1 - sa),     # XOR
    12: (lambda sa, da: 1.0, lambda sa, da: 1.0),           # ADD
}


def _div255(t: np.ndarray) -> np.ndarray:
    """x/255 rounded the way pixman does it."""
    t = t + 0x80
    return (t + (t >> 8)) >> 8


def alpha_over(src: np.ndarray, dst: np.ndarray, alpha: int, dest_has_alpha: bool) -> np.ndarray:
    """src OVER dst with the source scaled by ``alpha`` (ALPHA_BLEND)."""
    s = _div255(src.astype(np.uint32) * alpha)
    d = dst.astype(np.uint32)
    da_keep = 255 - s[..., 3:4]
    out = s + _div255(d * da_keep)
    if not dest_has_alpha:
        out[..., 3] = dst[..., 3]
    return np.minimum(out, 255).astype(np.uint8)


SRC_FILTER_SHIFT, MASK_FILTER_SHIFT = _shift(CompositeFlags.SRC_FILTER0), _shift(CompositeFlags.MASK_FILTER0)
FILTER_NEAREST, FILTER_BILINEAR = int(CompositeFilter.NEAREST), int(CompositeFilter.BILINEAR)  # 3 bits


def _fetch(img: np.ndarray, ys: np.ndarray, xs: np.ndarray, repeat: int) -> np.ndarray:
    """Pixels at integer positions, outside the image as the repeat mode says (NONE: clear)."""
    ih, iw = img.shape[:2]
    if repeat == CompositeRepeat.NORMAL:  # tile
        return img[ys % ih, xs % iw]
    if repeat == CompositeRepeat.PAD:  # stretch the edges
        return img[np.clip(ys, 0, ih - 1), np.clip(xs, 0, iw - 1)]
    if repeat == CompositeRepeat.REFLECT:
        ry, rx = ys % (2 * ih), xs % (2 * iw)
        return img[np.where(ry < ih, ry, 2 * ih - 1 - ry), np.where(rx < iw, rx, 2 * iw - 1 - rx)]
    inside = (xs >= 0) & (xs < iw) & (ys >= 0) & (ys < ih)
    out = img[np.clip(ys, 0, ih - 1), np.clip(xs, 0, iw - 1)].copy()
    out[~inside] = 0
    return out


def _sample(img: np.ndarray, shape: tuple[int, int], origin: tuple[int, int], transform: dict | None,
            repeat: int, filt: int = FILTER_NEAREST) -> np.ndarray:
    """The pixels of ``img`` seen through a 16.16 transform (pixel centres mapped), by the
    message's filter: nearest, or bilinear between the four pixels around the point."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    xs = xs + origin[0]
    ys = ys + origin[1]
    if not transform:
        return _fetch(img, ys, xs, repeat)
    t = {k: _fixed(v) for k, v in transform.items()}
    fx = t["t00"] * (xs + 0.5) + t["t01"] * (ys + 0.5) + t["t02"]
    fy = t["t10"] * (xs + 0.5) + t["t11"] * (ys + 0.5) + t["t12"]
    if filt != FILTER_BILINEAR:
        return _fetch(img, np.floor(fy).astype(np.int64), np.floor(fx).astype(np.int64), repeat)
    fx, fy = fx - 0.5, fy - 0.5  # the four pixels whose centres surround the point
    x0, y0 = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
    wx, wy = (fx - x0)[..., None], (fy - y0)[..., None]
    top = _fetch(img, y0, x0, repeat) * (1 - wx) + _fetch(img, y0, x0 + 1, repeat) * wx
    bottom = _fetch(img, y0 + 1, x0, repeat) * (1 - wx) + _fetch(img, y0 + 1, x0 + 1, repeat) * wx
    return np.clip(np.rint(top * (1 - wy) + bottom * wy), 0, 255).astype(np.uint8)


def _fixed(v: Any) -> float:
    v = int(v) & 0xFFFFFFFF
    return (v - (1 << 32) if v & 0x80000000 else v) / 65536.0


def composite(flags: int, src: np.ndarray, mask: np.ndarray | None, dst: np.ndarray,
              src_origin: tuple[int, int], mask_origin: tuple[int, int],
              src_transform: dict | None, mask_transform: dict | None) -> np.ndarray:
    """DRAW_COMPOSITE: a Porter-Duff operator between source (through a mask) and destination."""
    op = flags & OP_MASK
    fa_fn, fb_fn = _PD.get(op, _PD[3])
    shape = dst.shape[:2]
    s = _sample(src, shape, src_origin, src_transform, (flags >> SRC_REPEAT_SHIFT) & 3,
                (flags >> SRC_FILTER_SHIFT) & 7).astype(np.float64) / 255
    if mask is not None:
        m = _sample(mask, shape, mask_origin, mask_transform, (flags >> MASK_REPEAT_SHIFT) & 3,
                    (flags >> MASK_FILTER_SHIFT) & 7).astype(np.float64) / 255
        s = s * (m if flags & COMPONENT_ALPHA else m[..., 3:4])
    d = dst.astype(np.float64) / 255
    sa, da = s[..., 3:4], d[..., 3:4]
    fa, fb = fa_fn(sa, da), fb_fn(sa, da)
    out = np.clip(s * fa + d * fb, 0, 1)
    return np.rint(out * 255).astype(np.uint8)
