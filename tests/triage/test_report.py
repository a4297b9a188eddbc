"""`spicetool report`: one self-contained HTML page holding the figures of `stats`."""

from __future__ import annotations

import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from support import CAPTURES


class Page(HTMLParser):
    """Collects what a self-contained page must not have (outside references) and what it should."""

    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.tags: dict[str, int] = {}
        self.figures = ""
        self._in_figures = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        a = dict(attrs)
        for key in ("src", "href"):
            if key in a:
                self.external.append(f"{tag} {key}={a[key]}")
        if tag == "link":
            self.external.append("link")
        self._in_figures = tag == "script" and a.get("id") == "figures"

    def handle_data(self, data: str) -> None:
        if self._in_figures:
            self.figures += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_figures = False


def report(capture: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["spicetool", "report", str(capture), "-o", str(out)], capture_output=True, text=True,
                          timeout=120)


def test_report_is_self_contained_and_holds_the_figures(tmp_path: Path) -> None:
    capture = CAPTURES / "typing.pcapng"
    out = tmp_path / "typing.html"
    r = report(capture, out)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    page = Page()
    page.feed(text)
    assert page.external == []
    assert not re.search(r"url\(|@import|https?://(?!www\.w3\.org/2000/svg)", text)
    assert page.tags.get("svg", 0) >= 3  # bandwidth, round trips, image bytes
    stats = json.loads(subprocess.run(["spicetool", "stats", "--json", str(capture)], capture_output=True,
                                      text=True, check=True).stdout)
    assert json.loads(page.figures) == stats
    for heading in ("Overview", "Channels and bandwidth", "Latency", "Images drawn", "Video streams",
                    "Problems and notices", "Inputs"):
        assert f"<h3>{heading}" in text
    assert "echo hello from the spice client; uname -s" in text


def test_report_of_a_video_session_lists_the_stream(tmp_path: Path) -> None:
    out = tmp_path / "video.html"
    assert report(CAPTURES / "mjpeg-stream.pcapng", out).returncode == 0
    assert "MJPEG" in out.read_text()


def test_report_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"\x00" * 64)
    out = tmp_path / "x.html"
    r = report(bad, out)
    assert r.returncode == 3 and r.stderr.startswith("error:") and not out.exists()
    whole = (CAPTURES / "typing.pcapng").read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(whole[: len(whole) * 9 // 10 + 3])
    r = report(cut, out)
    assert r.returncode == 4 and "truncated" in r.stderr and "Traceback" not in r.stderr
    assert "<h3>Overview" in out.read_text()
