"""Video streams of the display channel: MJPEG frames (Pillow) and VP8/VP9/H.264/H.265 (PyAV),
put on their surface at the stream's destination, clipped like the real client does.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image as PILImage

from spicetool.render.canvas import scaled_source
from spicetool.render.surfaces import Region, Surface, put, rect_of, region_for

TOP_DOWN = 1
MAX_STREAMS = 64  # SPICE_MAX_NUM_STREAMS
MAX_FRAME_PIXELS = 32 << 20  # a bound on what a damaged frame header can make us allocate
AV_CODECS = {"VP8": "vp8", "VP9": "vp9", "H264": "h264", "H265": "hevc"}


class StreamError(ValueError):
    pass


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
    decoder: Any = field(default=None, repr=False)

    def decode(self, data: bytes) -> np.ndarray | None:
        """One frame as HxWx4 B,G,R,A, or None when the codec holds it back."""
        if self.codec == "MJPEG":
            with PILImage.open(io.BytesIO(data)) as im:
                if im.width * im.height > MAX_FRAME_PIXELS:
                    raise StreamError(f"MJPEG frame of {im.width}x{im.height}")
                rgb = np.asarray(im.convert("RGB"))
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

    def create(self, f: dict[str, Any]) -> None:
        sid = int(f["id"])
        if not 0 <= sid < MAX_STREAMS:
            raise StreamError(f"stream id {sid} out of range")
        self.streams[sid] = Stream(sid, int(f["surface_id"]), str(f["codec_type"]), int(f["flags"]),
                                   int(f["stream_width"]), int(f["stream_height"]), f["dest"], f.get("clip"))
        self.codecs.add(str(f["codec_type"]))

    def clip(self, f: dict[str, Any]) -> None:
        st = self.streams.get(int(f["id"]))
        if st is not None:
            st.clip = f.get("clip")

    def destroy(self, sid: int | None) -> None:
        if sid is None:
            self.streams.clear()
        else:
            self.streams.pop(sid, None)

    def data(self, f: dict[str, Any], surfaces: dict[int, Surface], sized: bool) -> Region | None:
        """Decode one frame and put it on its surface; returns the area drawn."""
        st = self.streams.get(int(f["base"]["id"]))
        if st is None:
            raise StreamError(f"data for stream {f['base']['id']}, never created")
        if sized:
            st.dest = f["dest"]
        frame = st.decode(bytes(f["data"]))
        surface = surfaces.get(st.surface_id)
        if frame is None or surface is None:
            return None
        if not st.flags & TOP_DOWN:
            frame = frame[::-1]
        top, left, bottom, right = rect_of(st.dest)
        w, h = right - left, bottom - top
        if w <= 0 or h <= 0:
            return None
        reg = region_for(surface, st.dest, st.clip)
        if reg.empty:
            return None
        fh, fw = frame.shape[:2]
        if (fh, fw) != (h, w):  # scaled to the destination; only the visible part is computed
            put(surface, reg, scaled_source(frame, (0, 0, fh, fw), (top, left, bottom, right), reg, nearest=False))
        else:
            put(surface, reg, frame[reg.y0 - top:reg.y1 - top, reg.x0 - left:reg.x1 - left])
        self.frames += 1
        return reg
