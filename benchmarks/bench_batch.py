"""`spicetool batch` on N copies of the corpus, with 1 and 2 workers, on the local engine and a Dask
LocalCluster.

    python benchmarks/bench_batch.py [--copies 4] [--rounds 2] [--workers 1,2] [--engines local,dask]
        [--corpus captures] [--keep]

Every capture of the corpus (captures/*.pcap*, captures/deployment/*.pcap*) is copied N times into
distinct folders, each copy made a distinct file with the same packets (outputs are by content hash: a
batch does equal bytes once): a pcapng copy gets one empty block of a local-use type at its end (readers
skip it), a pcap copy its copy number in the header's sigfigs field (which nothing reads). Every run is a
fresh `spicetool batch -q` into an empty output folder, timed on the wall clock from the command's start
to its exit (Python start, hashing, the pool or cluster start, the work, the combined files): what a
user waits for. The configurations alternate within each round; the figures are each one's median.
Prints captures/s per run and per configuration, and each engine's speed-up of its largest worker count
over 1 worker.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
LOCAL_USE_BLOCK = 0x80000B47  # the high bit: a block type of local use, which readers pass over


def corpus(folder: Path) -> list[Path]:
    return sorted(p for pattern in ("*.pcap", "*.pcapng", "*.cap") for sub in (folder, folder / "deployment")
                  for p in sub.glob(pattern))


def distinct_copy(src: Path, dst: Path, n: int) -> None:
    """dst: src's packets in bytes of their own (copy n)."""
    data = bytearray(src.read_bytes())
    if data[:4] == PCAPNG_SHB:
        endian = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        # an empty block (type, total length 12, total length); the copy number in the block type's
        # low bits would be another type: the number goes in as how many such blocks are appended
        data += struct.pack(f"{endian}III", LOCAL_USE_BLOCK, 12, 12) * (n + 1)
    else:
        endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        data[16 - 4:16] = struct.pack(f"{endian}I", n + 1)  # sigfigs: unused by every reader
    dst.write_bytes(bytes(data))


def build(src_folder: Path, into: Path, copies: int) -> tuple[int, int]:
    """(captures, bytes) of the copies under into/copy-K/."""
    files, size = 0, 0
    for k in range(copies):
        for src in corpus(src_folder):
            dst = into / f"copy-{k}" / src.relative_to(src_folder)
            dst.parent.mkdir(parents=True, exist_ok=True)
            distinct_copy(src, dst, k)
            files += 1
            size += dst.stat().st_size
    return files, size


def run(inputs: Path, out: Path, engine: str, workers: int) -> tuple[float, dict]:
    """Wall seconds of one batch, and what it did (its failures)."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = ["spicetool", "batch", "-q", str(inputs), "-o", str(out), "--engine", engine, "--workers", str(workers)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode not in (0, 4) or "Traceback" in r.stderr:
        sys.exit(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stderr}")
    failures = json.loads((out / "failures.json").read_text())
    done = len(list(out.glob("captures/*/done.json")))
    return seconds, {"done": done, "failed": len(failures), "summary": r.stderr.strip().splitlines()[-1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--engines", default="local,dask")
    ap.add_argument("--corpus", type=Path, default=ROOT / "captures")
    ap.add_argument("--keep", action="store_true", help="keep the copies and the last outputs")
    args = ap.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    engines = args.engines.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        n, size = build(args.corpus, tmp / "in", args.copies)
        print(f"{n} captures ({args.copies} copies of {n // args.copies}), {size / 1e6:.1f} MB; "
              f"{os.cpu_count()} cores; {args.rounds} round(s), configurations alternating")
        configs = [(e, w) for e in engines for w in workers]
        times: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
        for rnd in range(args.rounds):
            # each round in another order, so no configuration always runs first (cold caches) or last
            order = configs[rnd % len(configs):] + configs[: rnd % len(configs)]
            for engine, w in order:
                seconds, did = run(tmp / "in", tmp / f"out-{engine}-{w}", engine, w)
                if did["done"] != n:
                    sys.exit(f"{engine} x{w}: {did['done']} of {n} captures done: {did['summary']}")
                times[(engine, w)].append(seconds)
                print(f"  round {rnd + 1}: {engine:5} {w} worker(s): {seconds:6.1f} s  {n / seconds:5.2f} captures/s"
                      f"  {size / 1e6 / seconds:5.1f} MB/s  ({did['failed']} failed or damaged)")
        print()
        print(f"{'engine':6} {'workers':>7} {'median s':>9} {'captures/s':>11} {'speed-up':>9}")
        for engine in engines:
            base = statistics.median(times[(engine, workers[0])])
            for w in workers:
                med = statistics.median(times[(engine, w)])
                print(f"{engine:6} {w:7} {med:9.1f} {n / med:11.2f} {base / med:8.2f}x")
        if "local" in engines and "dask" in engines:
            for w in workers:
                ratio = statistics.median(times[("local", w)]) / statistics.median(times[("dask", w)])
                print(f"dask / local at {w} worker(s): {ratio:.2f}x the captures/s")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
