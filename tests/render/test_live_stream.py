"""Against the real client, while a video plays: Xspice streams an ffplay testsrc as MJPEG, spicy
shows it on an Xvfb, tshark captures; screenshots of spicy's window taken at known moments show
the frame whose multimedia time had come, not the newest one to arrive (which is ~400 ms newer)."""
from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from spicetool.render import picture_at
from spicetool.render.frames import records_of

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))
from support import need_program  # noqa: E402

import peers  # noqa: E402

ROOT_COLOUR = (0x2F, 0x4F, 0x6F)
TESTSRC = ["ffplay", "-hide_banner", "-loglevel", "error", "-an", "-noborder", "-left", "360", "-top", "360",
           "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"]


def _session(tmp: Path) -> tuple[Path, list[tuple[float, np.ndarray]]]:
    """A capture of a streaming session and spicy's screen at a few moments (wall clock = capture clock)."""
    port = peers.pick_port(range(5924, 5930))
    server_display = peers.pick_display(range(24, 30))
    client_display = peers.pick_display(range(24, 30), skip=[server_display])
    settings = peers.XspiceSettings(port=port, display=server_display, image_compression="auto_glz",
                                    jpeg_wan_compression="never", streaming_video="all")
    capture = tmp / "stream.pcapng"
    shots = []
    with peers.Xspice(settings, tmp) as xs:
        subprocess.run(["xsetroot", "-display", f":{xs.display}", "-solid", "#%02x%02x%02x" % ROOT_COLOUR], check=True)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "SDL_AUDIODRIVER": "dummy"}
        with peers.Program(TESTSRC, xs.display, tmp, name="ffplay", env=env), \
                peers.Xvfb(client_display, "1024x768x24") as xv, peers.Tshark(port, capture, log_dir=tmp) as cap:
            with peers.Spicy(xv.display, port, log_dir=tmp):
                time.sleep(4.0)  # the server detects the video and starts the stream
                for _ in range(6):
                    before = time.time()
                    xwd = subprocess.run(["xwd", "-root", "-silent", "-display", f":{xv.display}"],
                                         capture_output=True, check=True).stdout
                    at = (before + time.time()) / 2
                    png = subprocess.run(["convert", "xwd:-", "png:-"], input=xwd, capture_output=True,
                                         check=True).stdout
                    shots.append((at, np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)))
                    time.sleep(0.45)
            time.sleep(0.5)
    assert cap.dropped == 0
    return capture, shots


def test_the_real_client_shows_the_frame_whose_time_has_come() -> None:
    for program in ("Xorg", "spicy", "tshark", "Xvfb", "ffplay", "xwd", "convert"):
        need_program(program)
    with tempfile.TemporaryDirectory(prefix="live-stream-") as name:
        capture, shots = _session(Path(name))
        t0 = clock = dest = None
        stream = []  # (arrival, due, frame as the client decoded it)
        for rec in records_of(str(capture)):
            t0 = rec.time if t0 is None else t0
            if rec.layer != "message" or rec.direction.name != "SERVER":
                continue
            if rec.type == "init" and rec.channel.channel_type == 1:
                clock = (rec.fields["multi_media_time"], rec.time)
            elif rec.type == "stream_create":
                dest = rec.fields["dest"]
            elif rec.type == "stream_data" and clock is not None:
                due = clock[1] + (rec.fields["base"]["multi_media_time"] - clock[0]) / 1000
                stream.append((rec.time, due, Image.open(io.BytesIO(bytes(rec.fields["data"]))).convert("RGB")))
        assert dest is not None and len(stream) > 50
        agree = 0
        for at, shot in shots:
            # spicy scales the guest into its window: find it by the root colour, compare at that scale
            ys, xs = np.nonzero((shot == ROOT_COLOUR).all(axis=2))
            x0, y0, k = xs.min(), ys.min(), (xs.max() + 1 - xs.min()) / 1024
            w, h = round(320 * k), round(240 * k)
            left, top = round(x0 + dest["left"] * k), round(y0 + dest["top"] * k)
            area = shot[top + 2:top + h - 2, left + 2:left + w - 2]
            errors = [np.abs(area - np.asarray(f.resize((w, h), Image.BILINEAR)).astype(int)[2:-2, 2:-2]).mean()
                      for _, _, f in stream]
            shown = int(np.argmin(errors))
            due = max(i for i, s in enumerate(stream) if s[1] <= at)  # the frame whose time had come
            newest = max(i for i, s in enumerate(stream) if s[0] <= at)  # the newest to arrive
            assert newest - due >= 6  # ~400 ms apart at 25 fps: the two rules differ
            agree += abs(shown - due) <= 3 and newest - shown >= 6  # GTK's redraw lags a frame or two
            # and render shows, at that moment, the frame its rule says
            ours = picture_at(str(capture), at - t0).image[dest["top"]:dest["bottom"], dest["left"]:dest["right"]]
            assert (ours == np.asarray(stream[due][2])).all(axis=2).mean() > 0.99
        assert agree >= len(shots) - 1
