"""A second, independent count of the SPICE messages of a capture, for the tests.

tshark reassembles each TCP connection (`-z follow,tcp,raw`) and decrypts TLS (`-z follow,tls,raw`
with the key log, or the secrets inside the pcapng); everything above TCP and TLS is peeled here,
in code of its own: the HTTP CONNECT request and its answer, the WebSocket Upgrade and RFC 6455
frames, then the SPICE link stage and the data headers. Nothing of spicetool is imported, so that
a bug of ours cannot hide in both counts. Numbers are written from /work/shared/spec/spice-facts.md
(sections 1 and 2) and RFC 6455 section 5.2.
"""
from __future__ import annotations

import base64
import re
import shutil
import struct
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# spice-facts.md section 1: the link stage
MAGIC = b"REDQ"
LINK_HEADER = 16                       # magic, major, minor, size
LINK_MESS_CAPS_AT = 6                  # num_common_caps, num_channel_caps, caps_offset follow
LINK_REPLY_CAPS_AT = 166
TICKET = 128                           # RSA_size of the 1024-bit key
CAP_AUTH_SELECTION, CAP_AUTH_SPICE, CAP_AUTH_SASL, CAP_MINI_HEADER = 0, 1, 2, 3
# section 2: data headers
MINI_HEADER, FULL_HEADER = 6, 18
# RFC 6455 section 5.2: opcodes
WS_CONTINUATION, WS_TEXT, WS_BINARY = 0, 1, 2
TLS_HANDSHAKE = b"\x16\x03"


class NotSpice(Exception):
    """The connection carries something else (a web page, a refused CONNECT)."""


@dataclass
class Side:
    """What one side of a SPICE connection sent."""
    link: list[str] = field(default_factory=list)         # link-stage messages, in order
    types: Counter = field(default_factory=Counter)       # data messages by type id
    sequence: list[tuple[int, int]] = field(default_factory=list)  # (type, size) in order
    leftover: int = 0                                     # bytes at the end short of a whole message

    @property
    def messages(self) -> int:
        return sum(self.types.values())


@dataclass
class Connection:
    client: str                      # "ip:port" as tshark's follow names the nodes
    server: str
    transports: list[str]            # peeled layers, outermost first
    link_bytes: bytes                # the client's link message, header included (pairs the legs)
    sides: dict[str, Side]           # "client" (client to server) and "server"

    @property
    def ports(self) -> tuple[int, int]:
        return int(self.client.rsplit(":", 1)[1]), int(self.server.rsplit(":", 1)[1])


# ----------------------------------------------------------------------------- tshark

@dataclass
class Followed:
    """One side pair of a `-z follow,...,raw` block: the nodes and the bytes each sent, the
    first sender first (as the block lists them)."""
    nodes: tuple[str, str]
    data: tuple[bytes, bytes]
    first: int                       # the node whose bytes come first in the block (0 or 1)


def _tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        raise RuntimeError("tshark is not installed")
    return path


def _options(keylog: Path | None) -> list[str]:
    return ["-o", f"tls.keylog_file:{keylog}"] if keylog else []


def tcp_stream_ids(path: Path) -> list[int]:
    out = subprocess.run([_tshark(), "-r", str(path), "-T", "fields", "-e", "tcp.stream"],
                         capture_output=True, text=True, check=True).stdout
    return sorted({int(x) for x in out.split()})


def follow(path: Path, kind: str, streams: list[int], keylog: Path | None = None) -> dict[int, Followed]:
    """tshark's reassembled bytes of each stream (kind "tcp" or "tls"), by stream index."""
    args = [a for n in streams for a in ("-z", f"follow,{kind},raw,{n}")]
    out = subprocess.run([_tshark(), "-r", str(path), "-q", *_options(keylog), *args],
                         capture_output=True, text=True, check=True).stdout
    found: dict[int, Followed] = {}
    for block in out.split("=" * 67):
        m = re.search(r"Filter: tcp\.stream eq (\d+)\nNode 0: (.*)\nNode 1: (.*)\n", block)
        if not m:
            continue
        data = [bytearray(), bytearray()]
        first = None
        for line in block[m.end():].splitlines():
            if not line.strip():
                continue
            node = 1 if line.startswith("\t") else 0
            first = node if first is None else first
            data[node] += bytes.fromhex(line.strip())
        found[int(m.group(1))] = Followed((m.group(2), m.group(3)), (bytes(data[0]), bytes(data[1])),
                                          first if first is not None else 0)
    return found


def segments(path: Path) -> list[tuple[int, int, int, int, int, int, int]]:
    """(frame, stream, src port, relative seq, payload length, syn, fin) of every TCP segment."""
    out = subprocess.run([_tshark(), "-r", str(path), "-o", "tcp.relative_sequence_numbers:TRUE",
                          "-T", "fields", "-e", "frame.number", "-e", "tcp.stream", "-e", "tcp.srcport",
                          "-e", "tcp.seq", "-e", "tcp.len", "-e", "tcp.flags.syn", "-e", "tcp.flags.fin"],
                         capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        f = line.split("\t")
        rows.append((*(int(x) for x in f[:5]), int(f[5] in ("1", "True")), int(f[6] in ("1", "True"))))
    return rows


def holes(path: Path) -> list[tuple[int, int, int, int]]:
    """Where the capture lacks stream bytes, by tshark's sequence numbers: (stream, src port,
    frame of the first segment after the hole, bytes missing)."""
    expected: dict[tuple[int, int], int] = {}
    found = []
    for frame, stream, sport, seq, length, syn, fin in segments(path):
        key = (stream, sport)
        start = seq + syn   # SYN and FIN each take a sequence number, no stream byte
        if key in expected and start > expected[key]:
            found.append((stream, sport, frame, start - expected[key]))
        expected[key] = max(expected.get(key, 0), start + length + fin)
    return found


# ----------------------------------------------------------------------------- transports

def _http_head(data: bytes) -> tuple[bytes, bytes]:
    end = data.find(b"\r\n\r\n")
    if end < 0:
        raise NotSpice("an HTTP head without its blank line")
    return data[:end], data[end + 4:]


def peel_connect(client: bytes, server: bytes) -> tuple[bytes, bytes]:
    """The tunnel's bytes after `CONNECT host:port HTTP/1.x` and a 2xx answer."""
    _, client = _http_head(client)
    head, server = _http_head(server)
    if not re.match(rb"HTTP/1\.[01] 2\d\d", head):
        raise NotSpice(f"CONNECT answered {head.splitlines()[0]!r}")
    return client, server


def ws_payload(data: bytes) -> tuple[bytes, int]:
    """The joined payload of the data frames of one direction (control frames skipped, client
    frames unmasked, text frames base64 as websockify's base64 subprotocol sends them), and how
    many bytes at the end are short of a whole frame."""
    out, pos = bytearray(), 0
    text = False
    while pos + 2 <= len(data):
        b0, b1 = data[pos], data[pos + 1]
        opcode, masked, n = b0 & 0x0F, b1 & 0x80, b1 & 0x7F
        head = 2
        if n == 126:
            if pos + 4 > len(data):
                break
            n, head = struct.unpack_from(">H", data, pos + 2)[0], 4
        elif n == 127:
            if pos + 10 > len(data):
                break
            n, head = struct.unpack_from(">Q", data, pos + 2)[0], 10
        key = b""
        if masked:
            key, head = data[pos + head:pos + head + 4], head + 4
        if pos + head + n > len(data):
            break
        payload = data[pos + head:pos + head + n]
        if masked:
            payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        if opcode in (WS_TEXT, WS_BINARY):
            text = opcode == WS_TEXT
        if opcode in (WS_CONTINUATION, WS_TEXT, WS_BINARY):
            out += base64.b64decode(payload) if text else payload
        pos += head + n
    return bytes(out), len(data) - pos


def peel_websocket(client: bytes, server: bytes) -> tuple[bytes, bytes, int, int]:
    request, client = _http_head(client)
    answer, server = _http_head(server)
    if not re.match(rb"HTTP/1\.1 101", answer) or b"websocket" not in request.lower():
        raise NotSpice("no WebSocket upgrade")
    (c, c_left), (s, s_left) = ws_payload(client), ws_payload(server)
    return c, s, c_left, s_left


# ----------------------------------------------------------------------------- SPICE

def _caps(body: bytes, at: int) -> int:
    """The first common-caps word of a link message or reply body (0 if there is none)."""
    n_common, _, offset = struct.unpack_from("<III", body, at)
    return struct.unpack_from("<I", body, offset)[0] if n_common else 0


def _bit(word: int, bit: int) -> bool:
    return bool(word & (1 << bit))


def _link(data: bytes, pos: int) -> tuple[bytes, int]:
    if data[pos:pos + 4] != MAGIC:
        raise NotSpice(f"no link magic at {pos}: {data[pos:pos + 4]!r}")
    size = struct.unpack_from("<I", data, pos + 12)[0]
    end = pos + LINK_HEADER + size
    if end > len(data):
        raise NotSpice("a link message cut short")
    return data[pos + LINK_HEADER:end], end


def _data(data: bytes, pos: int, mini: bool, side: Side) -> None:
    head = MINI_HEADER if mini else FULL_HEADER
    while pos + head <= len(data):
        if mini:
            kind, size = struct.unpack_from("<HI", data, pos)
        else:
            kind, size = struct.unpack_from("<HI", data, pos + 8)
        if pos + head + size > len(data):
            break
        side.types[kind] += 1
        side.sequence.append((kind, size))
        pos += head + size
    side.leftover = len(data) - pos


def walk_spice(client: bytes, server: bytes) -> tuple[Side, Side, bytes]:
    """Both sides' link stage and data messages (client side first), and the client's link message."""
    c, s = Side(), Side()
    mess, cpos = _link(client, 0)
    link = client[:cpos]
    c.link.append("link_mess")
    client_caps = _caps(mess, LINK_MESS_CAPS_AT)
    if not server:
        return c, s, link
    reply, spos = _link(server, 0)
    s.link.append("link_reply")
    error = struct.unpack_from("<I", reply, 0)[0]
    if error:
        return c, s, link
    server_caps = _caps(reply, LINK_REPLY_CAPS_AT)
    mechanism = CAP_AUTH_SPICE
    if _bit(server_caps, CAP_AUTH_SELECTION) and cpos + 4 <= len(client):
        mechanism = struct.unpack_from("<I", client, cpos)[0]
        c.link.append("auth_mechanism")
        cpos += 4
    if mechanism == CAP_AUTH_SASL:
        raise NotImplementedError("SASL authentication is not counted here")
    if cpos + TICKET <= len(client):
        c.link.append("ticket")
        cpos += TICKET
    if spos + 4 <= len(server):
        result = struct.unpack_from("<I", server, spos)[0]
        s.link.append("link_result")
        spos += 4
        if result:
            return c, s, link
    # the server uses the mini header iff the client asked for it, and the client iff the server did
    _data(client, cpos, _bit(server_caps, CAP_MINI_HEADER), c)
    _data(server, spos, _bit(client_caps, CAP_MINI_HEADER), s)
    return c, s, link


# ----------------------------------------------------------------------------- whole captures

def count(path: Path, keylog: Path | None = None) -> list[Connection]:
    """Every SPICE connection of a capture with what each side sent, in stream order."""
    ids = tcp_stream_ids(path)
    tcp = follow(path, "tcp", ids, keylog)
    tls: dict[int, Followed] | None = None
    found = []
    for n in ids:
        f = tcp.get(n)
        if f is None:
            continue
        client_node = f.first
        client, server = f.data[client_node], f.data[1 - client_node]
        addresses = f.nodes[client_node], f.nodes[1 - client_node]
        layers: list[str] = []
        left = {"client": 0, "server": 0}
        try:
            if client.startswith(b"CONNECT "):
                client, server = peel_connect(client, server)
                layers.append("http_connect")
            if client.startswith(TLS_HANDSHAKE):
                if tls is None:
                    tls = follow(path, "tls", ids, keylog)
                t = tls.get(n)
                if t is None or not t.data[t.first]:
                    raise NotSpice("TLS not decrypted by tshark")
                # tshark names the nodes of a TLS follow oddly; the SPICE client speaks first
                client, server = t.data[t.first], t.data[1 - t.first]
                layers.append("tls")
            if client.startswith(b"GET "):
                client, server, left["client"], left["server"] = peel_websocket(client, server)
                layers.append("websocket")
            c, s, link = walk_spice(client, server)
        except NotSpice:
            continue
        c.leftover += left["client"]
        s.leftover += left["server"]
        found.append(Connection(addresses[0], addresses[1], layers, link, {"client": c, "server": s}))
    return found


def legs(connections: list[Connection]) -> list[list[Connection]]:
    """The connections grouped by their client's link message (one group per SPICE connection;
    a capture at a proxy has two connections in a group), in order of first appearance."""
    groups: dict[bytes, list[Connection]] = {}
    for conn in connections:
        groups.setdefault(conn.link_bytes, []).append(conn)
    return list(groups.values())
