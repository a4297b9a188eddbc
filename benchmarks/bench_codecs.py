"""Decode (and encode, where we have an encoder) speed of the native codecs, in Mpx/s.

Two standard images: the 1024x768 desktop of captures/img-quic (the real screen a session
starts with), and a deterministic 1024x768 "noisy photo": smooth colour gradients plus
moderate random noise (photo-like content; pure random bytes would only measure the escape
codes). Each codec decodes what our encoder made of them, and the capture's own stream
where the capture has one. Single thread first, then the same list of images decoded on a
ThreadPoolExecutor with 1 and 2 workers (the codecs release the GIL).

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
    """The first of the largest images of a type in a capture (the starting desktop)."""
    for suffix in (".pcapng", ".pcap"):
        path = CAPTURES / (capture + suffix)
        if path.exists():
            found = [i for i in images(path) if i.image_type == image_type]
            if not found:
                return None
            area = max(i.width * i.height for i in found)
            return next(i for i in found if i.width * i.height == area)
    return None


def noisy_photo(height: int = 768, width: int = 1024, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus moderate noise (sigma 12), BGRA, opaque; the same every run."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([
        128 + 100 * np.sin(x / 97.0) * np.cos(y / 131.0),
        255 * x / width * 0.6 + 255 * y / height * 0.4,
        128 + 90 * np.cos((x + y) / 173.0),
    ], axis=2)
    noise = np.random.default_rng(seed).normal(0, 12, base.shape)
    img = np.empty((height, width, 4), np.uint8)
    img[..., :3] = np.clip(base + noise, 0, 255).astype(np.uint8)
    img[..., 3] = 255
    return img


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

    noise = noisy_photo()
    px = 1024 * 768
    quic = decoders.encode_quic(noise)
    lz = decoders.encode_lz(noise)
    lz4 = decoders.encode_lz4(noise)
    glz = decoders.GlzEncoder().encode(noise)
    rows += [
        ("QUIC", "decode", f"noisy 1024x768 ({len(quic)} B)", rate(lambda: decoders.decode_quic(quic), px, args.seconds)),
        ("LZ", "decode", f"noisy 1024x768 ({len(lz)} B)", rate(lambda: decoders.decode_lz(lz), px, args.seconds)),
        ("LZ4", "decode", f"noisy 1024x768 ({len(lz4)} B)", rate(lambda: decoders.decode_lz4(lz4, 1024, 768), px, args.seconds)),
        ("GLZ", "decode", f"noisy 1024x768 ({len(glz)} B)", rate(lambda: decoders.GlzDictionary().decode(glz), px, args.seconds)),
    ]
    desktop = largest("img-quic", 1)
    if desktop is not None:
        screen = decoders.decode_quic(codec_bytes(desktop))
        rows.append(("QUIC", "encode", "desktop 1024x768", rate(lambda: decoders.encode_quic(screen), px, args.seconds)))
        rows.append(("LZ", "encode", "desktop 1024x768", rate(lambda: decoders.encode_lz(screen), px, args.seconds)))
        rows.append(("LZ4", "encode", "desktop 1024x768", rate(lambda: decoders.encode_lz4(screen), px, args.seconds)))
        rows.append(("GLZ", "encode", "desktop 1024x768", rate(lambda: decoders.GlzEncoder().encode(screen), px, args.seconds)))
    rows.append(("QUIC", "encode", "noisy 1024x768", rate(lambda: decoders.encode_quic(noise), px, args.seconds)))

    print(f"{'codec':6} {'op':7} {'input':40} {'Mpx/s':>9}")
    for codec, op, what, mpx in rows:
        print(f"{codec:6} {op:7} {what:40} {mpx:9.1f}")


if __name__ == "__main__":
    main()
