"""Render from one leg of a capture taken at a proxy (issue 12, "Legs"): the real proxy-both-legs
(CONNECT through tinyproxy) and html5-websockify (WebSocket through websockify) sessions equal the
Xspice framebuffer exactly from either leg. Drawn from both legs into one canvas they did not
(every draw twice, the legs interleaved): 21.6 and 36.2 dB before the legs were told apart.

The same on the fresh two-leg sessions the suite records (tests/support.py FRESH_DEPLOYMENT), and
`render --last` of every head of every deployment capture, shipped and fresh, equals its truth."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from support import deployment_capture, fresh_deployment

TWO_LEGS = ["proxy-both-legs", "html5-websockify",
            *fresh_deployment("fresh:fresh-proxy-legs", "fresh:fresh-html5-websockify")]
# every deployment capture with a truth of its own (lost-segments: its known pixels, test_lost_segments)
EVERY = ["proxy-both-legs.pcapng", "proxy-client-leg.pcapng", "html5-websockify.pcapng", "html5-direct.pcapng",
         "tls-proxy-keylog.pcapng", "tls-proxy-keylog.dsb.pcapng", "gst-vp8.pcapng", "gst-h264.pcapng",
         "gst-vp9.pcapng", "linux-qxl.pcapng", "linux-qxl-two-heads.pcapng", "lost-segments.intact.pcapng",
         *fresh_deployment("fresh:fresh-proxy-legs.pcapng", "fresh:fresh-html5-websockify.pcapng",
                           "fresh:fresh-html5-direct.pcapng", "fresh:fresh-tls-proxy.pcapng",
                           "fresh:fresh-tls-proxy.dsb.pcapng", "fresh:fresh-gst-h264-wide.pcapng",
                           "fresh:fresh-linux-qxl-two-heads.pcapng", "fresh:fresh-lost-segments.intact.pcapng")]


def _render(capture: Path, out: Path, *args: str) -> np.ndarray:
    done = subprocess.run([sys.executable, "-m", "spicetool", "render", "-q", "--last", str(capture), "-o", str(out),
                           *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return np.asarray(Image.open(out).convert("RGB"))


@pytest.mark.parametrize("leg", [None, "server", "client"])
@pytest.mark.parametrize("name", TWO_LEGS)
def test_render_last_from_one_leg_equals_the_truth(name: str, leg: str | None, tmp_path: Path) -> None:
    args = [] if leg is None else ["--leg", leg]   # None: the default, the server's leg
    got = _render(deployment_capture(f"{name}.pcapng"), tmp_path / "last.png", *args)
    truth = np.asarray(Image.open(deployment_capture(f"{name}.png")).convert("RGB"))
    assert got.shape == truth.shape
    assert int((got != truth).any(axis=2).sum()) == 0


def heads(name: str) -> list[Path]:
    """The truth of each display channel: NAME.png, then NAME.qxlN.png (QEMU's screendump per device)."""
    meta = json.loads(deployment_capture(f"{name}.json").read_text())
    files = [h["file"] for h in meta.get("ground_truth", {}).get("heads", [])] or [f"{name.split(':')[-1]}.png"]
    return [deployment_capture(("fresh:" if name.startswith("fresh:") else "") + f) for f in files]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(float) - b.astype(float)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


@pytest.mark.parametrize("file", EVERY)
def test_render_last_of_every_head_equals_the_truth(file: str, tmp_path: Path) -> None:
    """Exact on every head: these sessions end on lossless draws (the gstreamer ones after their
    stream was destroyed), so no PSNR allowance is taken."""
    name = file.split(".")[0]
    meta = json.loads(deployment_capture(f"{name}.json").read_text())
    args = []
    if "tls" in meta and not file.endswith(".dsb.pcapng"):
        args = ["--tls-keylog", str(deployment_capture(f"{name}.keys.log"))]
    for display, truth_png in enumerate(heads(name)):
        got = _render(deployment_capture(file), tmp_path / f"head{display}.png", "--display", str(display), *args)
        truth = np.asarray(Image.open(truth_png).convert("RGB"))
        assert got.shape == truth.shape, f"display {display}: {got.shape} against the truth's {truth.shape}"
        wrong = int((got != truth).any(axis=2).sum())
        print(f"{file} display {display}: {wrong} pixels differ, {psnr(got, truth):.1f} dB")
        assert wrong == 0, f"display {display}: {wrong} pixels differ ({psnr(got, truth):.1f} dB)"
