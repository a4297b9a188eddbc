"""Sessions with several display channels: the real `linux-qxl-two-heads` session (a Linux guest
with two QXL devices, so two display channels, each its own 1024x768 primary surface with one head
at 0,0; QEMU's screendump of each device is the truth). The client gives both channels the same
pixmap cache and GLZ dictionary ids in display INIT, and the server's GLZ images on display 1
refer to dictionary images sent on display 0: both render exactly only with the caches shared."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spicetool.render import RenderStats, SessionScreen, picture_at
from spicetool.render.caches import SessionCaches
from spicetool.render.frames import records_of
from spicetool.render.monitors import DisplayChoice, layout
from spicetool.render.sizing import largest_picture
from spicetool.stack.geometry import Rect

from support import deployment_capture

NAME = "linux-qxl-two-heads"


def _capture() -> str:
    return str(deployment_capture(f"{NAME}.pcapng"))


def _truths() -> list[np.ndarray]:
    """The truth of each display channel, in channel order (as NAME.json lists the heads)."""
    meta = json.loads(deployment_capture(f"{NAME}.json").read_text())
    files = [h["file"] for h in meta["ground_truth"]["heads"]]
    assert files == [f"{NAME}.png", f"{NAME}.qxl1.png"]
    return [np.asarray(Image.open(deployment_capture(f)).convert("RGB")) for f in files]


def _render(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spicetool", "render", "-q", *args], capture_output=True,
                          text=True, timeout=600)


def _differing(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape
    return int((a != b).any(axis=2).sum())


@pytest.mark.parametrize("display", [0, 1])
def test_every_display_channel_exact(display: int) -> None:
    stats = RenderStats()
    img = picture_at(_capture(), None, display=display, stats=stats).image
    assert _differing(img, _truths()[display]) == 0
    assert stats.placeholders == 0 and not stats.warnings, dict(stats.warnings)


def test_cli_last_display_1(tmp_path: Path) -> None:
    out = tmp_path / "head1.png"
    r = _render(_capture(), "--last", "--display", "1", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert _differing(np.asarray(Image.open(out).convert("RGB")), _truths()[1]) == 0


def test_display_all_side_by_side(tmp_path: Path) -> None:
    # both channels put their one head at 0,0 of their own surface: side by side, channel order
    expected = np.hstack(_truths())
    assert _differing(picture_at(_capture(), None, display="all").image, expected) == 0
    out = tmp_path / "all.png"
    r = _render(_capture(), "--last", "--display", "all", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert _differing(np.asarray(Image.open(out).convert("RGB")), expected) == 0
    # a video of every channel is as large as both side by side
    assert largest_picture(records_of(_capture()), None, DisplayChoice.parse("all")) == (2048, 768)
    assert largest_picture(records_of(_capture()), None, DisplayChoice.parse("1")) == (1024, 768)


def test_display_1_needs_the_shared_dictionary() -> None:
    """With every channel keeping its own caches (as the renderer did before) display 1's GLZ
    images miss the dictionary images display 0 sent: placeholders, and not the truth."""
    screen = SessionScreen(None, 1, caches=SessionCaches(sharing=False))
    stats = RenderStats()
    for rec in records_of(_capture()):
        screen.feed(rec)
    screen.stats_into(stats)
    img = screen.picture(force=True)
    assert stats.placeholders > 0
    assert any("GLZ_RGB image refers to something never seen" in w for w in stats.warnings), dict(stats.warnings)
    assert "not in the window" in stats.details["GLZ_RGB image refers to something never seen"]
    assert _differing(img, _truths()[1]) > 0


def test_layout() -> None:
    # apart where MONITORS_CONFIG puts them: kept (from the top-left of the lot)
    assert layout([Rect(0, 0, 1024, 768), Rect(1024, 0, 1824, 600)]) == ([(0, 0), (1024, 0)], 1824, 768)
    assert layout([Rect(0, 100, 10, 110), Rect(0, 0, 10, 10)]) == ([(0, 100), (0, 0)], 10, 110)
    # on top of each other (every head at 0,0 of its own surface): side by side, top-aligned
    assert layout([Rect(0, 0, 1024, 768), Rect(0, 0, 800, 600)]) == ([(0, 0), (1024, 0)], 1824, 768)
    assert layout([]) == ([], 0, 0)


def test_display_choice_all() -> None:
    assert DisplayChoice.parse("all") == DisplayChoice(0, None, True)
    assert DisplayChoice.parse("ALL").every and not DisplayChoice.parse("1").every
