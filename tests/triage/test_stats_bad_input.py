"""`spicetool stats` on bad input: one clear line and an exit code, never a traceback; figures up to damage."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from support import CAPTURES

from spicetool.capture import TCP_ACK, TCP_SYN, PcapWriter


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["spicetool", "stats", *args], capture_output=True, text=True, timeout=120)


def test_not_a_capture(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n" * 10)
    r = run(str(bad))
    assert r.returncode == 3
    assert r.stderr.strip().startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_missing_file(tmp_path: Path) -> None:
    r = run(str(tmp_path / "nope.pcap"))
    assert r.returncode == 3 and "nope.pcap" in r.stderr and "Traceback" not in r.stderr


def test_no_spice(tmp_path: Path) -> None:
    path = tmp_path / "http.pcap"
    with open(path, "wb") as f:
        w = PcapWriter(f)
        w.segment(1.0, "10.0.0.1:40000", "10.0.0.2:80", 100, 0, TCP_SYN)
        w.segment(1.1, "10.0.0.1:40000", "10.0.0.2:80", 101, 1, TCP_ACK, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    r = run(str(path))
    assert r.returncode == 1 and "no SPICE traffic" in r.stderr


def test_truncated_capture_keeps_what_came_before(tmp_path: Path) -> None:
    whole = (CAPTURES / "typing.pcapng").read_bytes()
    full = json.loads(run("--json", str(CAPTURES / "typing.pcapng")).stdout)
    texts = []
    for fraction in (0.5, 0.9, 0.98):
        cut = tmp_path / "cut.pcapng"
        cut.write_bytes(whole[: int(len(whole) * fraction) + 3])  # +3: mid-block, never on a boundary
        r = run("--json", str(cut))
        assert r.returncode == 4, r.stderr
        assert "truncated" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        figs = json.loads(r.stdout)
        assert "main:0" in {c["name"] for c in figs["sessions"][0]["channels"]}
        assert figs["frames"] < full["frames"]
        texts.append(figs["sessions"][0]["typed_text"])
    # what was typed before the cut is there; nothing after it is invented
    full_text = full["sessions"][0]["typed_text"]
    assert all(full_text.startswith(t) for t in texts)
    assert len(texts[0]) <= len(texts[1]) <= len(texts[2]) and len(texts[2]) >= len(full_text) // 2


def test_tables_render_every_section() -> None:
    r = run(str(CAPTURES / "typing.pcapng"))
    assert r.returncode == 0, r.stderr
    for title in ("overview", "bandwidth per channel", "capabilities", "latency", "images drawn",
                  "problems and notices", "input timeline", "typed text"):
        assert title in r.stdout
    assert "echo hello from the spice client; uname -s" in r.stdout


def test_a_clock_jump_keeps_the_series_bounded(tmp_path: Path) -> None:
    """One packet stamped ten years late (a corrupt timestamp): stats and the per-second series stay bounded
    (entries of several seconds each, said in seconds_per_bin), the bytes all counted."""
    from spicetool.capture import open_capture

    segments = list(open_capture(str(CAPTURES / "typing.pcapng")))
    jump = 10 * 365 * 86400.0
    path = tmp_path / "jump.pcap"
    with open(path, "wb") as f:
        w = PcapWriter(f)
        for i, s in enumerate(segments):
            w.segment(s.time + (jump if i == len(segments) // 2 else 0.0), s.src, s.dst, s.seq, s.ack, s.flags,
                      s.payload)
    full = json.loads(run("--json", str(CAPTURES / "typing.pcapng")).stdout)
    r = run("--json", str(path))
    assert r.returncode in (0, 4) and "Traceback" not in r.stderr, r.stderr
    figs = json.loads(r.stdout)
    assert figs["seconds_per_bin"] > 1
    chans = {c["name"]: c for c in figs["sessions"][0]["channels"]}
    whole = {c["name"]: c for c in full["sessions"][0]["channels"]}
    for name, c in chans.items():
        series = c["bytes_per_second"]["server"]
        assert len(series) <= 2 * 86400 + 1
        assert c["wire_bytes"] == whole[name]["wire_bytes"]
