"""spicy-screenshot (spice-gtk, headless) against our server: the picture it writes is our
model's framebuffer, pixel for pixel; passwords are checked."""
from __future__ import annotations

import subprocess

import numpy as np

from serve_helpers import need, peers, read_ppm
from serve_helpers import spice_server  # noqa: F401 (fixture)


def screenshot(port: int, out, password: str | None = None) -> np.ndarray:
    need("spicy-screenshot")
    return read_ppm(peers.spicy_screenshot(port, out, password=password))


def test_screenshot_is_the_framebuffer(spice_server, tmp_path):
    srv = spice_server()
    shot = screenshot(srv.port, tmp_path / "a.ppm")
    fb = srv.framebuffer()
    assert shot.shape == fb.shape == (480, 640, 3)
    assert np.array_equal(shot, fb)
    assert len(np.unique(fb.reshape(-1, 3), axis=0)) > 1000  # text, bars: not a blank screen

    # The desktop moves on (fills, copies, cursor); a new client sees the new picture.
    srv.step(15)
    shot2 = screenshot(srv.port, tmp_path / "b.ppm")
    fb2 = srv.framebuffer()
    assert not np.array_equal(fb, fb2)
    assert np.array_equal(shot2, fb2)


def test_several_sizes(spice_server, tmp_path):
    srv = spice_server(size=(333, 211))  # odd sizes: no row padding assumptions
    assert np.array_equal(screenshot(srv.port, tmp_path / "c.ppm"), srv.framebuffer())


def test_password(spice_server, tmp_path):
    srv = spice_server(password=b"s3cret")
    need("spicy-screenshot")
    wrong = subprocess.run(["spicy-screenshot", "-h", "127.0.0.1", "-p", str(srv.port), "-w", "nope",
                            "-o", str(tmp_path / "no.ppm")], capture_output=True, text=True, timeout=30)
    assert wrong.returncode != 0
    assert not (tmp_path / "no.ppm").exists()
    # spice-gtk's SpiceChannelEvent 23 is SPICE_CHANNEL_ERROR_AUTH: it knows it was the password
    assert "main channel event: 23" in wrong.stderr
    assert any("PERMISSION_DENIED" in m for m in srv.messages)
    none = subprocess.run(["spicy-screenshot", "-h", "127.0.0.1", "-p", str(srv.port),
                           "-o", str(tmp_path / "none.ppm")], capture_output=True, text=True, timeout=30)
    assert none.returncode != 0 and not (tmp_path / "none.ppm").exists()
    assert "main channel event: 23" in none.stderr
    shot = screenshot(srv.port, tmp_path / "ok.ppm", password="s3cret")
    assert np.array_equal(shot, srv.framebuffer())
