"""Commands on a capture of many short connections, as a hypervisor's capture holds them.

    python benchmarks/bench_scale.py [--connections 20000] [--source captures/qemu-channels.pcapng]
        [--seconds 0.5] [--bytes 4096] [--keep]

Builds a capture of at least --connections TCP connections by repeating one real session of the
corpus on new client ports and later times (its TCP payloads unchanged), then times each command
on it (wall seconds, peak RSS, lines of output): every one should grow linearly with the number of
connections, and none should print a table per session once sessions are many.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spicetool.capture import TCP_ACK, TCP_SYN, PcapWriter, open_capture

ROOT = Path(__file__).resolve().parent.parent


def build_capture(out: Path, source: Path, connections: int, seconds: float, max_bytes: int) -> tuple[int, int]:
    """(session copies, connections) written: the first `seconds` of `source`, each connection's
    first `max_bytes`, repeated, each copy on fresh client ports."""
    segments = list(open_capture(str(source)))
    segments = [s for s in segments if s.time - segments[0].time <= seconds]
    # short connections: each keeps its first bytes (the link stage and the first messages)
    # (a connection past it ends there, as at the end of a capture: no hole, no FIN)
    kept: dict[frozenset, int] = {}
    full: set[frozenset] = set()
    short = []
    for seg in segments:
        key = frozenset((seg.src, seg.dst))
        if key in full or kept.get(key, 0) + len(seg.payload) > max_bytes:
            full.add(key)
            continue
        kept[key] = kept.get(key, 0) + len(seg.payload)
        short.append(seg)
    segments = short
    per_copy = sum(1 for s in segments if s.flags & TCP_SYN and not s.flags & TCP_ACK)
    copies = max(1, -(-connections // max(1, per_copy)))
    first = segments[0].time
    with open(out, "wb") as f:
        w = PcapWriter(f)
        for rep in range(copies):
            t = 1_700_000_000.0 + rep * 2.0
            for seg in segments:
                client_src = _port(seg.src) > _port(seg.dst)
                s = _shift(seg.src, rep) if client_src else seg.src
                d = seg.dst if client_src else _shift(seg.dst, rep)
                w.segment(t + (seg.time - first) * 0.01, s, d, seg.seq, seg.ack, seg.flags or TCP_ACK, seg.payload)
    return copies, copies * per_copy


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _shift(endpoint: str, rep: int) -> str:
    """A client address of its own per copy: ports cycle, the host's last two bytes count copies."""
    host, port = endpoint.rsplit(":", 1)
    a, b, _c, _d = host.split(".")
    n = rep // 16
    return f"{a}.{b}.{(n >> 8) & 0xFF}.{n & 0xFF}:{(int(port) + (rep % 16) * 1000) % 28000 + 32768}"


def run(cmd: list[str]) -> tuple[float, int, int, int]:
    """Wall seconds, peak RSS (KiB), exit code and lines written of one run."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    lines = sum(1 for _ in proc.stdout)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status), lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=20000)
    ap.add_argument("--source", type=Path, default=ROOT / "captures" / "qemu-channels.pcapng")
    ap.add_argument("--commands", default="dissect,dissect --summary,dissect --summary --json,stats,stats --json,report")
    ap.add_argument("--seconds", type=float, default=0.5, help="how much of the source each copy holds")
    ap.add_argument("--bytes", type=int, default=4096, help="payload bytes each connection keeps at most")
    ap.add_argument("--keep", action="store_true", help="keep the built capture")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="spicetool-scale-"))
    big = tmp / "many.pcap"
    copies, conns = build_capture(big, args.source, args.connections, args.seconds, args.bytes)
    print(f"{big}: {big.stat().st_size / 1e6:.1f} MB, {copies} copies of {args.source.name}, {conns} connections")
    print(f"\n{'command':<30}{'seconds':>9}{'peak RSS MB':>13}{'exit':>6}{'lines':>9}")
    for command in args.commands.split(","):
        words = command.split()
        extra = ["-o", str(tmp / "report.html")] if words[0] == "report" else []
        wall, rss, code, lines = run([sys.executable, "-m", "spicetool", *words, str(big), *extra])
        print(f"{command:<30}{wall:>9.1f}{rss / 1024:>13.0f}{code:>6}{lines:>9}", flush=True)
    if not args.keep:
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()


if __name__ == "__main__":
    main()
