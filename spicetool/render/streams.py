"""Video streams of the display channel: MJPEG frames (Pillow) and VP8/VP9/H.264/H.265 (PyAV),
put on their surface at the stream's destination, clipped like the real client does, at the time
the client shows them.

When spice-gtk shows a frame: each STREAM_DATA carries a multi_media_time; the client's
multimedia clock is set by the main channel (INIT, MULTI_MEDIA_TIME) and runs with its own
clock. The server stamps frames ahead of the clock it gives the client (spice-server: 400 ms),
so frames wait. MJPEG (spice-gtk's own decoder): a frame whose time has already passed when it
arrives is dropped; the others are shown when the clock reaches their time; a frame older than
the one queued before it resets the queue; a clock change drops queued frames it makes late.
Other codecs (GStreamer): every frame is shown, ``margin`` after arrival (time - clock, not
below 0; 0 on a streaming-mode surface when no playback runs). Without a clock (a capture that
starts mid-session) frames are shown when they arrive.
Not followed: while sound plays, spice-gtk's audio backend sets the clock each second to the last
playback packet's time less its audio device's latency, which no capture holds; we keep the main
channel's clock.
"""
from __future__ import annotations

import io
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from spicetool.render.canvas import scaled_source
from spicetool.render.surfaces import Region, Surface, put, region_for
from spicetool.stack.geometry import Rect
from spicetool.stack.enums import MAX_NUM_STREAMS, StreamFlags

TOP_DOWN = int(StreamFlags.TOP_DOWN)
MAX_STREAMS = MAX_NUM_STREAMS
MAX_FRAME_PIXELS = 32 << 20  # a bound on what a damaged frame header can make us allocate
MAX_PENDING = 256  # frames waiting for their time, per stream (~10 s at 25 fps): memory stays bounded
MAX_PENDING_BYTES = 64 << 20  # and their bytes, all streams together
AV_CODECS = {"VP8": "vp8", "VP9": "vp9", "H264": "h264", "H265": "hevc"}


class StreamError(ValueError):
    pass




def mm_diff(a: int, b: int) -> int:
    """a - b on the 32-bit millisecond clock, which wraps (spice_mmtime_diff)."""
    return ((a - b + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


class MMClock:
    """The client's multimedia clock: set to a value at a capture time, running with it."""

    def __init__(self) -> None:
        self.mm: int | None = None  # milliseconds at `at`
        self.at = 0.0  # capture time it was set

    def set(self, mm: int, at: float) -> None:
        self.mm, self.at = int(mm) & 0xFFFFFFFF, at

    def now(self, t: float) -> int:
        assert self.mm is not None
        return (self.mm + round((t - self.at) * 1000)) & 0xFFFFFFFF

    def time_of(self, mm: int) -> float:
        """The capture time at which the clock reads ``mm``."""
        assert self.mm is not None
        return self.at + mm_diff(mm, self.mm) / 1000


class Pending(NamedTuple):
    mm_time: int
    due: float | None  # capture time to show it; None: when the clock reaches mm_time (MJPEG)
    data: bytes
    dest: dict[str, int] | None  # STREAM_DATA_SIZED's own destination


@dataclass
class Stream:
    id: int
    surface_id: int
    codec: str
    flags: int
    width: int
    height: int
    dest: dict[str, int]
    clip: dict[str, Any] | None
    streaming_mode: bool = False  # its surface has SPICE_SURFACE_FLAGS_STREAMING_MODE
    decoder: Any = field(default=None, repr=False)
    pending: deque[Pending] = field(default_factory=deque, repr=False)

    def decode(self, data: bytes) -> np.ndarray | None:
        """One frame as HxWx4 B,G,R,A, or None when the codec holds it back."""
        if self.codec == "MJPEG":
            from PIL import Image as PILImage  # imported with the first stream: a faster start
            try:
                with PILImage.open(io.BytesIO(data)) as im:
                    if im.width * im.height > MAX_FRAME_PIXELS:
                        raise StreamError(f"MJPEG frame of {im.width}x{im.height}")
                    rgb = np.asarray(im.convert("RGB"))
            except PILImage.DecompressionBombError as exc:
                raise StreamError(str(exc)[:60]) from None
            return _bgra(rgb)
        name = AV_CODECS.get(self.codec)
        if name is None:
            raise StreamError(f"codec {self.codec} not supported")
        import av  # only when a stream needs it
        if self.decoder is None:
            self.decoder = av.CodecContext.create(name, "r")
        last = None
        for frame in self.decoder.decode(av.Packet(data)):
            last = frame.to_ndarray(format="rgb24")
        return None if last is None else _bgra(last)


def _bgra(rgb: np.ndarray) -> np.ndarray:
    out = np.empty((*rgb.shape[:2], 4), np.uint8)
    out[..., 0], out[..., 1], out[..., 2], out[..., 3] = rgb[..., 2], rgb[..., 1], rgb[..., 0], 255
    return out


class Streams:
    """The live streams of one display channel."""

    def __init__(self) -> None:
        self.streams: dict[int, Stream] = {}
        self.frames = 0
        self.codecs: set[str] = set()
        self.clock = MMClock()
        self.playback_active = False
        self.late = 0  # frames the client drops: too late on arrival, or made late by the clock
        self.overflow = 0  # frames dropped because too many waited
        self.pending_bytes = 0

    def create(self, f: dict[str, Any], streaming_mode: bool = False) -> None:
        sid = int(f["id"])
        if not 0 <= sid < MAX_STREAMS:
            raise StreamError(f"stream id {sid} out of range")
        self.destroy(sid)  # created again without a destroy: the old one's waiting frames go
        self.streams[sid] = Stream(sid, int(f["surface_id"]), str(f["codec_type"]), int(f["flags"]),
                                   int(f["stream_width"]), int(f["stream_height"]), f["dest"], f.get("clip"),
                                   streaming_mode)
        self.codecs.add(str(f["codec_type"]))

    def clip(self, f: dict[str, Any]) -> None:
        st = self.streams.get(int(f["id"]))
        if st is not None:
            st.clip = f.get("clip")

    def destroy(self, sid: int | None) -> None:
        gone = list(self.streams.values()) if sid is None else [s for s in [self.streams.get(sid)] if s]
        self.pending_bytes -= sum(len(p.data) for st in gone for p in st.pending)  # never shown
        if sid is None:
            self.streams.clear()
        else:
            self.streams.pop(sid, None)

    def data(self, f: dict[str, Any], surfaces: dict[int, Surface], sized: bool,
             t: float | None = None) -> Region | None:
        """One frame arriving at capture time ``t``: shown now (no clock, or no ``t``; returns the
        area drawn) or queued for its time (see pop_due)."""
        st = self.streams.get(int(f["base"]["id"]))
        if st is None:
            raise StreamError(f"data for stream {f['base']['id']}, never created")
        dest = f["dest"] if sized else None
        if t is None or self.clock.mm is None:
            return self.show(st, bytes(f["data"]), dest, surfaces)
        mm = int(f["base"]["multi_media_time"])
        if mm == 0:  # no time at all (a wrong guest driver): spice-gtk shows it 100 ms from now
            mm = (self.clock.now(t) + 100) & 0xFFFFFFFF
        margin = mm_diff(mm, self.clock.now(t))
        if st.codec == "MJPEG":
            if margin < 0:
                self.late += 1
                return None
            if st.pending and mm_diff(mm, st.pending[-1].mm_time) < 0:  # time went back: a new start
                self.late += len(st.pending)
                while st.pending:
                    self._take(st)
            item = Pending(mm, None, bytes(f["data"]), dest)
        else:
            if margin > 0 and st.streaming_mode and not self.playback_active:
                margin = 0
            item = Pending(mm, t + max(0, margin) / 1000, bytes(f["data"]), dest)
        st.pending.append(item)
        self.pending_bytes += len(item.data)
        while len(st.pending) > MAX_PENDING or (self.pending_bytes > MAX_PENDING_BYTES and len(st.pending) > 1):
            self._take(st)
            self.overflow += 1
        return None

    def _take(self, st: Stream) -> Pending:
        item = st.pending.popleft()
        self.pending_bytes -= len(item.data)
        return item

    @property
    def waiting(self) -> bool:
        return any(st.pending for st in self.streams.values())

    def _due(self, item: Pending) -> float:
        return item.due if item.due is not None else self.clock.time_of(item.mm_time)

    def next_due(self) -> float | None:
        """Capture time of the next queued frame, or None."""
        times = [self._due(st.pending[0]) for st in self.streams.values() if st.pending]
        return min(times) if times else None

    def pop_due(self, t: float) -> tuple[Stream, Pending] | None:
        """The earliest queued frame whose time is ``t`` or earlier, taken off its queue (show it next)."""
        best: tuple[float, Stream] | None = None
        for st in self.streams.values():
            if st.pending:
                due = self._due(st.pending[0])
                if due <= t and (best is None or due < best[0]):
                    best = (due, st)
        if best is None:
            return None
        return best[1], self._take(best[1])

    def clock_set(self, mm: int, t: float) -> None:
        """MULTI_MEDIA_TIME: the clock jumps; queued MJPEG frames it makes late are dropped."""
        self.clock.set(mm, t)
        now = self.clock.now(t)
        for st in self.streams.values():
            while st.pending and st.pending[0].due is None and mm_diff(st.pending[0].mm_time, now) < 0:
                self._take(st)
                self.late += 1

    def show(self, st: Stream, data: bytes, dest: dict[str, int] | None,
             surfaces: dict[int, Surface]) -> Region | None:
        """Decode one frame and put it on its surface; returns the area drawn."""
        if dest is not None:
            st.dest = dest
        frame = st.decode(data)
        surface = surfaces.get(st.surface_id)
        if frame is None or surface is None:
            return None
        if not st.flags & TOP_DOWN:
            frame = frame[::-1]
        dest = Rect.from_fields(st.dest)
        w, h = dest.width, dest.height
        if w <= 0 or h <= 0:
            return None
        reg = region_for(surface, st.dest, st.clip)
        if reg.empty:
            return None
        fh, fw = frame.shape[:2]
        if (fh, fw) != (h, w):  # scaled to the destination; only the visible part is computed
            put(surface, reg, scaled_source(frame, Rect(0, 0, fw, fh), dest, reg, nearest=False))
        else:
            top, left = dest.top, dest.left
            put(surface, reg, frame[reg.y0 - top:reg.y1 - top, reg.x0 - left:reg.x1 - left])
        self.frames += 1
        return reg
