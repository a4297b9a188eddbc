"""The playback channel's figures: how the audio the server sent was paced against its own media
clock. A packet carries the media time (ms) it is to be played at; a client holding a small buffer
runs dry when packets stop coming (a gap) or come later than their times say (late data)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

GAP_MS = 200          # a pause in the media times that a listener hears
LATE_WINDOW_S = 10.0  # lateness is measured against the best packet of the last seconds (clocks drift)


@dataclass
class Playback:
    """One playback channel: its starts and stops and every data packet's arrival and media time."""

    label: str
    mode: str | None = None
    format: dict[str, Any] = field(default_factory=dict)
    starts: list[tuple[float, int]] = field(default_factory=list)
    stops: list[tuple[float, int]] = field(default_factory=list)
    packets: list[tuple[float, int, int, int]] = field(default_factory=list)  # arrival, frame, media ms, run
    latency_ms: list[tuple[float, int]] = field(default_factory=list)
    _run: int = 0  # playing periods: a stop ends one

    def add(self, name: str, f: dict[str, Any], t: float, frame: int) -> None:
        if name == "data" and isinstance(f.get("time"), int):
            self.packets.append((t, frame, f["time"], self._run))
        elif name == "start":
            self._run += 1
            self.starts.append((t, frame))
            self.format = {k: f.get(k) for k in ("channels", "format", "frequency")}
        elif name == "stop":
            self._run += 1
            self.stops.append((t, frame))
        elif name == "mode":
            self.mode = str(f.get("mode"))
        elif name == "latency":
            self.latency_ms.append((t, int(f.get("latency_ms") or 0)))

    def gaps(self) -> list[tuple[float, float, int, int]]:
        """(arrival of the packet before, of the packet after, media ms missing, frame after) within
        one playing period, where the media times jump by more than GAP_MS and five packets' worth."""
        steps = sorted(b[2] - a[2] for a, b in zip(self.packets, self.packets[1:]) if a[3] == b[3])
        usual = steps[len(steps) // 2] if steps else 0
        out = []
        for a, b in zip(self.packets, self.packets[1:]):
            step = b[2] - a[2]
            if a[3] == b[3] and step > max(GAP_MS, 5 * usual):
                out.append((a[0], b[0], step - usual, b[1]))
        return out

    def lateness(self) -> list[tuple[float, int, float]]:
        """(arrival, frame, ms) of each packet: how much later than the best-timed packet of the last
        LATE_WINDOW_S it came, relative to its media time."""
        best: deque[tuple[float, float]] = deque()   # (arrival, offset), offsets increasing
        out = []
        for t, frame, mm, _ in self.packets:
            offset = t * 1000.0 - mm
            while best and best[0][0] < t - LATE_WINDOW_S:
                best.popleft()
            while best and best[-1][1] >= offset:
                best.pop()
            best.append((t, offset))
            out.append((t, frame, offset - best[0][1]))
        return out

    def as_json(self, t0: float) -> dict[str, Any]:
        late = self.lateness()
        values = sorted(ms for _, _, ms in late)
        worst = max(late, key=lambda x: x[2]) if late else None
        return {
            "channel": self.label, "mode": self.mode, "format": self.format,
            "starts": [round(t - t0, 6) for t, _ in self.starts], "stops": [round(t - t0, 6) for t, _ in self.stops],
            "packets": len(self.packets),
            "media_ms": (self.packets[-1][2] - self.packets[0][2]) if self.packets else 0,
            "gaps": [{"time": round(a - t0, 6), "until": round(b - t0, 6), "missing_ms": ms, "frame": fr}
                     for a, b, ms, fr in self.gaps()],
            "late": {"p95_ms": round(values[int(len(values) * 0.95)], 3) if values else None,
                     "max_ms": round(worst[2], 3) if worst else None,
                     "worst": {"time": round(worst[0] - t0, 6), "frame": worst[1]} if worst else None,
                     "packets_over_200_ms": sum(1 for v in values if v > GAP_MS)},
            "latency_ms": [{"time": round(t - t0, 6), "ms": ms} for t, ms in self.latency_ms],
        }
