"""Draws that lost bytes in a capture gap (the framing was kept: see stack.damage).

An uncompressed BITMAP whose only losses are in its pixel rows draws the rows that arrived;
their area is known, the lost rows' unknown. Any other damaged draw is not drawn at all: a
compressed image cannot be decoded past a hole (and a GLZ one must not enter the dictionary),
and a draw whose other fields were hit does not say what it did. Its whole area is unknown.
A damaged image never enters the pixmap cache: a later FROM_CACHE of it is unknown too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from spicetool.render.canvas import Canvas
from spicetool.render.images import CACHE_ME, CACHE_REPLACE_ME, TOP_DOWN
from spicetool.render.surfaces import Region, region_for
from spicetool.stack.damage import alternate_fields, intact, lost_rows
from spicetool.stack.enums import PRIMARY_SURFACE_ID

_WITH_SOURCE = ("draw_copy", "draw_blend", "draw_opaque", "draw_rop3", "draw_transparent", "draw_alpha_blend")


@dataclass
class DamagedDraw:
    drawn: Region | None  # what it drew that is known
    unknown: Region | None  # what it should have drawn and we do not know
    warning: str


def damaged_draw(canvas: Canvas, name: str, fields: dict[str, Any], message: Any) -> DamagedDraw:
    alt = alternate_fields(message) or {}
    base = fields["base"]
    if not intact(base, alt.get("base")):
        return DamagedDraw(None, None, f"{name} lost the bytes of its position in a capture gap: not drawn")
    surface = canvas.surfaces.get(int(base["surface_id"]))
    if surface is None:
        return DamagedDraw(None, None, "draw on a surface never created")
    whole = region_for(surface, base["box"], base.get("clip"))
    if whole.empty:
        return DamagedDraw(None, None, f"{name} lost bytes in a capture gap")
    rows = _bitmap_rows(name, fields, alt)
    _uncache(canvas, fields)
    if rows is None:
        return DamagedDraw(None, whole, f"{name} lost bytes in a capture gap: its area is unknown")
    reg = canvas.draw(name, fields)
    _uncache(canvas, fields)
    if reg is None:
        return DamagedDraw(None, whole, f"{name} lost bytes in a capture gap: its area is unknown")
    bad = _bad_rows(fields, rows, reg)
    keep = reg.mask if reg.mask is not None else np.ones(reg.shape, bool)
    gone = keep & bad[:, None]
    unknown = Region(reg.y0, reg.y1, reg.x0, reg.x1, gone) if gone.any() else None
    drawn = Region(reg.y0, reg.y1, reg.x0, reg.x1, keep & ~bad[:, None])
    return DamagedDraw(drawn, unknown, f"{name} lost bytes in a capture gap: the BITMAP rows that arrived drawn")


def lost_area(width: int, height: int, name: str, fields: dict[str, Any], message: Any) -> Region | None:
    """Where a damaged draw on a width x height surface leaves the pixels unknown, without drawing
    it (for figures); None when it does not say where it drew."""
    alt = alternate_fields(message) or {}
    base = fields["base"]
    if not intact(base, alt.get("base")):
        return None
    whole = region_for(_Size(width, height), base["box"], base.get("clip"))  # type: ignore[arg-type]
    rows = _bitmap_rows(name, fields, alt)
    if whole.empty or rows is None:
        return None if whole.empty else whole
    bad = _bad_rows(fields, rows, whole)
    keep = whole.mask if whole.mask is not None else np.ones(whole.shape, bool)
    gone = keep & bad[:, None]
    return Region(whole.y0, whole.y1, whole.x0, whole.x1, gone) if gone.any() else None


@dataclass
class _Size:
    width: int
    height: int


def _bad_rows(fields: dict[str, Any], rows: list[int], reg: Region) -> np.ndarray:
    """Which rows of `reg` (surface rows y0..y1) an unscaled BITMAP draw took from its lost rows."""
    d = fields["data"]
    bitmap = d["src_bitmap"]["bitmap"]
    height = int(bitmap["y"])
    top_down = bool(int(bitmap["flags"]) & TOP_DOWN)
    lost = np.zeros(height, bool)
    lost[[r if top_down else height - 1 - r for r in rows]] = True
    # image row of each surface row
    ys = np.arange(reg.y0, reg.y1) - int(fields["base"]["box"]["top"]) + int(d["src_area"]["top"])
    bad = np.zeros(len(ys), bool)
    inside = (ys >= 0) & (ys < height)
    bad[inside] = lost[ys[inside]]
    return bad


def _bitmap_rows(name: str, fields: dict[str, Any], alt: dict[str, Any]) -> list[int] | None:
    """Lost rows (wire order) of a draw whose only damage is in its BITMAP's rows; None otherwise."""
    if name not in _WITH_SOURCE or not isinstance(alt.get("data"), dict):
        return None
    d, a = dict(fields["data"]), dict(alt["data"])
    img, alt_img = d.pop("src_bitmap", None), a.pop("src_bitmap", None)
    if not (img and alt_img) or not intact(d, a) or img.get("descriptor") != alt_img.get("descriptor") \
            or img["descriptor"].get("type") != "BITMAP" or "bitmap" not in img or "bitmap" not in alt_img:
        return None
    b, ab = dict(img["bitmap"]), dict(alt_img["bitmap"])
    data, alt_data = b.pop("data", b""), ab.pop("data", b"")
    if not intact(b, ab):
        return None
    area, box = d["src_area"], fields["base"]["box"]
    if (int(area["right"]) - int(area["left"]), int(area["bottom"]) - int(area["top"])) != \
            (int(box["right"]) - int(box["left"]), int(box["bottom"]) - int(box["top"])):
        return None  # a scaled copy spreads each row over others
    return lost_rows(data, alt_data, int(b["stride"]), int(b["y"]))


def _uncache(canvas: Canvas, fields: dict[str, Any]) -> None:
    """A damaged image must not be found in the pixmap cache later."""
    data = fields.get("data")
    for key in ("src_bitmap", "mask_bitmap"):
        img = data.get(key) if isinstance(data, dict) else None
        desc = img.get("descriptor") if isinstance(img, dict) else None
        if desc and int(desc.get("flags", 0)) & (CACHE_ME | CACHE_REPLACE_ME) \
                and desc.get("type") not in ("FROM_CACHE", "FROM_CACHE_LOSSLESS"):
            canvas.images.inval_pixmap(int(desc["id"]))


class UnknownArea:
    """Which pixels of a session's primary surface are unknown, from draw geometry alone (for
    `stats`, which does not render): capture gaps make them unknown, later draws known again."""

    def __init__(self) -> None:
        self.known: np.ndarray | None = None
        self.since: np.ndarray | None = None  # time each unknown pixel became so
        self.size: tuple[int, int] | None = None

    def feed(self, name: str, fields: dict[str, Any], message: Any, time: float) -> None:
        if name == "surface_create":
            if int(fields.get("surface_id", -1)) == PRIMARY_SURFACE_ID:
                self.size = (int(fields["width"]), int(fields["height"]))
                self.known = self.since = None
            return
        base = fields.get("base") if isinstance(fields, dict) else None
        if self.size is None or not isinstance(base, dict) or int(base.get("surface_id", -1)) != PRIMARY_SURFACE_ID:
            return
        if getattr(message, "lost", ()):
            reg = lost_area(*self.size, name, fields, message)
            if reg is None:
                return
            if self.known is None:
                self.known = np.ones(self.size[::-1], bool)
                self.since = np.zeros(self.size[::-1])
            view = self.known[reg.y0:reg.y1, reg.x0:reg.x1]
            hit = view if reg.mask is None else view & reg.mask
            self.since[reg.y0:reg.y1, reg.x0:reg.x1][hit] = time  # type: ignore[index]
            view[hit if reg.mask is not None else ...] = False
            return
        if self.known is None or self.known.all():
            return
        reg = region_for(_Size(*self.size), base["box"], base.get("clip"))  # type: ignore[arg-type]
        if reg.empty:
            return
        view = self.known[reg.y0:reg.y1, reg.x0:reg.x1]
        if name == "copy_bits":  # the source's knowledge moves with its pixels
            h, w = self.known.shape
            ys = np.clip(np.arange(reg.y0, reg.y1) + int(fields["src_pos"]["y"]) - int(base["box"]["top"]), 0, h - 1)
            xs = np.clip(np.arange(reg.x0, reg.x1) + int(fields["src_pos"]["x"]) - int(base["box"]["left"]), 0, w - 1)
            src, when = self.known[ys[:, None], xs[None, :]], self.since[ys[:, None], xs[None, :]]  # type: ignore[index]
            at = self.since[reg.y0:reg.y1, reg.x0:reg.x1]  # type: ignore[index]
            at[...] = when if reg.mask is None else np.where(reg.mask, when, at)
            view[...] = src if reg.mask is None else np.where(reg.mask, src, view)
        elif reg.mask is None:
            view[...] = True
        else:
            view |= reg.mask

    def lost_framing(self, time: float) -> None:
        """A gap swallowed a header: the draws in it are lost with where they drew, all is unknown."""
        if self.size is None:
            return
        if self.known is None:
            self.known = np.ones(self.size[::-1], bool)
            self.since = np.zeros(self.size[::-1])
        self.since[self.known] = time  # type: ignore[index]
        self.known[...] = False

    def result(self) -> tuple[float, float | None]:
        """(share of the surface unknown, time the first of the still-unknown pixels became so)."""
        if self.known is None or self.known.all():
            return 0.0, None
        return float(1.0 - self.known.mean()), float(self.since[~self.known].min())  # type: ignore[index]
