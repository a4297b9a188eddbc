"""Against the real client: Xspice serves a desktop, spice-gtk's `spicy-screenshot` connects and
writes what its own canvas drew, tshark captures the session; `render --last` of that capture must
be the same picture, pixel for pixel, for each image compression.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spicetool.render import RenderStats, picture_at

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))
from support import need_program  # noqa: E402

import peers  # noqa: E402

COMPRESSIONS = ["off", "quic", "lz", "glz", "auto_lz"]
EXPECTED = {"off": {"BITMAP"}, "quic": {"QUIC"}, "lz": {"LZ_RGB"}, "glz": {"GLZ_RGB", "LZ_RGB"},
            "auto_lz": {"LZ_RGB", "QUIC"}}  # image types each setting makes the server send
BASE_PORT, BASE_DISPLAY = 5971, 71  # this module's own ports and displays


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_render_equals_the_real_clients_canvas(tmp_path: Path, compression: str) -> None:
    for program in ("Xorg", "spicy-screenshot", "tshark", "xterm", "xlogo", "xsetroot"):
        need_program(program)
    i = COMPRESSIONS.index(compression)
    port = peers.pick_port(range(BASE_PORT + i, BASE_PORT + 40, len(COMPRESSIONS)))
    display = peers.pick_display(range(BASE_DISPLAY + i, BASE_DISPLAY + 25, len(COMPRESSIONS)))
    settings = peers.XspiceSettings(port=port, display=display, image_compression=compression)
    with peers.Xspice(settings, tmp_path) as server:
        import subprocess
        subprocess.run(["xsetroot", "-display", f":{display}", "-solid", "#2f4f6f"], check=True)
        with peers.Program(["xterm", "-geometry", "60x12+30+30", "-e", "sh", "-c",
                            "ls -l /usr/share/X11; exec sleep 600"], display, tmp_path, name="xterm"), \
                peers.Program(["xlogo", "-geometry", "150x150+600+200", "-render"], display, tmp_path):
            time.sleep(2.0)  # the programs map their windows and draw
            capture = tmp_path / "session.pcapng"
            with peers.Tshark(port, capture) as tshark:
                shot = peers.spicy_screenshot(port, tmp_path / "client.ppm")
                time.sleep(0.5)
            truth = tmp_path / "truth.png"
            server.screenshot(truth)
    assert tshark.dropped == 0
    stats = RenderStats()
    frame = picture_at(str(capture), None, stats=stats)
    assert frame is not None
    client = np.asarray(Image.open(shot).convert("RGB"))
    assert frame.image.shape == client.shape
    differ = (frame.image != client).any(axis=2)
    assert not differ.any(), f"{int(differ.sum())} pixels differ from spice-gtk's own picture"
    assert stats.placeholders == 0 and sum(stats.images.values()) >= 1
    assert set(stats.images) - {"BITMAP"} <= EXPECTED[compression] and set(stats.images) & EXPECTED[compression]
    x_screen = np.asarray(Image.open(truth).convert("RGB"))
    assert (frame.image != x_screen).any(axis=2).mean() < 0.001  # and it is the X screen (a pointer sprite aside)
