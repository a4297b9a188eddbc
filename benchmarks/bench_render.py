"""Render throughput on the corpus: records and pictures per second, per capture.

    python benchmarks/bench_render.py [CAPTURE ...]

For each capture: the time of `render --last` (decode every message and draw everything, no
output), and of a 25 fps frame stream (every picture copied out, as the video writer needs).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from spicetool.render import RenderStats, frames, picture_at

ROOT = Path(__file__).resolve().parent.parent


def bench(path: Path) -> None:
    size = path.stat().st_size
    stats = RenderStats()
    t = time.perf_counter()
    picture_at(str(path), None, stats=stats)
    last = time.perf_counter() - t
    draws = sum(stats.commands.values())
    stats = RenderStats()
    t = time.perf_counter()
    n = sum(1 for _ in frames(str(path), fps=25, stats=stats))
    stream = time.perf_counter() - t
    span = (stats.last_time or 0) - (stats.first_time or 0)
    print(f"{path.name:28s} {size / 1e6:6.2f} MB  last: {last:6.2f}s ({draws} draws, {size / 1e6 / last:6.1f} MB/s)"
          f"  25fps: {n:4d} frames in {stream:6.2f}s ({n / stream if stream else 0:6.1f} frames/s,"
          f" {span / stream if stream else 0:5.1f}x real time)")


def main() -> None:
    paths = [Path(p) for p in sys.argv[1:]] or sorted(p for p in (ROOT / "captures").glob("*") if p.suffix in (".pcap", ".pcapng"))
    for p in paths:
        bench(p)


if __name__ == "__main__":
    main()
