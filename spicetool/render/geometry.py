"""Rasterising STROKE paths (thin lines, as the software canvas draws them) and TEXT glyph strings."""
from __future__ import annotations

from typing import Any

import numpy as np

from spicetool.render.surfaces import Region
from spicetool.stack.enums import LineFlags, PathFlags, StringFlags

PATH_BEGIN, PATH_END, PATH_CLOSE, PATH_BEZIER = (int(f) for f in (PathFlags.BEGIN, PathFlags.END,
                                                                  PathFlags.CLOSE, PathFlags.BEZIER))
_RASTER_A1, _RASTER_A4 = int(StringFlags.RASTER_A1), int(StringFlags.RASTER_A4)
MAX_LINE_POINTS = 1 << 22  # bounds the work a hostile path can ask for


def _fix(v: Any) -> float:
    return int(v) / 16.0  # fixed 28.4


def _bezier(p0, p1, p2, p3, steps: int = 16) -> list[tuple[float, float]]:
    t = np.linspace(0, 1, steps + 1)[1:]
    pts = []
    for u in t:
        a, b, c, d = (1 - u) ** 3, 3 * u * (1 - u) ** 2, 3 * u * u * (1 - u), u ** 3
        pts.append((a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0], a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1]))
    return pts


def _polylines(path: dict[str, Any]) -> list[list[tuple[float, float]]]:
    lines: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for seg in path.get("segments", []):
        flags = int(seg.get("flags", 0))
        pts = [(_fix(p["x"]), _fix(p["y"])) for p in seg.get("points", [])]
        if flags & PATH_BEGIN or not current:
            if current:
                lines.append(current)
            current = pts[:1]
            pts = pts[1:]
        if flags & PATH_BEZIER:
            while len(pts) >= 3:
                current.extend(_bezier(current[-1], pts[0], pts[1], pts[2]))
                pts = pts[3:]
        current.extend(pts)
        if flags & PATH_CLOSE and current:
            current.append(current[0])
        if flags & PATH_END:
            lines.append(current)
            current = []
    if current:
        lines.append(current)
    return lines


LINE_START_WITH_GAP, LINE_STYLED = int(LineFlags.START_WITH_GAP), int(LineFlags.STYLED)


def _flag_bits(v: Any) -> int:
    if isinstance(v, (list, tuple, set, frozenset)):
        return sum({"STYLED": LINE_STYLED, "START_WITH_GAP": LINE_START_WITH_GAP}.get(str(n), 0) for n in v)
    return int(v or 0)


def dash_pattern(attr: dict[str, Any] | None) -> tuple[np.ndarray, int] | None:
    """A styled LineAttr's dashes in whole pixels (on, off, on, ... from its 28.4 lengths) and the
    phase the first pixel starts at (START_WITH_GAP: the first gap); None for a solid line."""
    if not attr or not _flag_bits(attr.get("flags")) & LINE_STYLED:
        return None
    style = attr.get("style")
    if style is None:
        style = (attr.get("u2") or {}).get("style")
    lengths = [max(0, int(v) >> 4) for v in (style or [])][:255]
    if len(lengths) % 2:  # an odd count repeats once more, swapping on and off (as X dashes do)
        lengths = lengths * 2
    if not lengths or sum(lengths) == 0:
        return None
    phase = lengths[0] if _flag_bits(attr.get("flags")) & LINE_START_WITH_GAP else 0
    return np.array(lengths, np.int64), phase


def stroke_mask(path: dict[str, Any], reg: Region, attr: dict[str, Any] | None = None) -> np.ndarray:
    """Pixels of the region a one-pixel-wide stroke of the path covers; a styled LineAttr leaves
    its gaps out, the pattern running on along each polyline (on/off dashes)."""
    keep = np.zeros(reg.shape, bool)
    budget = MAX_LINE_POINTS
    dashes = dash_pattern(attr)
    if dashes is not None:
        ends = np.cumsum(dashes[0])
        period = int(ends[-1])
    for line in _polylines(path):
        run = dashes[1] if dashes is not None else 0  # pixels of the pattern used so far on this line
        for i, ((x0, y0), (x1, y1)) in enumerate(zip(line, line[1:])):
            n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
            budget -= n
            if budget < 0:
                return keep
            xs = np.floor(np.linspace(x0, x1, n)).astype(np.int64) - reg.x0
            ys = np.floor(np.linspace(y0, y1, n)).astype(np.int64) - reg.y0
            if i:  # a joint pixel belongs to the segment before
                xs, ys = xs[1:], ys[1:]
            on = np.ones(len(xs), bool)
            if dashes is not None:
                pos = (run + np.arange(len(xs))) % period
                on = np.searchsorted(ends, pos, side="right") % 2 == 0
                run += len(xs)
            ok = on & (xs >= 0) & (xs < reg.shape[1]) & (ys >= 0) & (ys < reg.shape[0])
            keep[ys[ok], xs[ok]] = True
    return keep


def glyph_alpha(string: dict[str, Any], reg: Region) -> np.ndarray:
    """Coverage (uint8) of the region by the glyphs of a String, as spice-common builds its
    string mask: A1 bits as 0/255, A4 nibbles as ``n << 4`` (so at most 240), A8 bytes as they
    are; where glyphs overlap the larger coverage wins."""
    cover = np.zeros(reg.shape, np.uint8)
    flags = int(string.get("flags", 0))
    bpp = 1 if flags & _RASTER_A1 else 4 if flags & _RASTER_A4 else 8
    for g in string.get("glyphs", []):
        w, h = int(g["width"]), int(g["height"])
        if w <= 0 or h <= 0:
            continue
        stride = (bpp * w + 7) // 8
        raw = np.frombuffer(bytes(g["data"]), np.uint8)[: stride * h]
        if raw.size < stride * h:
            continue
        rows = raw.reshape(h, stride)
        if bpp == 1:
            a = np.unpackbits(rows, axis=1)[:, :w] * np.uint8(255)
        elif bpp == 4:  # first pixel in the high nibble
            a = np.stack([rows & 0xF0, (rows & 0x0F) << 4], axis=2).reshape(h, -1)[:, :w]
        else:
            a = rows[:, :w]
        a = a[::-1]  # glyph rows come bottom-up (the reference ignores RASTER_TOP_DOWN too)
        x = int(g["render_pos"]["x"]) + int(g["glyph_origin"]["x"]) - reg.x0
        y = int(g["render_pos"]["y"]) + int(g["glyph_origin"]["y"]) - reg.y0
        y0, y1, x0, x1 = max(y, 0), min(y + h, reg.shape[0]), max(x, 0), min(x + w, reg.shape[1])
        if y0 < y1 and x0 < x1:
            np.maximum(cover[y0:y1, x0:x1], a[y0 - y:y1 - y, x0 - x:x1 - x], out=cover[y0:y1, x0:x1])
    return cover


def glyph_mask(string: dict[str, Any], reg: Region) -> np.ndarray:
    """Pixels of the region the glyphs of a String cover (A1 bits, or A4/A8 coverage > 0)."""
    return glyph_alpha(string, reg) > 0
