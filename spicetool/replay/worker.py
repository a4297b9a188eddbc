"""Device commands -> display and cursor messages (name, fields), as spice-server's worker does.

Each connected display/cursor channel gets the messages for the commands submitted after it
connected; when it connects it first gets the current state (the surface image, the cursor).
"""
from __future__ import annotations

from collections import Counter
from typing import Callable, Union

from spicetool.stack import Direction, build_body
from spicetool.stack.messages import describe
from spicetool.stack.types import CHANNEL_TYPES

from .images import ClientImages, cursor_fields
from .qxl import (PRIMARY_SURFACE, Command, CursorHide, CursorMove, CursorSet, DrawCopy, DrawFill,
                  QxlDevice, Rect, SurfaceCreate, SurfaceDestroy)

ROP_OP_PUT = 8           # SpiceRopd OP_PUT
SURFACE_FLAG_PRIMARY = 1
NO_MASK = {"flags": 0, "pos": {"x": 0, "y": 0}, "bitmap": None}
NO_CLIP = {"type": "NONE"}
DISPLAY = CHANNEL_TYPES["display"]


class Shared:
    """A display message that is the same for every client that gets it: its body is built by
    the stack once, the first time any client sends it (or ahead, by `prebuild`)."""
    __slots__ = ("name", "fields", "type_id", "_body")

    def __init__(self, name: str, fields: dict):
        self.name, self.fields = name, fields
        self.type_id = describe(DISPLAY, Direction.SERVER, name)[0]
        self._body: bytes | None = None

    def body(self) -> bytes:
        if self._body is None:
            self._body = build_body(DISPLAY, Direction.SERVER, self.type_id, self.fields)
        return self._body


Msg = Union[tuple[str, dict], Shared]


def _base(surface_id: int, rect: Rect) -> dict:
    return {"surface_id": surface_id, "box": rect.fields(), "clip": NO_CLIP}


def draw_copy(surface_id: int, rect: Rect, image: dict) -> tuple[str, dict]:
    h, w = rect.height, rect.width
    return "draw_copy", {"base": _base(surface_id, rect), "data": {
        "src_bitmap": image, "src_area": Rect(0, 0, w, h).fields(),
        "rop_descriptor": ROP_OP_PUT, "scale_mode": "NEAREST", "mask": NO_MASK}}


def copy_message(surface_id: int, rect: Rect, pixels, images: ClientImages, shared: dict | None) -> Msg:
    """DRAW_COPY of `pixels` for one client: with a stateless codec the message `shared` keeps
    for that codec (encoded and built once for all clients), else encoded for this client."""
    if images.shared and shared is not None:
        msg = shared.get(images.codec)
        if msg is None:
            msg = shared[images.codec] = Shared(*draw_copy(surface_id, rect, images.encode(pixels)))
        images.count(msg.fields["data"]["src_bitmap"])
        return msg
    image = images.encode(pixels)
    images.count(image)
    return draw_copy(surface_id, rect, image)


def prebuild(cmd: Command, images: ClientImages) -> None:
    """Encode and build a draw ahead of time (off the event loop) for clients with `images`' codec."""
    if isinstance(cmd, DrawCopy) and images.shared and images.codec not in cmd.shared:
        msg = cmd.shared[images.codec] = Shared(*draw_copy(cmd.surface_id, cmd.rect, images.encode(cmd.pixels)))
        msg.body()


class Prebuilder:
    """`prebuild` for the server's image compression of the moment (a replay's frames thread
    calls it on each new command, so the clients with that setting find their draws ready)."""

    def __init__(self, compression: Callable[[], str]):
        self.compression = compression
        self._images: ClientImages | None = None
        self._setting: str | None = None

    def __call__(self, cmd: Command) -> None:
        setting = self.compression()
        if setting != self._setting:
            self._images, self._setting = ClientImages(setting, True, Counter()), setting
        prebuild(cmd, self._images)


def draw_fill(surface_id: int, rect: Rect, color: int) -> tuple[str, dict]:
    return "draw_fill", {"base": _base(surface_id, rect), "data": {
        "brush": {"type": "SOLID", "color": color}, "rop_descriptor": ROP_OP_PUT, "mask": NO_MASK}}


def surface_create(surface_id: int, width: int, height: int, primary: bool = True) -> tuple[str, dict]:
    return "surface_create", {"surface_id": surface_id, "width": width, "height": height,
                              "format": "32_xRGB", "flags": SURFACE_FLAG_PRIMARY if primary else 0}


def monitors_config(width: int, height: int) -> tuple[str, dict]:
    return "monitors_config", {"count": 1, "max_allowed": 1, "heads": [
        {"monitor_id": 0, "surface_id": PRIMARY_SURFACE, "width": width, "height": height,
         "x": 0, "y": 0, "flags": 0}]}


def display_messages(cmd: Command, monitors: bool, images: ClientImages) -> list[Msg]:
    """What one display command becomes on the wire (cursor commands become nothing here)."""
    if isinstance(cmd, DrawFill):
        return [draw_fill(cmd.surface_id, cmd.rect, cmd.color)]
    if isinstance(cmd, DrawCopy):
        return [copy_message(cmd.surface_id, cmd.rect, cmd.pixels, images, cmd.shared)]
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


# (surface id, pixels, the messages shared by the clients that get this copy), primary first
Snapshot = list[tuple[int, "object", dict]]


def snapshot(device: QxlDevice) -> Snapshot:
    """Copies of the surfaces, taken when a display channel connects; clients that connect
    while nothing changed share one copy (and its encodings)."""
    memo = device.memo.get("snapshot")
    if memo is not None and memo[0] == device.commands:
        return memo[1]
    snap = [(sid, px.copy(), {}) for sid, px in
            sorted(device.surfaces.items(), key=lambda kv: kv[0] != PRIMARY_SURFACE)]
    device.memo["snapshot"] = (device.commands, snap)
    return snap


def display_state(surfaces: Snapshot, monitors: bool, images: ClientImages) -> list[Msg]:
    """A newly connected display channel: palettes invalidated, surfaces created and drawn
    whole, monitors config, then MARK (the client shows the primary from here on)."""
    out: list[Msg] = [("inval_all_palettes", {})]
    for sid, pixels, shared in surfaces:
        h, w = pixels.shape[:2]
        out.append(surface_create(sid, w, h, sid == PRIMARY_SURFACE))
        out.append(copy_message(sid, Rect(0, 0, w, h), pixels, images, shared))
    primary = next((px for sid, px, _ in surfaces if sid == PRIMARY_SURFACE), None)
    if primary is not None:
        if monitors:
            out.append(monitors_config(primary.shape[1], primary.shape[0]))
        out.append(("mark", {}))
    return out


def surface_refresh(device: QxlDevice, images: ClientImages) -> list[Msg]:
    """The whole primary as one draw: replaces draws a slow client never got."""
    primary = next(((px, shared) for sid, px, shared in snapshot(device) if sid == PRIMARY_SURFACE), None)
    if primary is None:
        return []
    pixels, shared = primary
    h, w = pixels.shape[:2]
    return [copy_message(PRIMARY_SURFACE, Rect(0, 0, w, h), pixels, images, shared)]


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
