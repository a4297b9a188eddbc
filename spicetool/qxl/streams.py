"""Video streams: regions the guest redraws often become an MJPEG stream (`--streaming-video`).

The rules are spice-server's (video-stream.cpp, display-channel.cpp), our own code:
- streamable: a DRAW_COPY (OP_PUT) on the primary; with `filter` at least 96x96 pixels;
- a draw with the same destination and size as one drawn at most 0.2 s before it continues
  that one's run of frames; a run of 20 frames of which at least a fifth are "gradual" (a
  graduality above LOW; with `all` every frame counts) becomes a stream;
- a later draw with the stream's destination within 1 s is its next frame;
- a stream that gets no frame for 1 s ends, and so does one another draw covers part of; the
  stream's area is then sent again losslessly (spice-server's upgrade), so the client ends on
  exact pixels.
A replayed capture's own video streams are streams here from their first frame (their
destination kept), re-encoded as MJPEG whatever codec the capture used.
Time is the device's clock: capture time for a replay, so the streams are the same every time.
"""
from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

import numpy as np

from spicetool.qxl.commands import (
    PRIMARY_SURFACE,
    Command,
    CopyBits,
    DrawCopy,
    Rect,
    StreamCreate,
    StreamDestroy,
    SurfaceCreate,
    SurfaceDestroy,
)
from spicetool.qxl.graduality import Graduality, level

MODES = ("off", "all", "filter")
DETECTION_MAX_DELTA = 0.2     # s between two frames of a run before it is a stream
CONTINUOUS_MAX_DELTA = 1.0    # s between two frames of a stream
TIMEOUT = 1.0                 # s without a frame: the stream ends
FRAMES_START = 20
GRADUAL_START = 0.2
FRAMES_RESET = 100
MIN_SIZE = 96 * 96
MAX_STREAMS = 50
TRACES = 8                    # recent draws remembered as possible runs


@dataclass
class _Trace:
    rect: Rect
    time: float
    frames: int
    gradual: int
    last_gradual: int


@dataclass
class VideoStream:
    id: int
    rect: Rect
    last_time: float


def gradual(cmd: DrawCopy) -> bool:
    """A frame that counts towards a stream in `filter` mode: one whose graduality is not LOW
    (photo-like, or nearly so: graduality.py), as spice-server counts them."""
    return level(cmd.pixels, cmd.shared) != Graduality.LOW


class VideoStreams:
    """The device's streams: what each new command means for them."""

    def __init__(self, mode: str = "off"):
        if mode not in MODES:
            raise ValueError(f"streaming video {mode!r} is not one of {', '.join(MODES)}")
        self.mode = mode
        self.active: dict[int, VideoStream] = {}
        self._traces: deque[_Trace] = deque(maxlen=TRACES)
        self._ids = itertools.count(0)
        self._free: list[int] = []

    def _new_id(self) -> int:
        return self._free.pop(0) if self._free else next(self._ids)

    def _end(self, s: VideoStream, primary: np.ndarray | None) -> list[Command]:
        del self.active[s.id]
        self._free.append(s.id)
        self._free.sort()
        out: list[Command] = [StreamDestroy(s.id)]
        if primary is not None:   # the area again, lossless, over the last (JPEG) frame
            r = s.rect.clipped(primary.shape[1], primary.shape[0])
            if not r.empty():
                out.append(DrawCopy(PRIMARY_SURFACE, r, primary[r.top:r.bottom, r.left:r.right].copy()))
        return out

    def before(self, cmd: Command, now: float, primary: np.ndarray | None) -> list[Command]:
        """Commands due before `cmd` (stream creation, or the end of streams it covers); marks
        `cmd.stream` when it is a stream's frame."""
        if self.mode == "off" or not self.active and not isinstance(cmd, DrawCopy):
            return []
        if isinstance(cmd, (SurfaceCreate, SurfaceDestroy)):   # the primary goes: so do its streams
            out: list[Command] = []
            for s in list(self.active.values()):
                out += self._end(s, None)
            return out
        rect = getattr(cmd, "rect", None)
        surface = getattr(cmd, "surface_id", None)
        out = []
        if isinstance(cmd, DrawCopy) and surface == PRIMARY_SURFACE:
            for s in self.active.values():
                if s.rect == rect and now - s.last_time <= CONTINUOUS_MAX_DELTA:
                    s.last_time, cmd.stream = now, s.id
                    return []
        if rect is not None and surface == PRIMARY_SURFACE:
            # a scroll also reads its source: a stream there ends first, so its lossless last
            # picture is what moves
            touched = [rect, cmd.src_rect] if isinstance(cmd, CopyBits) else [rect]
            for s in [s for s in self.active.values() if any(s.rect.overlaps(r) for r in touched)]:
                out += self._end(s, primary)
        if isinstance(cmd, DrawCopy) and surface == PRIMARY_SURFACE:
            out += self._detect(cmd, now)
        return out

    def _detect(self, cmd: DrawCopy, now: float) -> list[Command]:
        if cmd.clip is not None:   # a clipped draw is not a video frame's whole rectangle
            return []
        w, h = cmd.rect.width, cmd.rect.height
        if self.mode == "filter" and w * h < MIN_SIZE and not cmd.video:
            return []
        prev = next((t for t in reversed(self._traces)
                     if t.rect == cmd.rect and now - t.time <= DETECTION_MAX_DELTA), None)
        frames, grad, last = (prev.frames, prev.gradual, prev.last_gradual) if prev else (0, 0, 0)
        if prev is not None:
            self._traces.remove(prev)
        frames += 1
        if cmd.video:   # the capture streamed this region: so do we, from its first frame
            frames = grad = max(frames, FRAMES_START)
        elif self.mode != "filter" or gradual(cmd):
            if frames - last > FRAMES_RESET:
                frames, grad = 1, 1
            else:
                grad += 1
            last = frames
        if frames >= FRAMES_START and grad >= GRADUAL_START * frames and len(self.active) < MAX_STREAMS:
            s = VideoStream(self._new_id(), cmd.rect, now)
            self.active[s.id] = s
            cmd.stream = s.id
            return [StreamCreate(s.id, cmd.rect)]
        self._traces.append(_Trace(cmd.rect, now, frames, grad, last))
        return []

    def expired(self, now: float, primary: np.ndarray | None) -> list[Command]:
        """The streams that got no frame for TIMEOUT seconds end (now=inf: all of them)."""
        out: list[Command] = []
        for s in [s for s in self.active.values() if now - s.last_time >= TIMEOUT]:
            out += self._end(s, primary)
        return out
