"""--replay: a real Xspice session's capture, decoded by dissect + render, fed through our model
to real clients, paced by its timestamps; every client ends on the captured session's final
picture, pixel for pixel, whenever it joined."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from serve_helpers import ROOT, free_display, need, peers, read_ppm
from serve_helpers import spice_server  # noqa: F401 (fixture)
from serve_helpers import wait_for_picture

CAPTURES = ROOT / "captures"


def capture(name: str) -> Path:
    path = CAPTURES / name
    if not path.exists():
        pytest.skip(f"{name} is not in captures/")
    return path


def truth(path: Path) -> np.ndarray:
    from spicetool.render.frames import picture_at
    return picture_at(str(path)).image


@pytest.mark.parametrize("name", ["img-glz.pcap", "img-auto-lz.pcap", "resize.pcapng"])
def test_replay_reaches_the_captured_picture(spice_server, tmp_path, name):
    need("spicy"), need("Xvfb"), need("spicy-screenshot")
    path = capture(name)
    expected = truth(path)
    srv = spice_server(replay=path, speed=5)
    display = free_display()
    # a screen big enough for a 1024x768 desktop plus spicy's menus, unscaled
    with peers.Xvfb(display, size="1600x1200x24"), peers.Spicy(display, srv.port, min_channels=4) as spicy:
        # spicy scales the desktop to its window: make the window exactly as wide as the
        # desktop (and taller, for the menus), so it shows it 1:1
        def fit_window() -> None:
            h, w = srv.framebuffer().shape[:2]
            peers.xdotool(display, "windowsize", "--sync", spicy.window_id(), str(w), str(h + 232))
        fit_window()
        time.sleep(1.0)                      # connected before the replay starts
        finished = srv.start_replay()
        assert finished.wait(60)
        srv.wait_idle()
        assert np.array_equal(srv.framebuffer(), expected)
        fit_window()                         # the desktop may have changed size
        wait_for_picture(srv, display, tmp_path)   # the client that watched it all
    # and one that joins at the end (no GLZ window or cache of the original session needed)
    shot = read_ppm(peers.spicy_screenshot(srv.port, tmp_path / "late.ppm"))
    assert np.array_equal(shot, expected)


def test_replay_pacing_and_loop(spice_server):
    path = capture("img-glz.pcap")
    srv = spice_server(replay=path, speed=5, loop=True)
    start = time.monotonic()
    srv.start_replay()
    peers.wait_until(lambda: srv.replay.rounds >= 2, 60, "two rounds")
    took = time.monotonic() - start
    from spicetool.render.frames import records_of
    recs = list(records_of(str(path)))
    span = recs[-1].time - srv.replay._first   # from the first complete picture to the end
    assert span > 2
    assert 2 * span / 5 * 0.9 <= took <= 2 * span / 5 + 20   # paced by the capture's clock


def test_replay_mid_session_capture(spice_server, tmp_path):
    need("spicy-screenshot")
    srv = spice_server(replay=capture("mid-session.pcap"), speed=50)
    assert srv.start_replay().wait(60)
    shot = read_ppm(peers.spicy_screenshot(srv.port, tmp_path / "m.ppm"))
    assert np.array_equal(shot, srv.framebuffer())


def test_replay_command_errors(tmp_path):
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"not a capture at all")
    r = subprocess.run([sys.executable, "-m", "spicetool", "serve", "--disable-ticketing", "--replay", str(bad)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 3 and "not a pcap or pcapng capture" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "spicetool", "serve", "--disable-ticketing", "--loop"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "go with --replay" in r.stderr


def test_replay_cursor(spice_server):
    """The captured cursor channel (a shape SET, then HIDEs) reaches a client as the same
    shape pixels and visibility."""
    from spicetool.render.session import SessionScreen
    from spicetool.render.frames import records_of
    path = capture("img-auto-lz.pcap")
    seen = []
    screen = SessionScreen(None, 0, cursor=False)
    for rec in records_of(str(path)):
        screen.feed(rec)
        if rec.channel.channel_type == 4 and rec.layer == "message" and rec.direction.name == "SERVER":
            seen.append((rec.type, screen.cursor.visible, screen.cursor.shape))
    shape = next(s for t, v, s in seen if t == "set" and s is not None)

    srv = spice_server(replay=path, speed=10)
    from serve_helpers import RawClient
    main = RawClient(srv.port)
    assert main.link() == "OK"
    sid = main.messages(0.2)[0].fields["session_id"]
    cur = RawClient(srv.port)
    assert cur.link(4, sid) == "OK"
    assert srv.start_replay().wait(60)
    got = [m for m in cur.messages(1.0) if m.name in ("init", "set", "move", "hide")]
    sets = [m for m in got if m.name == "set"]
    assert sets, [m.name for m in got]
    hdr = sets[0].fields["cursor"]["header"]
    assert (hdr["width"], hdr["height"]) == (shape.rgba.shape[1], shape.rgba.shape[0])
    sent = np.frombuffer(sets[0].fields["cursor"]["data"], np.uint8).reshape(hdr["height"], hdr["width"], 4)
    assert np.array_equal(sent[:, :, [2, 1, 0, 3]], shape.rgba)    # BGRA on the wire, RGBA in render
    assert got[-1].name == ("hide" if not seen[-1][1] else got[-1].name)
    assert srv.device.cursor.visible == screen.cursor.visible
