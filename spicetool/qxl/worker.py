"""Device commands -> display and cursor messages (name, fields), as spice-server's worker does.

Each connected display/cursor channel gets the messages for the commands submitted after it
connected; when it connects it first gets the current state (the surface image, the cursor).
"""
from __future__ import annotations

from collections import Counter
from typing import Callable, Union

import numpy as np

from spicetool.qxl.commands import (
    PRIMARY_SURFACE,
    Command,
    CopyBits,
    CopySurface,
    CursorHide,
    CursorMove,
    CursorSet,
    DrawCopy,
    DrawFill,
    Rect,
    StreamCreate,
    SurfaceCreate,
    SurfaceDestroy,
)
from spicetool.qxl.device import QxlDevice
from spicetool.qxl.images import IMAGE_FLAG_CACHE_ME, ClientImages, cursor_fields, from_cache_image, with_flags
from spicetool.qxl.pixmap_cache import inval_lists
from spicetool.stack import Direction, build_body
from spicetool.stack.enums import Ropd, StreamFlags, SurfaceFlags
from spicetool.stack.headers import MINI, pack_mini_header
from spicetool.stack.messages import describe
from spicetool.stack.types import CHANNEL_TYPES

ROP_OP_PUT = int(Ropd.OP_PUT)
SURFACE_FLAG_PRIMARY = int(SurfaceFlags.PRIMARY)
NO_MASK = {"flags": 0, "pos": {"x": 0, "y": 0}, "bitmap": None}
NO_CLIP = {"type": "NONE"}
DISPLAY = CHANNEL_TYPES["display"]


class Shared:
    """A display message that is the same for every client that gets it: its body is built by
    the stack once, the first time any client sends it (or ahead, by `prebuild`), and so is
    the whole message for the clients with mini headers (all of spice-gtk's)."""
    __slots__ = ("name", "fields", "type_id", "_body", "_mini")

    def __init__(self, name: str, fields: dict):
        self.name, self.fields = name, fields
        self.type_id = describe(DISPLAY, Direction.SERVER, name)[0]
        self._body: bytes | None = None
        self._mini: bytes | None = None

    def body(self) -> bytes | memoryview:
        if self._mini is not None:
            return memoryview(self._mini)[MINI.size:]   # kept once, in the mini-header message
        if self._body is None:
            self._body = build_body(DISPLAY, Direction.SERVER, self.type_id, self.fields)
        return self._body

    def with_mini_header(self) -> bytes:
        if self._mini is None:
            body = self.body()
            self._mini = pack_mini_header(self.type_id, len(body)) + body
            self._body = None
        return self._mini


Msg = Union[tuple[str, dict], Shared]


def _base(surface_id: int, rect: Rect, clip: tuple[Rect, ...] | None = None) -> dict:
    rects = None if clip is None else {"rects": [c.fields() for c in clip]}
    return {"surface_id": surface_id, "box": rect.fields(),
            "clip": NO_CLIP if rects is None else {"type": "RECTS", "rects": rects}}


def draw_copy(surface_id: int, rect: Rect, image: dict, src: Rect | None = None,
              clip: tuple[Rect, ...] | None = None) -> tuple[str, dict]:
    src = src or Rect(0, 0, rect.width, rect.height)
    return "draw_copy", {"base": _base(surface_id, rect, clip), "data": {
        "src_bitmap": image, "src_area": src.fields(),
        "rop_descriptor": ROP_OP_PUT, "scale_mode": "NEAREST", "mask": NO_MASK}}


def surface_image(surface_id: int) -> dict:
    """An image that is one of the client's surfaces: id and size 0, as the X driver describes
    it and spice-server passes it on (the client takes the surface as it is)."""
    return {"descriptor": {"id": 0, "type": "SURFACE", "flags": 0, "width": 0, "height": 0},
            "surface": {"surface_id": surface_id}}


def _shared_image(images: ClientImages, codec: str, pixels, shared: dict, image_id: int | None,
                  exact: bool = False) -> dict:
    key = ("image", codec)
    image = shared.get(key)
    if image is None:
        image = shared[key] = images.encode(pixels, image_id, codec, exact)
    return image


def _variant(shared: dict, key, make) -> Shared:
    msg = shared.get(key)
    if msg is None:
        msg = shared[key] = Shared(*make())
    return msg


def copy_message(surface_id: int, rect: Rect, pixels, images: ClientImages, shared: dict | None,
                 image_id: int | None = None, clip: tuple[Rect, ...] | None = None,
                 wanted: str | None = None) -> list[Msg]:
    """DRAW_COPY of `pixels` for one client, as spice-server's fill_bits: FROM_CACHE when the
    client holds the image, else the image (CACHE_ME when it is cacheable and fits, after an
    INVAL_LIST of what it pushes out). With a stateless codec the encoding and each variant of
    the message are made once (in `shared`) for all clients; GLZ is encoded for this client."""
    h, w = pixels.shape[:2]
    cache, out = images.cache, []
    flags = 0
    if image_id is not None and cache is not None:
        if cache.hit(image_id):
            images.stats["images_FROM_CACHE"] += 1
            if shared is None:
                return [draw_copy(surface_id, rect, from_cache_image(image_id, w, h), clip=clip)]
            return [_variant(shared, "from_cache",
                             lambda: draw_copy(surface_id, rect, from_cache_image(image_id, w, h), clip=clip))]
        evicted = cache.add(image_id, w * h)
        if evicted is not None:
            flags = IMAGE_FLAG_CACHE_ME
            out += inval_lists(evicted)
            images.stats["pixmaps_evicted"] += len(evicted)
    codec = images.codec_for(pixels, shared, wanted)
    if images.stateless(codec) and shared is not None:
        image = _shared_image(images, codec, pixels, shared, image_id, codec == wanted)
        msg = _variant(shared, (codec, flags),
                       lambda: draw_copy(surface_id, rect, with_flags(image, flags), clip=clip))
        images.count(image)
        return out + [msg]
    image = with_flags(images.encode(pixels, image_id, codec, codec == wanted), flags)
    images.count(image)
    return out + [draw_copy(surface_id, rect, image, clip=clip)]


def prebuild(cmd: Command, images: ClientImages) -> None:
    """Encode and build a draw ahead of time (off the event loop) for clients with `images`'
    codec: the message without flags and, for a cacheable image, with CACHE_ME."""
    if not isinstance(cmd, DrawCopy):
        return
    codec = images.codec_for(cmd.pixels, cmd.shared, cmd.codec)
    if not images.stateless(codec):
        return
    image = _shared_image(images, codec, cmd.pixels, cmd.shared, cmd.image_id, codec == cmd.codec)
    for flags in (0, IMAGE_FLAG_CACHE_ME) if cmd.image_id is not None else (0,):
        _variant(cmd.shared, (codec, flags), lambda: draw_copy(
            cmd.surface_id, cmd.rect, with_flags(image, flags), clip=cmd.clip)).with_mini_header()


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


STREAM_FLAG_TOP_DOWN = int(StreamFlags.TOP_DOWN)
STREAM_DELAY_MS = 200    # frames are stamped this far ahead of the client's clock (spice-gtk drops late ones)
JPEG_QUALITY = 80


def stream_create(cmd: StreamCreate) -> tuple[str, dict]:
    w, h = cmd.rect.width, cmd.rect.height
    return "stream_create", {"surface_id": PRIMARY_SURFACE, "id": cmd.stream_id, "flags": STREAM_FLAG_TOP_DOWN,
                             "codec_type": "MJPEG", "stamp": 0, "stream_width": w, "stream_height": h,
                             "src_width": w, "src_height": h, "dest": cmd.rect.fields(), "clip": NO_CLIP}


def stream_frame(cmd: DrawCopy, mm_time: int) -> Shared:
    """The frame as STREAM_DATA, a JPEG made by Pillow once for every client."""
    msg = cmd.shared.get("stream")
    if msg is None:
        import io

        from PIL import Image
        out = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(cmd.pixels[:, :, 2::-1])).save(out, "JPEG", quality=JPEG_QUALITY)
        data = out.getvalue()
        msg = cmd.shared["stream"] = Shared("stream_data", {
            "base": {"id": cmd.stream, "multi_media_time": mm_time & 0xFFFFFFFF},
            "data": data})
    return msg


def draw_fill(surface_id: int, rect: Rect, color: int, clip: tuple[Rect, ...] | None = None) -> tuple[str, dict]:
    return "draw_fill", {"base": _base(surface_id, rect, clip), "data": {
        "brush": {"type": "SOLID", "color": color}, "rop_descriptor": ROP_OP_PUT, "mask": NO_MASK}}


def surface_create(surface_id: int, width: int, height: int, primary: bool = True) -> tuple[str, dict]:
    return "surface_create", {"surface_id": surface_id, "width": width, "height": height,
                              "format": "32_xRGB", "flags": SURFACE_FLAG_PRIMARY if primary else 0}


def monitors_config(width: int, height: int) -> tuple[str, dict]:
    return "monitors_config", {"max_allowed": 1, "heads": [
        {"monitor_id": 0, "surface_id": PRIMARY_SURFACE, "width": width, "height": height,
         "x": 0, "y": 0, "flags": 0}]}


def display_messages(cmd: Command, monitors: bool, images: ClientImages) -> list[Msg]:
    """What one display command becomes on the wire (cursor commands become nothing here)."""
    if isinstance(cmd, DrawFill):
        return [draw_fill(cmd.surface_id, cmd.rect, cmd.color, cmd.clip)]
    if isinstance(cmd, DrawCopy):
        return copy_message(cmd.surface_id, cmd.rect, cmd.pixels, images, cmd.shared, cmd.image_id, cmd.clip,
                            cmd.codec)
    if isinstance(cmd, CopySurface):   # the client copies from its own copy of that surface
        return [draw_copy(cmd.surface_id, cmd.rect, surface_image(cmd.src_surface), cmd.src_rect)]
    if isinstance(cmd, CopyBits):   # the client moves its own pixels, as spice-server sends it
        return [("copy_bits", {"base": _base(cmd.surface_id, cmd.rect), "src_pos": {"x": cmd.src_x, "y": cmd.src_y}})]
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
        out += copy_message(sid, Rect(0, 0, w, h), pixels, images, shared)
    primary = next((px for sid, px, _ in surfaces if sid == PRIMARY_SURFACE), None)
    if primary is not None:
        if monitors:
            out.append(monitors_config(primary.shape[1], primary.shape[0]))
        out.append(("mark", {}))
    return out


def surfaces_refresh(surfaces: Snapshot, images: ClientImages) -> list[Msg]:
    """Every surface whole, as it was in `surfaces`: replaces the draws a slow client never got."""
    out: list[Msg] = []
    for sid, pixels, shared in surfaces:
        h, w = pixels.shape[:2]
        out += copy_message(sid, Rect(0, 0, w, h), pixels, images, shared)
    return out


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
