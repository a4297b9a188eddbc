"""The real-peer helpers (scripts/peers.py) and the shipped corpus's own bookkeeping.

The peer tests start a real Xspice, spicy-screenshot and tshark on loopback, on ports 5910-5930 and
displays :10-:30, each picked free at run time so they can run beside other sessions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from support import CAPTURES, ROOT, need_program, read_ppm

sys.path.insert(0, str(ROOT / "scripts"))
import peers  # noqa: E402

PORTS = range(5910, 5931)
DISPLAYS = range(10, 31)



@pytest.fixture
def xspice(tmp_path: Path):
    for program in ("Xorg", "xdpyinfo", "xwd", "spicy-screenshot", "xterm"):
        need_program(program)
    settings = peers.XspiceSettings(port=peers.pick_port(PORTS), display=peers.pick_display(DISPLAYS),
                                    image_compression="quic", jpeg_wan_compression="never")
    with peers.Xspice(settings, tmp_path) as server:
        yield server


def test_config_carries_every_setting(tmp_path: Path) -> None:
    s = peers.XspiceSettings(port=5913, display=13, password="pw", image_compression="glz",
                             jpeg_wan_compression="always", zlib_glz_wan_compression="always",
                             streaming_video="all", vdagent=True, playback=True)
    conf = peers.xspice_config(s, tmp_path)
    for option in ('"SpicePort" "5913"', '"SpicePassword" "pw"', '"SpiceImageCompression" "glz"',
                   '"SpiceJpegWanCompression" "always"', '"SpiceZlibGlzWanCompression" "always"',
                   '"SpiceStreamingVideo" "all"', '"SpiceVdagentEnabled" "True"',
                   f'"SpicePlaybackFIFODir" "{tmp_path / "audio"}"', '"SpiceAddr" "127.0.0.1"'):
        assert option in conf
    assert "SpiceDisableTicketing" not in conf
    with pytest.raises(ValueError):
        peers.XspiceSettings(port=1, display=1, image_compression="lz5").validate()


def test_client_sees_exactly_the_ground_truth(xspice: peers.Xspice, tmp_path: Path) -> None:
    """spicy-screenshot's primary surface equals xwd's root window (QUIC is lossless for RGB)."""
    with peers.Program(["xterm", "-geometry", "60x10+30+40", "-e", "sh", "-c", "echo peers; sleep 60"],
                       xspice.display, tmp_path) as term:
        peers.wait_until(lambda: subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--pid", str(term.pid)], env=peers.x_env(xspice.display),
            capture_output=True).returncode == 0, 15, "xterm window", term.proc)
        shot = peers.spicy_screenshot(xspice.port, tmp_path / "client.ppm")
        truth = xspice.screenshot(tmp_path / "truth.png")
    assert np.array_equal(read_ppm(shot), read_ppm(truth))


def test_tshark_sees_the_link_of_each_channel(xspice: peers.Xspice, tmp_path: Path) -> None:
    need_program("tshark")
    out = tmp_path / "s.pcapng"
    with peers.Tshark(xspice.port, out, log_dir=tmp_path):
        peers.spicy_screenshot(xspice.port, tmp_path / "client.ppm")
    rows = subprocess.run(["tshark", "-r", str(out), "-Y", "spice", "-T", "fields", "-e", "spice.channel_type"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert {"1", "2"} <= set(rows)  # main and display channels linked


def test_xrandr_changes_the_screen(xspice: peers.Xspice) -> None:
    need_program("xrandr")
    assert xspice.screen_size() == (1024, 768)
    xspice.xrandr("800x600")
    assert xspice.screen_size() == (800, 600)


def test_corpus_files_are_described_and_small() -> None:
    captures = sorted(p for p in CAPTURES.glob("*") if p.suffix in (".pcap", ".pcapng"))
    if not captures:
        pytest.skip("no corpus")
    total = 0
    for cap in captures:
        meta = json.loads(cap.with_suffix(".json").read_text())
        assert meta["capture"]["file"] == cap.name
        assert meta["capture"]["format"] == cap.suffix[1:]
        assert cap.with_suffix(".png").exists()
        assert cap.stat().st_size < 5 * 2**20, cap.name
        assert (meta["capture"]["cut"] is not None) == meta["capture"]["starts_mid_session"]
        total += cap.stat().st_size
    assert total < 60 * 2**20
    assert {".pcap", ".pcapng"} <= {c.suffix for c in captures}


def test_spicy_connects_and_shows_the_desktop(xspice: peers.Xspice, tmp_path: Path) -> None:
    for program in ("Xvfb", "spicy", "xdotool"):
        need_program(program)
    with peers.spicy_on_xvfb(xspice.port, DISPLAYS, log_dir=tmp_path) as client:
        assert peers.established_to(xspice.port) >= 2
        assert client.window_id()
