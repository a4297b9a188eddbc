"""The replay's frames are a function of the capture alone (the same every time, however late the
server's loop runs), and the draws of a stateless codec are encoded once for all clients."""
from __future__ import annotations

import asyncio
import hashlib

import numpy as np
import pytest
from serve_helpers import (
    ROOT,
    RawClient,
    peers,
    spice_server,  # noqa: F401 (fixture)
)

from spicetool.qxl.device import QxlDevice
from spicetool.replay.capture_replay import CaptureReplay
from spicetool.replay.timeline import Timeline

CAPTURES = ROOT / "captures"
DISPLAY = 2


def capture(name: str):
    path = CAPTURES / name
    if not path.exists():
        pytest.skip(f"{name} is not in captures/")
    return path


def described(commands) -> list[tuple]:
    """Commands as comparable values: kind, place, and a digest of any pixels."""
    out = []
    for c in commands:
        px = getattr(c, "pixels", None)
        if px is None and getattr(c, "shape", None) is not None:
            px = c.shape.pixels
        out.append((type(c).__name__, getattr(c, "rect", None), getattr(c, "width", None),
                    getattr(c, "x", None), getattr(c, "y", None),
                    None if px is None else hashlib.sha256(np.ascontiguousarray(px).tobytes()).hexdigest()))
    return out


@pytest.mark.parametrize("name", ["img-glz.pcap", "resize.pcapng"])
def test_frames_are_the_same_every_time_and_end_on_the_captured_picture(name):
    from spicetool.render.frames import picture_at
    path = capture(name)
    runs = []
    for _ in range(2):
        frames = list(Timeline(str(path)).frames())
        runs.append([(f.due, f.at, f.first, f.hold, f.end, described(f.commands)) for f in frames])
    assert runs[0] == runs[1]
    dues = [f[0] for f in runs[0]]
    assert dues == sorted(dues) and runs[0][-1][4]      # in capture order, ending its round
    assert sum(len(f[5]) for f in runs[0]) > len(runs[0]) // 2   # frames carry commands
    device = QxlDevice()
    for f in frames:
        for c in f.commands:
            device.submit(c)
    assert np.array_equal(device.framebuffer_rgb(), picture_at(str(path)).image)


def test_a_late_loop_submits_exactly_the_timeline():
    """At 10000x every frame is late: none is merged or skipped, in the same order."""
    path = capture("resize.pcapng")
    expected = [described(f.commands) for f in Timeline(str(path)).frames()]
    device = QxlDevice()
    submitted = []
    replay = CaptureReplay(device, str(path), speed=10000)
    replay.prepare()
    device.listeners.append(lambda c: submitted.append(c))
    asyncio.run(replay.run())
    assert described(submitted) == [c for f in expected[1:] for c in f]
    assert replay.rounds == 1


def test_clients_with_one_codec_share_one_encoding_glz_is_per_client(spice_server):
    srv = spice_server(size=(320, 240))
    srv.server.image_compression = "quic"
    clients = []
    for prefers in (None, None, "GLZ"):
        main = RawClient(srv.port)
        assert main.link() == "OK"
        sid = main.messages(0.3)[0].fields["session_id"]
        d = RawClient(srv.port)
        assert d.link(DISPLAY, sid) == "OK"
        if prefers:
            d.send(d.message("preferred_compression", {"image_compression": prefers}))
        d.messages(0.5)  # its first picture
        clients.append((main, d))
    srv.step(3)
    draws = []
    for _, d in clients:
        got = [m for m in d.messages(1.0) if m.name == "draw_copy"   # of images (not of the box's surface)
               and m.fields["data"]["src_bitmap"]["descriptor"]["type"] != "SURFACE"]
        assert got, "no draw after the demo stepped"
        draws.append(got)
    quic_a, quic_b, glz = draws
    kinds = {m.fields["data"]["src_bitmap"]["descriptor"]["type"] for m in quic_a + glz}
    assert kinds == {"QUIC", "GLZ_RGB"}, kinds
    # the same bytes, image ids included: one encoding sent to both
    assert [bytes(m.body) for m in quic_a] == [bytes(m.body) for m in quic_b]
    ids = {m.fields["data"]["src_bitmap"]["descriptor"]["id"] for m in quic_a}
    assert not ids & {m.fields["data"]["src_bitmap"]["descriptor"]["id"] for m in glz}
    for main, d in clients:
        d.close(), main.close()
    peers.wait_until(lambda: srv.sessions() == 0, 5, "sessions closed")
