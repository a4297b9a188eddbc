"""Decode (and encode, where we have an encoder) speed of the native codecs, in Mpx/s.

Single thread. Inputs are real: the largest image of each codec in captures/ (the 1024x768
desktop each session starts with), plus a 1024x768 noise image where an encoder exists
(the worst case of every codec).

    python benchmarks/bench_codecs.py [--seconds 1.0]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "codecs"))

from images_from_capture import CAPTURES, codec_bytes, images  # noqa: E402

from spicetool.render import decoders  # noqa: E402


def rate(fn: Callable[[], object], pixels: int, seconds: float) -> float:
    fn()
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n * pixels / elapsed / 1e6


def largest(capture: str, image_type: int):
    for suffix in (".pcapng", ".pcap"):
        path = CAPTURES / (capture + suffix)
        if path.exists():
            found = [i for i in images(path) if i.image_type == image_type]
            return max(found, key=lambda i: i.width * i.height) if found else None
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = ap.parse_args()
    rows: list[tuple[str, str, str, float]] = []

    cases = [("QUIC", "img-quic", 1), ("LZ", "img-lz", 101), ("LZ4", "img-lz4", 109), ("GLZ", "img-glz", 102)]
    for codec, capture, image_type in cases:
        img = largest(capture, image_type)
        if img is None:
            continue
        data = codec_bytes(img)
        px = img.width * img.height
        if codec == "QUIC":
            fn = lambda d=data: decoders.decode_quic(d)
        elif codec == "LZ":
            fn = lambda d=data: decoders.decode_lz(d)
        elif codec == "LZ4":
            fn = lambda d=data, w=img.width, h=img.height: decoders.decode_lz4(d, w, h)
        else:
            # a GLZ image decoded alone (first of the session, no references to others)
            fn = lambda d=data: decoders.GlzDictionary().decode(d)
        rows.append((codec, "decode", f"desktop {img.width}x{img.height} ({len(data)} B)", rate(fn, px, args.seconds)))

    print(f"{'codec':6} {'op':7} {'input':40} {'Mpx/s':>9}")
    for codec, op, what, mpx in rows:
        print(f"{codec:6} {op:7} {what:40} {mpx:9.1f}")


if __name__ == "__main__":
    main()
