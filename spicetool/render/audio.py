"""The playback channel's sound: raw PCM or Opus packets in, s16 interleaved samples out."""
from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

MAX_BUFFERED_SECONDS = 600  # audio held while waiting for the first video frame


class PlaybackAudio:
    """Follows START/MODE/DATA of the playback channel and collects timed sample chunks."""

    def __init__(self) -> None:
        self.rate = 48000
        self.channels = 2
        self.mode = "RAW"
        self.started = False
        self.chunks: list[tuple[float, np.ndarray]] = []  # (capture time, int16 samples x channels)
        self.warnings: Counter[str] = Counter()
        self._opus: Any = None
        self.modes_seen: set[str] = set()

    def __call__(self, time: float, name: str, fields: dict[str, Any]) -> None:
        if name == "start":
            self.rate = int(fields.get("frequency", 48000)) or 48000
            self.channels = max(1, min(int(fields.get("channels", 2)), 8))
            self.started = True
        elif name == "mode":
            self.mode = str(fields.get("mode", "RAW"))
            self._opus = None
        elif name == "data":
            samples = self._decode(bytes(fields.get("data", b"")))
            if samples is not None and samples.size:
                self.modes_seen.add(self.mode)
                self.chunks.append((time, samples))
                self._bound()

    def _decode(self, data: bytes) -> np.ndarray | None:
        if self.mode == "RAW":
            usable = len(data) - len(data) % (2 * self.channels)
            return np.frombuffer(data[:usable], "<i2").reshape(-1, self.channels)
        if self.mode == "OPUS":
            import av
            if self._opus is None:
                self._opus = av.CodecContext.create("opus", "r")
                self._opus.sample_rate = self.rate
                self._opus.layout = "stereo" if self.channels == 2 else "mono"
            try:
                out = [f.to_ndarray() for f in self._opus.decode(av.Packet(data))]
            except Exception as exc:  # PyAV's own error family
                self.warnings[f"opus packet undecodable ({type(exc).__name__})"] += 1
                return None
            if not out:
                return None
            arr = np.concatenate(out, axis=1)  # planar float (channels, n)
            if arr.dtype.kind == "f":
                arr = np.clip(arr * 32767.0, -32768, 32767).astype(np.int16)
            return np.ascontiguousarray(arr.T).reshape(-1, self.channels)
        self.warnings[f"audio mode {self.mode} not supported"] += 1
        return None

    def _bound(self) -> None:
        held = sum(len(c) for _, c in self.chunks)
        while held > MAX_BUFFERED_SECONDS * self.rate and len(self.chunks) > 1:
            held -= len(self.chunks.pop(0)[1])
            self.warnings["audio dropped: too much before the first picture"] += 1

    def take(self) -> list[tuple[float, np.ndarray]]:
        chunks, self.chunks = self.chunks, []
        return chunks
