"""Damaged captures made at test time from the real deployment captures, by editing them the way
the damage happens: packets dropped, bytes rewritten (TCP sequence numbers and lengths kept
consistent), files cut, or the packets written again with spicetool's own pcapng writer.
Each helper says which real capture it starts from; nothing here is shipped as a file."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Iterable

from support import ROOT, deployment_capture

from spicetool.capture import PcapngWriter, Segment, open_capture
from spicetool.capture.frames import TCP_SYN
from spicetool.capture.pcapng import BLOCK_DECRYPTION_SECRETS

TLS = "tls-proxy-keylog"


def segments(path: Path) -> list[Segment]:
    reader = open_capture(str(path))
    segs = list(reader)
    reader.close()
    assert reader.damage is None, reader.damage
    return segs


def write(path: Path, segs: Iterable[Segment], secrets: Iterable[tuple[int, bytes]] = (),
          secrets_after: int | None = None) -> Path:
    """The segments as a pcapng (spicetool's writer); `secrets` (index, key log text): a
    Decryption Secrets block before the segment of that index (len(segs): after the last)."""
    segs = list(segs)
    blocks: dict[int, list[bytes]] = {}
    for at, text in secrets:
        blocks.setdefault(at, []).append(text)
    with open(path, "wb") as f:
        w = PcapngWriter(f)
        for i, s in enumerate(segs):
            for text in blocks.get(i, ()):
                w.secrets(text)
            w.segment(s.time, s.src, s.dst, s.seq, s.ack, s.flags, s.payload)
        for text in blocks.get(len(segs), ()):
            w.secrets(text)
    return path


def connections(segs: list[Segment]) -> list[tuple[str, str]]:
    """(client, server) of each TCP connection, by its SYN, in order."""
    out = []
    for s in segs:
        if s.flags & TCP_SYN and not s.ack and (s.src, s.dst) not in out:
            out.append((s.src, s.dst))
    return out


def of(s: Segment, conn: tuple[str, str]) -> bool:
    return (s.src, s.dst) in (conn, conn[::-1])


def spicetool(*argv: str, memory_limit: int | None = None) -> tuple[subprocess.CompletedProcess, int]:
    """Run the CLI in a subprocess: its result and its peak RSS in KiB (VmHWM of the child's own memory:
    its ru_maxrss would carry the parent's peak, recorded at exec from the memory it was forked with).
    `memory_limit` (bytes) caps its address space, so a runaway allocation fails instead of swapping."""
    code = ("import resource, sys, runpy\n"
            + (f"resource.setrlimit(resource.RLIMIT_AS, ({memory_limit}, {memory_limit}))\n" if memory_limit else "")
            + "sys.argv = ['spicetool', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('spicetool', run_name='__main__')\n"
            "finally:\n    sys.stdout.flush()\n"
            "    hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0]\n"
            "    print(hwm.split()[1], file=sys.__stderr__)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300, env=env)
    lines = r.stderr.splitlines()
    rss = int(lines[-1]) if lines and lines[-1].isdigit() else -1
    r.stderr = "".join(line + "\n" for line in lines[:-1]) if rss >= 0 else r.stderr
    return r, rss


def tls_files() -> tuple[Path, Path, Path]:
    """The TLS through the proxy session: plain pcapng, its key log, the copy with the secrets inside."""
    return (deployment_capture(f"{TLS}.pcapng"), deployment_capture(f"{TLS}.keys.log"),
            deployment_capture(f"{TLS}.dsb.pcapng"))


def first_dsb(data: bytes) -> tuple[int, int]:
    """(offset, total length) of a pcapng's first Decryption Secrets block."""
    off = 0
    while off + 8 <= len(data):
        btype, blen = struct.unpack_from("<II", data, off)
        if btype == BLOCK_DECRYPTION_SECRETS:
            return off, blen
        off += blen
    raise AssertionError("no Decryption Secrets block")

