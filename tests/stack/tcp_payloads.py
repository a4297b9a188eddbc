"""Test helper: the TCP payload of each direction of each connection in a capture, via tshark.

Segments are stitched per direction by TCP sequence number: retransmissions, overlaps and
zero-window probes are resolved by keeping each stream byte once.  Good enough for loopback
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
    chunks: dict[str, list[tuple[int, bytes]]] = field(default_factory=lambda: {"client": [], "server": []})
    holes: set[str] = field(default_factory=set)  # directions cut short by bytes missing from the capture

    def data(self, direction: str) -> bytes:
        return b"".join(c for _, c in self.chunks[direction])


def tshark_available() -> bool:
    return shutil.which("tshark") is not None


def read_connections(path: Path, server_port: int | None = None) -> list[TcpConnection]:
    out = subprocess.run(
        ["tshark", "-r", str(path), "-o", "tcp.analyze_sequence_numbers:TRUE",
         "-o", "tcp.relative_sequence_numbers:TRUE", "-Y", "tcp.len > 0", "-T", "fields", "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.dstport",
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
            c.chunks[d], complete = _stitch(c.chunks[d])
            if not complete:
                c.holes.add(d)
    return [conns[k] for k in sorted(conns)]


def _stitch(segments: list[tuple[int, bytes]]) -> tuple[list[tuple[int, bytes]], bool]:
    """Keep each sequence number once, in order; stop at the first hole (then False)."""
    out: list[tuple[int, bytes]] = []
    nxt = None
    for seq, data in sorted(segments, key=lambda t: t[0]):
        if nxt is None:
            nxt = seq
        if seq > nxt:
            return out, False  # a hole: bytes missing from the capture
        if seq + len(data) <= nxt:
            continue  # already have all of it
        data = data[nxt - seq:]
        out.append((nxt, data))
        nxt += len(data)
    return out, True


def tshark_messages(path: Path, server_port: int) -> dict[tuple[int, str], list[tuple[int, int]]]:
    """(type, size) of each data message tshark's own SPICE dissector decodes, per stream and
    direction, in order (Wireshark's decode is independent of ours: a real second opinion)."""
    out = subprocess.run(
        ["tshark", "-r", str(path), "-Y", "spice.message_type", "-T", "fields", "-e", "tcp.stream",
         "-e", "tcp.srcport", "-e", "spice.message_type", "-e", "spice.message_size"],
        check=True, capture_output=True, text=True).stdout
    seqs: dict[tuple[int, str], list[tuple[int, int]]] = {}
    for line in out.splitlines():
        stream, sport, types, sizes = line.split("\t")
        d = "server" if int(sport) == server_port else "client"
        seq = seqs.setdefault((int(stream), d), [])
        seq.extend(zip(map(int, types.split(",")), map(int, sizes.split(","))))
    from support import wireshark_in_step

    return {key: wireshark_in_step(seq, lambda m: m[0]) for key, seq in seqs.items()}

