#!/usr/bin/env python3
"""Seed the fuzz targets with the corpus captures' images and run them for a chosen time.

    python rust/fuzz/run.py --seconds 300                 # every target, 5 minutes each
    python rust/fuzz/run.py --seconds 60 quic glz         # some of them
    python rust/fuzz/run.py --seed-only                   # only (re)write corpus/<target>/

Needs cargo-fuzz and a nightly toolchain (`cargo +nightly fuzz`). The seeds are the image
payloads of every capture in captures/, read by our own dissector, in the form each target
takes (see fuzz_targets/). Corpora and crash artifacts stay in rust/fuzz (ignored by git).
Prints, per target, how long it ran, how many inputs it tried and what it found; exits 1
when a target crashed.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TARGETS = ("quic", "lz", "glz", "lz4", "jpeg")
MAX_SEED = 256 * 1024          # libFuzzer's -max_len follows the largest seed
QUIC, LZ_PLT, LZ_RGB, GLZ_RGB, JPEG, JPEG_ALPHA, LZ4 = 1, 100, 101, 102, 105, 108, 109


def seeds() -> dict[str, list[bytes]]:
    sys.path.insert(0, str(ROOT / "tests" / "codecs"))
    from images_from_capture import images, mjpeg_frames  # the dissector's parse of each image

    out: dict[str, list[bytes]] = defaultdict(list)
    for capture in sorted((ROOT / "captures").glob("*.pcap*")):
        run = b""   # the GLZ images of one capture, one after another (the target splits them)
        for im in images(capture):
            t = im.image_type
            data = bytes(im.payload.get("data", b""))
            if t == QUIC:
                out["quic"].append(data)
            elif t in (LZ_RGB, LZ_PLT):
                out["lz"].append(data)
            elif t == GLZ_RGB:
                out["glz"].append(data)
                if len(run) + len(data) <= MAX_SEED:
                    run += data
            elif t == LZ4:
                out["lz4"].append(bytes([min(im.width, 256) - 1, min(im.height, 256) - 1]) + data)
            elif t in (JPEG, JPEG_ALPHA):
                out["jpeg"].append(b"\xff" + data)
        if run:
            out["glz"].append(run)
        out["jpeg"] += [b"\xff" + frame for frame in mjpeg_frames(capture)[:50]]   # video stream frames
    return {k: [s for s in v if 0 < len(s) <= MAX_SEED] for k, v in out.items()}


def write_seeds(found: dict[str, list[bytes]]) -> None:
    for target, items in found.items():
        folder = HERE / "corpus" / target
        folder.mkdir(parents=True, exist_ok=True)
        for s in items:
            (folder / hashlib.sha1(s).hexdigest()).write_bytes(s)
        print(f"{target:5} {len(items):4} seeds from the captures ({len(list(folder.iterdir()))} in its corpus)")


def fuzz(target: str, seconds: int, jobs: int) -> bool:
    artifacts = HERE / "artifacts" / target
    artifacts.mkdir(parents=True, exist_ok=True)
    before = set(artifacts.iterdir())
    cmd = ["cargo", "+nightly", "fuzz", "run", "-O", target, f"corpus/{target}", "--",
           f"-max_total_time={seconds}", f"-artifact_prefix={artifacts}/", "-print_final_stats=1"]
    if jobs > 1:
        cmd.append(f"-fork={jobs}")
    p = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True)
    log = p.stdout + p.stderr
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
    cov = re.findall(r"\bcov: (\d+)", log)
    new = sorted(set(artifacts.iterdir()) - before)
    ok = p.returncode == 0 and not new
    print(f"{target:5} {seconds}s  {int(runs[-1]) if runs else 0:>10} inputs  coverage {cov[-1] if cov else '?':>5}  "
          + ("no crash" if ok else f"FOUND {len(new)} crash(es) (exit {p.returncode}): "
             + " ".join(str(a) for a in new)))
    if not ok:
        (artifacts / "last-run.log").write_text(log)
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs="*", help=f"some of {', '.join(TARGETS)} (default: all)")
    ap.add_argument("--seconds", type=int, default=60, help="time per target")
    ap.add_argument("--jobs", type=int, default=1, help="libFuzzer -fork workers per target")
    ap.add_argument("--seed-only", action="store_true")
    args = ap.parse_args()
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        ap.error(f"no such target: {', '.join(sorted(unknown))}")
    write_seeds(seeds())
    if args.seed_only:
        return
    results = [fuzz(t, args.seconds, args.jobs) for t in (args.targets or TARGETS)]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
