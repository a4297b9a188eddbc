"""Writing pictures out: a video file (H.264 .mp4, VP9 .webm, .gif) through PyAV with the
playback audio muxed in, or PNG files.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from spicetool.render.audio import PlaybackAudio

FORMATS = {  # extension -> (video codec, pixel format, audio codec or None)
    ".mp4": ("libx264", "yuv420p", "aac"),
    ".mkv": ("libx264", "yuv420p", "aac"),
    ".webm": ("libvpx-vp9", "yuv420p", "libopus"),
    ".gif": ("gif", "pal8", None),  # a palette of its own per picture
}
AUDIO_GAP = 0.5  # seconds of silence in the capture before we jump the audio clock forward
AUDIO_BATCH = 0.5  # seconds of sound per encoder call


def place(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The picture in a frame of (width, height): centred on black when smaller (as a viewer window
    larger than the guest's screen shows it), shrunk to fit only when larger than the video."""
    w, h = size
    ih, iw = img.shape[:2]
    if (iw, ih) == (w, h):
        return img
    if iw > w or ih > h:
        return fit(img, size)
    y, x = (h - ih) // 2, (w - iw) // 2
    bgrx = bgrx_of(img)
    if bgrx is not None:  # stay a view of BGRX rows, which the encoder takes without a conversion
        out = np.zeros((h, w, 4), np.uint8)
        out[y:y + ih, x:x + iw] = bgrx
        return out[..., 2::-1]
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[y:y + ih, x:x + iw] = img
    return rgb


def fit(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The picture scaled to fit (width, height), centred on black."""
    w, h = size
    ih, iw = img.shape[:2]
    if (iw, ih) == (w, h):
        return img
    from PIL import Image as PILImage  # Pillow only for the pictures that need it: a faster start
    k = min(w / iw, h / ih)
    nw, nh = max(1, round(iw * k)), max(1, round(ih * k))
    scaled = np.asarray(PILImage.fromarray(img).resize((nw, nh), PILImage.BILINEAR))
    out = np.zeros((h, w, 3), np.uint8)
    y, x = (h - nh) // 2, (w - nw) // 2
    out[y:y + nh, x:x + nw] = scaled
    return out


def scaled(img: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return img
    from PIL import Image as PILImage
    ih, iw = img.shape[:2]
    size = (max(1, round(iw * scale)), max(1, round(ih * scale)))
    return np.asarray(PILImage.fromarray(img).resize(size, PILImage.LANCZOS if scale < 1 else PILImage.NEAREST))


class VideoWriter:
    """Frames at a fixed rate, plus optional audio; opened on the first frame.

    ``size`` is the video's (width, height), the largest picture to come (see sizing.py); smaller
    pictures are centred on black. Without it the first picture's size is taken.
    """

    def __init__(self, path: str, fps: float, audio: PlaybackAudio | None = None,
                 size: tuple[int, int] | None = None) -> None:
        ext = Path(path).suffix.lower()
        if ext not in FORMATS:
            raise ValueError(f"{path}: unknown video type {ext or '(none)'}; use .mp4, .webm, .mkv or .gif")
        self.path, self.fps, self.ext = path, fps, ext
        self.codec, self.pix_fmt, self.audio_codec = FORMATS[ext]
        self.audio = audio
        self.container = None
        self.vstream = None
        self.astream = None
        self.size: tuple[int, int] | None = None
        self.wanted_size = size
        self.count = 0
        self.start_time = 0.0  # capture time of the first frame
        self.audio_pts = 0
        self.audio_written = 0.0
        self._abuf: list[np.ndarray] = []  # sound not yet given to the encoder (at most AUDIO_BATCH)
        self._abuf_len, self._abuf_pts, self._abuf_rate = 0, 0, 48000
        self.encoded = 0  # pictures given to the encoder (unchanged ones are not)
        self._last_img: np.ndarray | None = None  # the picture of the last tick, as given
        self._last_frame = None  # and its encoder frame
        self._held = False  # ticks since the last encoded picture showed the same picture

    def _open(self, img: np.ndarray, time: float, audio_expected: bool) -> None:
        import av
        w, h = self.wanted_size or (img.shape[1], img.shape[0])
        if self.pix_fmt == "yuv420p":  # 4:2:0 wants even sizes
            w, h = w + w % 2, h + h % 2
        self.size = (w, h)
        self.start_time = time
        self.container = av.open(self.path, "w")
        rate = Fraction(self.fps).limit_denominator(1000)
        self.vstream = self.container.add_stream(self.codec, rate=rate)
        self.vstream.width, self.vstream.height = w, h
        self.vstream.pix_fmt = self.pix_fmt
        if self.codec == "libx264":
            # ultrafast: 1.25x the speed of superfast on the corpus, files ~1.6x larger (still
            # ~100 kB for 11 s of desktop); no B-frames: with held pictures (variable frame
            # rate) they would end the track before its last picture
            self.vstream.options = {"crf": "18", "preset": "ultrafast", "tune": "stillimage", "bf": "0"}
        self.vstream.codec_context.thread_count = 0  # the codec's choice (one per core)
        self.vstream.codec_context.time_base = Fraction(1) / rate
        if self.audio is not None and self.audio_codec and audio_expected:
            rate_hz = 48000 if self.audio_codec == "libopus" else self.audio.rate
            self.astream = self.container.add_stream(self.audio_codec, rate=rate_hz)
            self.astream.layout = "stereo" if self.audio.channels >= 2 else "mono"
            if self.audio_codec == "aac":
                # FFmpeg's fast coder without its costly tools (noise substitution, temporal noise
                # shaping, intensity and mid/side stereo): ~3x faster, which made AAC ~40% of a
                # render with sound; at the default bit rate speech and tones stay clean
                self.astream.options = {"aac_coder": "fast", "aac_pns": "0", "aac_tns": "0", "aac_is": "0",
                                        "aac_ms": "0"}

    def write(self, time: float, img: np.ndarray, audio_expected: bool = False) -> None:
        import av
        if self.container is None:
            self._open(img, time, audio_expected)
        assert self.size is not None and self.vstream is not None
        if img is self._last_img:
            # the same picture as the tick before: nothing to convert or encode; the
            # previous one stays on screen (variable frame rate), see close()
            self._held = True
        else:
            picture = place(img, self.size)
            bgrx = bgrx_of(picture) if self.pix_fmt != "pal8" else None
            frame = None
            if bgrx is not None:  # the renderer's own rows: no RGB copy, swscale converts BGRX
                frame = av.VideoFrame(bgrx.shape[1], bgrx.shape[0], "bgra")
                if frame.planes[0].line_size == bgrx.strides[0]:
                    frame.planes[0].update(bgrx)
                else:  # PyAV pads its rows (widths not a multiple of its alignment)
                    frame = None
            if frame is not None:
                pass
            elif self.pix_fmt == "pal8":
                frame = av.VideoFrame.from_ndarray(_paletted(np.ascontiguousarray(picture)), format="pal8")
            else:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
            self._encode(frame, self.count)
            self._last_img, self._last_frame, self._held = img, frame, False
        self.count += 1
        self._write_audio()

    def _encode(self, frame, pts: int) -> None:
        frame.pts = pts
        self.encoded += 1
        for packet in self.vstream.encode(frame):
            self.container.mux(packet)

    def _write_audio(self) -> None:
        if self.audio is None:
            return
        chunks = self.audio.take()
        if self.astream is None:
            return
        rate = self.astream.rate
        for t, samples in chunks:
            if samples.shape[1] == 1 and self.astream.layout.nb_channels == 2:
                samples = np.repeat(samples, 2, axis=1)
            at = t - self.start_time
            if at < 0:  # before the first picture: drop what the video does not cover
                cut = int(round(-at * self.audio.rate))
                samples = samples[cut:]
                at = 0.0
                if not len(samples):
                    continue
            clock = self.audio_pts / rate
            if self.audio_written == 0 or at - clock > AUDIO_GAP:  # first sound, or silence: jump forward
                self._flush_audio()
                self.audio_pts = int(round(at * rate))
            if self._abuf and (self._abuf[0].shape[1] != samples.shape[1] or self._abuf_rate != self.audio.rate):
                self._flush_audio()
            if not self._abuf:
                self._abuf_pts, self._abuf_rate = self.audio_pts, self.audio.rate
            self._abuf.append(samples)
            self._abuf_len += len(samples)
            self.audio_pts += len(samples) * rate // self.audio.rate
            self.audio_written += len(samples) / self.audio.rate
            if self._abuf_len >= AUDIO_BATCH * self.audio.rate:
                self._flush_audio()

    def _flush_audio(self) -> None:
        """One frame for the chunks gathered: the encoder's cost is mostly per call."""
        if not self._abuf or self.astream is None:
            return
        import av
        samples = np.concatenate(self._abuf) if len(self._abuf) > 1 else self._abuf[0]
        self._abuf, self._abuf_len = [], 0
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples.reshape(1, -1)), format="s16",
                                           layout="stereo" if samples.shape[1] == 2 else "mono")
        frame.sample_rate = self._abuf_rate
        frame.pts = self._abuf_pts
        frame.time_base = Fraction(1, self._abuf_rate)
        for packet in self.astream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        if self.container is None:
            return
        self._write_audio()
        self._flush_audio()
        if self._held and self._last_frame is not None:  # the last picture lasts to the last tick
            self._encode(self._last_frame, self.count - 1)
        for packet in self.vstream.encode():
            self.container.mux(packet)
        if self.astream is not None:
            for packet in self.astream.encode():
                self.container.mux(packet)
        self.container.close()
        self.container = None


def bgrx_of(img: np.ndarray) -> np.ndarray | None:
    """The contiguous HxWx4 BGRX array an RGB picture is a view of (``bgrx[..., 2::-1]``), or None."""
    base = img.base
    if (not isinstance(base, np.ndarray) or base.ndim != 3 or base.shape[2] != 4 or base.dtype != np.uint8
            or not base.flags.c_contiguous or base.shape[:2] != img.shape[:2] or img.strides[2] != -1
            or img.__array_interface__["data"][0] != base.__array_interface__["data"][0] + 2):
        return None
    return base


def _paletted(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A picture as 8-bit indices and its own 256-colour palette (ARGB rows, as PyAV takes them)."""
    from PIL import Image as PILImage
    q = PILImage.fromarray(img).quantize(256, method=PILImage.Quantize.MEDIANCUT, dither=PILImage.Dither.NONE)
    rgb = np.zeros((256, 3), np.uint8)
    pal = np.frombuffer(bytes(q.getpalette()[:768]), np.uint8).reshape(-1, 3)
    rgb[:len(pal)] = pal
    argb = np.concatenate([np.full((256, 1), 255, np.uint8), rgb], axis=1)
    return np.asarray(q), argb


def save_png(path: str | Path, img: np.ndarray) -> None:
    from PIL import Image as PILImage
    PILImage.fromarray(img).save(path, optimize=False, compress_level=3)
