"""HTTP CONNECT faults on real sessions: spicy (SPICE_PROXY) through tinyproxy, captured at the proxy's port
(the client's leg, as a support engineer's capture on the client's machine holds it). A proxy whose policy
refuses the server's port answers 403; a proxy whose target never answers the TCP handshake (a listener
whose accept queue is full drops the SYNs, as a firewalled or dead host does) leaves the CONNECT
unanswered until the client gives up."""
from __future__ import annotations

import re
import socket
import sys
import time
from pathlib import Path

import pytest
from support import ROOT, above_info, diagnose, need_program

from spicetool.capture import open_capture

sys.path.insert(0, str(ROOT / "scripts"))
import peers  # noqa: E402

PORTS, PROXY_PORTS, DISPLAYS = range(5960, 5966), range(3130, 3136), range(60, 66)
HANG_S = 5.0  # the client waiting on the unanswered CONNECT before it is stopped
ANSWER_S = 3.0  # a refusal comes within this of the client's start (a loaded machine starts spicy slowly)




def seconds(cap: Path, wall: float) -> float:
    return wall - next(iter(open_capture(str(cap)))).time


@pytest.fixture(scope="module")
def refused(tmp_path_factory) -> tuple[Path, float]:
    """(capture, wall-clock start of spicy) of a CONNECT to Xspice's port through a proxy that allows
    another port only."""
    for program in ("Xorg", "Xvfb", "spicy", "tshark", "tinyproxy"):
        need_program(program)
    tmp = tmp_path_factory.mktemp("proxy-refused")
    cap = tmp / "proxy-refused.pcapng"
    settings = peers.XspiceSettings(port=peers.pick_port(PORTS), display=peers.pick_display(DISPLAYS))
    with peers.Xspice(settings, tmp) as xs, \
            peers.Xvfb(peers.pick_display(DISPLAYS, skip=(xs.display,)), log_dir=tmp) as xv:
        allowed = next(p for p in PORTS if p != xs.port)
        with peers.Tinyproxy(peers.pick_port(PROXY_PORTS), [allowed], tmp) as proxy, \
                peers.Tshark(proxy.port, cap, log_dir=tmp):
            started = time.time()
            with peers.Spicy(xv.display, xs.port, proxy=proxy.url, log_dir=tmp, min_channels=0):
                time.sleep(ANSWER_S)
    return cap, started


def test_a_proxy_that_refuses_connect_is_proxy_refused(refused) -> None:
    cap, started = refused
    code, found = diagnose(cap)
    (f,) = above_info(found)
    assert code == 5 and f["kind"] == "proxy_refused" and f["severity"] == "error", found
    assert "403" in f["title"] and "before any SPICE message" in f["title"], f
    start = seconds(cap, started)
    assert start - 0.5 <= f["time"] <= start + ANSWER_S, (f, start)


@pytest.fixture(scope="module")
def hanging(tmp_path_factory) -> tuple[Path, float, float]:
    """(capture, wall-clock start of spicy, of its stop) of a CONNECT whose target never completes the
    TCP handshake: the proxy waits on it and never answers."""
    for program in ("Xvfb", "spicy", "tshark", "tinyproxy"):
        need_program(program)
    tmp = tmp_path_factory.mktemp("proxy-hanging")
    cap = tmp / "proxy-hanging.pcapng"
    target = peers.pick_port(PORTS)
    with socket.socket() as dead, socket.socket() as filler:
        dead.bind(("127.0.0.1", target))
        dead.listen(0)                           # an accept queue of one, never accepted ...
        filler.connect(("127.0.0.1", target))    # ... and full: the kernel drops every further SYN
        with peers.Xvfb(peers.pick_display(DISPLAYS), log_dir=tmp) as xv, \
                peers.Tinyproxy(peers.pick_port(PROXY_PORTS), [target], tmp) as proxy, \
                peers.Tshark(proxy.port, cap, log_dir=tmp):
            started = time.time()
            with peers.Spicy(xv.display, target, proxy=proxy.url, log_dir=tmp, min_channels=1):
                time.sleep(HANG_S)
                stopped = time.time()
            time.sleep(0.5)
    return cap, started, stopped


def test_a_connect_nobody_answers_is_proxy_no_answer(hanging) -> None:
    cap, started, stopped = hanging
    code, found = diagnose(cap)
    (f,) = above_info(found)
    assert code == 5 and f["kind"] == "proxy_no_answer" and f["severity"] == "error", found
    # said when the client gave up (its FIN), with how long it had waited since its CONNECT
    stop = seconds(cap, stopped)
    assert stop - 0.1 <= f["time"] <= stop + 1.0, (f, stop)
    waited = float(re.search(r"never got an answer from the proxy in (\d+\.\d) s", f["title"]).group(1))
    assert HANG_S - 0.5 <= waited <= stopped - started + 0.1, (f, stopped - started)
