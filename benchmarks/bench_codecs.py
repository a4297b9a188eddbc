"""Decode (and encode, where we have an encoder) speed of the native codecs, in Mpx/s.

Two standard images: the 1024x768 desktop of captures/img-quic (the real screen a session
starts with), and a deterministic 1024x768 "noisy photo": smooth colour gradients plus
moderate random noise (photo-like content; pure random bytes would only measure the escape
codes). Each codec decodes what our encoder made of them, and the capture's own stream
where the capture has one. Single thread first, then the same list of images decoded (and
encoded) on a ThreadPoolExecutor with 1 and 2 workers (the codecs release the GIL).

Beside each figure: the minor page faults per call (getrusage ru_minflt over the timed
calls). A call that reuses its buffers costs a few faults at most; one that maps a fresh
multi-megabyte buffer every time costs about one fault per 4 KiB page it touches.

    python benchmarks/bench_codecs.py [--seconds 1.0]
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "codecs"))

from images_from_capture import CAPTURES, codec_bytes, images  # noqa: E402

from spicetool import codecs as decoders  # noqa: E402


def minflt() -> int:
    """Minor page faults of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def rate(fn: Callable[[], object], pixels: int, seconds: float, rounds: int = 5) -> tuple[float, float]:
    """Mpx/s of the best of `rounds` rounds (other work on the machine only slows rounds down),
    and the minor page faults per call over all the timed calls."""
    fn()
    best = 0.0
    calls, faults = 0, 0
    for _ in range(rounds):
        n, f0, start = 0, minflt(), time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / rounds:
                break
        faults += minflt() - f0
        calls += n
        best = max(best, n * pixels / elapsed / 1e6)
    return best, faults / calls


def threaded_rates(fn: Callable[[object], object], work: list, pixels: int,
                   rounds: int = 7) -> tuple[float, float, float, float]:
    """Mpx/s running `fn` over the same list of inputs on 1 and on 2 threads (best round of
    each), the CPU time over wall time of the best 2-thread round: near 2 when the threads
    really ran at once (the codecs release the GIL), near 1 when something serialises them,
    or when the machine's cores are busy with other work; and the minor page faults per
    call of the 2-thread rounds. Rounds of 1 and 2 workers alternate, so that both meet the
    same load from the rest of the machine."""
    best = {1: 0.0, 2: 0.0}
    busy = 0.0
    faults = 0
    with ThreadPoolExecutor(1) as one, ThreadPoolExecutor(2) as two:
        pools = {1: one, 2: two}
        for workers, pool in pools.items():
            list(pool.map(fn, work[:workers]))
        for _ in range(rounds):
            for workers, pool in pools.items():
                f0, start, cpu = minflt(), time.perf_counter(), time.process_time()
                list(pool.map(fn, work))
                wall = time.perf_counter() - start
                if workers == 2:
                    faults += minflt() - f0
                if pixels / wall / 1e6 > best[workers]:
                    best[workers] = pixels / wall / 1e6
                    if workers == 2:
                        busy = (time.process_time() - cpu) / wall
    return best[1], best[2], busy, faults / (rounds * len(work))


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


# codec -> (encode, decode) of a BGRA array; the GLZ stream of a fresh encoder has no
# references to other images, so a fresh dictionary decodes it alone
CODECS: dict[str, tuple[Callable[[np.ndarray], bytes], Callable[[bytes], object]]] = {
    "QUIC": (decoders.encode_quic, decoders.decode_quic),
    "LZ": (decoders.encode_lz, decoders.decode_lz),
    "LZ4": (decoders.encode_lz4, lambda d: decoders.decode_lz4(d, 1024, 768)),
    "GLZ": (lambda a: decoders.GlzEncoder().encode(a), lambda d: decoders.GlzDictionary().decode(d)),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = ap.parse_args()
    desktop = largest("img-quic", 1)
    if desktop is None:
        sys.exit("captures/img-quic is missing")
    pictures = {"desktop": decoders.decode_quic(codec_bytes(desktop)), "noisy": noisy_photo()}
    px = 1024 * 768
    for name, arr in pictures.items():
        assert arr.shape == (768, 1024, 4), (name, arr.shape)

    print("single thread, Mpx/s and minor page faults per call")
    print(f"{'codec':6} {'op':7} {'image':8} {'bytes':>9} {'Mpx/s':>9} {'faults':>8}")
    streams: dict[str, dict[str, bytes]] = {}
    for codec, (encode, decode) in CODECS.items():
        for name, arr in pictures.items():
            data = encode(arr)
            streams.setdefault(codec, {})[name] = data
            np.testing.assert_array_equal(decode(data)[..., :3], arr[..., :3])
            for op, fn in (("decode", lambda: decode(data)), ("encode", lambda: encode(arr))):
                mpx, faults = rate(fn, px, args.seconds)
                print(f"{codec:6} {op:7} {name:8} {len(data):9} {mpx:9.1f} {faults:8.1f}")
    mpx, faults = rate(lambda: decoders.decode_quic(codec_bytes(desktop)), px, args.seconds)
    print(f"QUIC   decode  server's desktop stream ({len(codec_bytes(desktop))} B): {mpx:.1f} Mpx/s, {faults:.1f} faults")

    print("\nthe same image list on a ThreadPoolExecutor (GIL released), Mpx/s; faults per call on 2")
    print(f"{'codec':6} {'op':7} {'1 worker':>9} {'2 workers':>10} {'scaling':>8} {'cpu/wall (2)':>13} {'faults':>8}")
    for codec, (encode, decode) in CODECS.items():
        for op, fn, work in (("decode", decode, [streams[codec]["desktop"], streams[codec]["noisy"]] * 8),
                             ("encode", encode, [pictures["desktop"], pictures["noisy"]] * 8)):
            one, two, busy, faults = threaded_rates(fn, work, px * len(work))
            print(f"{codec:6} {op:7} {one:9.1f} {two:10.1f} {two / one:7.2f}x {busy:13.2f} {faults:8.1f}")

if __name__ == "__main__":
    main()
