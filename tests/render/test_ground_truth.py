"""`render --last` against the framebuffer the X server held at the end of each real session."""
from __future__ import annotations

import numpy as np
import pytest

from spicetool.render import RenderStats, picture_at

from .corpus import (capture_path, differing, is_lossy, psnr, sessions, starts_mid_session,
                     truth)

NAMES = sessions()
LOSSLESS = [n for n in NAMES if not is_lossy(n) and not starts_mid_session(n)]
LOSSY = [n for n in NAMES if is_lossy(n)]


def _render(name: str, stats: RenderStats) -> np.ndarray:
    frame = picture_at(str(capture_path(name)), None, stats=stats)
    assert frame is not None, f"{name}: no picture"
    return frame.image


@pytest.mark.parametrize("name", LOSSLESS)
def test_lossless_capture_is_pixel_exact(name: str) -> None:
    stats = RenderStats()
    img = _render(name, stats)
    expected = truth(name)
    assert img.shape == expected.shape
    assert stats.placeholders == 0, dict(stats.warnings)
    # the recorder parks the pointer under a blank cursor before it takes the truth (Xspice draws
    # the pointer into its frames, xwd leaves it out), so every pixel must agree
    diff = differing(img, expected)
    assert int(diff.sum()) == 0, f"{name}: {int(diff.sum())} pixels differ from the truth"
    assert sum(stats.images.values()) > 0  # images were really decoded and drawn


@pytest.mark.parametrize("name", LOSSY)
def test_lossy_capture_psnr(name: str) -> None:
    stats = RenderStats()
    img = _render(name, stats)
    assert stats.placeholders == 0, dict(stats.warnings)
    assert any(k in stats.images for k in ("JPEG", "JPEG_ALPHA")), stats.images
    assert psnr(img, truth(name)) >= 35.0


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
