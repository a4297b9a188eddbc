"""`render --last` against the framebuffer the X server held at the end of each real session:
every corpus capture and the fresh ones the suite records (the `capture` fixture)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spicetool.render import RenderStats, picture_at

from .corpus import capture_path, differing, psnr, sessions

NAMES = sessions()


def test_render_last_equals_the_truth(capture: Path) -> None:
    meta = json.loads(capture.with_suffix(".json").read_text())
    expected = np.asarray(Image.open(capture.with_suffix(".png")).convert("RGB"))
    if meta.get("capture", {}).get("starts_mid_session"):
        _matches_where_it_drew(capture, expected)
        return
    stats = RenderStats()
    frame = picture_at(str(capture), None, stats=stats)
    assert frame is not None, f"{capture.name}: no picture"
    img = frame.image
    assert img.shape == expected.shape
    assert stats.placeholders == 0, dict(stats.warnings)
    assert sum(stats.images.values()) > 0  # images were really decoded and drawn
    if meta.get("server", {}).get("jpeg_wan_compression") == "always":
        assert any(k in stats.images for k in ("JPEG", "JPEG_ALPHA")), stats.images
        assert psnr(img, expected) >= 35.0
        return
    # the recorder parks the pointer under a blank cursor before it takes the truth (Xspice draws
    # the pointer into its frames, xwd leaves it out), so every pixel must agree
    diff = differing(img, expected)
    assert int(diff.sum()) == 0, f"{capture.name}: {int(diff.sum())} pixels differ from the truth"


def _matches_where_it_drew(capture: Path, expected: np.ndarray):  # -> SessionScreen
    """A capture that starts mid-session: what it drew equals the truth, the rest is a placeholder.

    Its screen size is a guess from the draws' extents (nothing after the link stage states it),
    so the picture is compared with the truth where both are."""
    from spicetool.render import SessionScreen
    from spicetool.render.frames import records_of
    screen = SessionScreen()
    for rec in records_of(str(capture)):
        screen.feed(rec)
    assert screen.midstream and screen.coverage is not None
    img = screen.picture(force=True)
    known = screen.coverage
    h, w = min(img.shape[0], expected.shape[0]), min(img.shape[1], expected.shape[1])
    assert known[:h, :w].any() and not known[h:].any() and not known[:, w:].any()
    diff = differing(img[:h, :w], expected[:h, :w]) & known[:h, :w]
    assert int(diff.sum()) == 0, f"{capture.name}: {int(diff.sum())} drawn pixels differ from the truth"
    # where nothing was ever drawn the picture says so (placeholder pattern), never a guess
    unknown = img[~known]
    assert set(map(tuple, np.unique(unknown, axis=0))) <= {(255, 0, 255), (0, 0, 0)}
    return screen


@pytest.mark.parametrize("name, at", [("img-glz", 0.3), ("typing", 0.5)])
def test_a_capture_cut_mid_session_draws_placeholders_for_what_it_never_saw(name: str, at: float,
                                                                            tmp_path: Path) -> None:
    """A real capture without its first part: GLZ images refer to dictionary images, and cached
    pixmaps to entries, from before the cut. They are drawn as placeholders, said in a warning,
    and never counted as known pixels."""
    from spicetool.capture import PcapWriter, open_capture
    path = capture_path(name)
    if path is None:
        pytest.fail(f"{name} is not in captures/")
    segments = list(open_capture(str(path)))
    cut = segments[0].time + (segments[-1].time - segments[0].time) * at
    cut_path = tmp_path / f"{name}-cut.pcap"
    with open(cut_path, "wb") as f:
        writer = PcapWriter(f)
        for seg in segments:
            if seg.time >= cut:
                writer.segment(seg.time, seg.src, seg.dst, seg.seq, seg.ack, seg.flags, seg.payload)
    screen = _matches_where_it_drew(cut_path, np.asarray(Image.open(path.with_suffix(".png")).convert("RGB")))
    assert screen.canvas.images.placeholders > 0
    assert any("refers to something never seen" in w for w in screen.canvas.warnings), dict(screen.canvas.warnings)


def test_mjpeg_stream_frames_are_drawn_in_place() -> None:
    """While the stream runs, its rectangle animates (the server sends no draws there)."""
    from spicetool.render import frames
    name = "mjpeg-stream"
    if name not in NAMES:
        pytest.skip("mjpeg-stream not in the corpus")
    stats = RenderStats()
    regions = [img[360:600, 360:680].copy()
               for t, img in frames(str(capture_path(name)), fps=2, start=2.0, end=5.0, stats=stats)]
    assert stats.stream_codecs == {"MJPEG"} and stats.stream_frames > 50
    assert len(regions) >= 6
    changes = sum(bool((a != b).any()) for a, b in zip(regions, regions[1:]))
    assert changes >= len(regions) - 2
    # ffplay's testsrc: saturated colour bars fill the stream's rectangle
    colours = {tuple(c) for c in (regions[-1].reshape(-1, 3) // 64)}
    assert len(colours) >= 6


