"""The QXL command vocabulary: what a guest driver asks of the device, as dataclasses.

Surfaces (create, destroy), draws (DRAW_FILL, DRAW_COPY of a bitmap or another surface, COPY_BITS),
the server's own video streams, and the cursor (set, move, hide). The device (device.py) reads them
out of guest memory and carries them out; the guest driver (driver.py) writes them there; the demo
desktop and the capture replay speak them.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from spicetool.stack.cursor import CursorShape
from spicetool.stack.geometry import Rect
from spicetool.stack.enums import PRIMARY_SURFACE_ID, SurfaceFmt

# Pixels are kept as the bytes of a 32_xRGB surface in memory: B, G, R, X per pixel.
SURFACE_FMT_32_XRGB = int(SurfaceFmt.FMT_32_xRGB)
PRIMARY_SURFACE = PRIMARY_SURFACE_ID  # the primary surface's id (SurfaceFlags.PRIMARY is the flag)


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
    clip: tuple[Rect, ...] | None = None   # drawn only inside these (SPICE_CLIP_TYPE_RECTS)


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
    clip: tuple[Rect, ...] | None = None   # drawn only inside these (the Linux KMS driver's dirty rects)
    # set: the codec the image is sent in where the client can take it (a replayed capture's own)
    codec: str | None = None


@dataclass
class _Move:
    """Pixels at (src_x, src_y), a rect's size of them, drawn to rect."""
    surface_id: int
    rect: Rect
    src_x: int
    src_y: int

    @property
    def src_rect(self) -> Rect:
        return Rect(self.src_x, self.src_y, self.src_x + self.rect.width, self.src_y + self.rect.height)


@dataclass
class CopyBits(_Move):
    """QXL_COPY_BITS: the surface's own pixels moved to rect (a scroll)."""


@dataclass
class CopySurface(_Move):
    """QXL_DRAW_COPY whose image is another surface (SPICE_IMAGE_TYPE_SURFACE): that surface's
    pixels copied to rect, as the X driver draws its off-screen pixmaps."""
    src_surface: int


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


DrawCommand = Union[DrawFill, DrawCopy, CopyBits, CopySurface]
SurfaceCommand = Union[SurfaceCreate, SurfaceDestroy]
StreamCommand = Union[StreamCreate, StreamDestroy]
CursorCommand = Union[CursorSet, CursorMove, CursorHide]
Command = Union[DrawCommand, SurfaceCommand, CursorCommand, StreamCommand]
