"""Issue 12's acceptance for `serve --replay` on the deployment sessions (captures/deployment):
real clients of our server started at the capture's end see the truth on every head, pixel for
pixel. spicy-screenshot shoots display channel 0 (it links no other); spice-gtk's GObject API
(scripts/spice_glib_client.py screenshot, every display and cursor channel linked in one
session, so the heads share the client's caches) shoots each display channel.

The two-leg captures (proxy-both-legs, html5-websockify) are served from their server leg (serve
reads through open_records, whose default that is), the key-carrying pcapng (tls-proxy-keylog.dsb)
with no key log; lost-segments has its own truth test (known pixels), its intact original is here.
Each kind again on the fresh sessions the suite records (tests/support.py FRESH_DEPLOYMENT).
"""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from PIL import Image

from serve_helpers import need, peers, read_ppm
from serve_helpers import spice_server  # noqa: F401 (fixture)
from support import IN_CI, deployment_capture, fresh_deployment

# (capture, key log): every deployment capture serve can replay today; each lossless at its
# end (the gstreamer sessions end on lossless draws after the stream: 0 pixels differ, measured)
SERVED = [("linux-qxl.pcapng", None), ("linux-qxl-two-heads.pcapng", None),
          ("proxy-client-leg.pcapng", None), ("html5-direct.pcapng", None),
          ("gst-vp8.pcapng", None), ("gst-h264.pcapng", None), ("gst-vp9.pcapng", None),
          ("lost-segments.intact.pcapng", None), ("tls-proxy-keylog.pcapng", "tls-proxy-keylog.keys.log"),
          ("proxy-both-legs.pcapng", None), ("html5-websockify.pcapng", None), ("tls-proxy-keylog.dsb.pcapng", None),
          *((f"fresh:{n}", k and f"fresh:{k}") for n, k in fresh_deployment(
              ("fresh-proxy-legs.pcapng", None), ("fresh-html5-websockify.pcapng", None),
              ("fresh-html5-direct.pcapng", None), ("fresh-tls-proxy.pcapng", "fresh-tls-proxy.keys.log"),
              ("fresh-tls-proxy.dsb.pcapng", None), ("fresh-gst-h264-wide.pcapng", None),
              ("fresh-linux-qxl-two-heads.pcapng", None), ("fresh-lost-segments.intact.pcapng", None)))]


def truth(capture: str, head: int) -> np.ndarray:
    """NAME.png is head 0; NAME.qxlN.png head N (QEMU's screendump of each QXL device)."""
    name = capture.split(".")[0]
    png = deployment_capture(f"{name}.png" if head == 0 else f"{name}.qxl{head}.png")  # fresh: names too
    return np.asarray(Image.open(png).convert("RGB"))


def heads_of(capture: str) -> int:
    name = capture.split(".")[0]
    meta = json.loads(deployment_capture(f"{name}.json").read_text())
    return int(meta.get("server", {}).get("qxl_devices", 1))


def need_glib_client() -> None:
    ok = subprocess.run(["/usr/bin/python3", "-c", "import gi; gi.require_version('SpiceClientGLib', '2.0')"],
                        capture_output=True).returncode == 0
    if not ok:
        message = "spice-gtk's GObject API is not installed (gir1.2-spiceclientglib-2.0; bash scripts/test.sh)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def differing(shot: np.ndarray, want: np.ndarray) -> str:
    if shot.shape != want.shape:
        return f"size {shot.shape[1]}x{shot.shape[0]}, truth {want.shape[1]}x{want.shape[0]}"
    return f"{np.count_nonzero(np.any(shot != want, axis=2))} pixels differ"


@pytest.mark.parametrize("name,keylog", SERVED, ids=[c for c, _ in SERVED])
def test_every_head_of_the_replay_end_is_the_truth(spice_server, tmp_path, name, keylog):
    need("spicy-screenshot")
    need_glib_client()
    srv = spice_server(replay=deployment_capture(name), start=float("inf"), heads=True,
                       image_compression="auto_glz",   # `spicetool serve`'s default, as spice-server's
                       keylog=deployment_capture(keylog) if keylog else None)
    assert srv.start_replay().wait(60)   # nothing left to play
    heads = heads_of(name)
    assert sorted(srv.server.displays) == list(range(heads))

    shot = read_ppm(peers.spicy_screenshot(srv.port, tmp_path / "spicy.ppm"))
    assert np.array_equal(shot, truth(name, 0)), f"spicy-screenshot: {differing(shot, truth(name, 0))}"

    shots = peers.glib_screenshot(srv.port, range(heads), tmp_path / "head{display}.ppm")
    for head, path in shots.items():
        shot, want = read_ppm(path), truth(name, head)
        assert np.array_equal(shot, want), f"display {head}: {differing(shot, want)}"


def test_two_heads_are_listed_as_a_two_headed_guest_lists_them(spice_server):
    """display:N and cursor:N for each head, then inputs; MAIN_INIT hints two display channels."""
    from serve_helpers import RawClient
    from spicetool.stack.enums import ChannelType
    srv = spice_server(replay=deployment_capture("linux-qxl-two-heads.pcapng"), start=float("inf"), heads=True)
    client = RawClient(srv.port)
    try:
        assert client.link(int(ChannelType.MAIN)) == "OK"
        init = next(m for m in client.messages(1.0) if m.name == "init")
        assert init.fields["display_channels_hint"] == 2
        client.send(client.message("attach_channels"))
        listed = next(m for m in client.messages(1.0) if m.name == "channels_list")
        got = [(c["type"], c["id"]) for c in listed.fields["channels"]]
        D, C, I = int(ChannelType.DISPLAY), int(ChannelType.CURSOR), int(ChannelType.INPUTS)
        assert got == [(D, 0), (C, 0), (D, 1), (C, 1), (I, 0)]
    finally:
        client.close()


def test_one_head_keeps_the_single_display_channel_list(spice_server):
    from spicetool.server.state import LISTED
    srv = spice_server(replay=deployment_capture("linux-qxl.pcapng"), start=float("inf"), heads=True)
    assert srv.server.channel_list() == LISTED


def test_two_heads_played_from_the_start(spice_server, tmp_path):
    """The whole capture played (GLZ on display 0, LZ on display 1, the client's pixmap cache
    split between them): both heads end on their truth."""
    need_glib_client()
    capture = "linux-qxl-two-heads.pcapng"
    srv = spice_server(replay=deployment_capture(capture), heads=True, image_compression="auto_glz", speed=8)
    finished = srv.start_replay()
    assert finished.wait(60)
    srv.wait_idle()
    shots = peers.glib_screenshot(srv.port, [0, 1], tmp_path / "head{display}.ppm")
    for head, path in shots.items():
        shot, want = read_ppm(path), truth(capture, head)
        assert np.array_equal(shot, want), f"display {head}: {differing(shot, want)}"


def test_the_command_serves_both_heads_and_takes_a_key_log(tmp_path):
    """The real command: `serve --replay` of two heads says so and a client sees both; a key log
    decrypts a TLS capture; --tls-keylog without --replay is a usage error."""
    import signal
    import sys

    from serve_helpers import free_port
    need_glib_client()

    def serve(*args):
        port = free_port()
        p = subprocess.Popen([sys.executable, "-m", "spicetool", "serve", "--disable-ticketing", "-p", str(port),
                              "--from", "end", *args], stderr=subprocess.PIPE, text=True)
        peers.wait_until(lambda: not peers.port_free(port) or p.poll() is not None, 60, "serve listening")
        assert p.poll() is None, p.stderr.read()
        return p, port

    capture = "linux-qxl-two-heads.pcapng"
    p, port = serve("--replay", str(deployment_capture(capture)))
    try:
        shots = peers.glib_screenshot(port, [0, 1], tmp_path / "head{display}.ppm")
        for head, path in shots.items():
            assert np.array_equal(read_ppm(path), truth(capture, head)), f"display {head}"
    finally:
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=10)
    assert "display 0 1024x768, display 1 1024x768" in err

    p, port = serve("--replay", str(deployment_capture("tls-proxy-keylog.pcapng")),
                    "--tls-keylog", str(deployment_capture("tls-proxy-keylog.keys.log")))
    try:
        shot = read_ppm(peers.glib_screenshot(port, [0], tmp_path / "tls{display}.ppm")[0])
        assert np.array_equal(shot, truth("tls-proxy-keylog.pcapng", 0))
    finally:
        p.send_signal(signal.SIGINT), p.wait(10)

    r = subprocess.run([sys.executable, "-m", "spicetool", "serve", "--disable-ticketing", "--tls-keylog",
                        str(deployment_capture("tls-proxy-keylog.keys.log"))], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and "go with" in r.stderr and "--replay" in r.stderr
    r = subprocess.run([sys.executable, "-m", "spicetool", "serve", "--disable-ticketing", "--replay",
                        str(deployment_capture(capture)), "--tls-keylog", str(deployment_capture(capture))],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
