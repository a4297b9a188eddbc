"""Render throughput: a capture to mp4, as `spicetool render CAPTURE -o out.mp4` does it.

    python benchmarks/bench_render.py [--rounds N] [CAPTURE ...]

Without captures: the corpus session with the longest display time. For each: frames/s, the
ratio to the session's real duration (the goal is >= 20x), and where the time goes: decode
(capture reading, TCP reassembly, message parsing), draw (the canvas, codecs, streams),
picture (the RGB copy out), encode (conversion and x264, audio). Best of --rounds runs.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from spicetool.render import RenderStats, frames
from spicetool.render.audio import PlaybackAudio
from spicetool.render.frames import records_of
from spicetool.render.session import SessionScreen
from spicetool.render.video import VideoWriter

ROOT = Path(__file__).resolve().parent.parent


class Timed:
    """An iterator whose own time is counted apart."""

    def __init__(self, it):
        self.it, self.spent = iter(it), 0.0

    def __iter__(self):
        return self

    def __next__(self):
        t = time.perf_counter()
        try:
            return next(self.it)
        finally:
            self.spent += time.perf_counter() - t


def one(path: Path, fps: float) -> dict[str, float]:
    records = Timed(records_of(str(path)))
    audio = PlaybackAudio()
    screen = SessionScreen(None, 0, False, audio, False)
    spent = {"draw": 0.0, "picture": 0.0}
    feed, picture = screen.feed, screen.picture

    def timed_feed(rec):
        t = time.perf_counter()
        try:
            return feed(rec)
        finally:
            spent["draw"] += time.perf_counter() - t

    def timed_picture(*a, **k):
        t = time.perf_counter()
        try:
            return picture(*a, **k)
        finally:
            spent["picture"] += time.perf_counter() - t

    screen.feed, screen.picture = timed_feed, timed_picture  # type: ignore[method-assign]
    stats = RenderStats()
    encode = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        writer = VideoWriter(str(Path(tmp) / "out.mp4"), fps, audio)
        t0 = time.perf_counter()
        for t, img in frames(records, fps, screen=screen, stats=stats):
            t1 = time.perf_counter()
            writer.write(t, img, audio_expected=screen.playback_expected or audio.started)
            encode += time.perf_counter() - t1
        t1 = time.perf_counter()
        writer.close()
        encode += time.perf_counter() - t1
        total = time.perf_counter() - t0
    span = (stats.last_time or 0) - (stats.first_time or 0) + 1 / fps
    return {"total": total, "decode": records.spent,
            "draw": spent["draw"], "picture": spent["picture"], "encode": encode, "frames": stats.frames,
            "encoded": writer.encoded, "span": span}


def display_span(path: Path) -> float:
    stats = RenderStats()
    for _ in frames(str(path), fps=1, stats=stats):
        pass
    return (stats.last_time or 0) - (stats.first_time or 0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fps", type=float, default=25)
    ap.add_argument("captures", nargs="*")
    args = ap.parse_args()
    paths = [Path(p) for p in args.captures]
    if not paths:
        corpus = sorted(p for p in (ROOT / "captures").glob("*") if p.suffix in (".pcap", ".pcapng"))
        paths = [max(corpus, key=display_span)]
    for p in paths:
        best = min((one(p, args.fps) for _ in range(max(1, args.rounds))), key=lambda r: r["total"])
        t = best["total"]
        print(f"{p.name}: {best['frames']} frames ({best['encoded']} encoded) of {best['span']:.2f}s in {t:.2f}s:"
              f" {best['frames'] / t:.0f} frames/s, {best['span'] / t:.1f}x real time")
        print("  " + ", ".join(f"{k} {best[k]:.3f}s ({best[k] / t:.0%})" for k in ("decode", "draw", "picture", "encode")))


if __name__ == "__main__":
    main()
