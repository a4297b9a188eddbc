"""A replay left looping keeps flat memory: what a round decoded (its session decoder, screen,
canvas with the surfaces and GLZ window) goes at the round's end, by reference counting, not
at the next full garbage collection (which a server holding many objects runs seldom: the
rounds piled up, ~10 MiB each for long-desktop); and the pictures stay exact round after round.

The counts are taken with the cycle collector off, so anything a round leaves in a reference
cycle stays visible (and counted) until the test ends."""
from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from serve_helpers import ROOT, free_display, need, peers, wait_for_picture
from serve_helpers import spice_server  # noqa: F401 (fixture)

from spicetool.capture.sessions import SessionDecoder
from spicetool.qxl.device import QxlDevice
from spicetool.render.canvas import Canvas
from spicetool.render.session import SessionScreen
from spicetool.replay.timeline import Timeline

CAPTURES = ROOT / "captures"
ROUND_KINDS = (SessionDecoder, SessionScreen, Canvas)   # what each round of a loop makes anew


def capture(name: str) -> Path:
    path = CAPTURES / name
    if not path.exists():
        pytest.skip(f"{name} is not in captures/")
    return path


@contextmanager
def no_cycle_collection():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def alive() -> dict[str, int]:
    """Live objects of each kind a round makes (gc.get_objects does not collect)."""
    counts = dict.fromkeys((k.__name__ for k in ROUND_KINDS), 0)
    for o in gc.get_objects():
        for k in ROUND_KINDS:
            if isinstance(o, k):
                counts[k.__name__] += 1
    return counts


def test_a_looping_timeline_holds_one_round_of_decoding():
    from spicetool.render.frames import picture_at
    path = capture("img-glz.pcap")
    expected = picture_at(str(path)).image
    device = QxlDevice()
    with no_cycle_collection():
        before = alive()
        starts, ends = [], 0   # what is alive at each round's first picture
        for frame in Timeline(str(path), loop=True).frames():
            if frame.first:
                starts.append({k: n - before[k] for k, n in alive().items()})
            for c in frame.commands:
                device.submit(c)
            if frame.end:
                ends += 1
                assert np.array_equal(device.framebuffer_rgb(), expected), f"round {ends}"
                if ends == 4:
                    break
    assert all(n >= 1 for n in starts[0].values())   # the round being played holds its own
    # and nothing of the rounds before it: at round 4 as much as at round 1
    assert starts == [starts[0]] * 4


def test_served_loop_keeps_one_round_and_the_watching_client_exact(spice_server, tmp_path):
    need("spicy"), need("Xvfb")
    path = capture("img-glz.pcap")
    display = free_display()
    with no_cycle_collection():
        before = alive()
        srv = spice_server(replay=path, speed=50, loop=True)
        with peers.Xvfb(display, size="1600x1200x24"), peers.Spicy(display, srv.port, min_channels=4) as spicy:
            h, w = srv.framebuffer().shape[:2]   # the window as wide as the desktop: shown 1:1
            peers.xdotool(display, "windowsize", "--sync", spicy.window_id(), str(w), str(h + 232))
            time.sleep(1.0)                      # connected before the replay starts
            srv.start_replay()
            peers.wait_until(lambda: srv.replay.rounds >= 1, 60, "a first round")
            one = {k: n - before[k] for k, n in srv.call(alive).items()}
            peers.wait_until(lambda: srv.replay.rounds >= 4, 60, "four rounds")
            four = {k: n - before[k] for k, n in srv.call(alive).items()}
            srv.pause()
            srv.wait_idle()
            wait_for_picture(srv, display, tmp_path)   # the client that watched every round
    # after rounds 1 and 4 alike: the screen of the round being played (and of the next, while
    # the frames thread starts it), none of the rounds before; a decoder only while one reads
    for counts in (one, four):
        assert 1 <= counts["SessionScreen"] <= 2 and 1 <= counts["Canvas"] <= 2, (one, four)
        assert counts["SessionDecoder"] <= 2, (one, four)
