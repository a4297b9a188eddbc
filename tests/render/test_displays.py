"""Sessions with several display channels: the real `linux-qxl-two-heads` session (a Linux guest
with two QXL devices, so two display channels, each its own 1024x768 primary surface with one head
at 0,0; QEMU's screendump of each device is the truth). The client gives both channels the same
pixmap cache and GLZ dictionary ids in display INIT, and the server's GLZ images on display 1
refer to dictionary images sent on display 0: both render exactly only with the caches shared."""
from __future__ import annotations

import dataclasses
import json
import shutil
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
from spicetool.stack.enums import ChannelType
from spicetool.stack.events import Direction
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


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(float) - b.astype(float)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


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


def test_video_of_every_display_channel(tmp_path: Path) -> None:
    """A video of --display all is as large as the layout; its pictures are the composed screen
    of their moment (H.264: by PSNR). The last tick of the 25 fps clock falls 4 ms before display
    1's last draw (22.244 s): the frame of that tick is the picture at 22.2 s, and one more frame,
    at the next tick, shows the screen at the capture's end (what --last shows)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    out = tmp_path / "all.mp4"
    r = _render(_capture(), "--display", "all", "--from", "20", "-o", str(out))
    assert r.returncode == 0, r.stderr
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-vf", "reverse", "-frames:v", "2",
                    str(tmp_path / "last%d.png")], check=True, timeout=120)
    got, before = (np.asarray(Image.open(tmp_path / f"last{i}.png").convert("RGB")) for i in (1, 2))
    assert got.shape == before.shape == (768, 2048, 3)
    assert _psnr(before, picture_at(_capture(), 22.2, display="all").image) >= 35
    assert _psnr(got, picture_at(_capture(), None, display="all").image) >= 35


def test_cursor_channel_of_its_display() -> None:
    """Each QXL device has a cursor channel of its display's id: cursor 1 is display 1's pointer."""
    from spicetool.render.session import Route
    route = Route(1, 0)

    class Ch:
        def __init__(self, kind: ChannelType, cid: int) -> None:
            self.channel_type, self.channel_id, self.session = int(kind), cid, 1

    class Rec:
        def __init__(self, kind: ChannelType, cid: int) -> None:
            self.channel, self.layer = Ch(kind, cid), "message"

    assert route.wants(Rec(ChannelType.CURSOR, 0)) and not route.wants(Rec(ChannelType.CURSOR, 1))
    assert Route(1, 1).wants(Rec(ChannelType.CURSOR, 1)) and not Route(1, 1).wants(Rec(ChannelType.DISPLAY, 0))
    assert Route(1, 0, every=True).wants(Rec(ChannelType.DISPLAY, 1))


def test_one_head_exact(tmp_path: Path) -> None:
    """linux-qxl: one QXL device, one display channel: --last and --display all are its truth."""
    capture = str(deployment_capture("linux-qxl.pcapng"))
    truth = np.asarray(Image.open(deployment_capture("linux-qxl.png")).convert("RGB"))
    stats = RenderStats()
    assert _differing(picture_at(capture, None, stats=stats).image, truth) == 0
    assert stats.placeholders == 0 and not stats.warnings, dict(stats.warnings)
    out = tmp_path / "all.png"
    r = _render(capture, "--last", "--display", "all", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert _differing(np.asarray(Image.open(out).convert("RGB")), truth) == 0


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


def _with_client_monitors(monitors: list[tuple[int, int]]) -> list:
    """The session's records with a VD_AGENT_MONITORS_CONFIG from the client (one 1024x768 monitor
    at each x, y, entry N for display channel N, as spice-gtk numbers them) after the main INIT.
    The real session has no agent (busybox guest): the message is made up, its form is spicy's."""
    recs = list(records_of(_capture()))
    at = next(i for i, r in enumerate(recs) if r.channel.channel_type == int(ChannelType.MAIN)
              and r.type == "init" and r.layer == "message")
    mons = [{"height": 768, "width": 1024, "depth": 32, "x": x, "y": y} for x, y in monitors]
    agent = dataclasses.replace(recs[at], direction=Direction.CLIENT, layer="agent", type="vd_agent_monitors_config",
                                type_id=2, size=8 + 20 * len(mons),
                                fields={"num_of_monitors": len(mons), "flags": 0, "monitors": mons}, event=None)
    return recs[:at + 1] + [agent] + recs[at + 1:]


@pytest.mark.parametrize("monitors, arrange", [
    ([(1024, 0), (0, 0)], lambda t: np.hstack([t[1], t[0]])),  # display 1 left of display 0
    ([(0, 0), (0, 768)], lambda t: np.vstack(t)),              # display 1 below display 0
    ([(0, 0), (100, 100)], lambda t: np.hstack(t)),            # overlapping: side by side
])
def test_display_all_where_the_client_put_its_monitors(monitors, arrange) -> None:
    recs = _with_client_monitors(monitors)
    expected = arrange(_truths())
    assert _differing(picture_at(iter(recs), None, display="all").image, expected) == 0
    height, width = expected.shape[:2]
    assert largest_picture(iter(recs), None, DisplayChoice.parse("all")) == (width, height)


def test_layout() -> None:
    # apart where MONITORS_CONFIG puts them: kept (from the top-left of the lot)
    assert layout([Rect(0, 0, 1024, 768), Rect(1024, 0, 1824, 600)]) == ([(0, 0), (1024, 0)], 1824, 768)
    assert layout([Rect(0, 100, 10, 110), Rect(0, 0, 10, 10)]) == ([(0, 100), (0, 0)], 10, 110)
    # on top of each other (every head at 0,0 of its own surface): side by side, top-aligned
    assert layout([Rect(0, 0, 1024, 768), Rect(0, 0, 800, 600)]) == ([(0, 0), (1024, 0)], 1824, 768)
    assert layout([]) == ([], 0, 0)
    # on top of each other, but the client said where its monitors are: there
    both = [Rect(0, 0, 1024, 768), Rect(0, 0, 800, 600)]
    assert layout(both, [(0, 768), (100, 0)]) == ([(0, 768), (100, 0)], 1024, 1536)
    assert layout(both, [(800, 0), (0, 0)]) == ([(800, 0), (0, 0)], 1824, 768)
    assert layout(both, [(-1024, -10), (0, 0)]) == ([(0, 0), (1024, 10)], 1824, 768)
    assert layout(both, [(0, 0), None]) == ([(0, 0), (1024, 0)], 1824, 768)  # not said for each
    assert layout(both, [(0, 0), (10, 10)]) == ([(0, 0), (1024, 0)], 1824, 768)  # overlapping


def test_display_choice_all() -> None:
    assert DisplayChoice.parse("all") == DisplayChoice(0, None, True)
    assert DisplayChoice.parse("ALL").every and not DisplayChoice.parse("1").every


def test_caches_by_the_ids_of_display_init() -> None:
    """One pixmap cache and one GLZ window per id, as spice-server keeps them per client; the first
    INIT naming an id sizes it (twice the announced pixels of 4 bytes, within our bounds)."""
    caches = SessionCaches()
    init = {"pixmap_cache_id": 1, "pixmap_cache_size": 1000, "glz_dictionary_id": 1, "glz_dictionary_window_size": 500}
    first, again = caches.for_init(init), caches.for_init(dict(init, pixmap_cache_size=5))
    assert first[0] is again[0] and first[1] is again[1]
    assert first[0].max_bytes == 1000 * 4 * 2
    other = caches.for_init(dict(init, pixmap_cache_id=2, glz_dictionary_id=0, glz_dictionary_window_size=0))
    assert other[0] is not first[0] and other[1] is not first[1]  # spice-html5: glz id 0, no window size
    apart = SessionCaches(sharing=False)
    assert apart.for_init(init)[0] is not apart.for_init(init)[0]
