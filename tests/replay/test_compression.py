"""Images compressed by our Rust encoders, decoded by spice-gtk: still pixel-exact, whether the
server setting or the client's preferred compression chooses the codec."""
from __future__ import annotations

import time

import numpy as np
import pytest

from serve_helpers import free_display, need, peers, read_ppm
from serve_helpers import spice_server  # noqa: F401 (fixture)
from test_viewers import wait_for_picture

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
