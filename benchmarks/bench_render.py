"""Render throughput: a capture to mp4, as `spicetool render CAPTURE -o out.mp4` does it.

    python benchmarks/bench_render.py [--rounds N] [--no-shell] [CAPTURE ...]

Without captures: the corpus session with the longest display time at 1024x768 (the issue's
target: >= 20x real time, encoding included) and `hd-1080` (1920x1080). For each, in this
process: frames/s, the ratio to the session's real duration, and where the time goes:
sizing (the pre-pass that finds the video's size), decode (capture reading, TCP reassembly,
message parsing), draw (the canvas, codecs, streams), picture (the RGB copy out), encode
(conversion and x264) and audio (AAC). Then the command itself from a shell, startup included
(`startup` is a Python that only imports what a render imports). Best of --rounds runs,
interleaved, so a busy machine slows all of them alike.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LARGE = "hd-1080"


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


def timed_method(obj, name: str, spent: dict[str, float], key: str) -> None:
    """Count the time of obj.name() under spent[key]."""
    fn = getattr(obj, name)

    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            spent[key] += time.perf_counter() - t
    setattr(obj, name, wrapper)


def one(path: Path, fps: float) -> dict[str, float]:
    """The render command's video path, in this process, phase by phase."""
    from spicetool.render import RenderStats, frames
    from spicetool.render.audio import PlaybackAudio
    from spicetool.render.frames import records_of
    from spicetool.render.session import SessionScreen
    from spicetool.render.sizing import largest_picture
    from spicetool.render.video import VideoWriter

    spent = {k: 0.0 for k in ("sizing", "draw", "picture", "encode", "audio")}
    t0 = time.perf_counter()
    size = largest_picture(records_of(str(path)))
    spent["sizing"] = time.perf_counter() - t0
    records = Timed(records_of(str(path)))
    audio = PlaybackAudio()
    screen = SessionScreen(None, 0, False, audio, False)
    timed_method(screen, "feed", spent, "draw")
    timed_method(screen, "advance", spent, "draw")
    timed_method(screen, "picture", spent, "picture")
    stats = RenderStats()
    with tempfile.TemporaryDirectory() as tmp:
        writer = VideoWriter(str(Path(tmp) / "out.mp4"), fps, audio, size)
        timed_method(writer, "_write_audio", spent, "audio")
        for t, img in frames(records, fps, screen=screen, stats=stats):
            t1 = time.perf_counter()
            writer.write(t, img, audio_expected=screen.playback_expected or audio.started)
            spent["encode"] += time.perf_counter() - t1
        t1 = time.perf_counter()
        writer.close()
        spent["encode"] += time.perf_counter() - t1
        total = time.perf_counter() - t0
    spent["encode"] -= spent["audio"]  # the writer's time, less the sound's
    return {"total": total, "decode": records.spent, **spent, "frames": stats.frames,
            "encoded": writer.encoded, "span": writer.count / fps, "size": size}


def shell(path: Path, fps: float) -> float:
    """Wall time of the command itself, from a shell."""
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "spicetool", "render", str(path), "-o", str(Path(tmp) / "o.mp4"),
                        "-q", "--fps", str(fps)], check=True)
        return time.perf_counter() - t


def startup() -> float:
    """A Python that imports what a render imports, and does nothing."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import spicetool.render.command, spicetool.render.video, av, av.video, "
                    "spicetool.cli"], check=True)
    return time.perf_counter() - t


def default_captures() -> list[Path]:
    from spicetool.render import RenderStats, frames
    from spicetool.render.frames import records_of
    from spicetool.render.sizing import largest_picture

    def span(p: Path) -> float:
        stats = RenderStats()
        for _ in frames(str(p), fps=1, stats=stats):
            pass
        return (stats.last_time or 0) - (stats.first_time or 0)
    corpus = sorted(p for p in (ROOT / "captures").glob("*") if p.suffix in (".pcap", ".pcapng"))
    xga = [p for p in corpus if largest_picture(records_of(str(p))) == (1024, 768)]
    out = [max(xga, key=span)]
    out += [p for p in corpus if p.stem == LARGE]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fps", type=float, default=25)
    ap.add_argument("--no-shell", action="store_true", help="only the in-process phases")
    ap.add_argument("captures", nargs="*")
    args = ap.parse_args()
    paths = [Path(p) for p in args.captures] or default_captures()
    rounds = max(1, args.rounds)
    inproc: dict[Path, list[dict]] = {p: [] for p in paths}
    walls: dict[Path, list[float]] = {p: [] for p in paths}
    starts: list[float] = []
    for _ in range(rounds):  # interleaved: a busy moment slows every variant of a round alike
        for p in paths:
            inproc[p].append(one(p, args.fps))
            if not args.no_shell:
                walls[p].append(shell(p, args.fps))
        if not args.no_shell:
            starts.append(startup())
    for p in paths:
        best = min(inproc[p], key=lambda r: r["total"])
        t = best["total"]
        w, h = best["size"] or (0, 0)
        print(f"{p.name} ({w}x{h}): {best['frames']} frames ({best['encoded']} encoded) of {best['span']:.2f}s"
              f" in {t:.2f}s: {best['frames'] / t:.0f} frames/s, {best['span'] / t:.1f}x real time (in process)")
        print("  " + ", ".join(f"{k} {best[k]:.3f}s ({best[k] / t:.0%})"
                               for k in ("sizing", "decode", "draw", "picture", "encode", "audio")))
        if walls[p]:
            wall = min(walls[p])
            print(f"  command from a shell: {wall:.2f}s, {best['span'] / wall:.1f}x real time"
                  f" (startup {min(starts):.2f}s of it)")


if __name__ == "__main__":
    main()
