"""`spicetool replay CAPTURE --to HOST:PORT`: our stack client replays the captured client's side.

Against our own `spicetool serve --replay` of the same capture the regenerated capture renders to
the original's final picture, the same on every run, and the server logs the captured inputs at
their captured pacing; against Xspice (a real spice-server) the typing of captures/typing.pcapng
reaches a real xterm. Ports 5970-5979 and X displays :70-:79 are this file's.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from serve_helpers import ROOT, peers
from support import need_program, read_ppm

CAPTURES = ROOT / "captures"
PORTS = range(5970, 5980)
DISPLAYS = range(70, 80)
SPICETOOL = [sys.executable, "-m", "spicetool"]


def replay(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(SPICETOOL + ["replay", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@contextlib.contextmanager
def serve(tmp: Path, *args: str):
    """`spicetool serve` in its own process group on a free port of ours; yields (port, log path)."""
    port = peers.pick_port(PORTS)
    log = tmp / f"serve-{port}.log"
    with open(log, "w") as out:
        p = subprocess.Popen(SPICETOOL + ["serve", "-p", str(port), *map(str, args)], stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
    try:
        peers.wait_until(lambda: peers.port_open(port), 60, "spicetool serve", p)
        yield port, log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGINT)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)


def last_picture(path: Path) -> np.ndarray:
    """What `spicetool render --last` shows (a capture that never completes a picture, as
    mid-session: its last state)."""
    from spicetool.render import frames, picture_at
    last = None
    for f in frames(str(path)):
        last = f.image
    return last if last is not None else picture_at(str(path)).image


def distinct_pictures(path: Path, min_seconds: float = 0.02) -> list[bytes]:
    """Digests of the pictures a capture shows one after another, leaving out blank ones and those
    replaced within `min_seconds` (a band update split over segments shows half-drawn for a moment)."""
    from spicetool.render import frames
    pics: list[tuple[bytes, float, bool]] = []
    for f in frames(str(path)):
        digest = hashlib.sha1(f.image.tobytes()).digest()
        if not pics or pics[-1][0] != digest:
            pics.append((digest, f.time, bool(np.all(f.image == f.image[0, 0]))))
    ends = [t for _, t, _ in pics[1:]] + [float("inf")]
    return [d for (d, t, blank), end in zip(pics, ends) if not blank and end - t >= min_seconds]


def records(path: Path) -> list:
    """Every record the dissector finds in a capture."""
    from spicetool.capture import open_records
    return list(open_records(path))


def client_messages(path: Path, channel: str) -> list[tuple[str, dict, float]]:
    """(name, fields, time) of what the client sent on one channel, answers to the server left out."""
    return [(r.type, r.fields, r.time) for r in records(path)
            if r.channel.channel == channel and r.direction.value == "client" and r.layer == "message"
            and r.type not in ("ack", "ack_sync", "pong")]


SERVED = {"main", "display", "inputs", "cursor"}   # the channels `spicetool serve` has


def check_summary(stdout: str, new: Path) -> set[str]:
    """Each summary line's figures are what the regenerated capture holds; returns the channels."""
    from collections import Counter

    from spicetool.capture import open_capture
    messages: Counter = Counter()
    endpoints: dict[str, str] = {}
    for r in records(new):
        name = f"{r.channel.channel}:{r.channel.channel_id}"
        endpoints[r.channel.client] = name
        if r.layer == "message":
            messages[name, r.direction.value] += 1
    payload: Counter = Counter()
    for seg in open_capture(str(new)):
        if seg.src in endpoints:
            payload[endpoints[seg.src], "client"] += len(seg.payload)
        elif seg.dst in endpoints:
            payload[endpoints[seg.dst], "server"] += len(seg.payload)
    seen = set()
    for line in stdout.splitlines()[:-1]:
        m = re.fullmatch(r"(\S+)\s+sent (\d+) messages, (\d+) bytes \(\d+ replayed, \d+ answers\); "
                         r"received (\d+) messages, (\d+) bytes", line)
        assert m, line
        name, sent, sent_bytes, got, got_bytes = m.group(1), *map(int, m.groups()[1:])
        assert (sent, got) == (messages[name, "client"], messages[name, "server"]), line
        assert (sent_bytes, got_bytes) == (payload[name, "client"], payload[name, "server"]), line
        seen.add(name.split(":")[0])
    return seen


SETTLE_S = 2.0


def regenerate(tmp: Path, capture: Path, name: str, speed: float = 1.0) -> tuple[Path, list[dict]]:
    """Serve the capture, replay its client to it, return the new capture and the server's input log."""
    new, inputs = tmp / f"{name}.pcapng", tmp / f"{name}-inputs.jsonl"
    with serve(tmp, "--disable-ticketing", "--replay", capture, "--speed", speed,
               "--input-log", inputs) as (port, log):
        # a loaded machine: our server may still be encoding its last pictures after a short quiet
        r = replay(capture, "--to", f"127.0.0.1:{port}", "-w", new, "--speed", speed, "--settle", SETTLE_S)
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
        assert "replay finished" in log.read_text(), "the server's replay outlasted the client"
    captured = {ch for ch, _, _ in channels_of(capture)} | {"main"}
    assert check_summary(r.stdout, new) == captured & SERVED
    assert r.stdout.splitlines()[-1].startswith("replayed session 1 of ")
    return new, [json.loads(ln) for ln in inputs.read_text().splitlines() if ln]


def channels_of(path: Path) -> set[tuple[str, int, str]]:
    return {(r.channel.channel, r.channel.channel_id, r.direction.value) for r in records(path)}


# ----------------------------------------------------------------------------- our own server

@pytest.mark.parametrize("name, speed", [
    ("typing.pcapng", 1.0), ("img-glz.pcap", 2.0), ("resize.pcapng", 2.0), ("img-lz4.pcapng", 2.0),
    ("agent-audio.pcapng", 2.0), ("mid-session.pcap", 1.0),
])
def test_regenerated_session_renders_the_same_final_picture(tmp_path, name, speed):
    original = CAPTURES / name
    new, inputs = regenerate(tmp_path, original, "new", speed)
    expected = last_picture(original)
    got = last_picture(new)
    assert got.shape == expected.shape
    assert np.array_equal(got, expected), f"{np.count_nonzero(np.any(got != expected, axis=2))} pixels differ"
    # and on the way there only pictures the original showed, in its order (mid-session.pcap
    # never completes a picture of its own: render shows none to compare with)
    shown = distinct_pictures(original, min_seconds=0)
    if shown:
        rest = iter(shown)
        assert all(p in rest for p in distinct_pictures(new)), "a picture the original never showed"
    # the server received every captured input, in order, with the captured values
    sent = [(n, f) for n, f, _ in client_messages(original, "inputs")]
    logged = [(e["event"], e) for e in inputs]
    assert len(logged) == len(sent) > 0
    for (name, fields), (event, entry) in zip(sent, logged):
        assert name == event
        if name == "key_scancode":
            assert entry["scancodes"] == fields["data"].hex()
        elif name == "mouse_position":
            assert (entry["x"], entry["y"]) == (fields["x"], fields["y"])


def elapsed(r: subprocess.CompletedProcess) -> float:
    return float(r.stdout.splitlines()[-1].split(" in ")[1].split(" s")[0])


def test_settle_is_how_long_the_client_waits_for_a_quiet_server(tmp_path):
    """typing.pcapng at 50x (its client side lasts well under a second): the client leaves once our
    server, holding its last picture, has been quiet for --settle seconds, not before."""
    with serve(tmp_path, "--disable-ticketing", "--replay", CAPTURES / "typing.pcapng") as (port, _):
        short = replay(CAPTURES / "typing.pcapng", "--to", f"127.0.0.1:{port}", "--speed", 50, "--settle", 0.2)
        long = replay(CAPTURES / "typing.pcapng", "--to", f"127.0.0.1:{port}", "--speed", 50, "--settle", 3)
    assert short.returncode == long.returncode == 0, (short.stderr, long.stderr)
    assert elapsed(long) >= 3.0 > elapsed(short), (short.stdout, long.stdout)


def test_agent_file_transfer_arrives(tmp_path):
    """agent-file-transfer.pcapng to `serve --agent-dir`: AGENT_START, the capabilities, the file's
    FILE_XFER_START/DATA within the new server's agent tokens; the file lands intact."""
    original = CAPTURES / "agent-file-transfer.pcapng"
    want = json.loads(original.with_suffix(".json").read_text())
    received = tmp_path / "received"
    received.mkdir()
    new = tmp_path / "ft.pcapng"
    with serve(tmp_path, "--disable-ticketing", "--replay", original, "--agent-dir", received) as (port, _):
        r = replay(original, "--to", f"127.0.0.1:{port}", "-w", new)
    assert r.returncode == 0, r.stderr
    files = list(received.iterdir())
    assert len(files) == 1
    assert hashlib.sha256(files[0].read_bytes()).hexdigest() == want["file_transfer"]["sha256"]
    # the guest agent's answers are in the regenerated capture
    status = [r.fields["result"] for r in records(new)
              if r.type == "vd_agent_file_xfer_status"]
    assert status == ["CAN_SEND_DATA", "SUCCESS"]


def test_replay_is_deterministic_and_keeps_the_captured_pacing(tmp_path):
    original = CAPTURES / "typing.pcapng"
    runs = [regenerate(tmp_path, original, f"run{i}") for i in range(2)]
    pictures = [last_picture(new) for new, _ in runs]
    assert np.array_equal(pictures[0], pictures[1])
    assert np.array_equal(pictures[0], last_picture(original))
    # the frames: every picture a run shows (for longer than a passing partial update) is one
    # the original showed, in the original's order, ending on its final picture
    shown = distinct_pictures(original, min_seconds=0)
    for new, _ in runs:
        seen = distinct_pictures(new)
        assert len(seen) >= 20 and seen[-1] == shown[-1]
        rest = iter(shown)
        assert all(p in rest for p in seen), "a picture the original never showed, or out of order"
    # the same client messages on every run, as captured (display init, keys, mouse, main)
    for channel in ("main", "display", "inputs"):
        want = [(n, f) for n, f, _ in client_messages(original, channel)]
        for new, _ in runs:
            assert [(n, f) for n, f, _ in client_messages(new, channel)] == want, channel
    # pacing: each input arrives at the server at its captured offset from the first one
    captured = [t for _, _, t in client_messages(original, "inputs")]
    for _, inputs in runs:
        wall = [e["wall"] for e in inputs]
        lag = [(w - wall[0]) - (c - captured[0]) for w, c in zip(wall, captured)]
        assert max(abs(x) for x in lag) < 0.25, lag


def test_regenerated_capture_reads_in_tshark(tmp_path):
    tshark = need_program("tshark")
    new, _ = regenerate(tmp_path, CAPTURES / "img-glz.pcap", "glz", 4.0)
    out = subprocess.run([tshark, "-r", str(new), "-Y", "spice", "-T", "fields", "-e", "_ws.col.Info"],
                         capture_output=True, text=True, timeout=60).stdout
    assert "Client link message" in out and "Server INIT" in out and "DRAW_COPY" in out
    bad = subprocess.run([tshark, "-r", str(new), "-Y", "_ws.malformed"], capture_output=True, text=True,
                         timeout=60).stdout
    assert bad.strip() == ""


def test_wrong_password_reports_the_link_error(tmp_path):
    with serve(tmp_path, "--password", "right-pw", "--replay", CAPTURES / "password.pcap") as (port, _):
        bad = replay(CAPTURES / "password.pcap", "--to", f"127.0.0.1:{port}", "--password", "wrong")
        (tmp_path / "pw").write_text("right-pw\n")
        good = replay(CAPTURES / "password.pcap", "--to", f"127.0.0.1:{port}", "--password-file",
                      tmp_path / "pw", "--speed", 8, "-q", "-w", tmp_path / "good.pcap")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == ["error: main:0: the server refused the link: PERMISSION_DENIED"]
    assert (good.returncode, good.stdout, good.stderr) == (0, "", "")   # -q: errors only
    # .pcap: a classic pcap, every channel linked with the password
    assert (tmp_path / "good.pcap").read_bytes()[:4] == bytes.fromhex("d4c3b2a1")
    results = [r.fields["error"] for r in records(tmp_path / "good.pcap") if r.type == "link_result"]
    assert results == ["OK"] * 4


# ----------------------------------------------------------------------------- a real spice-server

def _xterm_geometry(display: int, window: str) -> tuple[int, int, int, int]:
    """(x, y, width, height) of a window on the root, from xdotool."""
    out = peers.xdotool(display, "getwindowgeometry", "--shell", window)
    g = dict(line.split("=", 1) for line in out.split() if "=" in line)
    return int(g["X"]), int(g["Y"]), int(g["WIDTH"]), int(g["HEIGHT"])


def test_typing_reaches_a_real_xterm_behind_xspice(tmp_path):
    """typing.pcapng replayed to Xspice with the recording's xterm: the typed command runs (the
    shell's history has it) and the xterm shows what the ground truth shows."""
    for program in ("Xorg", "xterm", "xdotool", "xsetroot", "xwd", "convert"):
        need_program(program)
    sys.path.insert(0, str(ROOT / "scripts"))
    import record_corpus

    meta = json.loads((CAPTURES / "typing.json").read_text())
    server = meta["server"]
    home = tmp_path / "home"
    home.mkdir()
    history = tmp_path / "history"
    # the recording's environment, plus a history file the shell appends each command to
    env = {**record_corpus.clean_env(home), "HISTFILE": str(history), "PROMPT_COMMAND": "history -a"}
    settings = peers.XspiceSettings(port=peers.pick_port(PORTS), display=peers.pick_display(DISPLAYS),
                                    image_compression=server["image_compression"],
                                    jpeg_wan_compression=server["jpeg_wan_compression"],
                                    zlib_glz_wan_compression=server["zlib_glz_wan_compression"],
                                    streaming_video=server["streaming_video"])
    with peers.Xspice(settings, tmp_path) as xs:
        d = xs.display
        subprocess.run(["xsetroot", "-display", f":{d}", "-solid", "#2f4f6f"], check=True)
        xterm = peers.Program(record_corpus.PROGRAMS["xterm"][0], d, tmp_path, name="xterm", env=env)
        try:
            peers.wait_until(lambda: record_corpus.window_of(d, xterm) is not None, 20, "xterm window",
                             xterm.proc, interval=0.2)
            window = record_corpus.window_of(d, xterm)
            # as in the recording: the guest gives the xterm the keyboard focus, the client types
            peers.xdotool(d, "windowfocus", "--sync", window)
            x, y, w, h = _xterm_geometry(d, window)
            time.sleep(1.0)  # the shell prints its listing and its prompt
            before = read_ppm(xs.screenshot(tmp_path / "before.png"))
            r = replay(CAPTURES / "typing.pcapng", "--to", f"127.0.0.1:{xs.port}", "-w", tmp_path / "xspice.pcapng")
            assert r.returncode == 0, r.stderr
            peers.wait_until(lambda: history.exists() and history.read_text().strip(), 10, "the shell's history")
            time.sleep(0.5)
            after = read_ppm(xs.screenshot(tmp_path / "after.png"))
            pointer = dict(kv.split("=", 1) for kv in peers.xdotool(d, "getmouselocation", "--shell").split())
        finally:
            xterm.stop()
    assert history.read_text().splitlines() == [meta["typed_text"]]
    # the mouse too: the X pointer is where the captured client last put it (client mouse mode)
    last = [f for n, f, _ in client_messages(CAPTURES / "typing.pcapng", "inputs") if n == "mouse_position"][-1]
    assert (int(pointer["X"]), int(pointer["Y"])) == (last["x"], last["y"])
    truth = read_ppm(CAPTURES / "typing.png")
    region = (slice(y, y + h), slice(x, x + w))
    assert not np.array_equal(before[region], truth[region])   # the check can tell typing from none
    assert np.array_equal(after[region], truth[region]), \
        f"{np.count_nonzero(np.any(after[region] != truth[region], axis=2))} xterm pixels differ from typing.png"
    # Xspice's answers are in the regenerated capture: the client saw the same desktop, except the
    # X pointer, which Xspice draws into what it sends (xwd leaves it out)
    seen = last_picture(tmp_path / "xspice.pcapng")
    ys, xs_ = np.nonzero(np.any(seen != after, axis=2))
    assert ys.size == 0 or (np.ptp(xs_) < 32 and np.ptp(ys) < 32), \
        f"{ys.size} pixels differ in {xs_.min()}..{xs_.max()} x {ys.min()}..{ys.max()}"


def test_xspice_refuses_a_wrong_password(tmp_path):
    """A real spice-server with ticketing: the wrong password is its PERMISSION_DENIED, the right
    one (the recording's, from password.json) links every channel."""
    need_program("Xorg")
    password = json.loads((CAPTURES / "password.json").read_text())["server"]["password"]
    settings = peers.XspiceSettings(port=peers.pick_port(PORTS), display=peers.pick_display(DISPLAYS),
                                    password=password)
    with peers.Xspice(settings, tmp_path) as xs:
        bad = replay(CAPTURES / "password.pcap", "--to", f"127.0.0.1:{xs.port}", "--password", "not-" + password)
        good = replay(CAPTURES / "password.pcap", "--to", f"127.0.0.1:{xs.port}", "--password", password,
                      "--speed", 8)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "error: main:0: the server refused the link: PERMISSION_DENIED"
    assert good.returncode == 0, good.stderr
    assert sorted(ln.split()[0] for ln in good.stdout.splitlines()[:-1]) == \
        ["cursor:0", "display:0", "inputs:0", "main:0"]


def test_qemu_links_all_nine_channels(tmp_path):
    """qemu-channels.pcapng to a real QEMU set up as the recording was: every captured channel
    links (usbredir, port, webdav, audio too), the client's usbredir hello and port events are
    resent and QEMU answers them, and the regenerated session ends on QEMU's screendump."""
    need_program("qemu-system-x86_64")
    settings = peers.QemuSettings(port=peers.pick_port(PORTS), monitor=str(tmp_path / "monitor"))
    truth = read_ppm(CAPTURES / "qemu-channels.png")
    new = tmp_path / "qemu.pcapng"
    with peers.Qemu(settings, tmp_path) as qemu:
        # the firmware's last screen first, so that the session ends on it however slow the boot
        peers.wait_until(lambda: _same_but_cursor(read_ppm(qemu.screendump(tmp_path / "now.png")), truth), 60,
                         "QEMU's \"No bootable device\" screen", qemu.proc, interval=0.5)
        r = replay(CAPTURES / "qemu-channels.pcapng", "--to", f"127.0.0.1:{qemu.port}", "-w", new, "--speed", 2)
    assert r.returncode == 0, r.stderr
    captured = {f"{c}:{i}" for c, i, _ in channels_of(CAPTURES / "qemu-channels.pcapng")}
    assert len(captured) == 9
    assert {ln.split()[0] for ln in r.stdout.splitlines()[:-1]} == captured
    check_summary(r.stdout, new)
    got = {(r.channel.channel, r.direction.value, r.type) for r in records(new)
           if r.layer == "message"}
    for channel in ("usbredir", "port", "webdav"):  # resent as captured, byte for byte
        sent = [(n, f) for n, f, _ in client_messages(new, channel)]
        assert sent == [(n, f) for n, f, _ in client_messages(CAPTURES / "qemu-channels.pcapng", channel)]
        assert sent
    assert ("usbredir", "server", "data") in got and ("port", "server", "init") in got
    assert _same_but_cursor(last_picture(new), truth)


def _same_but_cursor(picture: np.ndarray, truth: np.ndarray) -> bool:
    """Equal, but for the text cursor, which blinks in one character cell (9x16) of QEMU's text
    screen (the PNG was taken with the guest paused in one phase of it)."""
    if picture.shape != truth.shape:
        return False
    ys, xs = np.nonzero(np.any(picture != truth, axis=2))
    return ys.size == 0 or (np.ptp(xs) < 9 and np.ptp(ys) < 16)


# ----------------------------------------------------------------------------- bad input

class MisbehavingServer:
    """One connection served by a script: the link stage built by the stack (a real RSA key), then
    whatever bad thing the test wants. Runs in a thread on a port of ours."""

    def __init__(self, after_link):
        import socket
        import threading
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        self.after_link = after_link
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
        self.der = key.public_bytes(serialization.Encoding.DER,   # made before the client's clock runs
                                    serialization.PublicFormat.SubjectPublicKeyInfo)
        self.sock = socket.create_server(("127.0.0.1", peers.pick_port(PORTS)))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        from spicetool.stack import ServerLink
        link = ServerLink(self.der, lambda ticket: True,
                          common_caps=["protocol_auth_selection", "auth_spice", "mini_header"])
        conn, _ = self.sock.accept()
        with conn:
            f = conn.makefile("rb")
            while link.mess is None:   # the LinkMess
                data = f.read1(65536)
                if not data or link.receive_data(data) and link.done:
                    return
            if self.after_link is None:  # a server that never answers
                f.read(1)
                return
            if isinstance(self.after_link, bytes):  # answers with these bytes
                conn.sendall(self.after_link)
                f.read(1)
                return
            conn.sendall(link.data_to_send())
            while not link.done:   # auth mechanism, ticket
                data = f.read1(65536)
                if not data:
                    return
                link.receive_data(data)
            if link.accepted is None:
                return
            conn.sendall(link.data_to_send())
            self.after_link(conn, f)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


def _half_init(conn, f) -> None:
    from spicetool.stack import Direction, build_message
    init = build_message(1, Direction.SERVER, "init", {
        "session_id": 7, "display_channels_hint": 1, "supported_mouse_modes": 1, "current_mouse_mode": 1,
        "agent_connected": 0, "agent_tokens": 0, "multi_media_time": 0, "ram_hint": 0})
    conn.sendall(init[:len(init) // 2])  # and close in the middle of it


def _absurd_size(conn, f) -> None:
    from spicetool.stack.headers import pack_mini_header
    conn.sendall(pack_mini_header(103, 0x7FFFFFFF) + bytes(64))
    f.read(1)  # stays open: the size alone must end it


@pytest.mark.parametrize("behaviour, error", [
    (_half_init, "error: main:0: the server closed the connection, "),
    (_absurd_size, "error: main:0: the server sent undecodable data (message type 103 claims 2147483647 bytes"),
    (None, "error: main:0: no link reply from the server within 1 s"),
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "error: main:0: bad link stage from the server: bad link magic"),
], ids=["closes-mid-message", "absurd-size", "silent", "not-spice"])
def test_misbehaving_server(behaviour, error):
    server = MisbehavingServer(behaviour)
    try:
        r = replay(CAPTURES / "typing.pcapng", "--to", f"127.0.0.1:{server.port}", "--connect-timeout", 1,
                   timeout=30)
    finally:
        server.close()
    assert r.returncode == 1
    assert r.stderr.startswith(error), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_connection_refused():
    port = peers.pick_port(PORTS)  # free: nothing listens there
    r = replay(CAPTURES / "typing.pcapng", "--to", f"127.0.0.1:{port}")
    assert r.returncode == 1
    assert r.stderr.strip() == f"error: cannot connect to 127.0.0.1:{port}: Connection refused"


def _server_side_only(src: Path, dst: Path) -> None:
    """The capture with every client-to-server segment dropped (what a one-sided tap sees)."""
    from spicetool.capture import PcapWriter, open_capture
    with open(dst, "wb") as out:
        w = PcapWriter(out)
        for seg in open_capture(str(src)):
            if not seg.dst.endswith(":5916"):
                w.segment(seg.time, seg.src, seg.dst, seg.seq, seg.ack, seg.flags, seg.payload)


@pytest.mark.parametrize("what", ["server-only", "truncated", "not-a-capture", "no-such-session"])
def test_capture_without_client_side(tmp_path, what):
    bad = tmp_path / "bad.pcap"
    extra: tuple = ()
    if what == "no-such-session":
        bad, extra = CAPTURES / "typing.pcapng", ("--session", "2")
    elif what == "server-only":
        _server_side_only(CAPTURES / "typing.pcapng", bad)
    elif what == "truncated":
        bad.write_bytes((CAPTURES / "typing.pcapng").read_bytes()[:300])
    else:
        bad.write_bytes(b"hello, this is no capture\n" * 10)
    r = replay(bad, "--to", "127.0.0.1:5979", *extra)  # fails before connecting
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("error: ")


@pytest.mark.parametrize("args, message", [
    (("--to", "nowhere"), "is not HOST:PORT"),
    (("--to", "127.0.0.1:5979", "--password", "a", "--password-file", "/etc/hostname"), "not both"),
    (("--to", "127.0.0.1:5979", "--password", "x" * 61), "at most 60 bytes"),
    (("--to", "127.0.0.1:5979", "--speed", "0"), "--speed"),
])
def test_usage_errors(args, message):
    r = replay(CAPTURES / "typing.pcapng", *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_help_has_examples():
    r = subprocess.run(SPICETOOL + ["replay", "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "Examples:" in r.stdout and "spicetool replay typing.pcapng --to" in r.stdout
