"""The report's timeline in a real browser (Debian's headless chromium, driven over the DevTools
protocol with real mouse clicks): moving the slider changes the picture to the screen of that time,
a finding's link (in the Findings table and on the axis) moves the slider to the finding's time,
nothing is written to the console and nothing is fetched; the page's figures are `stats --json`'s
and its pictures are render's (`picture_at`)."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from devtools import Browser
from PIL import Image
from support import CAPTURES, need_program

from spicetool.render import picture_at
from spicetool.triage.thumbs import downscale
from spicetool.triage.timeline import MAX_TICKS, TIMELINE_WIDTH, interval_for

SEVERAL_SCREENS = CAPTURES / "resize.pcapng"  # 1024x768, then 800x600 at 5.8 s


def spicetool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spicetool", *args], capture_output=True, text=True, timeout=300)


def stats_json(capture: Path) -> dict:
    r = spicetool("stats", "--json", str(capture))
    assert r.returncode in (0, 4), r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """name -> (capture, its report): a shipped capture with several screens, and a derived one with
    a warning (segments cut out with editcap: lost_segments)."""
    tmp = tmp_path_factory.mktemp("timeline")
    lost = tmp / "lost.pcapng"
    subprocess.run([need_program("editcap"), str(CAPTURES / "typing.pcapng"), str(lost), "120-125"], check=True,
                   capture_output=True)
    out = {}
    for name, capture in (("resize", SEVERAL_SCREENS), ("lost", lost)):
        page = tmp / f"{name}.html"
        r = spicetool("report", str(capture), "-o", str(page))
        assert r.returncode == 0 and page.exists(), r.stderr
        out[name] = (capture, page)
    return out


@pytest.fixture
def browser():  # type: ignore[no-untyped-def]
    with Browser() as b:
        yield b


def timeline_data(b: Browser) -> dict:
    return b.evaluate("JSON.parse(document.getElementById('timeline-data').textContent)")


def shown(b: Browser) -> dict:
    return b.evaluate("(() => { const i = document.getElementById('timeline-picture'); return {value: "
                      "Number(document.getElementById('timeline-slider').value), src: i.getAttribute('src'), "
                      "shot: Number(i.getAttribute('data-shot')), visible: i.style.display !== 'none', "
                      "loaded: i.complete && i.naturalWidth > 0}; })()")


def shot_at(data: dict, t: float) -> int:
    """The shot the page should show at slider value t: the last one at or before it."""
    return max(k for k, s in enumerate(data["shots"]) if s["t"] <= t or k == 0)


def decoded(uri: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")).astype(int)


def same_as_render(capture: Path, at: float, uri: str) -> None:
    """The page's picture is render's screen at `at`, downscaled (give or take JPEG)."""
    frame = picture_at(str(capture), at)
    assert frame is not None, at
    want = np.asarray(downscale(frame.image, TIMELINE_WIDTH)).astype(int)
    got = decoded(uri)
    assert got.shape == want.shape and np.abs(got - want).mean() < 4, (at, got.shape, want.shape)


def clean(b: Browser) -> None:
    """No console output at all, and no request but the page itself and its data: URLs."""
    assert b.console() == []
    fetched = [u for u in b.requests() if not u.startswith("data:")]
    assert len(fetched) == 1 and fetched[0].startswith("file://"), fetched


def test_the_browser_checks_can_fail(browser: Browser, tmp_path: Path) -> None:
    """The checks below see what they look for: console errors, exceptions and network requests."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><img src="http://example.invalid/x.png">'
                   '<script>console.error("boom"); notDefined();</script>')
    browser.open(bad.as_uri())
    seen = browser.console()
    assert "console.error: boom" in seen and any("ReferenceError" in s for s in seen)
    assert "http://example.invalid/x.png" in browser.requests()


def test_moving_the_slider_changes_the_picture(pages: dict, browser: Browser) -> None:
    capture, page = pages["resize"]
    browser.open(page.as_uri())
    data = timeline_data(browser)
    assert data["interval"] == 1 and len({s["picture"] for s in data["shots"]} - {None}) >= 5
    seen = []
    for share in (0.2, 0.8):  # a click on the slider's track moves it there, as a user does
        box = browser.evaluate("(() => { const s = document.getElementById('timeline-slider'); "
                               "s.scrollIntoView({block: 'center'}); const r = s.getBoundingClientRect(); "
                               "return [r.left, r.top, r.width, r.height]; })()")
        browser.click(box[0] + box[2] * share, box[1] + box[3] / 2)
        now = shown(browser)
        assert abs(now["value"] - share * data["duration"]) < 0.1 * data["duration"], now["value"]
        k = shot_at(data, now["value"])
        s = data["shots"][k]
        assert now["shot"] == k and now["visible"] and now["loaded"]
        assert now["src"] == data["pictures"][s["picture"]]
        same_as_render(capture, s["at"], now["src"])
        seen.append((s, now["src"]))
    (before, src0), (after, src1) = seen
    assert src0 != src1  # another moment, another screen: 1024x768 at 2.3 s, 800x600 at 9.2 s
    assert before["width"] == 1024 and after["width"] == 800
    clean(browser)


def test_a_findings_link_moves_the_slider(pages: dict, browser: Browser) -> None:
    capture, page = pages["lost"]
    findings = stats_json(capture)["findings"]
    lost = next(k for k, f in enumerate(findings) if f["kind"] == "lost_segments")
    assert findings[lost]["severity"] == "warning" and findings[lost]["time"] is not None
    browser.open(page.as_uri())
    data = timeline_data(browser)
    end = data["shots"][-1]
    # in the Findings table
    browser.click_element(f"#finding-{lost} a.seek")
    now = shown(browser)
    t = findings[lost]["time"]
    assert now["value"] == t and data["shots"][now["shot"]]["t"] == t
    assert now["src"] == data["pictures"][data["shots"][now["shot"]]["picture"]]
    same_as_render(capture, data["shots"][now["shot"]]["at"], now["src"])
    # on the axis: the last finding with a time (the client's close, near the end)
    last = max((k for k, f in enumerate(findings) if f["time"] is not None), key=lambda k: findings[k]["time"])
    browser.click_element(f'#timeline-axis a[data-finding="{last}"] circle')
    now = shown(browser)
    assert now["value"] == findings[last]["time"] and now["value"] > t
    assert now["src"] == data["pictures"][data["shots"][shot_at(data, now["value"])]["picture"]]
    assert data["shots"][now["shot"]]["t"] <= now["value"] <= end["t"]
    clean(browser)


@pytest.mark.parametrize("name", ["resize", "lost"])
def test_the_pages_figures_equal_stats_json(pages: dict, browser: Browser, name: str) -> None:
    capture, page = pages[name]
    stats = stats_json(capture)
    browser.open(page.as_uri())
    assert browser.evaluate("JSON.parse(document.getElementById('figures').textContent)") == stats
    # the axis draws those figures: a cell per channel second with its bytes, a marker per timed finding
    cells = browser.evaluate("[...document.querySelectorAll('#timeline-axis rect.activity')].map(r => "
                             "[r.dataset.channel, Number(r.dataset.second), Number(r.dataset.bytes)])")
    want = [[c["name"], c["per_second_from"] + k, a + b] for s in stats["sessions"] for c in s["channels"]
            for k, (a, b) in enumerate(zip(c["bytes_per_second"]["client"], c["bytes_per_second"]["server"]))
            if a + b]
    assert cells == want and cells
    marks = browser.evaluate("[...document.querySelectorAll('#timeline-axis a[data-seek]')].map(a => "
                             "Number(a.dataset.seek))")
    assert marks == [f["time"] for f in stats["findings"] if f["time"] is not None]
    inputs = browser.evaluate("document.querySelectorAll('#timeline-axis line.input').length")
    assert inputs == sum(len(s["inputs"]) for s in stats["sessions"]) > 0
    data = timeline_data(browser)
    assert data["duration"] == stats["duration"]
    assert {f["time"] for f in stats["findings"] if f["time"] is not None} <= {s["t"] for s in data["shots"]}
    clean(browser)


def test_every_picture_is_renders_screen_at_its_time(pages: dict) -> None:
    capture, page = pages["resize"]
    text = page.read_text()
    start = text.index('id="timeline-data">') + len('id="timeline-data">')
    data = json.loads(text[start:text.index("</script>", start)])
    assert data["shots"] == sorted(data["shots"], key=lambda s: s["t"])
    for s in data["shots"]:
        if s["picture"] is None:  # "nothing on the screen yet": and there is nothing
            assert picture_at(str(capture), s["at"]) is None
        else:
            same_as_render(capture, s["at"], data["pictures"][s["picture"]])
    assert len(set(data["pictures"])) == len(data["pictures"])  # each picture in the page once


def test_a_long_capture_keeps_its_pictures_bounded(tmp_path: Path) -> None:
    capture = CAPTURES / "long-desktop.pcapng"  # 59 s
    page = tmp_path / "long.html"
    assert spicetool("report", str(capture), "-o", str(page)).returncode == 0
    text = page.read_text()
    start = text.index('id="timeline-data">') + len('id="timeline-data">')
    data = json.loads(text[start:text.index("</script>", start)])
    ticks = [s for s in data["shots"] if s["label"].endswith(" s")]
    assert data["interval"] == 1 and len(ticks) == int(data["duration"]) + 1
    # an hour's capture gets a picture a minute, a day's every half hour: never more than MAX_TICKS
    for duration in (59.4, 119.0, 121.0, 3600.0, 86400.0):
        assert int(duration // interval_for(duration)) + 1 <= MAX_TICKS
    assert interval_for(59.4) == 1 and interval_for(121.0) == 2 and interval_for(3600.0) == 60
    assert interval_for(86400.0) == 1800
    assert len(text) < 3_000_000


def test_too_long_a_capture_to_keep_is_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above KEEP_BYTES the pass keeps no records and the timeline reads the capture a second time:
    the same pictures at the same times."""
    import spicetool.capture.records as capture_module
    import spicetool.triage.thumbs as thumbs
    from spicetool.triage.command import report_page

    opened: list[str] = []
    real_open = capture_module.open_capture

    def counting_open(path: str):  # type: ignore[no-untyped-def]
        opened.append(path)
        return real_open(path)

    monkeypatch.setattr(capture_module, "open_capture", counting_open)

    def data(page: str) -> dict:
        start = page.index('id="timeline-data">') + len('id="timeline-data">')
        return json.loads(page[start:page.index("</script>", start)])

    kept = data(report_page(str(SEVERAL_SCREENS))[2])
    assert len(opened) == 1  # the pass's own records
    monkeypatch.setattr(thumbs, "KEEP_BYTES", 1000)
    again = data(report_page(str(SEVERAL_SCREENS))[2])
    assert len(opened) == 3  # the pass, and the timeline's second reading
    assert again == kept and len(kept["pictures"]) >= 5
