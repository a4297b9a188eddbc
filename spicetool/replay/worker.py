"""Device commands -> display and cursor messages (name, fields), as spice-server's worker does.

Each connected display/cursor channel gets the messages for the commands submitted after it
connected; when it connects it first gets the current state (the surface image, the cursor).
"""
from __future__ import annotations

from .images import Encoder, bitmap_image, cursor_fields
from .qxl import (PRIMARY_SURFACE, Command, CursorHide, CursorMove, CursorSet, DrawCopy, DrawFill,
                  QxlDevice, Rect, SurfaceCreate, SurfaceDestroy)

ROP_OP_PUT = 8           # SpiceRopd OP_PUT
SURFACE_FLAG_PRIMARY = 1
NO_MASK = {"flags": 0, "pos": {"x": 0, "y": 0}, "bitmap": None}
NO_CLIP = {"type": "NONE"}

Msg = tuple[str, dict]


def _base(surface_id: int, rect: Rect) -> dict:
    return {"surface_id": surface_id, "box": rect.fields(), "clip": NO_CLIP}


def draw_copy(surface_id: int, rect: Rect, pixels, encode: Encoder = bitmap_image) -> Msg:
    h, w = pixels.shape[:2]
    return "draw_copy", {"base": _base(surface_id, rect), "data": {
        "src_bitmap": encode(pixels), "src_area": Rect(0, 0, w, h).fields(),
        "rop_descriptor": ROP_OP_PUT, "scale_mode": "NEAREST", "mask": NO_MASK}}


def draw_fill(surface_id: int, rect: Rect, color: int) -> Msg:
    return "draw_fill", {"base": _base(surface_id, rect), "data": {
        "brush": {"type": "SOLID", "color": color}, "rop_descriptor": ROP_OP_PUT, "mask": NO_MASK}}


def surface_create(surface_id: int, width: int, height: int, primary: bool = True) -> Msg:
    return "surface_create", {"surface_id": surface_id, "width": width, "height": height,
                              "format": "32_xRGB", "flags": SURFACE_FLAG_PRIMARY if primary else 0}


def monitors_config(width: int, height: int) -> Msg:
    return "monitors_config", {"count": 1, "max_allowed": 1, "heads": [
        {"monitor_id": 0, "surface_id": PRIMARY_SURFACE, "width": width, "height": height,
         "x": 0, "y": 0, "flags": 0}]}


def display_messages(cmd: Command, monitors: bool, encode: Encoder = bitmap_image) -> list[Msg]:
    """What one display command becomes on the wire (cursor commands become nothing here)."""
    if isinstance(cmd, DrawFill):
        return [draw_fill(cmd.surface_id, cmd.rect, cmd.color)]
    if isinstance(cmd, DrawCopy):
        return [draw_copy(cmd.surface_id, cmd.rect, cmd.pixels, encode)]
    if isinstance(cmd, SurfaceCreate):
        out = [surface_create(cmd.surface_id, cmd.width, cmd.height, cmd.primary)]
        if cmd.primary:
            # as spice-server's worker does on a new primary: its monitor, then MARK (the
            # client shows the surface again; spice-gtk hides its window until then)
            if monitors:
                out.append(monitors_config(cmd.width, cmd.height))
            out.append(("mark", {}))
        return out
    if isinstance(cmd, SurfaceDestroy):
        return [("surface_destroy", {"surface_id": cmd.surface_id})]
    return []


Snapshot = list[tuple[int, "object"]]


def snapshot(device: QxlDevice) -> Snapshot:
    """Copies of the surfaces (primary first), taken when a display channel connects."""
    return [(sid, px.copy()) for sid, px in
            sorted(device.surfaces.items(), key=lambda kv: kv[0] != PRIMARY_SURFACE)]


def display_state(surfaces: Snapshot, monitors: bool, encode: Encoder = bitmap_image) -> list[Msg]:
    """A newly connected display channel: palettes invalidated, surfaces created and drawn
    whole, monitors config, then MARK (the client shows the primary from here on)."""
    out: list[Msg] = [("inval_all_palettes", {})]
    for sid, pixels in surfaces:
        h, w = pixels.shape[:2]
        out.append(surface_create(sid, w, h, sid == PRIMARY_SURFACE))
        out.append(draw_copy(sid, Rect(0, 0, w, h), pixels, encode))
    primary = next((px for sid, px in surfaces if sid == PRIMARY_SURFACE), None)
    if primary is not None:
        if monitors:
            out.append(monitors_config(primary.shape[1], primary.shape[0]))
        out.append(("mark", {}))
    return out


def surface_refresh(device: QxlDevice, encode: Encoder = bitmap_image) -> list[Msg]:
    """The whole primary as one draw: replaces draws a slow client never got."""
    primary = device.primary
    if primary is None:
        return []
    h, w = primary.shape[:2]
    return [draw_copy(PRIMARY_SURFACE, Rect(0, 0, w, h), primary.copy(), encode)]


def cursor_messages(cmd: Command) -> list[Msg]:
    if isinstance(cmd, CursorSet):
        return [("set", {"position": {"x": cmd.x, "y": cmd.y}, "visible": int(cmd.visible),
                         "cursor": cursor_fields(cmd.shape)})]
    if isinstance(cmd, CursorMove):
        return [("move", {"position": {"x": cmd.x, "y": cmd.y}})]
    if isinstance(cmd, CursorHide):
        return [("hide", {})]
    return []


def cursor_state(device: QxlDevice) -> list[Msg]:
    c = device.cursor
    return [("init", {"position": {"x": c.x, "y": c.y}, "trail_length": 0, "trail_frequency": 0,
                      "visible": int(c.visible and c.shape is not None),
                      "cursor": cursor_fields(c.shape)})]
