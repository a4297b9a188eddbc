"""`--replay-mode commands`: a captured display-channel draw as the QXL command it came from.

The first slice: draw_fill with a solid brush, draw_copy of an image (not a surface) and
copy_bits, each with OP_PUT, no mask, no scaling, on the primary surface, with their box and
clip rects. The source image is taken from the rendered surface right after the draw (for an
unscaled OP_PUT copy without a mask the pixels inside its clip are exactly the image's), so
caches and the GLZ window of the capture are resolved by render's decoders once. Every other
draw returns None: the timeline falls back to the picture of what it changed.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spicetool.qxl.commands import PRIMARY_SURFACE, Command, CopyBits, DrawCopy, DrawFill, content_id
from spicetool.stack.enums import ImageFlags, Ropd, SurfaceFlags
from spicetool.stack.geometry import Rect

if TYPE_CHECKING:
    from spicetool.render.session import SessionScreen

CONVERTIBLE = frozenset({"draw_fill", "draw_copy", "copy_bits"})
OP_PUT = int(Ropd.OP_PUT)
SURFACE_FLAG_PRIMARY = int(SurfaceFlags.PRIMARY)
CACHE_ME = int(ImageFlags.CACHE_ME)
FROM_CACHE = ("FROM_CACHE", "FROM_CACHE_LOSSLESS")
# captured image types -> the encoder that makes them (qxl/images.py); others: the client's own
CODECS = {"BITMAP": "off", "QUIC": "quic", "LZ_RGB": "lz", "GLZ_RGB": "glz", "LZ4": "lz4"}


def _clip(base: dict) -> tuple[Rect, ...] | None | bool:
    """The draw's clip rects, None without a clip, False for a clip this slice cannot carry."""
    clip = base.get("clip") or {"type": "NONE"}
    kind = clip.get("type")
    if kind in ("NONE", 0):
        return None
    if kind not in ("RECTS", 1):
        return False
    rects = clip.get("rects")
    rects = rects.get("rects", []) if isinstance(rects, dict) else (rects or [])
    return tuple(Rect.from_fields(r) for r in rects)


def _plain(d: dict) -> bool:
    mask = d.get("mask") or {}
    return int(d.get("rop_descriptor", OP_PUT)) == OP_PUT and not mask.get("bitmap")


def convertible(rec: Any, screen: SessionScreen) -> bool:
    """Whether this display record becomes a command (checked before it is fed)."""
    if rec.type == "surface_create":   # a new primary surface: the device's own create
        return bool(int(rec.fields.get("flags", 0)) & SURFACE_FLAG_PRIMARY)
    if rec.type not in CONVERTIBLE or getattr(rec.event, "lost", ()):
        return False
    f = rec.fields
    base = f.get("base") or {}
    s = screen.primary()
    if s is None or int(base.get("surface_id", -1)) != s.id or _clip(base) is False:
        return False
    shown = screen.shown_box()
    if shown is None or (shown.width, shown.height) != (s.width, s.height) or shown.left or shown.top:
        return False   # a head showing part of the surface: the picture path knows the layout
    if rec.type == "copy_bits":
        return _clip(base) is None
    d = f.get("data") or {}
    if not _plain(d):
        return False
    if rec.type == "draw_fill":
        brush = d.get("brush") or {}
        return brush.get("type") in ("SOLID", 1)
    image = d.get("src_bitmap") or {}
    if (image.get("descriptor") or {}).get("type") in ("SURFACE", None):
        return False
    src, box = Rect.from_fields(d["src_area"]), Rect.from_fields(base["box"])
    return (src.width, src.height) == (box.width, box.height)


def command(rec: Any, screen: SessionScreen, id_space: int = 0) -> Command | None:
    """The command of a record `convertible` accepted, read after it was fed to `screen`."""
    f = rec.fields
    base = f["base"]
    s = screen.primary()
    box = Rect.from_fields(base["box"]).clipped(s.width, s.height)
    if box.empty():
        return None
    clip = _clip(base)
    if rec.type == "copy_bits":
        return CopyBits(PRIMARY_SURFACE, box, int(f["src_pos"]["x"]) + box.left - int(base["box"]["left"]),
                        int(f["src_pos"]["y"]) + box.top - int(base["box"]["top"]))
    d = f["data"]
    if rec.type == "draw_fill":
        return DrawFill(PRIMARY_SURFACE, box, int(d["brush"]["color"]) & 0xFFFFFF, clip)
    px = s.pixels[box.top:box.bottom, box.left:box.right].copy()
    px[:, :, 3] = 0
    desc = d["src_bitmap"]["descriptor"]
    kind = desc.get("type")
    # cacheable where the captured server cached it (CACHE_ME) or drew it from the cache: the
    # same pixels get the same id, so the client's cache hits where the captured one did
    cached = kind in FROM_CACHE or int(desc.get("flags", 0)) & CACHE_ME
    return DrawCopy(PRIMARY_SURFACE, box, px, content_id(px) ^ id_space if cached else None, clip=clip,
                    codec=CODECS.get(kind))
