"""Render from one leg of a capture taken at a proxy (issue 12, "Legs"): the real proxy-both-legs
(CONNECT through tinyproxy) and html5-websockify (WebSocket through websockify) sessions equal the
Xspice framebuffer exactly from either leg. Drawn from both legs into one canvas they did not
(every draw twice, the legs interleaved): 21.6 and 36.2 dB before the legs were told apart."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from support import deployment_capture


@pytest.mark.parametrize("leg", [None, "server", "client"])
@pytest.mark.parametrize("name", ["proxy-both-legs", "html5-websockify"])
def test_render_last_from_one_leg_equals_the_truth(name: str, leg: str | None, tmp_path: Path) -> None:
    out = tmp_path / "last.png"
    args = ["render", "-q", "--last", str(deployment_capture(f"{name}.pcapng")), "-o", str(out)]
    if leg is not None:  # None: the default, the server's leg
        args += ["--leg", leg]
    done = subprocess.run([sys.executable, "-m", "spicetool", *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    got = np.asarray(Image.open(out).convert("RGB"))
    truth = np.asarray(Image.open(deployment_capture(f"{name}.png")).convert("RGB"))
    assert got.shape == truth.shape
    assert int((got != truth).any(axis=2).sum()) == 0
