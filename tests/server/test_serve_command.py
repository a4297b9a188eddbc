"""`spicetool serve` as users run it: a subprocess, real clients, clear one-line errors."""
from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from serve_helpers import ROOT, RawClient, free_port, need, peers, read_ppm

SERVE = [sys.executable, "-m", "spicetool", "serve"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(SERVE + list(args), capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("args, message", [
    ((), "exactly one of --password, --password-file or --disable-ticketing"),
    (("--password", "a", "--disable-ticketing"), "got --password, --disable-ticketing"),
    (("--password", "x" * 61), "at most 60 bytes"),
    (("--password-file", "/nonexistent/pw"), "cannot read --password-file"),
    (("--disable-ticketing", "--size", "big"), "is not WIDTHxHEIGHT"),
    (("--disable-ticketing", "--size", "10x10"), "outside 64x64"),
    (("--disable-ticketing", "--image-compression", "zstd"), "Invalid value for '--image-compression'"),
])
def test_usage_errors(args, message):
    r = run(*args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_help_has_examples():
    r = run("--help")
    assert r.returncode == 0 and "Examples:" in r.stdout and "spicetool serve --disable-ticketing" in r.stdout


def test_port_in_use():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = run("--disable-ticketing", "-p", str(s.getsockname()[1]))
    assert r.returncode == 1 and "cannot listen on" in r.stderr and "Traceback" not in r.stderr


def test_serve_subprocess_with_password_file(tmp_path):
    need("spicy-screenshot")
    port = free_port()
    (tmp_path / "pw").write_text("hunter2\n")
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        p = subprocess.Popen(SERVE + ["-p", str(port), "--password-file", str(tmp_path / "pw"), "--still",
                                      "--size", "800x600", "--input-log", str(tmp_path / "in.jsonl")],
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        peers.wait_until(lambda: peers.port_open(port), 20, "spicetool serve", p)
        # several clients at once, each its own session, all the same picture
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            shots = list(pool.map(lambda i: read_ppm(peers.spicy_screenshot(
                port, tmp_path / f"s{i}.ppm", password="hunter2")), range(3)))
        assert shots[0].shape == (600, 800, 3)
        assert all(np.array_equal(s, shots[0]) for s in shots)
        # client bytes in the server's log are shown as they are, never as rich markup
        bad = RawClient(port)
        bad.send(b"[/]x" + bytes(12))
        assert bad.link_reply(None)["error"] == "INVALID_MAGIC"
        c = RawClient(port)
        assert c.link(password=b"hunter2") == "OK"
        sessions = {c.messages(0.3)[0].fields["session_id"]}
        d = RawClient(port)
        assert d.link(password=b"hunter2") == "OK"
        sessions.add(d.messages(0.3)[0].fields["session_id"])
        assert len(sessions) == 2 and 0 not in sessions
    finally:
        os.killpg(p.pid, signal.SIGINT)
        p.wait(10)
    text = log.read_text()
    assert p.returncode == 0, text
    assert "password required" in text and "stopped;" in text and "Traceback" not in text
    assert "bad link magic b'[/]x'" in text


def test_a_truncated_capture_is_replayed_up_to_the_break_and_said_so(tmp_path):
    """A capture cut in the middle of a packet: serve replays what came before, says where the
    capture breaks off in one line, and holds the last picture for its clients."""
    need("spicy-screenshot")
    from spicetool.capture import open_capture
    from spicetool.render import picture_at
    path = ROOT / "captures" / "typing.pcapng"
    reader = open_capture(str(path))
    ends = [reader.bytes_read for _ in reader]     # where each packet ends in the file
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(path.read_bytes()[:ends[len(ends) * 4 // 5] + 10])   # 10 bytes into a packet
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        p = subprocess.Popen(SERVE + ["-p", str(port), "--disable-ticketing", "--speed", "50", "--replay", str(cut)],
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        peers.wait_until(lambda: "replay finished" in log.read_text(), 60, "the replay's end", p)
        shot = read_ppm(peers.spicy_screenshot(port, tmp_path / "end.ppm"))
    finally:
        os.killpg(p.pid, signal.SIGINT)
        p.wait(10)
    lines = log.read_text().splitlines()
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1 and "cut.pcapng: capture truncated" in warnings[0], lines
    assert "Traceback" not in log.read_text() and p.returncode == 0
    assert np.array_equal(shot, picture_at(str(cut)).image)   # the picture where the capture breaks off


def test_a_capture_that_breaks_off_before_any_picture(tmp_path):
    from spicetool.capture import open_capture
    path = ROOT / "captures" / "typing.pcapng"
    reader = open_capture(str(path))
    ends = [reader.bytes_read for _ in reader]
    cut = tmp_path / "early.pcapng"
    cut.write_bytes(path.read_bytes()[:ends[10] + 10])    # the link stage, and then it breaks off
    r = run("--disable-ticketing", "-p", str(free_port()), "--replay", str(cut))
    assert r.returncode == 3 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: {cut}: no display picture before it breaks off (capture truncated "), r.stderr
