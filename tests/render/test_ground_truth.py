"""`render --last` against the framebuffer the X server held at the end of each real session:
every corpus capture and the fresh ones the suite records (the `capture` fixture)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spicetool.render import RenderStats, picture_at

from .corpus import capture_path, differing, psnr, sessions, truth

NAMES = sessions()


def test_render_last_equals_the_truth(capture: Path) -> None:
    meta = json.loads(capture.with_suffix(".json").read_text())
    if meta.get("capture", {}).get("starts_mid_session"):
        pytest.skip("starts mid-session: test_mid_session_capture_matches_where_it_drew")
    expected = np.asarray(Image.open(capture.with_suffix(".png")).convert("RGB"))
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


def test_mid_session_capture_matches_where_it_drew() -> None:
    name = "mid-session"
    if name not in NAMES:
        pytest.skip("mid-session not in the corpus")
    from spicetool.render import SessionScreen
    from spicetool.render.frames import records_of
    screen = SessionScreen()
    for rec in records_of(str(capture_path(name))):
        screen.feed(rec)
    assert screen.midstream and screen.coverage is not None
    img = screen.picture(force=True)
    expected = truth(name)
    assert img.shape == expected.shape  # the size guessed from the draws is the real one
    known = screen.coverage
    assert 0.05 < known.mean() < 1.0
    diff = differing(img, expected) & known
    assert int(diff.sum()) == 0, f"{int(diff.sum())} drawn pixels differ from the truth"
    # where nothing was ever drawn the picture says so (placeholder pattern), never a guess
    unknown = img[~known]
    assert set(map(tuple, np.unique(unknown, axis=0))) <= {(255, 0, 255), (0, 0, 0)}
