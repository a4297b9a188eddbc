"""Acceptance: for every capture of the corpus and the fresh ones the suite records with other
settings (the `capture` fixture), spicy-screenshot against `serve --replay CAPTURE` started at its
end writes the capture's final picture (render --last), pixel for pixel."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from serve_helpers import ROOT, free_port, need, peers, read_ppm
from serve_helpers import spice_server  # noqa: F401 (fixture)



def last_picture(path) -> np.ndarray:
    """What `spicetool render --last` shows: the last picture of spicetool.render.frames."""
    from spicetool.render.frames import frames, picture_at
    last = None
    for f in frames(str(path)):
        last = f.image
    if last is None:  # a capture that never completes a picture (mid-session): its last state
        last = picture_at(str(path)).image
    return last


def test_screenshot_of_replay_end_is_the_last_picture(spice_server, tmp_path, capture):
    need("spicy-screenshot")
    path = capture
    expected = last_picture(path)
    srv = spice_server(replay=path, start=float("inf"))
    assert srv.start_replay().wait(30)   # nothing left to play
    shot = read_ppm(peers.spicy_screenshot(srv.port, tmp_path / "end.ppm"))
    assert shot.shape == expected.shape
    assert np.array_equal(shot, expected), f"{np.count_nonzero(np.any(shot != expected, axis=2))} pixels differ"


def test_from_to_pause_at_on_the_command_line(tmp_path):
    """The real command: --from end shows the last picture; --to stops early (a different
    picture from the end); --pause-at holds until SIGUSR1."""
    need("spicy-screenshot")
    path = ROOT / "captures" / "resize.pcapng"
    if not path.exists():
        pytest.skip("resize.pcapng is not in captures/")
    from spicetool.render.frames import picture_at

    def serve(*args):
        port = free_port()
        p = subprocess.Popen([sys.executable, "-m", "spicetool", "serve", "--disable-ticketing", "-p", str(port),
                              "--replay", str(path), *args], stderr=subprocess.PIPE, text=True)
        peers.wait_until(lambda: not peers.port_free(port) or p.poll() is not None, 30, "serve listening")
        assert p.poll() is None, p.stderr.read()
        return p, port

    p, port = serve("--from", "end")
    try:
        assert np.array_equal(read_ppm(peers.spicy_screenshot(port, tmp_path / "a.ppm")), last_picture(path))
    finally:
        p.send_signal(signal.SIGINT), p.wait(10)

    frames = [f for f in __import__("spicetool.render.frames", fromlist=["frames"]).frames(str(path))]
    mid = frames[len(frames) // 2]
    assert not np.array_equal(mid.image, frames[-1].image)
    p, port = serve("--to", f"{mid.time + 0.001}", "--speed", "1000")
    try:
        want = picture_at(str(path), mid.time + 0.001).image
        time.sleep(1.5)
        shot = read_ppm(peers.spicy_screenshot(port, tmp_path / "b.ppm"))
        assert np.array_equal(shot, want)
    finally:
        p.send_signal(signal.SIGINT), p.wait(10)

    p, port = serve("--pause-at", f"{mid.time + 0.001}", "--speed", "1000")
    try:
        time.sleep(1.5)
        assert np.array_equal(read_ppm(peers.spicy_screenshot(port, tmp_path / "c.ppm")),
                              picture_at(str(path), mid.time + 0.001).image)
        p.send_signal(signal.SIGUSR1)
        time.sleep(1.5)
        assert np.array_equal(read_ppm(peers.spicy_screenshot(port, tmp_path / "d.ppm")), last_picture(path))
    finally:
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=10)
    assert "held at" in err
    r = subprocess.run([sys.executable, "-m", "spicetool", "serve", "--disable-ticketing", "--replay", str(path),
                        "--from", "5", "--to", "2"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "before --from" in r.stderr
