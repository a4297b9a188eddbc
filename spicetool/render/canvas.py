"""The display channel's canvas: surfaces plus every draw command, with the software
canvas semantics of the real client (spice-common canvas_base.c / sw_canvas.c).
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import numpy as np

from spicetool.render import rop
from spicetool.render.compositing import alpha_over, composite
from spicetool.render.geometry import glyph_alpha, glyph_mask, stroke_mask
from spicetool.render.images import ImageStore
from spicetool.render.surfaces import Region, Surface, put, region_for
from spicetool.stack.geometry import Rect
from spicetool.stack.enums import AlphaFlags, MaskFlags, StringFlags

MASK_INVERS = int(MaskFlags.INVERS)
_DEST_HAS_ALPHA = int(AlphaFlags.DEST_HAS_ALPHA)
_SRC_SURFACE_HAS_ALPHA = int(AlphaFlags.SRC_SURFACE_HAS_ALPHA)
_RASTER_A1 = int(StringFlags.RASTER_A1)


def _color(value: int) -> np.ndarray:
    """A brush colour (xRGB u32) as B,G,R,A bytes."""
    v = int(value) & 0xFFFFFFFF
    return np.array([v & 255, (v >> 8) & 255, (v >> 16) & 255, (v >> 24) & 255], np.uint8)


def _pixels_in(surfaces: dict[int, Surface]) -> Callable[[int], np.ndarray | None]:
    """surface id -> that surface's pixels (None when there is no such surface)."""
    def pixels(sid: int) -> np.ndarray | None:
        s = surfaces.get(sid)
        return None if s is None else s.pixels
    return pixels


class Canvas:
    """All surfaces of one display channel, and the images they draw from."""

    def __init__(self) -> None:
        self.surfaces: dict[int, Surface] = {}
        # the store looks surfaces up in the dict, not through this canvas: no reference cycle,
        # so a canvas (its surfaces, GLZ window, pixmaps) goes as soon as its session is dropped
        # (a looping replay makes one per round; cyclic garbage waits for a full collection)
        self.images = ImageStore(_pixels_in(self.surfaces))
        self.commands: Counter[str] = Counter()
        self.warnings = self.images.warnings

    # -- surfaces -----------------------------------------------------------------------
    def create_surface(self, sid: int, width: int, height: int, fmt: Any, primary: bool) -> Surface:
        surface = Surface(sid, width, height, fmt, primary)
        self.surfaces[sid] = surface
        return surface

    def destroy_surface(self, sid: int) -> None:
        self.surfaces.pop(sid, None)

    def primary(self) -> Surface | None:
        for s in self.surfaces.values():
            if s.primary:
                return s
        return self.surfaces.get(0)

    # -- dispatch ---------------------------------------------------------------------------
    def draw(self, name: str, fields: dict[str, Any]) -> Region | None:
        """Run one draw command (message name as the stack names it). Returns what it touched."""
        base = fields["base"]
        surface = self.surfaces.get(int(base["surface_id"]))
        if surface is None:
            self.warnings["draw on a surface never created"] += 1
            return None
        handler = getattr(self, "_" + name, None)
        if handler is None:
            self.warnings[f"{name} not supported"] += 1
            return None
        reg = region_for(surface, base["box"], base.get("clip"))
        if reg.empty:
            return None
        data = fields.get("data", fields)
        if "mask" in data and not self._apply_mask(reg, base["box"], data["mask"]):
            return None
        self.commands[name] += 1
        handler(surface, reg, base, data)
        return reg

    def _apply_mask(self, reg: Region, box: dict, qmask: dict | None) -> bool:
        if not qmask or not qmask.get("bitmap"):
            return True
        img = self.images.get(qmask["bitmap"], mask=True)
        if img is None:
            return True
        bits = img[..., :3].any(axis=2)
        if int(qmask.get("flags", 0)) & MASK_INVERS:
            bits = ~bits
        b = Rect.from_fields(box)
        px, py = int(qmask["pos"]["x"]), int(qmask["pos"]["y"])
        keep = _window(bits, py + reg.y0 - b.top, px + reg.x0 - b.left, *reg.shape, fill=False)
        reg.restrict(keep)
        return not reg.empty

    # -- sources ---------------------------------------------------------------------------
    def _source(self, image: dict | None, src_area: dict, box: dict, reg: Region,
                scale_mode: Any = "INTERPOLATE") -> np.ndarray | None:
        """The image pixels that land on the region, scaled from src_area to box when they differ."""
        img = self.images.get(image)
        if img is None:
            return None
        # most draws: the fields read as ints, a Rect made only for a scaled copy
        st, sl, sb, sr = int(src_area["top"]), int(src_area["left"]), int(src_area["bottom"]), int(src_area["right"])
        bt, bl, bb, br = int(box["top"]), int(box["left"]), int(box["bottom"]), int(box["right"])
        bw, bh = br - bl, bb - bt
        if (sr - sl, sb - st) != (bw, bh) and sr > sl and sb > st and bw > 0 and bh > 0:
            return scaled_source(img, Rect(sl, st, sr, sb), Rect(bl, bt, br, bb), reg, scale_mode in ("NEAREST", 1))
        return _window(img, st + reg.y0 - bt, sl + reg.x0 - bl, *reg.shape, fill=0)

    def _brush(self, brush: dict | None, reg: Region) -> np.ndarray | None:
        """Brush pixels over the region: a colour, or the pattern tiled from its position."""
        if not brush or brush.get("type") in ("NONE", 0):
            return None
        if brush.get("type") in ("SOLID", 1):
            return np.broadcast_to(_color(brush["color"]), (*reg.shape, 4))
        pattern = brush["pattern"]
        tile = self.images.get(pattern["pat"])
        if tile is None or tile.size == 0:
            return None
        th, tw = tile.shape[:2]
        ys = (np.arange(reg.y0, reg.y1) - int(pattern["pos"]["y"])) % th
        xs = (np.arange(reg.x0, reg.x1) - int(pattern["pos"]["x"])) % tw
        return tile[ys[:, None], xs[None, :]]

    def _rop_put(self, surface: Surface, reg: Region, src: np.ndarray, desc: int,
                 src_bit: int = rop.INVERS_SRC, dst_bit: int = rop.INVERS_DEST) -> None:
        if rop.is_plain_copy(desc, src_bit):
            put(surface, reg, src)
            return
        op = rop.ropd_op(desc, src_bit, dst_bit)
        dst = surface.pixels[reg.y0:reg.y1, reg.x0:reg.x1]
        put(surface, reg, op(np.asarray(src), dst))

    # -- draw commands ---------------------------------------------------------------------
    def _draw_fill(self, surface: Surface, reg: Region, base: dict, d: dict) -> None:
        brush = self._brush(d.get("brush"), reg)
        if brush is not None:
            self._rop_put(surface, reg, brush, int(d.get("rop_descriptor", rop.OP_PUT)), rop.INVERS_BRUSH)

    def _draw_copy(self, surface: Surface, reg: Region, base: dict, d: dict) -> None:
        src = self._source(d.get("src_bitmap"), d["src_area"], base["box"], reg, d.get("scale_mode"))
        if src is not None:
            self._rop_put(surface, reg, src, int(d.get("rop_descriptor", rop.OP_PUT)))

    _draw_blend = _draw_copy

    def _draw_opaque(self, surface: Surface, reg: Region, base: dict, d: dict) -> None:
        # the image is put first, then the brush is combined with it through the rop
        desc = int(d.get("rop_descriptor", rop.OP_PUT))
        src = self._source(d.get("src_bitmap"), d["src_area"], base["box"], reg, d.get("scale_mode"))
        if src is not None:
            put(surface, reg, src)
        brush = self._brush(d.get("brush"), reg)
        if brush is not None:
            self._rop_put(surface, reg, brush, desc, rop.INVERS_BRUSH, rop.INVERS_SRC)

    def _draw_blackness(self, surface: Surface, reg: Region, base: dict, d: dict) -> None:
        put(surface, reg, np.zeros(4, np.uint8))

    def _draw_whiteness(self, surface: Surface, reg: Region, base: dict, d: dict) -> None:
        put(surface, reg, np.full(4, 255, np.uint8))

    def _draw_invers(self, surface: Surface, reg: Region, base: dict, d: dict) -> None:
        put(surface, reg, ~surface.pixels[reg.y0:reg.y1, reg.x0:reg.x1])

    def _draw_rop3(self, surface: Surface, reg: Region, base: dict, d: dict) -> None:
        src = self._source(d.get("src_bitmap"), d["src_area"], base["box"], reg, d.get("scale_mode"))
        brush = self._brush(d.get("brush"), reg)
        dst = surface.pixels[reg.y0:reg.y1, reg.x0:reg.x1]
        if src is None:
            src = np.zeros_like(dst)
        if brush is None:
            brush = np.zeros_like(dst)
        out = rop.rop3(int(d["rop3"]), np.asarray(brush), src, dst)
        if surface.format == "32_xRGB":
            out[..., 3] = dst[..., 3]  # the reference works on the 24 colour bits
        put(surface, reg, out)

    def _draw_transparent(self, surface: Surface, reg: Region, base: dict, d: dict) -> None:
        src = self._source(d.get("src_bitmap"), d["src_area"], base["box"], reg)
        if src is None:
            return
        key = int(d["src_color"]) & 0xFFFFFF
        rgb = src[..., 0].astype(np.uint32) | (src[..., 1].astype(np.uint32) << 8) | (src[..., 2].astype(np.uint32) << 16)
        reg.restrict(rgb != key)
        if not reg.empty:
            put(surface, reg, src)

    def _draw_alpha_blend(self, surface: Surface, reg: Region, base: dict, d: dict) -> None:
        alpha = int(d.get("alpha", 255))
        if alpha == 0:
            return
        src = self._source(d.get("src_bitmap"), d["src_area"], base["box"], reg)
        if src is None:
            return
        flags = int(d.get("alpha_flags", 0))
        src = np.array(src)
        image = d.get("src_bitmap") or {}
        if image.get("descriptor", {}).get("type") == "SURFACE" and not flags & _SRC_SURFACE_HAS_ALPHA:
            src[..., 3] = 255  # a surface's alpha counts only with SRC_SURFACE_HAS_ALPHA; an image's always
        dst = surface.pixels[reg.y0:reg.y1, reg.x0:reg.x1]
        put(surface, reg, alpha_over(src, dst, alpha, dest_has_alpha=bool(flags & _DEST_HAS_ALPHA)))

    def _draw_composite(self, surface: Surface, reg: Region, base: dict, d: dict) -> None:
        src = self.images.get(d.get("src_bitmap"))
        if src is None:
            return
        mask = self.images.get(d.get("mask_bitmap")) if d.get("mask_bitmap") else None
        b = Rect.from_fields(base["box"])
        top, left = b.top, b.left
        dst = surface.pixels[reg.y0:reg.y1, reg.x0:reg.x1]
        out = composite(int(d["flags"]), src, mask, dst,
                        (reg.x0 - left + int(d["src_origin"]["x"]), reg.y0 - top + int(d["src_origin"]["y"])),
                        (reg.x0 - left + int(d["mask_origin"]["x"]), reg.y0 - top + int(d["mask_origin"]["y"])),
                        d.get("src_transform"), d.get("mask_transform"))
        put(surface, reg, out)

    def _draw_stroke(self, surface: Surface, reg: Region, base: dict, d: dict) -> None:
        lines = stroke_mask(d["path"], reg, d.get("attr"))
        reg.restrict(lines)
        if reg.empty:
            return
        brush = self._brush(d.get("brush"), reg)
        if brush is not None:
            self._rop_put(surface, reg, brush, int(d.get("fore_mode", rop.OP_PUT)), rop.INVERS_BRUSH)

    def _draw_text(self, surface: Surface, reg: Region, base: dict, d: dict) -> None:
        area = Rect.from_fields(d["back_area"])
        if not area.empty() and d.get("back_brush", {}).get("type") not in ("NONE", 0, None):
            back = Region(max(reg.y0, area.top), min(reg.y1, area.bottom), max(reg.x0, area.left),
                          min(reg.x1, area.right))
            if not back.empty:
                if reg.mask is not None:
                    back.mask = reg.mask[back.y0 - reg.y0:back.y1 - reg.y0, back.x0 - reg.x0:back.x1 - reg.x0]
                brush = self._brush(d["back_brush"], back)
                if brush is not None:
                    put(surface, back, brush)  # the reference always copies the background
        string = d["str"]
        if int(string.get("flags", 0)) & _RASTER_A1:  # A1: the glyph bits are a mask for the fore_mode rop
            reg.restrict(glyph_mask(string, reg))
            if reg.empty:
                return
            brush = self._brush(d.get("fore_brush"), reg)
            if brush is not None:
                self._rop_put(surface, reg, brush, int(d.get("fore_mode", rop.OP_PUT)), rop.INVERS_BRUSH)
            return
        # A4/A8: the reference composites the fore brush OVER the surface through the glyphs'
        # coverage (antialiased text), whatever fore_mode says
        alpha = glyph_alpha(string, reg)
        reg.restrict(alpha > 0)
        if reg.empty:
            return
        brush = self._brush(d.get("fore_brush"), reg)
        if brush is None:
            return
        a = alpha[..., None].astype(np.uint16)
        dst = surface.pixels[reg.y0:reg.y1, reg.x0:reg.x1]
        out = ((np.asarray(brush, np.uint16) * a + dst.astype(np.uint16) * (255 - a) + 127) // 255).astype(np.uint8)
        put(surface, reg, out)

    # -- copy_bits -----------------------------------------------------------------------------
    def copy_bits(self, fields: dict[str, Any]) -> Region | None:
        """Move pixels inside one surface: the box's content comes from src_pos."""
        base = fields["base"]
        surface = self.surfaces.get(int(base["surface_id"]))
        if surface is None:
            self.warnings["copy_bits on a surface never created"] += 1
            return None
        reg = region_for(surface, base["box"], base.get("clip"))
        if reg.empty:
            return None
        b = Rect.from_fields(base["box"])
        sx, sy = int(fields["src_pos"]["x"]), int(fields["src_pos"]["y"])
        # copy first: source and destination overlap when a window is dragged
        src = _window(surface.pixels, sy + reg.y0 - b.top, sx + reg.x0 - b.left, *reg.shape, fill=None,
                      dest=surface.pixels[reg.y0:reg.y1, reg.x0:reg.x1]).copy()
        put(surface, reg, src)
        self.commands["copy_bits"] += 1
        return reg


def scaled_source(img: np.ndarray, src: Rect, box: Rect, reg: Region, nearest: bool) -> np.ndarray:
    """The region's pixels of src (a rect of img) stretched over box.

    Only the region is computed, so a huge box or source area costs no more than the surface
    it lands on. Sampling at pixel centres, nearest or bilinear, edges clamped to the part of
    the source area inside the image (none of it: black).
    """
    st, sl, sb, sr = src.top, src.left, src.bottom, src.right
    bt, bl, bb, br = box.top, box.left, box.bottom, box.right
    ih, iw = img.shape[:2]
    lo_y, hi_y, lo_x, hi_x = max(st, 0), min(sb, ih) - 1, max(sl, 0), min(sr, iw) - 1
    if hi_y < lo_y or hi_x < lo_x:
        return np.zeros((*reg.shape, 4), np.uint8)
    ys = (np.arange(reg.y0, reg.y1) - bt + 0.5) * (sb - st) / (bb - bt) + st
    xs = (np.arange(reg.x0, reg.x1) - bl + 0.5) * (sr - sl) / (br - bl) + sl
    if nearest:
        yi = np.clip(np.floor(ys).astype(np.int64), lo_y, hi_y)
        xi = np.clip(np.floor(xs).astype(np.int64), lo_x, hi_x)
        return img[yi[:, None], xi[None, :]]
    fy, fx = ys - 0.5, xs - 0.5
    y0 = np.clip(np.floor(fy).astype(np.int64), lo_y, hi_y)
    x0 = np.clip(np.floor(fx).astype(np.int64), lo_x, hi_x)
    y1, x1 = np.minimum(y0 + 1, hi_y), np.minimum(x0 + 1, hi_x)
    wy = np.clip(fy - y0, 0, 1)[:, None, None]
    wx = np.clip(fx - x0, 0, 1)[None, :, None]
    top = img[y0[:, None], x0[None, :]] * (1 - wx) + img[y0[:, None], x1[None, :]] * wx
    bottom = img[y1[:, None], x0[None, :]] * (1 - wx) + img[y1[:, None], x1[None, :]] * wx
    return np.rint(top * (1 - wy) + bottom * wy).astype(np.uint8)


def _window(img: np.ndarray, y: int, x: int, h: int, w: int, fill: Any = 0,
            dest: np.ndarray | None = None) -> np.ndarray:
    """img[y:y+h, x:x+w], with the parts outside img filled (or, fill None, taken from dest)."""
    ih, iw = img.shape[:2]
    if 0 <= y and y + h <= ih and 0 <= x and x + w <= iw:
        return img[y:y + h, x:x + w]
    if fill is None and dest is not None:
        out = np.array(dest)
    else:
        out = np.full((h, w, *img.shape[2:]), fill if fill is not None else 0, img.dtype)
    y0, y1, x0, x1 = max(y, 0), min(y + h, ih), max(x, 0), min(x + w, iw)
    if y0 < y1 and x0 < x1:
        out[y0 - y:y1 - y, x0 - x:x1 - x] = img[y0:y1, x0:x1]
    return out
