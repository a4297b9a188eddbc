"""Images compressed by our Rust encoders, decoded by spice-gtk: still pixel-exact, whether the
server setting or the client's preferred compression chooses the codec."""
from __future__ import annotations

import time

import numpy as np
import pytest

from serve_helpers import free_display, need, peers, read_ppm
from serve_helpers import spice_server  # noqa: F401 (fixture)
from serve_helpers import wait_for_picture

TYPES = {"quic": "QUIC", "lz": "LZ_RGB", "glz": "GLZ_RGB", "lz4": "LZ4"}


@pytest.mark.parametrize("compression", ["quic", "lz", "glz", "lz4"])
def test_server_setting(spice_server, tmp_path, compression):
    need("spicy-screenshot")
    srv = spice_server()
    srv.server.image_compression = compression
    srv.step(5)
    shot = read_ppm(peers.spicy_screenshot(srv.port, tmp_path / "s.ppm"))
    assert np.array_equal(shot, srv.framebuffer())
    assert srv.server.stats["images_" + TYPES[compression]] >= 1


@pytest.mark.parametrize("compression", ["quic", "lz", "glz", "lz4"])
def test_client_preference_while_animating(spice_server, tmp_path, compression):
    need("spicy"), need("Xvfb"), need("xwd")
    srv = spice_server(size=(640, 480))
    display = free_display()
    with peers.Xvfb(display), peers.Spicy(display, srv.port, preferred_compression=compression,
                                          min_channels=4):
        wait_for_picture(srv, display, tmp_path)
        srv.animate(fps=30)
        time.sleep(2.0)     # GLZ: later images match into earlier ones in the client's window
        srv.pause()
        srv.wait_idle()
        wait_for_picture(srv, display, tmp_path)
    assert srv.server.stats["images_" + TYPES[compression]] > 20



@pytest.mark.parametrize("setting, other", [("auto_glz", "GLZ_RGB"), ("auto_lz", "LZ_RGB")])
def test_auto_settings_send_photos_as_quic(spice_server, tmp_path, setting, other):
    """A replayed session with photo-like pictures: spicy shows every picture exactly, the
    photos went as QUIC and the rest as GLZ/LZ (as spice-server sent that session)."""
    need("spicy"), need("Xvfb"), need("xwd"), need("xdotool")
    from pathlib import Path
    capture = Path(__file__).resolve().parents[2] / "captures" / "img-auto-glz.pcapng"
    srv = spice_server(replay=capture, speed=4)
    srv.server.image_compression = setting
    display = free_display()
    with peers.Xvfb(display, size="1600x1200x24"), peers.Spicy(display, srv.port, min_channels=4) as spicy:
        time.sleep(1.0)     # connected before the replay starts
        assert srv.start_replay().wait(60)
        srv.wait_idle()
        h, w = srv.framebuffer().shape[:2]   # the window 1:1 with the desktop (spicy scales to fit)
        peers.xdotool(display, "windowsize", "--sync", spicy.window_id(), str(w), str(h + 232))
        wait_for_picture(srv, display, tmp_path)
    assert srv.server.stats["images_QUIC"] >= 1 and srv.server.stats["images_" + other] >= 10, srv.server.stats
