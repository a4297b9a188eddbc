"""Issue 13, first slice: `--replay-mode commands` sends the captured draw_fill, draw_copy and
copy_bits as their own draws. On the corpus sessions every one of them is of the kinds this
slice carries, so the draws after the first picture equal the capture's, type by type and box
by box in order, and the replay still ends on the captured picture."""
from __future__ import annotations

import time

import numpy as np
import pytest
from serve_helpers import (
    ROOT,
    free_display,
    need,
    peers,
    served_display_messages,
    spice_server,  # noqa: F401 (fixture)
    wait_for_picture,
)

from spicetool.capture import open_records
from spicetool.qxl.commands import CopyBits, DrawCopy, DrawFill
from spicetool.qxl.device import QxlDevice
from spicetool.replay.timeline import Timeline
from spicetool.stack.enums import ChannelType
from spicetool.stack.geometry import Rect

CAPTURES = ROOT / "captures"
KINDS = {DrawFill: "draw_fill", DrawCopy: "draw_copy", CopyBits: "copy_bits"}
DRAWS = set(KINDS.values())


def capture(name: str):
    path = CAPTURES / name
    if not path.exists():
        pytest.skip(f"{name} is not in captures/")
    return path


def captured_draws(path, images: list | None = None) -> list[tuple[str, Rect]]:
    """The capture's display draws after its first primary surface: (type, box); the image
    type of each draw_copy appended to `images`."""
    out, created = [], False
    for r in open_records(str(path)):
        if r.channel.channel_type != int(ChannelType.DISPLAY):
            continue
        if r.type == "surface_create":
            created = True
        elif created and (r.type.startswith("draw_") or r.type == "copy_bits"):
            out.append((r.type, Rect.from_fields(r.fields["base"]["box"])))
            if images is not None and r.type == "draw_copy":
                d = r.fields["data"]["src_bitmap"]["descriptor"]
                images.append((d["type"], d["flags"]))
    return out


def first_difference(got: list, want: list) -> str:
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"draw {i} differs: sent {g}, captured {w}"
    return f"sent {len(got)} draws, captured {len(want)}"


@pytest.mark.parametrize("name", ["img-quic.pcapng", "img-lz.pcapng", "typing.pcapng", "img-glz.pcap",
                                  "hd-1080.pcapng", "long-desktop.pcapng"])
def test_commands_mode_submits_the_captured_draws_and_ends_on_the_truth(name):
    from spicetool.render.frames import picture_at
    path = capture(name)
    timeline = Timeline(str(path), mode="commands")
    frames = list(timeline.frames())
    device = QxlDevice()
    for f in frames:
        for c in f.commands:
            device.submit(c)
    sent = [(KINDS[type(c)], c.rect) for f in frames[1:] for c in f.commands if type(c) in KINDS]
    want = captured_draws(path)
    assert sent == want, first_difference(sent, want)
    assert timeline.converted == len(want)
    assert np.array_equal(device.framebuffer_rgb(), picture_at(str(path)).image)
    # the picture mode is what it was: bands of the picture, never a fill or a copy_bits
    kinds = {type(c) for f in Timeline(str(path)).frames() for c in f.commands}
    assert DrawFill not in kinds and CopyBits not in kinds


# image_compression: the server's own setting, for the draws the capture's type cannot serve
E2E = [("img-quic.pcapng", "quic"), ("img-lz.pcapng", "lz"), ("typing.pcapng", "auto_glz"),
       ("img-glz.pcap", "auto_glz")]


@pytest.mark.parametrize("name,compression", E2E, ids=[n for n, _ in E2E])
def test_spicy_receives_the_captured_draw_stream(spice_server, tmp_path, name, compression):
    """spicy connected for the whole replay: dissect of our traffic shows the capture's draws
    (type, box, clip kind) in order after the first picture, and spicy shows the truth."""
    need("spicy"), need("Xvfb"), need("tshark"), need("xdotool"), need("xwd")
    from spicetool.render.frames import picture_at
    path = capture(name)
    expected = picture_at(str(path)).image
    srv = spice_server(replay=path, speed=4, replay_mode="commands", image_compression=compression)
    cap = tmp_path / "commands.pcapng"
    display = free_display()
    with peers.Tshark(srv.port, cap), peers.Xvfb(display, size="1600x1200x24"), \
            peers.Spicy(display, srv.port, min_channels=4) as spicy:
        h, w = srv.framebuffer().shape[:2]
        peers.xdotool(display, "windowsize", "--sync", spicy.window_id(), str(w), str(h + 232))
        time.sleep(1.0)
        assert srv.start_replay().wait(120)
        srv.wait_idle()
        assert np.array_equal(srv.framebuffer(), expected)
        wait_for_picture(srv, display, tmp_path)      # spicy shows exactly that
        time.sleep(0.5)
    served = [o for o in served_display_messages(cap, srv.port) if o["type"] in DRAWS]
    sent = [(o["type"], Rect.from_fields(o["fields"]["base"]["box"])) for o in served]
    captured_images: list[str] = []
    want = captured_draws(path, captured_images)
    # the first draw is the whole screen when spicy connected (the picture before the commands)
    assert sent[1:] == want, first_difference(sent[1:], want)
    images = [(o["fields"]["data"]["src_bitmap"]["descriptor"]["type"],
               o["fields"]["data"]["src_bitmap"]["descriptor"]["flags"]) for o in served[1:] if o["type"] == "draw_copy"]
    # each image in the capture's type (spicy decodes all of them) with its cache flags:
    # cached (CACHE_ME, FROM_CACHE) only where the captured server cached it
    pairs = list(zip(images, captured_images))
    assert len(images) == len(captured_images)
    wrong = [(i, p) for i, p in enumerate(pairs) if p[0] != p[1]]
    assert not wrong, f"{len(wrong)} images differ (draw_copy index, (sent, captured)): {wrong[:5]}"


@pytest.mark.parametrize("name", ["typing.pcapng", "img-glz.pcap"])
def test_commands_from_the_middle_start_on_the_picture_there_and_end_on_the_truth(name):
    """--from T: the whole screen at T first (a picture), then the captured draws after T."""
    from spicetool.render.frames import picture_at
    path = capture(name)
    whole = list(Timeline(str(path), mode="commands").frames())
    middle = whole[len(whole) // 2].at
    timeline = Timeline(str(path), start=middle, mode="commands")
    frames = list(timeline.frames())
    assert frames[0].first and any(isinstance(c, DrawCopy) for c in frames[0].commands)
    device = QxlDevice()
    for f in frames:
        for c in f.commands:
            device.submit(c)
    assert 0 < timeline.converted < len(captured_draws(path))
    assert np.array_equal(device.framebuffer_rgb(), picture_at(str(path)).image)
