"""A QXL-like model of the display device: surfaces, draw commands and the cursor.

The demo desktop and the capture replay submit commands here the way a guest driver fills the
QXL command and cursor rings; the device applies each command to its own framebuffer (so the
model always knows what the client should show) and hands it to every listener (the display and
cursor workers of the connected clients), like spice-server's worker reading the rings.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
import time
from typing import Any, Callable, Union

import numpy as np

# Pixels are kept as the bytes of a 32_xRGB surface in memory: B, G, R, X per pixel.
SURFACE_FMT_32_XRGB = 32
PRIMARY_SURFACE = 0


@dataclass(frozen=True)
class Rect:
    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def fields(self) -> dict:
        """The wire form (spice.proto order: top, left, bottom, right)."""
        return {"top": self.top, "left": self.left, "bottom": self.bottom, "right": self.right}

    def clipped(self, width: int, height: int) -> "Rect":
        return Rect(max(0, self.left), max(0, self.top), min(width, self.right), min(height, self.bottom))

    def empty(self) -> bool:
        return self.right <= self.left or self.bottom <= self.top


@dataclass
class SurfaceCreate:
    surface_id: int
    width: int
    height: int
    format: int = SURFACE_FMT_32_XRGB
    primary: bool = True


@dataclass
class SurfaceDestroy:
    surface_id: int


@dataclass
class DrawFill:
    """QXL_DRAW_FILL with a solid brush and ROP OP_PUT."""
    surface_id: int
    rect: Rect
    color: int  # 0xRRGGBB


@dataclass
class DrawCopy:
    """QXL_DRAW_COPY of an image (h, w, 4 uint8 BGRX) onto rect, OP_PUT, no scaling."""
    surface_id: int
    rect: Rect
    pixels: np.ndarray
    # set: the guest marks the image cacheable (QXL_IMAGE_CACHE) under this id
    image_id: int | None = None
    # what the worker made of it for every client alike (per codec): encoded once
    shared: dict = field(default_factory=dict, compare=False, repr=False)
    stream: int | None = field(default=None, compare=False)   # set: a frame of this video stream
    video: bool = False   # a frame of a video the guest plays (a replayed capture's stream)


def content_id(pixels: np.ndarray) -> int:
    """An image id from the pixels, as the X QXL driver keys its images by a hash of their
    contents: the same picture drawn again gets the same id (and a client cache hit)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(np.asarray(pixels.shape, dtype="<u4").tobytes())
    h.update(np.ascontiguousarray(pixels).data)
    return int.from_bytes(h.digest(), "little")


@dataclass
class StreamCreate:
    """A video stream starts at `rect` (the server's decision, see streams.py)."""
    stream_id: int
    rect: Rect


@dataclass
class StreamDestroy:
    stream_id: int


@dataclass
class CursorShape:
    """An ALPHA cursor: (h, w, 4) uint8 in B, G, R, A byte order (ARGB little-endian)."""
    unique: int
    pixels: np.ndarray
    hot_x: int = 0
    hot_y: int = 0


@dataclass
class CursorSet:
    x: int
    y: int
    shape: CursorShape
    visible: bool = True


@dataclass
class CursorMove:
    x: int
    y: int


@dataclass
class CursorHide:
    pass


DrawCommand = Union[DrawFill, DrawCopy]
SurfaceCommand = Union[SurfaceCreate, SurfaceDestroy]
StreamCommand = Union[StreamCreate, StreamDestroy]
CursorCommand = Union[CursorSet, CursorMove, CursorHide]
Command = Union[DrawCommand, SurfaceCommand, CursorCommand, StreamCommand]


class DeviceError(ValueError):
    """A command the device cannot carry out (unknown surface, bad size...)."""


def color_bgrx(color: int) -> np.ndarray:
    return np.array([color & 0xFF, (color >> 8) & 0xFF, (color >> 16) & 0xFF, 0], dtype=np.uint8)


@dataclass
class CursorState:
    x: int = 0
    y: int = 0
    visible: bool = False
    shape: CursorShape | None = None


@dataclass
class QxlDevice:
    """The device: surfaces with their pixels, the cursor, and who listens to the rings."""
    surfaces: dict[int, np.ndarray] = field(default_factory=dict)
    cursor: CursorState = field(default_factory=CursorState)
    listeners: list[Callable[[Command], None]] = field(default_factory=list)
    max_pixels: int = 64 * 1024 * 1024
    commands: int = 0   # submitted so far: the surfaces' version
    memo: dict = field(default_factory=dict, repr=False)  # the worker's, valid while `commands` stays
    streams: Any = None       # a streams.VideoStreams when --streaming-video is on
    clock: Callable[[], float] = time.monotonic   # seconds, for the streams' timing

    @property
    def primary(self) -> np.ndarray | None:
        return self.surfaces.get(PRIMARY_SURFACE)

    def submit(self, cmd: Command) -> None:
        if self.streams is not None:
            for c in self.streams.before(cmd, self.clock(), self.primary):
                self._deliver(c)
        self._deliver(cmd)

    def tick(self, now: float | None = None) -> None:
        """Let time pass for the streams (None: the device's clock; inf: end them all)."""
        if self.streams is not None:
            for c in self.streams.expired(self.clock() if now is None else now, self.primary):
                self._deliver(c)

    def _deliver(self, cmd: Command) -> None:
        self._apply(cmd)
        self.commands += 1
        for listener in list(self.listeners):
            listener(cmd)

    def _surface(self, surface_id: int) -> np.ndarray:
        s = self.surfaces.get(surface_id)
        if s is None:
            raise DeviceError(f"draw on surface {surface_id}, which does not exist")
        return s

    def _apply(self, cmd: Command) -> None:
        if isinstance(cmd, SurfaceCreate):
            if cmd.format != SURFACE_FMT_32_XRGB:
                raise DeviceError(f"surface format {cmd.format} is not supported (only 32_xRGB)")
            if not (0 < cmd.width and 0 < cmd.height and cmd.width * cmd.height <= self.max_pixels):
                raise DeviceError(f"surface size {cmd.width}x{cmd.height} is out of range")
            self.surfaces[cmd.surface_id] = np.zeros((cmd.height, cmd.width, 4), dtype=np.uint8)
        elif isinstance(cmd, SurfaceDestroy):
            self.surfaces.pop(cmd.surface_id, None)
        elif isinstance(cmd, DrawFill):
            s = self._surface(cmd.surface_id)
            r = cmd.rect.clipped(s.shape[1], s.shape[0])
            if not r.empty():
                s[r.top:r.bottom, r.left:r.right] = color_bgrx(cmd.color)
        elif isinstance(cmd, DrawCopy):
            s = self._surface(cmd.surface_id)
            h, w = cmd.pixels.shape[:2]
            if (w, h) != (cmd.rect.width, cmd.rect.height):
                raise DeviceError(f"image {w}x{h} does not fit rect {cmd.rect}")
            r = cmd.rect.clipped(s.shape[1], s.shape[0])
            if not r.empty():
                src = cmd.pixels[r.top - cmd.rect.top:r.bottom - cmd.rect.top,
                                 r.left - cmd.rect.left:r.right - cmd.rect.left]
                s[r.top:r.bottom, r.left:r.right, :3] = src[:, :, :3]
                s[r.top:r.bottom, r.left:r.right, 3] = 0
        elif isinstance(cmd, CursorSet):
            self.cursor = CursorState(cmd.x, cmd.y, cmd.visible, cmd.shape)
        elif isinstance(cmd, CursorMove):
            self.cursor.x, self.cursor.y = cmd.x, cmd.y
            self.cursor.visible = True
        elif isinstance(cmd, CursorHide):
            self.cursor.visible = False
        elif isinstance(cmd, (StreamCreate, StreamDestroy)):
            pass   # no pixels: the stream's frames are draws
        else:
            raise DeviceError(f"unknown command {type(cmd).__name__}")

    def framebuffer_rgb(self, surface_id: int = PRIMARY_SURFACE) -> np.ndarray:
        """(h, w, 3) RGB copy of a surface, as a client screenshot shows it."""
        s = self._surface(surface_id)
        return s[:, :, 2::-1].copy()
