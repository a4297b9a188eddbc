"""Audio and agent rules on real sessions with their fault induced: Xspice playing a tone, the server
itself stopped for a while (SIGSTOP: a stalled host; a stopped source is the guest going silent, which
spice-server says with STOP and START), and a file copied by spice-gtk to a guest whose agent has no place
to save it. Each finding is checked against the moment the fault was made, and nothing else fires."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import ROOT, diagnose, need_program

from spicetool.capture import open_capture
from spicetool.triage.agent_events import FAILED_TRANSFER

PORTS, DISPLAYS = range(5960, 5966), range(60, 66)
PAUSE_AT, PAUSE_S = 3.0, 1.5



def peers_module():
    sys.path.insert(0, str(ROOT / "scripts"))
    import peers
    return peers


@pytest.fixture(scope="module")
def stalled_server(tmp_path_factory) -> tuple[Path, float, float]:
    """(capture, seconds from its first packet to the SIGSTOP, to the SIGCONT) of Xspice playing a tone to
    spicy, the server stopped for PAUSE_S in the middle."""
    for program in ("Xorg", "Xvfb", "spicy", "tshark", "ffmpeg"):
        need_program(program)
    peers = peers_module()
    tmp = tmp_path_factory.mktemp("paused-tone")
    cap = tmp / "paused-tone.pcapng"
    settings = peers.XspiceSettings(port=peers.pick_port(PORTS), display=peers.pick_display(DISPLAYS), playback=True)
    with peers.Xspice(settings, tmp) as xs, peers.Xvfb(peers.pick_display(DISPLAYS, skip=(xs.display,)), log_dir=tmp) as xv:
        with peers.Tshark(xs.port, cap, log_dir=tmp):
            wall0 = time.time()
            tone = peers.PlaybackTone(xs)
            with peers.Spicy(xv.display, xs.port, log_dir=tmp):
                time.sleep(max(0.0, PAUSE_AT - (time.time() - wall0)))
                os.kill(xs.pid, signal.SIGSTOP)
                stopped = time.time()
                time.sleep(PAUSE_S)
                os.kill(xs.pid, signal.SIGCONT)
                resumed = time.time()
                time.sleep(2.5)
            tone.stop()
    first = next(iter(open_capture(str(cap)))).time
    return cap, stopped - first, resumed - first


def test_a_stalled_server_is_an_audio_gap(stalled_server) -> None:
    cap, stopped, resumed = stalled_server
    code, found = diagnose(cap)
    above = [f for f in found if f["severity"] != "info"]
    # (the source, blocked on its full pipe meanwhile, catches up in bursts after: short gaps may follow)
    assert {f["kind"] for f in above} == {"audio_gap"}, above
    gap = max(above, key=lambda f: f["evidence"]["missing_ms"])
    assert code == 5 and gap["channel"] == "playback:0"
    # the last packet before the gap left within a packet's time of the SIGSTOP, the next one after the SIGCONT
    assert abs(gap["time"] - stopped) < 0.25, (gap, stopped)
    assert resumed - 0.05 < gap["until"] < resumed + 0.5, (gap, resumed)
    assert abs(gap["evidence"]["missing_ms"] - PAUSE_S * 1000) < 300, gap


@pytest.fixture(scope="module")
def refused_file(tmp_path_factory) -> tuple[Path, dict]:
    """(capture, the client's file_copy_done event) of spice-gtk copying a file to an agent that cannot save it."""
    for program in ("Xorg", "tshark", "spice-vdagent", "spice-vdagentd"):
        need_program(program)
    peers = peers_module()
    tmp = tmp_path_factory.mktemp("refused-file")
    cap = tmp / "refused-file.pcapng"
    src = tmp / "payload.bin"
    src.write_bytes(os.urandom(200_000))
    settings = peers.XspiceSettings(port=peers.pick_port(PORTS), display=peers.pick_display(DISPLAYS), vdagent=True)
    with peers.Xspice(settings, tmp) as xs, peers.VdAgent(xs):   # no save directory: file transfer disabled
        with peers.Tshark(xs.port, cap, log_dir=tmp):
            client = peers.GlibClient("agent", xs.port, tmp, ["--file", str(src), "--timeout", "30"])
            try:
                client.wait_event("agent_connected", 30)
                done = client.wait_event("file_copy_done", 30)
                time.sleep(1.0)
            finally:
                client.stop()
    return cap, done


def test_a_file_the_agent_refuses_is_file_transfer_failed(refused_file) -> None:
    cap, done = refused_file
    assert done.get("ok") is False, done       # spice-gtk itself said the copy failed
    code, found = diagnose(cap)
    above = [f for f in found if f["severity"] != "info"]
    assert [f["kind"] for f in above] == ["file_transfer_failed"], above
    (f,) = above
    assert code == 5 and f["channel"] == "main:0" and f["evidence"]["result"] in FAILED_TRANSFER
    # the agent with no save directory refuses with DISABLED (the client's ERROR after it is its cancel)
    assert f["evidence"]["result"] == "DISABLED" and f["evidence"]["by"] == "guest"
    status = [r for r in f["evidence"]["results"] if r["frame"] == f["evidence"]["frame"]]
    assert status == [{"time": f["until"], "frame": f["evidence"]["frame"], "result": "DISABLED", "by": "guest"}]
    start = [s for s in open_capture(str(cap)) if s.payload]
    assert f["time"] < f["until"] < start[-1].time - start[0].time


@pytest.fixture(scope="module")
def ignored_request(tmp_path_factory) -> tuple[Path, float]:
    """(capture, seconds from its first packet to the guest's read) of a client that grabs the clipboard and
    never answers the guest's request for it (the file copy before it succeeds)."""
    for program in ("Xorg", "tshark", "spice-vdagent", "spice-vdagentd", "xclip"):
        need_program(program)
    peers = peers_module()
    tmp = tmp_path_factory.mktemp("ignored-request")
    cap, received = tmp / "ignored-request.pcapng", tmp / "received"
    received.mkdir()
    src = tmp / "payload.bin"
    src.write_bytes(os.urandom(50_000))
    settings = peers.XspiceSettings(port=peers.pick_port(PORTS), display=peers.pick_display(DISPLAYS), vdagent=True)
    with peers.Xspice(settings, tmp) as xs, peers.VdAgent(xs, file_xfer_dir=received):
        with peers.Tshark(xs.port, cap, log_dir=tmp):
            wall0 = time.time()
            client = peers.GlibClient("agent", xs.port, tmp, ["--file", str(src), "--ignore-requests",
                                                               "--timeout", "40"])
            try:
                assert client.wait_event("file_copy_done", 30).get("ok"), "the file copy before it failed"
                client.wait_event("client_grab", 10)
                time.sleep(0.5)
                asked = time.time()
                with pytest.raises(subprocess.TimeoutExpired):   # the guest program waits for data that never comes
                    subprocess.run(["xclip", "-o", "-selection", "clipboard", "-display", f":{xs.display}"],
                                   capture_output=True, timeout=7)
                client.wait_event("clipboard_request_ignored", 5)
            finally:
                client.stop()
    first = next(iter(open_capture(str(cap)))).time
    assert first <= wall0 + 1
    return cap, asked - first


def test_a_clipboard_request_nobody_answers_is_clipboard_unanswered(ignored_request) -> None:
    cap, asked = ignored_request
    code, found = diagnose(cap)
    above = [f for f in found if f["severity"] != "info"]
    assert [f["kind"] for f in above] == ["clipboard_unanswered"], above
    (f,) = above
    assert code == 5 and f["channel"] == "main:0"
    assert f["evidence"]["by"] == "guest" and f["evidence"]["selection"] == "CLIPBOARD"
    assert asked < f["time"] < asked + 1.0, (f, asked)
