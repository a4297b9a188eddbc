"""The video's size: the largest picture in the rendered range, smaller pictures centred on black
and never scaled (real sessions: `hd-1080` grows 1024x768 -> 1920x1080, `resize` shrinks to 800x600)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spicetool.render import frames, picture_at
from spicetool.render.frames import records_of
from spicetool.render.sizing import largest_picture

from .corpus import capture_path, sessions


def _need(name: str) -> str:
    if name not in sessions():
        pytest.skip(f"{name} not in the corpus")
    return str(capture_path(name))


def _render(*args: str) -> None:
    r = subprocess.run([sys.executable, "-m", "spicetool", "render", "-q", *args], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr


def _decoded(path: Path) -> list[tuple[float, np.ndarray]]:
    import av
    with av.open(str(path)) as c:
        return [(float(f.pts * f.time_base), f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


def _sizes(cap: str) -> list[tuple[float, tuple[int, int]]]:
    """(time, (width, height)) of each size the rendered pictures take, in order."""
    out: list[tuple[float, tuple[int, int]]] = []
    for t, img in frames(cap, fps=4):
        if not out or out[-1][1] != (img.shape[1], img.shape[0]):
            out.append((t, (img.shape[1], img.shape[0])))
    return out


def _centred(big: np.ndarray, small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The middle of `big` where `small` sits, and a mask of the rest."""
    h, w = small.shape[:2]
    y, x = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    rest = np.ones(big.shape[:2], bool)
    rest[y:y + h, x:x + w] = False
    return big[y:y + h, x:x + w], rest


def test_a_session_that_grows_is_written_at_its_largest_size(tmp_path: Path) -> None:
    cap = _need("hd-1080")
    sizes = _sizes(cap)
    assert [s for _, s in sizes] == [(1024, 768), (1920, 1080)]  # the guest's xrandr, a second in
    out = tmp_path / "hd.mp4"
    _render(cap, "-o", str(out), "--fps", "5")
    decoded = _decoded(out)
    assert decoded[0][1].shape == (1080, 1920, 3)
    # the 1024x768 start: unscaled in the middle of a black 1920x1080 frame
    first = next(iter(frames(cap, fps=5))).image
    middle, rest = _centred(decoded[0][1], first)
    assert np.abs(middle.astype(int) - first).mean() < 3  # H.264 at crf 18
    assert decoded[0][1][rest].max() < 24
    final = picture_at(cap, None).image
    assert np.abs(decoded[-1][1].astype(int) - final).mean() < 3  # the end, full size, not shrunk


def test_the_size_is_the_largest_within_from_and_to(tmp_path: Path) -> None:
    cap = _need("resize")
    (_, before), (change, after) = _sizes(cap)
    assert before == (1024, 768) and after == (800, 600)
    assert largest_picture(records_of(cap)) == before
    assert largest_picture(records_of(cap), start=change + 1) == after
    assert largest_picture(records_of(cap), end=change - 1) == before
    out = tmp_path / "end.mp4"
    _render(cap, "-o", str(out), "--fps", "4", "--from", f"{change + 1:.2f}")
    decoded = _decoded(out)
    assert decoded[-1][1].shape == (600, 800, 3)
    whole = tmp_path / "whole.mp4"
    _render(cap, "-o", str(whole), "--fps", "4")
    last = _decoded(whole)[-1][1]
    middle, rest = _centred(last, picture_at(cap, None).image)
    assert last.shape == (768, 1024, 3)
    assert np.abs(middle.astype(int) - picture_at(cap, None).image).mean() < 3 and last[rest].max() < 24


def test_scale_applies_to_the_largest_size(tmp_path: Path) -> None:
    cap = _need("hd-1080")
    out = tmp_path / "half.mp4"
    _render(cap, "-o", str(out), "--fps", "2", "--scale", "0.5")
    assert _decoded(out)[0][1].shape == (540, 960, 3)


def test_a_capture_that_starts_mid_session_is_written_at_its_guessed_size(tmp_path: Path) -> None:
    """No SURFACE_CREATE: the screen size is guessed from the draws and grows (640x480, 800x600,
    1024x768 in `mid-session`); the video takes the last guess, which is the real size."""
    cap = _need("mid-session")
    sizes = [s for _, s in _sizes_partial(cap)]
    assert sizes[0] < sizes[-1] == (1024, 768)
    out = tmp_path / "mid.mp4"
    _render(cap, "-o", str(out), "--fps", "4", "--partial")
    decoded = _decoded(out)
    assert decoded[0][1].shape == decoded[-1][1].shape == (768, 1024, 3)
    final = picture_at(cap, None).image  # never-drawn pixels: the placeholder checkerboard, hard on H.264
    near = (np.abs(decoded[-1][1].astype(int) - final).max(axis=2) < 24).mean()
    assert near > 0.9  # the end, full size, not shrunk


def _sizes_partial(cap: str) -> list[tuple[float, tuple[int, int]]]:
    out: list[tuple[float, tuple[int, int]]] = []
    for t, img in frames(cap, fps=4, partial=True):
        if not out or out[-1][1] != (img.shape[1], img.shape[0]):
            out.append((t, (img.shape[1], img.shape[0])))
    return out
