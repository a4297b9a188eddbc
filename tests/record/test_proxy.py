"""`spicetool record` between real peers: spicy-screenshot / spicy <-> record <-> Xspice.

The client must get exactly what it gets without the proxy, typing must reach the X server,
the recording must hold exactly the bytes that crossed the proxy (compared with tshark's own
capture of the proxy-to-server connections) and read the same in our dissector and in tshark.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image, ImageChops
from recorder import Recorder, peers, screenshot
from support import need_program

from spicetool.capture import TCP_FIN, TCP_RST, TCP_SYN, open_capture, open_records


def same_image(a: Path, b: Path) -> bool:
    ia, ib = Image.open(a).convert("RGB"), Image.open(b).convert("RGB")
    return ia.size == ib.size and ImageChops.difference(ia, ib).getbbox() is None


def streams(path: Path) -> list[tuple[str, str, bytes, bytes, set[str]]]:
    """Each TCP connection in order of its first packet: client, server, both byte streams, flags seen."""
    order: list[tuple[str, str]] = []
    data: dict[tuple[str, str], bytearray] = defaultdict(bytearray)
    flags: dict[tuple[str, str], set[str]] = defaultdict(set)
    reader = open_capture(str(path))
    for seg in reader:
        key = (seg.src, seg.dst)
        if seg.flags & TCP_SYN and not seg.flags & 0x10:
            order.append(key)
        data[key] += seg.payload
        for bit, name in ((TCP_SYN, "syn"), (TCP_FIN, "fin"), (TCP_RST, "rst")):
            if seg.flags & bit:
                flags[key].add(name)
    assert reader.damage is None, reader.damage
    return [(c, s, bytes(data[(c, s)]), bytes(data[(s, c)]), flags[(c, s)] | {f"s:{x}" for x in flags[(s, c)]})
            for c, s in order]


def tshark_types(path: Path) -> dict[tuple[int, int], list[int]]:
    out = subprocess.run([need_program("tshark"), "-r", str(path), "-Y", "spice.message_type", "-T", "fields",
                          "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,", "-e", "tcp.srcport",
                          "-e", "tcp.dstport", "-e", "spice.message_type"],
                         capture_output=True, text=True, check=True).stdout
    seqs: dict[tuple[int, int], list[int]] = defaultdict(list)
    for line in out.splitlines():
        sport, dport, types = line.split("|")
        seqs[(int(sport), int(dport))] += [int(t) for t in types.split(",")]
    return seqs


def our_types(path: Path) -> dict[tuple[int, int], list[int]]:
    seqs: dict[tuple[int, int], list[int]] = defaultdict(list)
    for rec in open_records(path):
        if rec.layer == "message":
            c, s = rec.channel.client, rec.channel.server
            src, dst = (c, s) if rec.direction.value == "client" else (s, c)
            seqs[(int(src.rsplit(":", 1)[1]), int(dst.rsplit(":", 1)[1]))].append(rec.type_id)
    return seqs


def assert_dissect_agrees_with_tshark(path: Path) -> None:
    theirs, ours = tshark_types(path), our_types(path)
    assert len(theirs) >= 4, f"tshark decodes too little of {path.name}: {dict(theirs)}"
    for key, seq in theirs.items():
        # tshark gives up on some payloads and stops there; what it decodes is the head of ours
        assert ours[key][: len(seq)] == seq, f"{key}: ours {ours[key][:20]}..., tshark {seq[:20]}..."
    problems = subprocess.run([need_program("tshark"), "-r", str(path), "-Y", "tcp.analysis.flags", "-T", "fields",
                               "-e", "frame.number", "-e", "_ws.expert.message"],
                              capture_output=True, text=True, check=True).stdout
    assert problems.strip() == "", f"tshark finds fault with the synthetic TCP framing:\n{problems}"


@pytest.fixture
def xspice_desktop(tmp_path: Path):
    """Xspice on :60 port 5960 with an xterm showing text, so screenshots have content."""
    need_program("Xorg")
    need_program("spicy-screenshot")
    with peers.Xspice(peers.XspiceSettings(port=5960, display=60), tmp_path) as xs, \
            peers.Program(["xterm", "-geometry", "80x20+40+40", "-e", "sh", "-c", "ls -l /usr/bin | head -40; sleep 600"],
                          60, tmp_path, name="xterm"):
        time.sleep(1.0)  # the xterm maps and draws
        yield xs


def test_screenshot_through_proxy_is_the_desktop(xspice_desktop, tmp_path: Path) -> None:
    """Also: the recorder is killed with SIGKILL at the end, and still every byte is in the file."""
    xs = xspice_desktop
    rec_path = tmp_path / "session.pcapng"
    direct_cap = tmp_path / "upstream.pcapng"
    truth = xs.screenshot(tmp_path / "truth.png")
    direct = screenshot(["-h", "127.0.0.1", "-p", "5960"], tmp_path / "direct.ppm")
    with peers.Tshark(port=5960, out=direct_cap) as cap, Recorder(5961, 5960, rec_path) as rec:
        proxied = screenshot(["-h", "127.0.0.1", "-p", "5961"], tmp_path / "proxied.ppm")
        time.sleep(0.5)
        assert rec.stop(signal.SIGKILL) == -signal.SIGKILL  # no chance to flush or close: it flushed as it went
        time.sleep(0.5)
        cap.stop()
    assert same_image(direct, truth), "the direct client does not see the desktop (test setup)"
    assert same_image(proxied, truth), "through the proxy the client sees something else"

    # the recording holds exactly the bytes that crossed the proxy toward the server
    recorded = streams(rec_path)
    upstream = [s for s in streams(direct_cap) if s[1].endswith(":5960") and s[2]]
    upstream = upstream[-len(recorded):]  # the direct screenshot ran before the proxy started
    assert len(recorded) >= 2 and len(recorded) == len(upstream)
    # the recording lists a connection once its upstream side is open, and those opens run side by
    # side: match the connections by their bytes, not by their order
    by_bytes = lambda conn: (conn[2], conn[3])  # noqa: E731
    for (c, s, up, down, flags), (_c2, _s2, up2, down2, _f2) in zip(sorted(recorded, key=by_bytes),
                                                                    sorted(upstream, key=by_bytes)):
        assert s == "127.0.0.1:5960"
        assert hashlib.sha256(up).digest() == hashlib.sha256(up2).digest(), f"{c}: client bytes differ"
        assert hashlib.sha256(down).digest() == hashlib.sha256(down2).digest(), f"{c}: server bytes differ"
        # a handshake, and a close: FINs, or the RST spicy-screenshot's abrupt exit causes
        assert {"syn", "s:syn"} <= flags and ({"fin", "s:fin"} <= flags or "rst" in flags), f"{c}: {flags}"
    assert_dissect_agrees_with_tshark(rec_path)

    # and the figures of the recording: one session, a primary surface of the desktop's size
    r = subprocess.run(["spicetool", "stats", "--json", str(rec_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    figs = json.loads(r.stdout)
    assert len(figs["sessions"]) == 1
    w, h = Image.open(truth).size
    assert [(x["width"], x["height"]) for x in figs["sessions"][0]["screen_sizes"]] == [(w, h)]


def test_typing_through_proxy_reaches_the_x_server(tmp_path: Path) -> None:
    need_program("Xorg")
    need_program("spicy")
    need_program("xdotool")
    # upper case and shifted symbols: the rebuilt text must follow Shift presses and releases
    text = "echo Recorded BY spicetool: A+B=C? (ok) | wc -c #1 ~/x_y"
    typed_file = tmp_path / "typed.txt"
    rec_path = tmp_path / "typing.pcapng"
    with peers.Xspice(peers.XspiceSettings(port=5962, display=62), tmp_path), \
            peers.Program(["xterm", "-geometry", "160x50+0+0", "-e", "sh", "-c", f"cat > {typed_file}"], 62,
                          tmp_path, name="xterm"), \
            peers.Xvfb(63) as xv, Recorder(5963, 5962, rec_path) as rec:
        with peers.Spicy(xv.display, port=5963, min_channels=3) as client:
            win = client.window_id()
            time.sleep(2.0)  # the first frame arrives and the inputs channel is up
            geo = peers.xdotool(xv.display, "getwindowgeometry", "--shell", win)
            g = dict(line.split("=") for line in geo.split())
            x, y = int(g["X"]) + 300, int(g["Y"]) + 250
            peers.xdotool(xv.display, "mousemove", str(x), str(y), "click", "1")
            time.sleep(0.5)
            peers.xdotool(xv.display, "type", "--delay", "60", text)
            peers.xdotool(xv.display, "key", "Return")
            peers.wait_until(lambda: typed_file.exists() and typed_file.read_text().endswith("\n"), 20,
                             "the typed line in the xterm")
            time.sleep(0.5)
            # SIGTERM while the client is still connected: every open stream gets its FINs
            started = time.monotonic()
            assert rec.stop(signal.SIGTERM) == 0
            assert time.monotonic() - started < 5
    assert typed_file.read_text() == text + "\n"
    recorded = streams(rec_path)
    assert len(recorded) >= 3
    for c, _s, up, down, flags in recorded:
        assert up[:4] == b"REDQ" and {"syn", "s:syn", "fin", "s:fin"} <= flags, f"{c}: {flags}"
    r = subprocess.run(["spicetool", "stats", "--json", str(rec_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    session = json.loads(r.stdout)["sessions"][0]
    assert session["typed_text"] == text + "\n"
    assert any(i["kind"] == "click" and i["button"] == "LEFT" for i in session["inputs"])
    assert_dissect_agrees_with_tshark(rec_path)


def test_tls_both_sides_recorded_in_clear(tmp_path: Path) -> None:
    """spicy-screenshot --TLS--> record --TLS--> Xspice's TLS port; the file holds clear SPICE."""
    need_program("Xorg")
    need_program("spicy-screenshot")
    from spicetool.capture import self_signed

    certs = tmp_path / "x509"
    certs.mkdir()
    cert, key = self_signed(["127.0.0.1", "localhost"])
    for name, data in (("ca-cert.pem", cert), ("server-cert.pem", cert), ("server-key.pem", key)):
        (certs / name).write_bytes(data)
    settings = peers.XspiceSettings(port=5964, display=64, password="s3cret",
                                    extra_options={"SpiceTlsPort": "5965", "SpiceX509Dir": str(certs)})
    rec_path = tmp_path / "tls.pcap"  # the classic format here, pcapng elsewhere
    proxy_cert = tmp_path / "proxy-ca.pem"
    with peers.Xspice(settings, tmp_path) as xs:
        peers.wait_until(lambda: peers.port_open(5965), 10, "Xspice TLS port")
        truth = xs.screenshot(tmp_path / "truth.png")
        with Recorder(5966, 5965, rec_path, ["--tls-target", "--ca", str(certs / "ca-cert.pem"), "--tls-listen",
                                             "--write-cert", str(proxy_cert)]) as rec:
            # spicy-screenshot has no CA option: given none, spice-gtk uses OpenSSL's default store
            env = {**peers.x_env(64), "SSL_CERT_FILE": str(proxy_cert)}
            env.pop("DISPLAY")
            wrong = subprocess.run(["spicy-screenshot", "-h", "127.0.0.1", "-s", "5966", "-w", "wrong",
                                    "-o", str(tmp_path / "no.ppm")], env=env, capture_output=True, timeout=30)
            assert wrong.returncode != 0 and not (tmp_path / "no.ppm").exists()
            time.sleep(0.3)
            shot = screenshot(["-h", "127.0.0.1", "-s", "5966", "-w", "s3cret"], tmp_path / "tls.ppm", env=env)
            time.sleep(0.5)
            assert rec.stop() == 0
            assert "certificate sha256" in rec.log()
    assert same_image(shot, truth)
    recorded = streams(rec_path)
    assert len(recorded) >= 3 and all(up[:4] == b"REDQ" for _c, _s, up, _d, _f in recorded)
    assert_dissect_agrees_with_tshark(rec_path)
    # the refused attempt is a session of its own, with the server's PERMISSION_DENIED among its problems
    r = subprocess.run(["spicetool", "stats", "--json", str(rec_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    sessions = json.loads(r.stdout)["sessions"]
    assert len(sessions) == 2
    denied = [p for p in sessions[0]["problems"] if p["kind"] == "link_error"]
    assert denied and "PERMISSION_DENIED" in denied[0]["detail"]
    assert not [p for p in sessions[1]["problems"] if p["kind"] == "link_error"]
    assert sessions[1]["screen_sizes"] and sessions[1]["auth"] == "spice"


def test_unreachable_server_and_sigint(tmp_path: Path) -> None:
    """Nothing listens on the target: the client's connection is closed, the file shows SYN then RST,
    and Ctrl-C (SIGINT) ends the recording cleanly."""
    import socket

    rec_path = tmp_path / "refused.pcap"
    with Recorder(5967, 5968, rec_path) as rec:
        with socket.create_connection(("127.0.0.1", 5967), timeout=5) as s:
            s.settimeout(10)
            assert s.recv(10) == b""  # closed by the proxy
        time.sleep(0.3)
        assert rec.stop(signal.SIGINT) == 0
        assert "cannot reach" in rec.log()
    (c, srv, up, down, flags), = streams(rec_path)
    assert srv == "127.0.0.1:5968" and up == down == b"" and flags == {"syn", "s:rst"}


def test_bytes_after_a_half_close_pass_and_are_said(tmp_path: Path) -> None:
    """The client closes its sending side; the server answers after that: the proxy passes the
    answer on (TCP half-close), records it after the client's FIN, and its log says how many
    bytes came after the client had closed (a client that closed the whole socket never gets them)."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 5963))

    def serve_once() -> None:
        conn, _ = listener.accept()
        with conn:
            while conn.recv(4096):
                pass                      # until the client's FIN
            conn.sendall(b"late reply")

    threading.Thread(target=serve_once, daemon=True).start()
    rec_path = tmp_path / "half.pcapng"
    try:
        with Recorder(5962, 5963, rec_path) as rec:
            with socket.create_connection(("127.0.0.1", 5962), timeout=10) as s:
                s.sendall(b"hello")
                s.shutdown(socket.SHUT_WR)
                got = b""
                while chunk := s.recv(4096):
                    got += chunk
            time.sleep(0.3)
            assert rec.stop(signal.SIGINT) == 0
            log = rec.log()
    finally:
        listener.close()
    assert got == b"late reply"
    assert "(5 bytes from the client, 10 from the server; 10 bytes from the server came after the client " \
           "had closed)" in log, log
    (_c, _s, up, down, flags), = streams(rec_path)
    assert (up, down) == (b"hello", b"late reply") and {"syn", "fin", "s:fin"} <= flags


def test_cannot_listen(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 5969))
        busy.listen()
        r = subprocess.run(["spicetool", "record", "--listen", "127.0.0.1:5969", "--target", "127.0.0.1:5960",
                            "-w", str(tmp_path / "x.pcap")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 3
    assert r.stderr.strip().splitlines()[-1].startswith("error: cannot listen on 127.0.0.1:5969")
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--listen", "nonsense", "--target", "127.0.0.1:1"], "is not HOST:PORT"),
    (["--listen", ":5969", "--target", "127.0.0.1:70000"], "is not HOST:PORT"),
    (["--listen", ":5969", "--target", "127.0.0.1:1", "--cert", "c.pem"], "go with --tls-listen"),
    (["--listen", ":5969", "--target", "127.0.0.1:1", "--tls-keylog", "k.log"], "goes with --tls-listen or --tls-target"),
    (["--listen", ":5969", "--target", "127.0.0.1:1", "--tls-target", "--tls-keylog", "/nonexistent/k.log"],
     "cannot write the key log"),
    (["--listen", ":5969", "--target", "127.0.0.1:1", "--tls-listen", "--cert", "/nonexistent.pem"],
     "cannot use certificate"),
])
def test_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    r = subprocess.run(["spicetool", "record", *args, "-w", str(tmp_path / "x.pcap")], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode in (2, 3) and message in r.stderr and "Traceback" not in r.stderr


class _ClosedPeer:
    """The writer towards a TLS peer that has just closed: asyncio's SSL transport drops what is
    written to it from then on (its reader already holds the EOF; its pump has not run yet)."""

    def __init__(self) -> None:
        self.written = b""

    def is_closing(self) -> bool:
        return True

    def write(self, data: bytes) -> None:
        pass  # dropped, as asyncio's SSL transport drops writes once its peer closed

    async def drain(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False

    def close(self) -> None:
        pass


def test_bytes_read_after_a_tls_peer_closed_are_recorded_after_its_fin(tmp_path: Path) -> None:
    """The race behind a CI failure: the server's last bytes are read while the client's TLS close
    has shut its transport but the client's pump has not yet recorded the FIN. They never reach
    the client, so the recording shows the client's FIN before them and counts them as late."""
    import asyncio
    import io

    from spicetool.capture import LinkStageCuts, PcapWriter, Recording
    from spicetool.record.proxy import RecordingProxy, parse_hostport

    out = io.BytesIO()
    recording = Recording(out, PcapWriter(out))
    stream = recording.new_stream(("127.0.0.1", 40000), ("127.0.0.1", 5900), 1.0)
    stream.accept(1.0)
    proxy = RecordingProxy(parse_hostport(":1"), parse_hostport("127.0.0.1:1"), recording)

    async def race() -> None:  # the readers belong to the loop that runs the pump
        server_r, client_r = asyncio.StreamReader(), asyncio.StreamReader()
        server_r.feed_data(b"last ping")
        server_r.feed_eof()
        client_r.feed_eof()  # the client's close is in; its pump is still asleep
        await proxy._pump(server_r, _ClosedPeer(), client_r, stream, LinkStageCuts(), False)  # type: ignore[arg-type]

    asyncio.run(race())
    path = tmp_path / "race.pcap"
    path.write_bytes(out.getvalue())
    order = [("fin" if seg.flags & TCP_FIN else "data", seg.src.endswith(":40000"))
             for seg in open_capture(str(path)) if seg.flags & TCP_FIN or seg.payload]
    assert order[:2] == [("fin", True), ("data", False)], order
    assert stream.after_close[False] == len(b"last ping")


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_a_client_that_never_reads_holds_the_server_back(tmp_path: Path, tls: bool) -> None:
    """A server floods a client that reads nothing: the proxy stops reading from the server instead
    of buffering the flood (what the server got out is bounded by the sockets' buffers, the proxy's
    memory does not take it); once the client reads, every byte arrives in order, and the
    recording holds them all."""
    import socket
    import ssl
    import threading
    total = 48 << 20
    block = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(1024))  # 32 KiB
    flood = b"".join(hashlib.sha256(block + i.to_bytes(4, "big")).digest()[:1] + block[1:]
                     for i in range(total // len(block)))
    listen, target = peers.pick_port(range(6140, 6160)), peers.pick_port(range(6160, 6180))
    srv = socket.create_server(("127.0.0.1", target))
    sent, progress = [0], [time.monotonic()]

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            for off in range(0, total, 1 << 20):
                conn.sendall(flood[off:off + (1 << 20)])
                sent[0], progress[0] = off + (1 << 20), time.monotonic()
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(65536):
                pass
    threading.Thread(target=serve, daemon=True).start()
    rec_path = tmp_path / "flood.pcapng"
    with srv, Recorder(listen, target, rec_path, ["--tls-listen"] if tls else []) as rec:
        rss0 = _rss_kib(rec.proc.pid)
        client = socket.create_connection(("127.0.0.1", listen))
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            client = ctx.wrap_socket(client)
        with client:
            # the server's sends block once the buffers between it and the client are full
            peers.wait_until(lambda: sent[0] and time.monotonic() - progress[0] > 1.0, 60, "the server held back")
            held, grown = sent[0], _rss_kib(rec.proc.pid) - rss0
            got = bytearray()
            while chunk := client.recv(1 << 20):
                got += chunk
        assert rec.stop() == 0
    assert held < total // 2, f"the server got {held >> 20} MiB out to a client that read nothing"
    assert grown < 32 << 10, f"the proxy grew by {grown >> 10} MiB holding a stalled client's data"
    assert len(got) == total and got == flood, f"the client got {len(got)} of {total} bytes, or other bytes"
    [(_c, _s, up, down, flags)] = streams(rec_path)
    assert up == b"" and down == flood and "s:fin" in flags


def _rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")
