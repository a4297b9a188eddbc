"""The report in a real browser (Debian's headless chromium): it loads without console errors,
its charts and thumbnails are drawn (pixels in their regions of a screenshot), and the figures
it shows are those of `stats --json`."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import CAPTURES, need_program

WIDTH = 1200

# appended to a copy of the page (after everything it measures, so the layout above is unchanged):
# where each chart and thumbnail is, whether the images decoded, and the text of every table
MEASURE = """<pre id="measured"></pre><script>
const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; };
document.getElementById("measured").textContent = JSON.stringify({
  height: document.documentElement.scrollHeight,
  svgs: [...document.querySelectorAll("svg")].map(box),
  imgs: [...document.querySelectorAll("figure.thumb img")].map(i => ({box: box(i), ok: i.complete && i.naturalWidth > 0})),
  tables: [...document.querySelectorAll("h3 + table")].map(t => ({h: t.previousElementSibling.textContent,
           rows: [...t.rows].map(r => [...r.cells].map(c => c.textContent))})),
  intro: document.querySelector("p").textContent,
});
</script>"""


def chromium(*args: str) -> subprocess.CompletedProcess:
    exe = need_program("chromium")
    return subprocess.run([exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--enable-logging=stderr", "--v=1", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def shown(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("browser")
    capture = CAPTURES / "resize.pcapng"  # thumbnails, a resize, round trips
    page = tmp / "resize.html"
    subprocess.run(["spicetool", "report", str(capture), "-o", str(page)], check=True, timeout=120)
    measured_page = tmp / "measured.html"
    measured_page.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    dom = chromium("--dump-dom", f"--window-size={WIDTH},900", measured_page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom.stdout, re.S)
    assert found and found.group(1), "the measuring script did not run"
    m = json.loads(found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    shot = tmp / "shot.png"
    r = chromium(f"--screenshot={shot}", f"--window-size={WIDTH},{m['height']}", page.as_uri())
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    stats = json.loads(subprocess.run(["spicetool", "stats", "--json", str(capture)], capture_output=True,
                                      text=True, check=True).stdout)
    pngs = [np.asarray(Image.open(io.BytesIO(base64.b64decode(src))).convert("RGB")).astype(int)
            for src in re.findall(r'<img src="data:image/png;base64,([^"]+)"', page.read_text())]
    return {"pngs": pngs, "m": m, "shot": np.asarray(Image.open(shot).convert("RGB")), "log": r.stderr + dom.stderr,
            "stats": stats}


def console(log: str) -> list[str]:
    return [line for line in log.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_console_messages_are_seen(tmp_path: Path) -> None:
    """The check below can fail: a page with an error and a log line shows both."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><script>console.error("boom"); notDefined();</script>')
    r = chromium(f"--screenshot={tmp_path / 'bad.png'}", "--window-size=400,300", bad.as_uri())
    seen = console(r.stderr)
    assert len(seen) == 2 and '"boom"' in seen[0] and "ReferenceError" in seen[1]


def test_no_console_errors(shown: dict) -> None:
    assert console(shown["log"]) == []
    # the measuring script's page must have loaded too: a broken page would not get here
    assert shown["m"]["height"] > 1000


def _region(shot: np.ndarray, box: list[float]) -> np.ndarray:
    x, y, w, h = (round(v) for v in box)
    return shot[y:y + h, x:x + w]


def test_charts_and_thumbnails_are_drawn(shown: dict) -> None:
    m, shot = shown["m"], shown["shot"]
    assert shot.shape[1] == WIDTH and shot.shape[0] >= m["height"] - 1
    assert len(m["svgs"]) == 4 and len(m["imgs"]) == 3  # three charts and the timeline's axis
    for box in m["svgs"]:
        region = _region(shot, box)
        assert region.size and box[2] >= 700
        ink = (region.min(axis=2) < 200).mean()  # axes, grid, lines, labels
        colour = (region.max(axis=2).astype(int) - region.min(axis=2) > 60).mean()  # the series themselves
        assert ink > 0.005 and colour > 0.0005, (box, ink, colour)
    for img, png in zip(m["imgs"], shown["pngs"], strict=True):
        x, y, w, h = img["box"]
        assert img["ok"] and (w, h) == (242, 182)  # 1024x768 as 240x180, and a 1 px border
        region = _region(shot, [x + 1, y + 1, w - 2, h - 2]).astype(int)
        # the thumbnail itself is on the screen (give or take the browser's colour handling)
        assert region.shape == png.shape and np.abs(region - png).mean() < 2
        assert len(np.unique(region.reshape(-1, 3), axis=0)) > 50  # a desktop, not a flat area


def test_figures_shown_equal_stats_json(shown: dict) -> None:
    m, stats = shown["m"], shown["stats"]
    s = stats["sessions"][0]
    assert m["intro"].endswith(f"{stats['frames']} frames, {stats['duration']:.3f} s, 1 session(s).")
    tables = {t["h"]: t["rows"] for t in m["tables"]}
    overview = dict(tables["Overview"][1:])
    assert overview["start / duration"] == f"{s['start']:.3f} s / {s['duration']:.3f} s"
    assert overview["screen"] == " → ".join(f"{x['width']}x{x['height']} at {x['time']:.2f} s"
                                            for x in s["screen_sizes"])
    channels = {row[0]: row for row in tables["Channels and bandwidth"][1:]}
    assert set(channels) == {c["name"] for c in s["channels"]}
    for c in s["channels"]:
        row = channels[c["name"]]
        assert [int(row[3]), int(row[4])] == [c["messages"].get("client", 0), c["messages"].get("server", 0)]
    latency = {row[0]: [float(v) for v in row[1:]] for row in tables["Latency (PING → PONG)"][1:]}
    lat = s["latency"]
    assert latency.pop("all") == [lat["round_trips"], lat["min_ms"], lat["avg_ms"], lat["p95_ms"], lat["max_ms"]]
    assert latency == {k: [v["round_trips"], v["min_ms"], v["avg_ms"], v["p95_ms"], v["max_ms"]]
                       for k, v in lat["per_channel"].items()}
    images = {row[0]: int(row[1]) for row in tables["Images drawn"][1:]}
    assert images == {k: v["count"] for k, v in s["images"].items()}
