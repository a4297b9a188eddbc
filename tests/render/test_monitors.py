"""Monitors: the real `two-heads` session (Xspice with two QXL heads, 1024x768 and 800x600 right of
it, one 1824x768 primary surface, MONITORS_CONFIG with two heads). The default shows both heads as
the guest laid them out (the part of the surface that holds them); `--display CHANNEL:MONITOR` one."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spicetool.render import RenderStats, picture_at
from spicetool.render.monitors import DisplayChoice, DisplayChoiceError, shown_area
from spicetool.stack.geometry import Rect

from .corpus import capture_path, sessions, settings, truth

NAME = "two-heads"


def _need() -> str:
    if NAME not in sessions():
        pytest.skip(f"{NAME} not in the corpus")
    return str(capture_path(NAME))


def _heads() -> list[dict]:
    heads = settings(NAME)["heads"]  # as xrandr reported them while recording
    assert len(heads) == 2
    return heads


def _render(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spicetool", "render", "-q", *args], capture_output=True,
                          text=True, timeout=600)


def test_all_heads_by_default_as_laid_out() -> None:
    img = picture_at(_need(), None).image
    heads = _heads()
    width = max(h["x"] + h["width"] for h in heads)
    height = max(h["y"] + h["height"] for h in heads)
    assert img.shape == truth(NAME).shape == (height, width, 3) == (768, 1824, 3)
    assert (img == truth(NAME)).all()


@pytest.mark.parametrize("monitor", [0, 1])
def test_one_monitor(tmp_path: Path, monitor: int) -> None:
    cap = _need()
    h = _heads()[monitor]
    expected = truth(NAME)[h["y"]:h["y"] + h["height"], h["x"]:h["x"] + h["width"]]
    assert (picture_at(cap, None, display=f"0:{monitor}").image == expected).all()
    out = tmp_path / "head.png"
    r = _render(cap, "--last", "--display", f"0:{monitor}", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert (np.asarray(Image.open(out)) == expected).all()


def test_a_monitor_the_session_never_had_is_said() -> None:
    stats = RenderStats()
    img = picture_at(_need(), None, display="0:5", stats=stats).image
    assert img.shape == truth(NAME).shape  # the whole surface, and a warning
    assert any("never had monitor 5" in w for w in stats.warnings)
    stats = RenderStats()
    picture_at(_need(), None, display="0:1", stats=stats)
    assert not any("never had" in w for w in stats.warnings)


def test_video_of_two_heads_has_both(tmp_path: Path) -> None:
    out = tmp_path / "both.mp4"
    r = _render(_need(), "-o", str(out), "--fps", "2")
    assert r.returncode == 0, r.stderr
    import av
    with av.open(str(out)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (1824, 768)


@pytest.mark.parametrize("text", ["x", "0:", "1:2:3", "300", "0:-1"])
def test_bad_display_is_one_line(text: str) -> None:
    with pytest.raises(DisplayChoiceError):
        DisplayChoice.parse(text)
    r = _render(_need(), "--last", "--display", text, "-o", "/nonexistent/x.png")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--display" in r.stderr


def test_heads_layouts() -> None:
    mirrored = [{"monitor_id": i, "surface_id": 0, "x": 0, "y": 0, "width": 640, "height": 480} for i in (0, 1)]
    assert shown_area(mirrored, 0, 1024, 768) == Rect(0, 0, 640, 480)
    apart = [{"monitor_id": 0, "surface_id": 0, "x": 0, "y": 0, "width": 300, "height": 300},
             {"monitor_id": 1, "surface_id": 0, "x": 200, "y": 200, "width": 300, "height": 300}]
    assert shown_area(apart, 0, 1024, 768) == Rect(0, 0, 500, 500)
    assert shown_area(apart, 0, 1024, 768, monitor=1) == Rect(200, 200, 500, 500)
    assert shown_area(apart, 0, 1024, 768, monitor=7) == Rect(0, 0, 1024, 768)  # no such monitor: the surface
    # a head beyond the surface is clipped to it; heads of another surface are not this one's
    assert (shown_area([{**apart[1], "width": 5000}, {**apart[0], "surface_id": 3}], 0, 1024, 768)
            == Rect(200, 200, 1024, 500))
    assert shown_area([], 0, 1024, 768) == Rect(0, 0, 1024, 768)
