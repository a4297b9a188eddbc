"""`spicetool report`: one self-contained HTML page holding the figures of `stats`."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import CAPTURES

from spicetool.render import picture_at
from spicetool.triage.thumbs import downscale


class Page(HTMLParser):
    """Collects what a self-contained page must not have (outside references) and what it should."""

    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.thumbs: list[float] = []  # data-at of each thumbnail
        self.images: list[str] = []
        self.pairs: list[tuple[float, str | None]] = []  # (data-at, its img src or None: no picture yet)
        self.tags: dict[str, int] = {}
        self.figures = ""
        self._in_figures = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        a = dict(attrs)
        for key in ("src", "href"):
            if key in a and not (tag == "img" and key == "src" and a[key].startswith("data:image/png;base64,")) \
                    and not (tag == "a" and key == "href" and a[key].startswith("#")):  # a link within the page
                self.external.append(f"{tag} {key}={a[key]}")
        if tag == "figure" and "data-at" in a:
            self.thumbs.append(float(a["data-at"]))
            self.pairs.append((float(a["data-at"]), None))
        if tag == "img":
            self.images.append(a.get("src", ""))
            if self.pairs and self.pairs[-1][1] is None:
                self.pairs[-1] = (self.pairs[-1][0], a.get("src", ""))
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


def test_thumbnails_are_the_screen_at_each_key_moment(tmp_path: Path) -> None:
    capture = CAPTURES / "resize.pcapng"  # 1024x768, then 800x600 at 5.9 s
    out = tmp_path / "resize.html"
    assert report(capture, out).returncode == 0
    page = Page()
    page.feed(out.read_text())
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", out.read_text())
    expected = [r"largest round trip: [\d.]+ ms \(\w+:\d\)", r"first complete picture \(1024x768\)",
                r"after the change to 800x600 at [\d.]+ s \(800x600\)", r"end of the capture \(800x600\)"]
    got = [c.split(" s: ", 1)[1] for c in captions]
    assert len(got) == len(expected) and all(re.fullmatch(e, g) for e, g in zip(expected, got)), got
    # the round trip happens before anything is drawn: no picture, said so
    assert "nothing on the screen yet" in out.read_text() and picture_at(str(capture), page.thumbs[0]) is None
    assert len(page.images) == 3 and page.thumbs == sorted(page.thumbs)
    sizes = []
    for at, src in zip(page.thumbs[1:], page.images):
        shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))
        frame = picture_at(str(capture), at)
        assert frame is not None
        assert np.array_equal(shown, np.asarray(downscale(frame.image))), at
        sizes.append(frame.image.shape[:2])
        assert shown.std() > 5  # a desktop, not a blank surface
    assert sizes == [(768, 1024), (600, 800), (600, 800)]


def test_report_of_a_folder_pages_and_index(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("typing.pcapng", "resize.pcapng"):
        (src / name).symlink_to(CAPTURES / name)
    whole = (CAPTURES / "typing.pcapng").read_bytes()
    (src / "cut.pcapng").write_bytes(whole[: len(whole) * 9 // 10 + 3])
    (src / "junk.pcap").write_bytes(b"\x00" * 64)
    (src / "notes.txt").write_text("not a capture")
    out = tmp_path / "out"
    r = subprocess.run(["spicetool", "report", str(src), "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 4 and "Traceback" not in r.stderr, r.stderr
    lines = sorted(r.stderr.splitlines())
    assert len(lines) == 2 and lines[0].startswith(f"error: {src / 'cut.pcapng'}: capture truncated")
    assert lines[1] == f"error: {src / 'junk.pcap'}: not a pcap or pcapng capture (starts with 00000000)"
    assert sorted(p.name for p in out.iterdir()) == ["cut.pcapng.html", "index.html", "resize.pcapng.html",
                                                     "typing.pcapng.html"]
    index = (out / "index.html").read_text()
    rows = dict(re.findall(r'<tr[^>]*data-capture="([^"]+)">(.*?)</tr>', index))
    assert set(rows) == {"cut.pcapng", "junk.pcap", "resize.pcapng", "typing.pcapng"}
    assert '<a href="typing.pcapng.html">' in rows["typing.pcapng"] and ">ok<" in rows["typing.pcapng"]
    assert "damaged: " in rows["cut.pcapng"] and "truncated" in rows["cut.pcapng"]
    assert "<a " not in rows["junk.pcap"] and ">unreadable: not a pcap or pcapng capture" in rows["junk.pcap"]
    # the line of key figures is the capture's own stats
    stats = json.loads(subprocess.run(["spicetool", "stats", "--json", str(CAPTURES / "resize.pcapng")],
                                      capture_output=True, text=True, check=True).stdout)
    cells = re.findall(r"<td class=n>([^<]*)</td>", rows["resize.pcapng"])
    assert cells[1] == f"{stats['duration']:.3f}" and cells[4] == str(stats["sessions"][0]["latency"]["round_trips"])
    assert "1024x768 → 800x600" in rows["resize.pcapng"]
    cut = (out / "cut.pcapng.html").read_text()
    assert 'id="damage"' in cut and "truncated" in cut and "<h3>Overview" in cut
    assert "end of the capture (1024x768)</figcaption>" in cut  # the screen up to the damage
    assert 'id="damage"' not in (out / "typing.pcapng.html").read_text()


def test_report_of_an_empty_folder(tmp_path: Path) -> None:
    r = subprocess.run(["spicetool", "report", str(tmp_path), "-o", str(tmp_path / "o")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.startswith("error: no captures") and len(r.stderr.splitlines()) == 1


def test_guest_without_uuid(tmp_path: Path) -> None:
    """QEMU started without -uuid sends 16 zero bytes: the guest is its name alone, not a bytes repr."""
    out = tmp_path / "q.html"
    assert report(CAPTURES / "qemu-channels.pcapng", out).returncode == 0
    assert "<tr><td>guest</td><td>QEMU 7.2.22</td></tr>" in out.read_text()


def test_report_cut_before_the_display_opens(tmp_path: Path) -> None:
    cut = tmp_path / "early.pcapng"
    cut.write_bytes((CAPTURES / "resize.pcapng").read_bytes()[:200_000])  # main channel only
    out = tmp_path / "early.html"
    r = report(cut, out)
    assert r.returncode == 4 and r.stderr.count("\n") == 1 and "truncated" in r.stderr
    page = out.read_text()
    assert 'id="damage"' in page and "No picture: the capture holds no display channel." in page


def test_report_agrees_with_stats_and_render(capture: Path, tmp_path: Path) -> None:
    """On every capture (the corpus and the fresh ones): the figures on the page are those of
    `stats --json`, and every thumbnail is render's picture at its time (`picture_at`)."""
    out = tmp_path / "p.html"
    r = report(capture, out)
    assert r.returncode == 0, r.stderr
    page = Page()
    page.feed(out.read_text())
    stats = json.loads(subprocess.run(["spicetool", "stats", "--json", str(capture)], capture_output=True,
                                      text=True, check=True).stdout)
    assert json.loads(page.figures) == stats
    assert page.thumbs and page.thumbs == sorted(page.thumbs) and page.images
    for at, src in page.pairs:
        frame = picture_at(str(capture), at)
        if src is None:  # said "nothing on the screen yet": and there is nothing
            assert frame is None
            continue
        assert frame is not None
        shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))
        assert np.array_equal(shown, np.asarray(downscale(frame.image))), at


def test_report_reads_the_capture_once(capture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's thumbnails come from the figures' own pass (no second reading of the capture), and
    they are exactly what a pass of their own over the capture gives."""
    import spicetool.capture.records as capture_module
    import spicetool.triage.command as command
    import spicetool.triage.thumbs as thumbs

    opened: list[str] = []
    real_open = capture_module.open_capture

    def counting_open(path: str):  # type: ignore[no-untyped-def]
        opened.append(path)
        return real_open(path)

    monkeypatch.setattr(capture_module, "open_capture", counting_open)  # every command opens captures there
    import spicetool.triage.report as report_module

    seen: dict = {}
    real_render = report_module.render_html

    def keep(figs, source, damage=None, screens=None, timeline=None):  # type: ignore[no-untyped-def]
        seen["figs"], seen["screens"] = figs, screens
        return real_render(figs, source, damage, screens, timeline)

    monkeypatch.setattr(report_module, "render_html", keep)
    result = command.write_report(str(capture), str(tmp_path / "p.html"))
    monkeypatch.undo()
    assert result["code"] == 0 and opened == [str(capture)]
    session, taken, warnings = seen["screens"]
    again = thumbs.thumbnails(str(capture), seen["figs"])  # a pass of its own
    assert (session, warnings) == again[:1] + again[2:]
    assert [(t.label, t.at, t.width, t.height, t.png) for t in taken] == \
        [(t.label, t.at, t.width, t.height, t.png) for t in again[1]]


def test_report_folder_with_a_capture_without_spice(tmp_path: Path) -> None:
    from spicetool.capture import TCP_ACK, TCP_SYN, PcapWriter

    src = tmp_path / "in"
    src.mkdir()
    with open(src / "http.pcap", "wb") as f:
        w = PcapWriter(f)
        w.segment(1.0, "10.0.0.1:40000", "10.0.0.2:80", 100, 0, TCP_SYN)
        w.segment(1.1, "10.0.0.1:40000", "10.0.0.2:80", 101, 1, TCP_ACK, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    (src / "typing.pcapng").symlink_to(CAPTURES / "typing.pcapng")
    out = tmp_path / "out"
    r = subprocess.run(["spicetool", "report", str(src), "-o", str(out), "-j", "2"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1 and r.stderr == f"error: no SPICE traffic found in {src / 'http.pcap'}\n"
    index = (out / "index.html").read_text()
    assert 'data-capture="http.pcap"><td>http.pcap</td><td class="status">no SPICE traffic</td>' in index
    assert '<td><a href="typing.pcapng.html">typing.pcapng</a></td><td class="status">ok</td>' in index
