"""spicy and remote-viewer on an Xvfb: they connect to our server, show the model's picture
(found pixel-exact in a screenshot of the Xvfb), follow the animation, and what is typed into
them reaches our input log."""
from __future__ import annotations

import time

import numpy as np
from serve_helpers import (
    animate_and_follow,
    free_display,
    need,
    peers,
    spice_server,  # noqa: F401 (fixture)
    wait_for_picture,
)

SIZE = (640, 480)  # fits the 1280x900 Xvfb unscaled, window decorations and all


def test_spicy_shows_the_desktop_and_sends_typing(spice_server, tmp_path):
    need("spicy"), need("Xvfb"), need("xdotool"), need("xwd")
    srv = spice_server(size=SIZE)
    display = free_display()
    with peers.Xvfb(display), peers.Spicy(display, srv.port, min_channels=4) as spicy:
        # still picture first, then the animation runs through draws and stops; the window follows
        animate_and_follow(srv, display, tmp_path, fps=25, seconds=1.5)

        # no window manager on the Xvfb: focus by hand, then click into the display widget
        win = spicy.window_id()
        peers.xdotool(display, "windowfocus", "--sync", win)
        x, y = wait_for_picture(srv, display, tmp_path)
        peers.xdotool(display, "mousemove", str(x + 100), str(y + 50))
        peers.xdotool(display, "click", "1")
        peers.wait_until(lambda: any(e["event"] == "mouse_press" for e in srv.inputs()), 10, "click")
        positions = [e for e in srv.inputs() if e["event"] == "mouse_position"]
        # client mouse mode: absolute positions in desktop coordinates
        assert positions and (positions[-1]["x"], positions[-1]["y"]) == (100, 50)
        peers.xdotool(display, "type", "--delay", "60", "hello")
        peers.wait_until(lambda: "".join(e["key"] for e in srv.inputs() if e["event"] == "key_down")
                         .endswith("hello"), 10, "typed keys in the input log")
        downs = [e for e in srv.inputs() if e["event"] == "key_down"]
        assert [e["code"] for e in downs[-5:]] == [0x23, 0x12, 0x26, 0x26, 0x18]  # h e l l o
        ups = [e for e in srv.inputs() if e["event"] == "key_up"]
        assert [e["code"] & 0x7F for e in ups[-5:]] == [0x23, 0x12, 0x26, 0x26, 0x18]

        assert not [m for m in srv.messages if "internal error" in m]


def test_remote_viewer_shows_the_desktop(spice_server, tmp_path):
    need("remote-viewer"), need("Xvfb"), need("xwd")
    srv = spice_server(size=SIZE)
    display = free_display()
    with peers.Xvfb(display) as xvfb:
        viewer = peers.Program(["remote-viewer", f"spice://127.0.0.1:{srv.port}"], display, xvfb.dir)
        try:
            wait_for_picture(srv, display, tmp_path, timeout=30)
            srv.animate(fps=25)
            time.sleep(1.0)
            srv.pause()
            srv.wait_idle()
            wait_for_picture(srv, display, tmp_path)
            assert srv.sessions() == 1
        finally:
            viewer.stop()


def test_spicy_scrolls_with_copy_bits(spice_server, tmp_path):
    """The demo's log scrolls a line a second with COPY_BITS: spicy moves its own pixels and
    still shows exactly the model's picture."""
    from spicetool.qxl.commands import CopyBits
    need("spicy"), need("Xvfb"), need("xwd"), need("xdotool")
    srv = spice_server(size=(800, 600))
    scrolls: list = []
    srv.call(lambda: srv.device.listeners.append(lambda cmd: isinstance(cmd, CopyBits) and scrolls.append(cmd)))
    display = free_display()
    with peers.Xvfb(display, size="1600x1200x24"), peers.Spicy(display, srv.port, min_channels=4) as spicy:
        # the window 1:1 with the desktop (spicy scales to fit, and starts smaller than 800x600)
        peers.xdotool(display, "windowsize", "--sync", spicy.window_id(), "800", str(600 + 232))
        animate_and_follow(srv, display, tmp_path, fps=20, seconds=3.5)
    assert len(scrolls) >= 3


def test_spicy_draws_clipped_fills_and_copies(spice_server, tmp_path):
    """Draws clipped to rects, as the Linux KMS QXL driver sends its dirty-framebuffer copies:
    spicy draws only inside them, and its window equals the model's picture."""
    from spicetool.qxl.commands import PRIMARY_SURFACE, DrawCopy, DrawFill, Rect
    need("spicy"), need("Xvfb"), need("xwd")
    srv = spice_server(size=SIZE)
    display = free_display()
    photo = np.random.default_rng(5).integers(0, 256, (200, 300, 4), dtype=np.uint8)
    with peers.Xvfb(display), peers.Spicy(display, srv.port, min_channels=4):
        wait_for_picture(srv, display, tmp_path)

        def draw() -> None:
            srv.device.submit(DrawFill(PRIMARY_SURFACE, Rect(40, 40, 600, 440), 0x10A0F0,
                                       clip=(Rect(0, 0, 100, 480), Rect(300, 200, 640, 260))))
            srv.device.submit(DrawCopy(PRIMARY_SURFACE, Rect(200, 150, 500, 350), photo,
                                       clip=(Rect(200, 150, 260, 350), Rect(240, 300, 500, 320), Rect(450, 0, 640, 170))))
        srv.call(draw)
        srv.wait_idle()
        wait_for_picture(srv, display, tmp_path)
    fb = srv.framebuffer()   # and the clip mattered: filled inside it, not outside it
    assert list(fb[100, 50]) == [0x10, 0xA0, 0xF0] and list(fb[100, 200]) != [0x10, 0xA0, 0xF0]
