"""TLS key logs: real TLS traffic, decrypted with the secrets its peers logged.

The real session: spicy-screenshot --TLS--> `spicetool record --tls-keylog` --TLS--> Xspice's TLS
port, with tshark capturing the encrypted traffic on both sides of the proxy. Decrypted with the
proxy's key log, each side must read exactly as the proxy's own clear recording of the session
(same SPICE messages, same bytes as tshark's own decryption, same final picture), in TLS 1.2 and
1.3 (forced on the proxy through its OpenSSL configuration). And: a key log lacking a connection,
no key log, a truncated and a corrupt record. The other cipher suites come from OpenSSL too:
corpus sessions re-encrypted through Python's ssl with each suite forced.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # support, also when run as a script (below)
from support import CAPTURES, ROOT, need_program

sys.path.insert(0, str(ROOT / "tests" / "record"))
from recorder import Recorder, peers, screenshot  # noqa: E402

from spicetool.capture import (  # noqa: E402
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    KeyLog,
    PcapWriter,
    decode_segments,
    open_capture,
    open_records,
)
from spicetool.capture.tcp import Data, TcpTracker  # noqa: E402
from spicetool.capture.tls import TlsConnection  # noqa: E402
from spicetool.render import picture_at  # noqa: E402

PLAIN_PORT, LISTEN_PORT, TLS_PORT = 5980, 5981, 5982
DISPLAYS = range(80, 90)  # this module's X displays
OPENSSL_CNF = """openssl_conf = conf
[conf]
ssl_conf = ssl
[ssl]
system_default = sys
[sys]
{}
"""
FORCE = {"1.2": "MinProtocol = TLSv1.2\nMaxProtocol = TLSv1.2", "1.3": "MinProtocol = TLSv1.3"}


@dataclass
class TlsSession:
    version: str
    clear: Path  # the proxy's recording, in clear
    sides: dict[str, Path]  # "client" (spicy <-> proxy) and "server" (proxy <-> Xspice): encrypted captures
    ports: dict[str, int]  # each side's server port
    keylog: Path


@pytest.fixture(scope="module", params=["1.2", "1.3"])
def session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TlsSession:
    for program in ("Xorg", "spicy-screenshot", "tshark", "xterm"):
        need_program(program)
    from spicetool.capture import self_signed

    version = request.param
    tmp = tmp_path_factory.mktemp(f"tls{version}")
    certs = tmp / "x509"
    certs.mkdir()
    cert, key = self_signed(["127.0.0.1", "localhost"])
    for name, data in (("ca-cert.pem", cert), ("server-cert.pem", cert), ("server-key.pem", key)):
        (certs / name).write_bytes(data)
    (tmp / "openssl.cnf").write_text(OPENSSL_CNF.format(FORCE[version]))
    proxy_env = {**os.environ, "OPENSSL_CONF": str(tmp / "openssl.cnf")}  # the version, on the proxy only
    display = peers.pick_display(DISPLAYS)
    settings = peers.XspiceSettings(port=PLAIN_PORT, display=display,
                                    extra_options={"SpiceTlsPort": str(TLS_PORT), "SpiceX509Dir": str(certs)})
    session = TlsSession(version, tmp / "clear.pcapng", {"client": tmp / "client.pcapng",
                                                          "server": tmp / "server.pcapng"},
                         {"client": LISTEN_PORT, "server": TLS_PORT}, tmp / "keys.log")
    with peers.Xspice(settings, tmp), \
            peers.Program(["xterm", "-geometry", "80x20+40+40", "-e", "sh", "-c", "ls -l /usr/bin | head -40; "
                           "sleep 600"], display, tmp, name="xterm"):
        peers.wait_until(lambda: peers.port_open(TLS_PORT), 10, "Xspice TLS port")
        time.sleep(1.0)  # the xterm maps and draws
        with peers.Tshark(port=LISTEN_PORT, out=session.sides["client"]) as client_cap, \
                peers.Tshark(port=TLS_PORT, out=session.sides["server"]) as server_cap:
            with Recorder(LISTEN_PORT, TLS_PORT, session.clear,
                          ["--tls-target", "--ca", str(certs / "ca-cert.pem"), "--tls-listen",
                           "--write-cert", str(tmp / "proxy-ca.pem"), "--tls-keylog", str(session.keylog)],
                          env=proxy_env) as rec:
                env = {**peers.x_env(display), "SSL_CERT_FILE": str(tmp / "proxy-ca.pem")}
                env.pop("DISPLAY")
                screenshot(["-h", "127.0.0.1", "-s", str(LISTEN_PORT)], tmp / "shot.ppm", env=env)
                time.sleep(0.5)
                assert rec.stop() == 0
            client_cap.stop()
            server_cap.stop()
    return session


# -- reading ---------------------------------------------------------------------------------------

def records(path: Path, keylog: Path | KeyLog | None = None) -> list:
    return list(open_records(path, keylog=str(keylog) if isinstance(keylog, Path) else keylog))


def messages(recs: list) -> dict[tuple[str, int | None, str], list[tuple]]:
    """Per channel and direction (the order between directions is the capture point's): every link
    record, message and agent message, with its decoded fields."""
    out: dict[tuple[str, int | None, str], list[tuple]] = defaultdict(list)
    for r in recs:
        if r.layer in ("link", "message", "agent"):
            out[(r.channel.channel, r.channel.channel_id, r.direction.value)].append((r.layer, r.type, r.size,
                                                                                      r.fields))
    return dict(out)


def problems(recs: list) -> list[tuple[str, str]]:
    return [(r.type, r.fields.get("reason")) for r in recs if r.layer in ("gap", "error")]


def clear_streams(path: Path, keylog: KeyLog | None = None, notices: list | None = None) -> list[tuple[bytes, bytes]]:
    """Each connection's two byte streams, in order of appearance: as captured, or decrypted
    (the TLS layer's notices go to `notices` when given, else there must be none)."""
    tracker = TcpTracker()
    streams: dict[int, tuple[bytearray, bytearray]] = {}
    for seg in open_capture(str(path)):
        for conn, from_client, item in tracker.feed(seg):
            up, down = streams.setdefault(conn.index, (bytearray(), bytearray()))
            if keylog is None:
                assert isinstance(item, Data)
                (up if from_client else down).extend(item.data)
                continue
            if conn.user is None:
                conn.user = TlsConnection(keylog)
            for client, out in conn.user.feed(from_client, item):
                if notices is not None and not isinstance(out, Data):
                    notices.append(out)
                    continue
                assert isinstance(out, Data), out
                (up if client else down).extend(out.data)
    return [(bytes(u), bytes(d)) for _, (u, d) in sorted(streams.items()) if u or d]


def tshark_decrypted(path: Path, keylog: Path, server_port: int) -> list[tuple[bytes, bytes]]:
    """Wireshark's own decryption: the clear application data of each TLS record, per connection."""
    # the protocols tshark would try on decrypted data by heuristics: off, so every byte is data.data
    heuristics = subprocess.run([need_program("tshark"), "-G", "heuristic-decodes"], capture_output=True,
                                text=True, check=True).stdout
    off = [arg for line in heuristics.splitlines() if line.startswith("tls\t")
           for arg in ("--disable-protocol", line.split("\t")[1])]
    out = subprocess.run([need_program("tshark"), "-r", str(path), "-o", f"tls.keylog_file:{keylog}", *off,
                          "-d", f"tcp.port=={server_port},tls",
                          "-Y", "data.data", "-T", "fields", "-E", "separator=|", "-E", "occurrence=a",
                          "-E", "aggregator=,", "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "data.data"],
                         capture_output=True, text=True, check=True).stdout
    streams: dict[int, tuple[bytearray, bytearray]] = {}
    for line in out.splitlines():
        stream, sport, chunks = line.split("|")
        up, down = streams.setdefault(int(stream), (bytearray(), bytearray()))
        for chunk in chunks.split(","):
            (down if int(sport) == server_port else up).extend(bytes.fromhex(chunk))
    return [(bytes(u), bytes(d)) for _, (u, d) in sorted(streams.items())]


def stream_difference(a: list[tuple[bytes, bytes]], b: list[tuple[bytes, bytes]]) -> str:
    """Where two lists of (client, server) byte streams first differ, in a line ("" if equal)."""
    if len(a) != len(b):
        return f"{len(a)} connections against {len(b)}"
    for n, (pa, pb) in enumerate(zip(a, b)):
        for who, x, y in (("client", pa[0], pb[0]), ("server", pa[1], pb[1])):
            if x != y:
                at = next((i for i, (u, v) in enumerate(zip(x, y)) if u != v), min(len(x), len(y)))
                return f"connection {n}, {who} bytes: {len(x)} against {len(y)}, first difference at {at}"
    return ""


def hang_ups(path: Path) -> dict[tuple[str, str], int]:
    """(src, dst): the frame in which src first closed (FIN or RST) its connection to dst."""
    out: dict[tuple[str, str], int] = {}
    for seg in open_capture(str(path)):
        if seg.flags & (TCP_FIN | TCP_RST):
            out.setdefault((seg.src, seg.dst), seg.frame)
    return out


def undelivered(side: str, peers_of: tuple[str, str], direction: str, frame: int, hung: dict) -> bool:
    """Whether the proxy's recording may hold these bytes although `side`'s capture cannot: bytes
    the far peer sent after the near one had hung up (spicy-screenshot closes at once, and the
    server's last PINGs may still be on their way), read by the proxy but never deliverable."""
    client, server = peers_of
    near, late = ((client, server), "server") if side == "client" else ((server, client), "client")
    return direction == late and frame > hung.get(near, float("inf"))


def recorded_as_seen_from(side: str, path: Path) -> list[tuple[bytes, bytes, bytes, bytes]]:
    """The recording's connections as `side` must see them, and as it may: (client bytes, server
    bytes) that must have arrived, then all that the proxy read."""
    hung = hang_ups(path)
    tracker = TcpTracker()
    full: dict[int, tuple[bytearray, bytearray]] = {}
    must: dict[int, tuple[bytearray, bytearray]] = {}
    for seg in open_capture(str(path)):
        for conn, from_client, item in tracker.feed(seg):
            assert isinstance(item, Data)
            i = 0 if from_client else 1
            full.setdefault(conn.index, (bytearray(), bytearray()))[i].extend(item.data)
            peers_of = (seg.src, seg.dst) if from_client else (seg.dst, seg.src)
            kept = must.setdefault(conn.index, (bytearray(), bytearray()))[i]
            if not undelivered(side, peers_of, "client" if from_client else "server", seg.frame, hung):
                kept.extend(item.data)
    return [(bytes(must[n][0]), bytes(must[n][1]), bytes(up), bytes(down)) for n, (up, down) in sorted(full.items())]


def between(got: list[tuple[bytes, bytes]], recorded: list[tuple[bytes, bytes, bytes, bytes]]) -> str:
    """Each connection of `got` is one of the recording's, holding at least what must have arrived
    and at most what the proxy read (connections matched by their bytes, in any order)."""
    left = list(recorded)
    for n, (up, down) in enumerate(got):
        match = next((r for r in left if r[2].startswith(up) and up.startswith(r[0])
                      and r[3].startswith(down) and down.startswith(r[1])), None)
        if match is None:
            return f"connection {n} ({len(up)} client bytes, {len(down)} server bytes) is not in the recording"
        left.remove(match)
    return f"{len(left)} recorded connections not seen" if left else ""


# -- the real session --------------------------------------------------------------------------------

def test_decrypted_captures_read_as_the_clear_recording(session: TlsSession) -> None:
    recorded = records(session.clear)
    clear = messages(recorded)
    assert {("main", 0, "server"), ("display", 0, "server")} <= set(clear) and sum(map(len, clear.values())) > 20
    hung = hang_ups(session.clear)
    for side, path in session.sides.items():
        recs = records(path, session.keylog)
        assert problems(recs) == [], f"{side}: {problems(recs)}"
        must = messages([r for r in recorded if not undelivered(side, (r.channel.client, r.channel.server),
                                                                 r.direction.value, r.frame, hung)])
        got = messages(recs)
        assert set(must) <= set(got) <= set(clear), f"{side} side: {sorted(set(got) ^ set(clear))}"
        for key, seq in got.items():
            # all the recording's messages, except perhaps those that could not be delivered at the end
            assert clear[key][:len(seq)] == seq and len(seq) >= len(must.get(key, ())), \
                f"{side} side, {key}: {len(seq)} messages, the recording {len(clear[key])}"
        described = {r.channel.tls for r in recs}
        assert len(described) == 1 and described.pop().startswith(f"TLS {session.version}, TLS_"), side


def test_decrypted_bytes_agree_with_tshark_and_the_recording(session: TlsSession) -> None:
    keylog = KeyLog(str(session.keylog))
    for side, path in session.sides.items():
        ours = clear_streams(path, keylog)
        theirs = tshark_decrypted(path, session.keylog, session.ports[side])
        assert len(ours) >= 2
        assert not stream_difference(ours, theirs), f"{side}: ours vs tshark's: {stream_difference(ours, theirs)}"
        # the proxy opens its upstream connections side by side: their order on the server side may
        # differ from the order in which the client opened them, so they are matched by their bytes
        differs = between(ours, recorded_as_seen_from(side, session.clear))
        assert not differs, f"{side}: decrypted vs the proxy's recording: {differs}"


def test_render_last_equals_the_clear_recording(session: TlsSession) -> None:
    truth = picture_at(str(session.clear))
    assert truth is not None and truth.image.std() > 5  # the desktop with its xterm
    for side, path in session.sides.items():
        frame = picture_at(open_records(path, keylog=str(session.keylog)))
        assert frame is not None and np.array_equal(frame.image, truth.image), side


def test_render_command_with_the_key_log(session: TlsSession, tmp_path: Path) -> None:
    """`render --tls-keylog` draws the encrypted capture's screen; without the log there is no picture."""
    from PIL import Image
    truth = picture_at(str(session.clear))
    path = str(session.sides["server"])
    r = subprocess.run(["spicetool", "render", "-q", "--last", "--tls-keylog", str(session.keylog), path,
                        "-o", str(tmp_path / "last.png")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "last.png").convert("RGB")), truth.image)
    r = subprocess.run(["spicetool", "render", "-q", "--last", path, "-o", str(tmp_path / "none.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "no picture" in r.stderr and not (tmp_path / "none.png").exists(), r.stderr


def test_stats_and_report_with_the_key_log(session: TlsSession, tmp_path: Path) -> None:
    """The figures of a decrypted capture are the clear recording's (but for the wire bytes: TLS adds its own)."""
    def stats(*args: str) -> dict:
        r = subprocess.run(["spicetool", "stats", "--json", *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return {c["name"]: c for s in json.loads(r.stdout)["sessions"] for c in s["channels"]}

    clear = stats(str(session.clear))
    recorded, hung = records(session.clear), hang_ups(session.clear)
    for side, path in session.sides.items():
        ours = stats("--tls-keylog", str(session.keylog), str(path))
        assert set(ours) == set(clear) and len(ours) >= 2
        # what the recording holds that this side may lack (see undelivered): per channel, its share
        late: dict[str, Counter] = defaultdict(Counter)
        for r in recorded:
            if r.layer == "message" and undelivered(side, (r.channel.client, r.channel.server),
                                                    r.direction.value, r.frame, hung):
                d, name = r.direction.value, f"{r.channel.channel}:{r.channel.channel_id}"
                late[name].update({("messages", d): 1, ("bytes", d): r.size, ("types", f"{d}:{r.type}"): 1})
        for name, c in ours.items():
            for key in ("caps", "auth"):
                assert c[key] == clear[name][key], f"{side} {name} {key}"
            for key in ("messages", "bytes", "types"):
                assert set(c[key]) <= set(clear[name][key]), f"{side} {name} {key}"
                for k, want in clear[name][key].items():
                    assert want - late[name][key, k] <= c[key].get(k, 0) <= want, f"{side} {name} {key} {k}"
            assert c["tls"].startswith(f"TLS {session.version}, ") and clear[name]["tls"] is None
            for d in ("client", "server"):  # every TLS record costs its header and tag on the wire
                assert c["wire_bytes"][d] > clear[name]["wire_bytes"][d]
    out = tmp_path / "r.html"
    r = subprocess.run(["spicetool", "report", "--tls-keylog", str(session.keylog), str(session.sides["client"]),
                        "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"<tr><td>TLS</td><td>TLS {session.version}, TLS_" in out.read_text()


def test_an_unreadable_key_log(session: TlsSession, tmp_path: Path) -> None:
    path = str(session.sides["client"])
    (tmp_path / "not.log").write_text("this is not\na key log at all\n")
    for log, message in ((tmp_path / "missing.log", "No such file"), (tmp_path / "not.log", "not a TLS key log")):
        for argv in (["dissect"], ["stats"], ["report", "-o", str(tmp_path / "r.html")],
                     ["render", "--last", "-o", str(tmp_path / "r.png")]):
            r = subprocess.run(["spicetool", *argv, "--tls-keylog", str(log), path], capture_output=True, text=True,
                               timeout=60)
            assert r.returncode == (1 if argv[0] == "render" else 3) and message in r.stderr and len(r.stderr.splitlines()) == 1, (argv, r.stderr)


def test_without_the_key_log_each_connection_is_reported_encrypted(session: TlsSession) -> None:
    path = session.sides["client"]
    r = subprocess.run(["spicetool", "dissect", "--json", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "--tls-keylog" in r.stderr and "no SPICE traffic" in r.stderr.splitlines()[-1]
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    connections = len(clear_streams(path))
    assert len(lines) == connections and {x["type"] for x in lines} == {"tls_encrypted"}
    assert len({x["client"] for x in lines}) == connections
    assert all(x["fields"]["version"] == f"TLS {session.version}" and x["fields"]["cipher"].startswith("TLS_")
               and "--tls-keylog" in x["fields"]["reason"] for x in lines)
    # the same in the figures: one problem per connection, nothing decoded
    r = subprocess.run(["spicetool", "stats", "--json", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    kinds = [p["kind"] for s in json.loads(r.stdout)["sessions"] for p in s["problems"]]
    assert kinds == ["tls_encrypted"] * connections


def test_a_key_log_lacking_one_connection(session: TlsSession, tmp_path: Path) -> None:
    path = session.sides["server"]
    # the client randoms of the capture's connections, by tshark
    out = subprocess.run([need_program("tshark"), "-r", str(path), "-Y", "tls.handshake.type == 1", "-T", "fields",
                          "-e", "tcp.srcport", "-e", "tls.handshake.random"], capture_output=True, text=True,
                         check=True).stdout
    hellos = [line.split("\t") for line in out.splitlines()]
    assert len(hellos) >= 2
    port, random = hellos[1]  # the second connection's: not the main channel's
    lines = session.keylog.read_text().splitlines()
    kept = [x for x in lines if random.replace(":", "") not in x]
    assert len(kept) < len(lines)
    partial = tmp_path / "partial.log"
    partial.write_text("\n".join(kept) + "\n")
    recs = records(path, partial)
    lacking = [r for r in recs if r.type == "tls_encrypted"]
    assert len(lacking) == 1 and lacking[0].channel.client.endswith(f":{port}")
    assert "lacks" in lacking[0].fields["reason"] or "no CLIENT_RANDOM" in lacking[0].fields["reason"]
    clear = messages(records(session.clear))
    ours = messages(recs)
    assert {k[:2] for k in ours} == {k[:2] for k in clear} - {(lacking[0].channel.channel, None)} or \
        len({k[:2] for k in ours}) == len({k[:2] for k in clear}) - 1
    assert all(ours[k] == clear[k] for k in ours)


def test_a_key_log_with_the_wrong_secrets(session: TlsSession, tmp_path: Path) -> None:
    """A connection given another one's secrets (a stale or mixed-up key log): a few records that do
    not authenticate, then one line saying so per direction; the other connections are unharmed."""
    path = session.sides["server"]
    out = subprocess.run([need_program("tshark"), "-r", str(path), "-Y", "tls.handshake.type == 1", "-T", "fields",
                          "-e", "tcp.srcport", "-e", "tls.handshake.random"], capture_output=True, text=True,
                         check=True).stdout
    (_p1, first), (port, second) = [line.split("\t") for line in out.splitlines()][:2]
    first, second = first.replace(":", ""), second.replace(":", "")
    lines = session.keylog.read_text().splitlines()
    secrets = {x.split()[0]: x.split()[2] for x in lines if first in x}
    mixed = [f"{x.split()[0]} {second} {secrets[x.split()[0]]}" if second in x else x for x in lines]
    (tmp_path / "mixed.log").write_text("\n".join(mixed) + "\n")
    recs = records(path, tmp_path / "mixed.log")
    bad = [r for r in recs if r.channel.client.endswith(f":{port}")]
    assert bad and {r.layer for r in bad} <= {"error", "gap"}
    verdicts = [r for r in bad if "wrong or stale key log" in r.fields.get("reason", "")]
    assert 1 <= len(verdicts) <= 2 and len(bad) <= 2 * 6
    clear = messages(records(session.clear))
    ours = messages([r for r in recs if r not in bad])
    assert ours and all(ours[k] == clear[k] for k in ours)


def _server_records(path: Path, server_port: int) -> tuple[str, list[tuple[int, int]], list[tuple[int, int]]]:
    """In the connection with the most server bytes: its client, the server's TLS records as
    (stream offset, length), and that direction's segments as (frame, stream offset)."""
    by_conn: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
    for seg in open_capture(str(path)):
        if seg.payload and seg.src.endswith(f":{server_port}"):
            by_conn[seg.dst].append((seg.frame, seg.payload))
    client = max(by_conn, key=lambda c: sum(len(p) for _, p in by_conn[c]))
    stream = b"".join(p for _, p in by_conn[client])
    recs, at = [], 0
    while at + 5 <= len(stream):
        length = int.from_bytes(stream[at + 3:at + 5], "big")
        recs.append((at, 5 + length))
        at += 5 + length
    offsets, at = [], 0
    for frame, p in by_conn[client]:
        offsets.append((frame, at))
        at += len(p)
    return client, recs, offsets


def _rewrite(src: Path, dst: Path, frame: int, change) -> None:  # type: ignore[no-untyped-def]
    """Copy a capture segment by segment; `change(payload)` gives one frame's new payload and whether
    the copy ends with it (the capture stopping in the middle of that segment)."""
    with open(dst, "wb") as f:
        w = PcapWriter(f)
        for seg in open_capture(str(src)):
            payload, stop = change(seg.payload) if seg.frame == frame else (seg.payload, False)
            w.segment(seg.time, seg.src, seg.dst, seg.seq, seg.ack, seg.flags, payload)
            if stop:
                return


def _from_server(recs: list, client: str, intact: list) -> tuple[list[tuple], list[tuple]]:
    """What the server sent on the connection of `client`: as decoded from the damaged capture's
    `recs`, and from the `intact` capture's (itself checked against the clear recording above)."""
    channel = next((r.channel.channel, r.channel.channel_id) for r in recs if r.channel.client == client)
    ours = messages([r for r in recs if r.channel.client == client]).get((*channel, "server"), [])
    return ours, messages([r for r in intact if r.channel.client == client])[(*channel, "server")]


def _inside(offsets: list[tuple[int, int]], at: int) -> tuple[int, int]:
    """The segment holding stream offset `at`: (frame, offset of `at` in its payload)."""
    frame, seg_at = next((f, o) for f, o in reversed(offsets) if o <= at)
    return frame, at - seg_at


def test_a_truncated_record(session: TlsSession, tmp_path: Path) -> None:
    path, port = session.sides["client"], session.ports["client"]
    client, recs, offsets = _server_records(path, port)
    at, length = recs[len(recs) // 2]
    frame, cut_at = _inside(offsets, at + length // 2)  # the capture ends in the middle of this record
    final = tmp_path / "cut.pcap"
    _rewrite(path, final, frame, lambda p: (p[:cut_at], True))
    r = subprocess.run(["spicetool", "dissect", "--tls-keylog", str(session.keylog), "--json", str(final)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    errors = [x for x in map(json.loads, r.stdout.splitlines()) if x["type"] == "tls_error" and x["client"] == client]
    assert [e["fields"]["reason"] for e in errors] == [
        f"TLS record from the server truncated: {length // 2} of {length} bytes captured"]
    ours, clear = _from_server(records(final, session.keylog), client, records(path, session.keylog))
    assert 0 < len(ours) < len(clear) and ours == clear[:len(ours)]  # all before the cut, as recorded


def test_a_corrupt_record(session: TlsSession, tmp_path: Path) -> None:
    path, port = session.sides["client"], session.ports["client"]
    client, recs, offsets = _server_records(path, port)
    at, length = recs[len(recs) // 2]
    frame, flip = _inside(offsets, at + 5 + length // 2)  # inside the ciphertext, not the header

    def corrupt(payload: bytes) -> tuple[bytes, bool]:
        b = bytearray(payload)
        b[flip] ^= 0x55
        return bytes(b), False

    bad = tmp_path / "corrupt.pcap"
    _rewrite(path, bad, frame, corrupt)
    r = subprocess.run(["spicetool", "dissect", "--tls-keylog", str(session.keylog), str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    errors = [x for x in r.stdout.splitlines() if "tls_error" in x]
    assert len(errors) == 1 and "does not authenticate" in errors[0], errors
    got = records(bad, session.keylog)
    ours, clear = _from_server(got, client, records(path, session.keylog))
    # the message the record was part of is lost; the SPICE layer finds its feet again: all the others are there
    assert len(ours) == len(clear) - 1 and any(ours == clear[:i] + clear[i + 1:] for i in range(len(clear)))
    assert [t for t, _ in problems(got)].count("tls_error") == 1


def test_a_segment_lost_from_the_capture(session: TlsSession, tmp_path: Path) -> None:
    """A hole in the TCP stream: the record stream is found again (by header shape and the sequence
    numbers the lost bytes could have held) and the SPICE layer resynchronises after it."""
    path, port = session.sides["client"], session.ports["client"]
    client, recs, offsets = _server_records(path, port)
    at, length = recs[len(recs) // 2]
    frame, _ = _inside(offsets, at + length // 2)
    assert frame != offsets[-1][0], "the hole must have data after it"
    holed = tmp_path / "holed.pcap"
    with open(holed, "wb") as f:
        w = PcapWriter(f)
        for seg in open_capture(str(path)):
            if seg.frame != frame:
                w.segment(seg.time, seg.src, seg.dst, seg.seq, seg.ack, seg.flags, seg.payload)
    got = records(holed, session.keylog)
    found = [(t, reason) for t, reason in problems(got)]
    assert [t for t, _ in found] == ["tcp_gap"], found  # the hole, said once, and nothing about TLS
    ours, clear = _from_server(got, client, records(path, session.keylog))
    assert len(ours) == len(clear) - 1 and any(ours == clear[:i] + clear[i + 1:] for i in range(len(clear)))


def test_a_capture_that_starts_after_the_handshakes(session: TlsSession, tmp_path: Path) -> None:
    """No handshake, no decryption (the key log is found by the client's random): each connection is
    still reported as TLS-encrypted, not as noise or nothing."""
    path = session.sides["server"]
    late = tmp_path / "late.pcap"
    seen: dict[frozenset, int] = defaultdict(int)
    with open(late, "wb") as f:
        w = PcapWriter(f)
        for seg in open_capture(str(path)):
            key = frozenset((seg.src, seg.dst))
            seen[key] += 1
            if seen[key] > 12:  # past the handshake and the link stage of every connection
                w.segment(seg.time, seg.src, seg.dst, seg.seq, seg.ack, seg.flags, seg.payload)
    recs = records(late, session.keylog)
    assert {r.type for r in recs} == {"tls_encrypted"} and all("handshake is not in the capture" in
                                                               r.fields["reason"] for r in recs)
    assert sorted(r.channel.client for r in recs) == sorted({r.channel.client for r in records(path, session.keylog)})


# -- key updates, from OpenSSL's own client and server ---------------------------------------------

def test_key_updates_both_ways(tmp_path: Path) -> None:
    """openssl s_client asks for a KeyUpdate mid-connection ("K"): both sides move to their next
    traffic secret; what each sent before and after decrypts, as tshark decrypts it."""
    need_program("openssl")
    from spicetool.capture import self_signed

    port = 5985
    cert, key = self_signed(["localhost"])
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    cap, keylog = tmp_path / "ku.pcapng", tmp_path / "keys.log"
    lines = {"server": [b"from the server, first\n", b"from the server, after the update\n"],
             "client": [b"from the client, first\n", b"from the client, after the update\n"]}
    with peers.Tshark(port=port, out=cap) as tshark:
        server = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", "c.pem",
                                   "-key", "k.pem", "-tls1_3", "-naccept", "1"], cwd=tmp_path, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        client = None
        try:
            assert server.stdout is not None
            # ready when it says so (a probe of the port would be its one connection)
            while b"ACCEPT" not in server.stdout.readline():
                assert server.poll() is None, "openssl s_server did not start"
            client = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-keylogfile",
                                       str(keylog), "-tls1_3"], cwd=tmp_path, stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            assert client.stdin is not None and server.stdin is not None
            time.sleep(1.0)
            for who, command in (("client", lines["client"][0]), ("server", lines["server"][0]),
                                 ("client", b"K\n"),  # a KeyUpdate asking the server to update too
                                 ("client", lines["client"][1]), ("server", lines["server"][1]),
                                 ("client", b"Q\n")):
                pipe = client.stdin if who == "client" else server.stdin
                pipe.write(command)
                pipe.flush()
                time.sleep(0.5)
            client.wait(10)
        finally:
            for proc in (client, server):
                if proc is not None and proc.poll() is None:
                    os.killpg(proc.pid, 9)
                    proc.wait()
        tshark.stop()
    updates = subprocess.run([need_program("tshark"), "-r", str(cap), "-o", f"tls.keylog_file:{keylog}", "-d",
                              f"tcp.port=={port},tls", "-Y", "tls.handshake.type == 24"], capture_output=True,
                             text=True, check=True).stdout
    assert len(updates.splitlines()) == 2, updates  # the client's and the server's
    notices: list = []
    ours = clear_streams(cap, KeyLog(str(keylog)), notices)
    assert ours == [(b"".join(lines["client"]), b"".join(lines["server"]))]
    theirs = tshark_decrypted(cap, keylog, port)
    assert not stream_difference(ours, theirs), stream_difference(ours, theirs)
    assert [n.kind for n in notices] in ([], ["error"])  # at most the peers' closing alert


# -- every AEAD suite, from OpenSSL: corpus sessions re-encrypted ------------------------------------

SUITES = {
    "TLS_AES_128_GCM_SHA256": ("1.3", "Ciphersuites = TLS_AES_128_GCM_SHA256"),
    "TLS_AES_256_GCM_SHA384": ("1.3", "Ciphersuites = TLS_AES_256_GCM_SHA384"),
    "TLS_CHACHA20_POLY1305_SHA256": ("1.3", "Ciphersuites = TLS_CHACHA20_POLY1305_SHA256"),
    # Python sets its own TLS 1.2 cipher list over OpenSSL's configuration: these go to set_ciphers
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": ("1.2", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": ("1.2", "ECDHE-ECDSA-AES256-GCM-SHA384"),
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": ("1.2", "ECDHE-ECDSA-CHACHA20-POLY1305"),
}


@pytest.mark.parametrize("suite", list(SUITES))
def test_every_aead_suite(suite: str, tmp_path: Path) -> None:
    version, line = SUITES[suite]
    cnf = tmp_path / "openssl.cnf"
    cnf.write_text(OPENSSL_CNF.format(FORCE[version] + ("\n" + line if version == "1.3" else "")))
    src, out, keylog = CAPTURES / "typing.pcapng", tmp_path / "tls.pcap", tmp_path / "keys.log"
    subprocess.run([sys.executable, __file__, str(src), str(out), str(keylog), line if version == "1.2" else ""],
                   check=True, timeout=120,
                   env={**os.environ, "OPENSSL_CONF": str(cnf)})
    recs = records(out, keylog)
    assert problems(recs) == []
    assert {r.channel.tls for r in recs} == {f"TLS {version}, {suite}, SNI localhost"}
    assert messages(recs) == messages(records(src))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_damaged_tls_never_breaks_the_decoder(seed: int, tmp_path: Path) -> None:
    """Bytes changed, segments cut short or dropped anywhere (handshake included): records and
    one-line notices, never an exception, and each run finishes quickly."""
    import random

    out, keylog = tmp_path / "tls.pcap", tmp_path / "keys.log"
    reencrypt(str(CAPTURES / "typing.pcapng"), str(out), str(keylog))
    segments = list(open_capture(str(out)))
    rng = random.Random(seed)
    for _ in range(10):
        damaged = []
        for seg in segments:
            payload = bytearray(seg.payload)
            if payload and rng.random() < 0.08:
                for _ in range(rng.randint(1, 4)):
                    payload[rng.randrange(len(payload))] = rng.randrange(256)
                if rng.random() < 0.3:
                    del payload[rng.randrange(len(payload)):]
            if rng.random() > 0.02:
                damaged.append(type(seg)(seg.time, seg.frame, seg.src, seg.dst, seg.seq, seg.ack, seg.flags,
                                         bytes(payload)))
        started = time.monotonic()
        recs = list(decode_segments(damaged, keylog=str(keylog)))
        assert time.monotonic() - started < 10
        assert any(r.layer == "message" for r in recs)  # what the damage spared is decoded
        assert all("\n" not in str(r.fields.get("reason", "")) for r in recs)


def test_a_suite_we_do_not_decrypt(tmp_path: Path) -> None:
    """A CBC suite (TLS 1.2): said so, in one line per connection, not decoded as garbage."""
    cnf = tmp_path / "openssl.cnf"
    cnf.write_text(OPENSSL_CNF.format(FORCE["1.2"]))
    out, keylog = tmp_path / "tls.pcap", tmp_path / "keys.log"
    subprocess.run([sys.executable, __file__, str(CAPTURES / "typing.pcapng"), str(out), str(keylog),
                    "ECDHE-ECDSA-AES128-SHA256"], check=True, timeout=120, env={**os.environ, "OPENSSL_CONF": str(cnf)})
    recs = records(out, keylog)
    assert recs and {r.type for r in recs} == {"tls_encrypted"}
    assert all(r.fields["cipher"] == "cipher suite 0xC023" and "only AEAD cipher suites" in r.fields["reason"]
               for r in recs)


def test_a_hello_retry_request(tmp_path: Path) -> None:
    """TLS 1.3 with a HelloRetryRequest (the server wants another key share group): the second
    ClientHello keeps the random, the ServerHello that follows is the one that counts."""
    out, keylog = tmp_path / "tls.pcap", tmp_path / "keys.log"
    subprocess.run([sys.executable, __file__, str(CAPTURES / "typing.pcapng"), str(out), str(keylog), "",
                    "secp384r1"], check=True, timeout=120)
    port = next(iter(open_capture(str(out)))).dst.rsplit(":", 1)[1]
    retries = subprocess.run([need_program("tshark"), "-r", str(out), "-d", f"tcp.port=={port},tls", "-Y",
                              "tls.handshake.type == 2", "-T", "fields", "-e", "tls.handshake.random"],
                             capture_output=True, text=True, check=True).stdout.replace(":", "").split()
    hrr = "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"  # RFC 8446 4.1.3
    assert retries.count(hrr) >= 2 and len(retries) == 2 * retries.count(hrr)  # each connection retried once
    recs = records(out, keylog)
    assert problems(recs) == [] and messages(recs) == messages(records(CAPTURES / "typing.pcapng"))


def test_other_tls_traffic_is_not_reported(tmp_path: Path) -> None:
    """A connection whose client asks for an application protocol (ALPN h2: a browser's HTTPS) is not
    taken for a SPICE channel: without keys it is not reported as one; with keys, its clear bytes decide."""
    out, keylog = tmp_path / "tls.pcap", tmp_path / "keys.log"
    subprocess.run([sys.executable, __file__, str(CAPTURES / "typing.pcapng"), str(out), str(keylog), "", "", "",
                    "h2,http/1.1"], check=True, timeout=120)
    assert records(out) == []
    r = subprocess.run(["spicetool", "dissect", str(out)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.startswith("error: no SPICE traffic found")
    # the same bytes with keys are SPICE after all (this test's session is one): decoded as such
    assert messages(records(out, keylog)) == messages(records(CAPTURES / "typing.pcapng"))


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_resumed_sessions(version: str, tmp_path: Path) -> None:
    """Every connection after the first resumes its TLS session (TLS 1.2: ServerHello, ChangeCipherSpec,
    Finished; TLS 1.3: a PSK handshake): the key log's lines for each still decrypt it."""
    cnf = tmp_path / "openssl.cnf"
    cnf.write_text(OPENSSL_CNF.format(FORCE[version]))
    out, keylog = tmp_path / "tls.pcap", tmp_path / "keys.log"
    src = CAPTURES / "typing.pcapng"
    subprocess.run([sys.executable, __file__, str(src), str(out), str(keylog), "", "", "resume"], check=True,
                   timeout=120, env={**os.environ, "OPENSSL_CONF": str(cnf)})
    recs = records(out, keylog)
    assert problems(recs) == [] and messages(recs) == messages(records(src))
    assert len({r.channel.client for r in recs}) >= 3 and {r.channel.tls.split(",")[0] for r in recs} == {
        f"TLS {version}"}


def reencrypt(src: str, dst: str, keylog: str, ciphers: str = "", server_curve: str = "", resume: str = "",
              alpn: str = "") -> None:
    """Each connection of a clear capture carried over TLS between two OpenSSL endpoints (memory BIOs),
    the TLS bytes written as a capture with the original times; the secrets go to `keylog`.
    `ciphers`: the TLS 1.2 cipher list; `server_curve`: the one group the server accepts; `resume`:
    the connections after the first resume its session (abbreviated handshakes); `alpn`: the client
    asks for these application protocols (comma-separated)."""
    from spicetool.capture import self_signed

    cert, key = self_signed(["localhost"])
    with tempfile.TemporaryDirectory() as d:
        Path(d, "c.pem").write_bytes(cert)
        Path(d, "k.pem").write_bytes(key)
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(str(Path(d, "c.pem")), str(Path(d, "k.pem")))
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    for ctx in (client, server) if ciphers else ():
        ctx.set_ciphers(ciphers)
    if server_curve:
        server.set_ecdh_curve(server_curve)
    if alpn:
        client.set_alpn_protocols(alpn.split(","))
    client.keylog_filename = keylog
    tracker, pipes = TcpTracker(), {}
    session = None
    with open(dst, "wb") as f:
        w = PcapWriter(f)
        for seg in open_capture(src):
            for conn, from_client, item in tracker.feed(seg):
                pipe = pipes.get(conn.index)
                if pipe is None:
                    pipe = pipes[conn.index] = _Pipe(server, client, w, conn.client, conn.server, conn.start, session)
                    if resume and session is None:
                        session = pipe.c.session
                    assert not resume or pipe.c.session_reused == (len(pipes) > 1)
                pipe.send(item.time, from_client, item.data)


class _Pipe:
    def __init__(self, server: ssl.SSLContext, client: ssl.SSLContext, w: PcapWriter, cend: str, send: str,
                 t: float, session: ssl.SSLSession | None = None) -> None:
        self.w, self.ends = w, {True: (cend, send), False: (send, cend)}
        self.seq = {True: 1000, False: 5000}
        w.segment(t, cend, send, 999, 0, TCP_SYN)
        w.segment(t, send, cend, 4999, 1000, TCP_SYN | TCP_ACK)
        self.bios = [ssl.MemoryBIO() for _ in range(4)]  # client in/out, server in/out
        self.c = client.wrap_bio(self.bios[0], self.bios[1], server_hostname="localhost", session=session)
        self.s = server.wrap_bio(self.bios[2], self.bios[3], server_side=True)
        for _ in range(6):
            for end in (self.c, self.s):
                try:
                    end.do_handshake()
                except ssl.SSLWantReadError:
                    pass
            self.pump(t)

    def pump(self, t: float) -> None:
        for from_client, out, into in ((True, 1, 2), (False, 3, 0)):
            data = self.bios[out].read()
            self.bios[into].write(data)
            src, dst = self.ends[from_client]
            for i in range(0, len(data), 16000):
                piece = data[i:i + 16000]
                self.w.segment(t, src, dst, self.seq[from_client], self.seq[not from_client], TCP_ACK, piece)
                self.seq[from_client] = (self.seq[from_client] + len(piece)) & 0xFFFFFFFF
        for end in (self.s, self.c):
            try:
                while end.read(1 << 20):
                    pass
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                pass

    def send(self, t: float, from_client: bool, data: bytes) -> None:
        (self.c if from_client else self.s).write(data)
        self.pump(t)


if __name__ == "__main__":  # run by test_every_aead_suite under its own OPENSSL_CONF
    reencrypt(*sys.argv[1:8])
