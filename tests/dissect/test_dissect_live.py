"""`dissect --live` on loopback while a real client talks to a real server (Xspice)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import ROOT, need_program

sys.path.insert(0, str(ROOT / "scripts"))
import peers  # noqa: E402

PORT = 5951  # this test's own port
DISPLAYS = range(51, 56)  # and X displays


@pytest.fixture(scope="module")
def xspice(tmp_path_factory: pytest.TempPathFactory):
    need_program("Xorg")
    settings = peers.XspiceSettings(port=PORT, display=peers.pick_display(DISPLAYS), image_compression="lz")
    with peers.Xspice(settings, tmp_path_factory.mktemp("xspice")) as server:
        yield server


def start_live(*extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "spicetool", "dissect", "--live", "-i", "lo", "-f", f"tcp port {PORT}", "--json",
         *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "capturing on lo ..." once the socket is open
    if "capturing on lo" not in line:
        proc.kill()
        pytest.fail(f"dissect --live did not start: {line}{proc.communicate(timeout=10)[1]}")
    return proc


def test_live_capture_until_ctrl_c(xspice: peers.Xspice, tmp_path: Path) -> None:
    need_program("spicy-screenshot")
    proc = start_live()
    peers.spicy_screenshot(PORT, tmp_path / "shot.ppm")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    records = [json.loads(line) for line in out.splitlines()]
    links = {r["channel"] for r in records if r["type"] == "link_mess"}
    assert {"main", "display"} <= links
    surfaces = [r["fields"] for r in records if r["type"] == "surface_create"]
    assert surfaces and (surfaces[0]["width"], surfaces[0]["height"]) == xspice.screen_size()
    sessions = {r["session"] for r in records}
    assert len(sessions) == 1
    draws = [r for r in records if r["type"].startswith("draw_")]
    assert draws, "no draw message seen live"


def test_live_capture_bounded_by_count(xspice: peers.Xspice, tmp_path: Path) -> None:
    need_program("spicy-screenshot")
    proc = start_live("--count", "12")
    peers.spicy_screenshot(PORT, tmp_path / "shot.ppm")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert records and records[0]["type"] == "link_mess"
    assert max(r["frame"] for r in records) <= 12
