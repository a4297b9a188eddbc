"""Dissect throughput beside tshark's, on one large capture built from the corpus.

    python benchmarks/bench_dissect.py [--size-mb 200] [--keep]

Builds a capture of at least --size-mb by repeating the corpus sessions on new client
ports and later times (their TCP payloads unchanged), then runs, on the same file,
`spicetool dissect --json` and `tshark -r FILE -V`, each to /dev/null, and prints time,
messages/s, MB/s and peak memory (RSS) of each.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spicetool.capture import TCP_ACK, PcapWriter, open_capture

ROOT = Path(__file__).resolve().parent.parent


def build_capture(out: Path, size_mb: int) -> int:
    """Concatenate corpus captures (pcap and pcapng) until the file is big enough."""
    sources = sorted(p for p in (ROOT / "captures").iterdir() if p.suffix in (".pcap", ".pcapng"))
    if not sources:
        sys.exit("no captures in captures/")
    t = 1_700_000_000.0
    rep = 0
    with open(out, "wb") as f:
        w = PcapWriter(f)
        while f.tell() < size_mb * 1024 * 1024:
            for src in sources:
                rep += 1
                reader = open_capture(str(src))
                first = None
                for seg in reader:
                    first = seg.time if first is None else first
                    # a fresh client port per repetition makes each a new connection
                    client_src = _port(seg.src) > _port(seg.dst)
                    s = _shift(seg.src, rep) if client_src else seg.src
                    d = seg.dst if client_src else _shift(seg.dst, rep)
                    w.segment(t + (seg.time - first), s, d, seg.seq, seg.ack, seg.flags or TCP_ACK, seg.payload)
                reader.close()
                t += 3600
    return rep


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _shift(endpoint: str, rep: int) -> str:
    host, port = endpoint.rsplit(":", 1)
    return f"{host}:{(int(port) + rep * 7) % 28000 + 32768}"


def run(cmd: list[str], path: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one run writing to /dev/null (RSS from a wait4 of that child)."""
    start = time.perf_counter()
    with open(os.devnull, "wb") as null:
        proc = subprocess.Popen(cmd + [str(path)], stdout=null)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed")
    return wall, usage.ru_maxrss


def count_messages(path: Path) -> int:
    out = subprocess.run([sys.executable, "-m", "spicetool", "dissect", "--summary", "--json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    import json

    total = 0
    for line in out.splitlines():
        total += sum(json.loads(line)["messages"].values())
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--keep", action="store_true", help="keep the built capture")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="spicetool-bench-"))
    big = tmp / "big.pcap"
    print(f"building a {args.size_mb} MB capture from captures/ ...", flush=True)
    reps = build_capture(big, args.size_mb)
    size = big.stat().st_size
    print(f"{big}: {size / 1e6:.1f} MB, {reps} session copies")
    messages = count_messages(big)
    print(f"{messages} SPICE messages")
    rows = []
    for name, cmd in (
        ("spicetool dissect --json", [sys.executable, "-m", "spicetool", "dissect", "--json"]),
        ("spicetool dissect", [sys.executable, "-m", "spicetool", "dissect"]),
        ("tshark -V", ["tshark", "-V", "-r"]),
    ):
        wall, rss = run(cmd, big)
        rows.append((name, wall, messages / wall, size / 1e6 / wall, rss))
    print(f"\n{'command':<28}{'seconds':>10}{'msgs/s':>12}{'MB/s':>9}{'peak RSS MB':>13}")
    for name, wall, mps, mbs, rss in rows:
        print(f"{name:<28}{wall:>10.1f}{mps:>12.0f}{mbs:>9.1f}{rss / 1024:>13.0f}")
    if not args.keep:
        big.unlink()
        tmp.rmdir()


if __name__ == "__main__":
    main()
