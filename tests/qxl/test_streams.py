"""--streaming-video: a replayed capture's video region goes out as an MJPEG stream (STREAM_CREATE
with the captured destination, STREAM_DATA frames made by Pillow, STREAM_DESTROY when it stops,
then the area again losslessly); spicy shows it and ends on the exact final picture, Wireshark
finds nothing malformed, and our dissector sees the same stream traffic the server counted."""
from __future__ import annotations

import collections
import io
import time

import numpy as np
import pytest
from serve_helpers import (
    ROOT,
    RawClient,
    free_display,
    need,
    peers,
    served_display_messages,
    spice_server,  # noqa: F401 (fixture)
)
from serve_helpers import wait_for_picture

CAPTURE = ROOT / "captures" / "mjpeg-stream.pcapng"
VIDEO = {"top": 360, "left": 360, "bottom": 600, "right": 680}   # the capture's STREAM_CREATE dest


def replay_server(spice_server, mode: str, speed: float):
    from spicetool.qxl.streams import VideoStreams
    if not CAPTURE.exists():
        pytest.skip("mjpeg-stream.pcapng is not in captures/")
    srv = spice_server(replay=CAPTURE, speed=speed)
    srv.device.streams = None if mode == "off" else VideoStreams(mode)
    return srv


def watch(srv, seconds_after: float = 1.0):
    main = RawClient(srv.port)
    assert main.link() == "OK"
    sid = main.messages(0.3)[0].fields["session_id"]
    d = RawClient(srv.port)
    assert d.link(2, sid) == "OK"
    frames = []     # the pixels of each stream frame the device had, in order
    srv.call(lambda: srv.device.listeners.append(
        lambda c: frames.append(c.pixels) if getattr(c, "stream", None) is not None else None))
    got: list = []
    acking(d, 0.5, got)
    finished = srv.start_replay()
    while not finished.is_set():
        acking(d, 0.2, got)
    acking(d, seconds_after, got)
    return got, frames, (main, d)


_windows: dict = {}   # client -> [ack window, messages since the last ACK]


def acking(d: RawClient, seconds: float, into: list) -> None:
    """Read for `seconds`, acknowledging as spice-gtk does (else the server stops at its window)."""
    state = _windows
    for m in d.messages(seconds):
        into.append(m)
        if m.name == "set_ack":
            state[d] = [m.fields["window"], 0]
            d.send(d.message("ack_sync", {"generation": m.fields["generation"]}))
        elif d in state:
            state[d][1] += 1
            if state[d][1] == state[d][0]:
                d.send(d.message("ack"))
                state[d][1] = 0


@pytest.mark.parametrize("mode", ["all", "filter"])
def test_a_captured_video_becomes_a_stream_of_jpeg_frames(spice_server, mode):
    from PIL import Image
    srv = replay_server(spice_server, mode, speed=4)
    got, frames, _ = watch(srv)
    names = [m.name for m in got]
    creates = [m for m in got if m.name == "stream_create"]
    data = [m for m in got if m.name == "stream_data"]
    assert creates and data and names.count("stream_destroy") == len(creates)
    assert all(m.fields["dest"] == VIDEO and m.fields["codec_type"] == "MJPEG" for m in creates)
    assert len(data) == len(frames) == srv.server.stats["stream_frames"]
    for m, px in zip(data, frames):
        picture = np.asarray(Image.open(io.BytesIO(m.fields["data"])).convert("RGB"))
        assert picture.shape == (240, 320, 3)
        assert np.abs(picture.astype(int) - px[:, :, 2::-1]).mean() < 6   # JPEG of that frame
    # after each destroy, the area again as an image (lossless): the client ends exact
    last_destroy = len(names) - 1 - names[::-1].index("stream_destroy")
    after = [m for m in got[last_destroy:] if m.name == "draw_copy"]
    assert any(m.fields["base"]["box"] == VIDEO for m in after)


def test_without_streaming_the_video_is_plain_draws(spice_server):
    srv = replay_server(spice_server, "off", speed=4)
    got, frames, _ = watch(srv)
    assert not frames and not [m for m in got if m.name.startswith("stream_")]
    assert sum(m.name == "draw_copy" for m in got) > 10


def test_spicy_shows_the_stream_and_ends_exact(spice_server, tmp_path):
    need("spicy"), need("Xvfb"), need("tshark"), need("xdotool"), need("xwd")
    from spicetool.render.frames import picture_at
    srv = replay_server(spice_server, "all", speed=2)
    cap = tmp_path / "stream.pcapng"
    display = free_display()
    with peers.Tshark(srv.port, cap), peers.Xvfb(display, size="1600x1200x24"), \
            peers.Spicy(display, srv.port, min_channels=4) as spicy:
        h, w = srv.framebuffer().shape[:2]
        peers.xdotool(display, "windowsize", "--sync", spicy.window_id(), str(w), str(h + 232))
        time.sleep(1.0)
        assert srv.start_replay().wait(60)
        srv.wait_idle()
        assert np.array_equal(srv.framebuffer(), picture_at(str(CAPTURE)).image)
        wait_for_picture(srv, display, tmp_path)        # spicy: exact, after the stream
        time.sleep(0.5)
    assert srv.server.stats["stream_frames"] > 0

    seen = collections.Counter(o["type"] for o in served_display_messages(cap, srv.port))
    assert seen["stream_data"] == srv.server.stats["stream_frames"]
    assert seen["stream_create"] == seen["stream_destroy"] > 0
