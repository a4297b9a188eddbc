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
    d = fields["data"]
    img = d["src_bitmap"]
    bitmap = img["bitmap"]
    height = int(bitmap["y"])
    top_down = bool(int(bitmap["flags"]) & TOP_DOWN)
    area, box = d["src_area"], base["box"]
    lost = np.zeros(height, bool)
    lost[[r if top_down else height - 1 - r for r in rows]] = True
    # image row -> surface row (unscaled: _bitmap_rows refuses a scaled copy)
    ys = np.arange(reg.y0, reg.y1) - int(box["top"]) + int(area["top"])
    bad = np.zeros(len(ys), bool)
    inside = (ys >= 0) & (ys < height)
    bad[inside] = lost[ys[inside]]
    keep = reg.mask if reg.mask is not None else np.ones(reg.shape, bool)
    gone = keep & bad[:, None]
    unknown = Region(reg.y0, reg.y1, reg.x0, reg.x1, gone) if gone.any() else None
    drawn = Region(reg.y0, reg.y1, reg.x0, reg.x1, keep & ~bad[:, None])
    return DamagedDraw(drawn, unknown, f"{name} lost bytes in a capture gap: the BITMAP rows that arrived drawn")


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
