"""Test helper: the TCP payload of each direction of each connection in a capture, via tshark.

Ordered per direction by TCP sequence; retransmissions dropped.  Good enough for loopback
captures of real peers (the dissector's own reader lives in spicetool/dissect/).
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TcpConnection:
    stream: int
    client_port: int | None = None          # port of the side that sent the first payload
    chunks: dict[str, list[tuple[float, bytes]]] = field(default_factory=lambda: {"client": [], "server": []})

    def data(self, direction: str) -> bytes:
        return b"".join(c for _, c in self.chunks[direction])


def tshark_available() -> bool:
    return shutil.which("tshark") is not None


def read_connections(path: Path, server_port: int | None = None) -> list[TcpConnection]:
    out = subprocess.run(
        ["tshark", "-r", str(path), "-o", "tcp.analyze_sequence_numbers:TRUE",
         "-Y", "tcp.len > 0 && !tcp.analysis.retransmission && !tcp.analysis.fast_retransmission",
         "-T", "fields", "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.dstport",
         "-e", "tcp.seq", "-e", "tcp.payload"],
        check=True, capture_output=True, text=True).stdout
    conns: dict[int, TcpConnection] = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) < 5 or not parts[4]:
            continue
        stream, sport, dport, seq = int(parts[0]), int(parts[1]), int(parts[2]), int(parts[3])
        c = conns.setdefault(stream, TcpConnection(stream))
        if c.client_port is None and server_port is not None:
            c.client_port = dport if sport == server_port else sport
        if c.client_port is None:
            # the first payload of a SPICE connection comes from the client (LinkMess),
            # unless the capture started mid-session: then fall back to the server port guess
            c.client_port = sport if bytes.fromhex(parts[4][:8]) == b"REDQ" or sport > dport else dport
        d = "client" if sport == c.client_port else "server"
        c.chunks[d].append((seq, bytes.fromhex(parts[4].replace(":", ""))))
    for c in conns.values():
        for d in c.chunks:
            c.chunks[d].sort(key=lambda t: t[0])
    return [conns[k] for k in sorted(conns)]
