"""Findings (issue 16) on real data: the shipped captures, and captures derived from them by editing
their real traffic (a direction cut, segments dropped with editcap, a file truncated, a refused CONNECT,
segments sent twice as a retransmitting sender would)."""
from __future__ import annotations

import json
import os
import time
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spicetool.capture import open_capture
from spicetool.capture.pcap import PcapWriter

from support import (CAPTURES, DEPLOYMENT_CORPUS, ROOT, above_info, corpus, deployment_capture, diagnose,
                     need_program)

sys.path.insert(0, str(ROOT / "tests" / "capture"))
from test_transport_chain import FORBIDDEN, rewrite_connect  # noqa: E402

KEYS = ["severity", "kind", "title", "time", "until", "session", "channel", "evidence"]
# what the capture itself shows, named as such (the acceptance allows it above info)
CAPTURE_KINDS = {"lost_segments", "tls_without_keys"}




HEALTHY = [p for p in corpus()] + sorted(p for p in DEPLOYMENT_CORPUS.glob("*.pcapng")
                                          if p.name not in ("lost-segments.pcapng", "tls-proxy-keylog.pcapng"))


@pytest.mark.parametrize("path", HEALTHY, ids=lambda p: p.name)
def test_a_healthy_session_gives_nothing_above_info(path: Path) -> None:
    extra = ("--tls-keylog", str(deployment_capture("tls-proxy-keylog.keys.log"))) if "tls-proxy" in path.name else ()
    code, found = diagnose(path, *extra)
    assert above_info(found) == [] and code == 0
    assert found and all(list(f) == KEYS for f in found)
    kinds = {f["kind"] for f in found}
    assert ("mid_session_start" in kinds) == (path.name == "mid-session.pcap")


def test_the_captures_own_faults_are_named_as_such() -> None:
    code, found = diagnose(deployment_capture("lost-segments.pcapng"))
    (lost,) = above_info(found)
    assert code == 5 and lost["kind"] == "lost_segments" and lost["severity"] == "warning"
    assert lost["evidence"]["gaps"] == 3 and lost["channel"] == "display:0" and lost["evidence"]["frames"]
    code, found = diagnose(deployment_capture("tls-proxy-keylog.pcapng"))
    (tls,) = above_info(found)
    assert code == 5 and tls["kind"] == "tls_without_keys" and tls["evidence"]["connections"] == 4


def test_stats_and_report_put_the_findings_first(tmp_path: Path) -> None:
    capture = deployment_capture("lost-segments.pcapng")
    stats = json.loads(subprocess.run([sys.executable, "-m", "spicetool", "stats", "--json", str(capture)],
                                      capture_output=True, text=True, check=True).stdout)
    assert list(stats)[0] == "findings"
    assert stats["findings"] == diagnose(capture)[1]
    text = subprocess.run([sys.executable, "-m", "spicetool", "stats", str(capture)], capture_output=True,
                          text=True, check=True).stdout
    assert text.lstrip().startswith("findings") and "lost_segments" in text.split("overview")[0]
    page = tmp_path / "r.html"
    subprocess.run([sys.executable, "-m", "spicetool", "report", str(capture), "-o", str(page)], check=True)
    html = page.read_text()
    assert html.index('id="findings"') < html.index("Session 1")
    assert 'data-kind="lost_segments"' in html


# -- derived captures ---------------------------------------------------------------------------
def _rewrite(src: Path, dst: Path, keep) -> None:
    """`src` written again with the segments `keep(seg)` says (it may return a list of segments)."""
    with open(dst, "wb") as out:
        writer = PcapWriter(out)
        reader = open_capture(str(src))
        for seg in reader:
            for s in keep(seg):
                writer.segment(s.time, s.src, s.dst, s.seq, s.ack, s.flags, s.payload)
        reader.close()


def test_a_refused_connect_is_proxy_refused(tmp_path: Path) -> None:
    path = tmp_path / "refused.pcap"
    rewrite_connect(deployment_capture("proxy-client-leg.pcapng"), path, answer=FORBIDDEN)
    code, found = diagnose(path)
    (f,) = above_info(found)
    assert code == 5 and f["kind"] == "proxy_refused" and f["severity"] == "error" and "403" in f["title"]
    path = tmp_path / "no-answer.pcap"
    rewrite_connect(deployment_capture("proxy-client-leg.pcapng"), path, answer=b"")
    assert [f["kind"] for f in above_info(diagnose(path)[1])] == ["proxy_no_answer"]


def test_a_missing_direction_is_named(tmp_path: Path) -> None:
    """The client-to-server half of the display connection cut out (an asymmetric capture point)."""
    src = CAPTURES / "typing.pcapng"
    _, found = diagnose(src)
    stats = json.loads(subprocess.run([sys.executable, "-m", "spicetool", "stats", "--json", str(src)],
                                      capture_output=True, text=True, check=True).stdout)
    display = next(c for c in stats["sessions"][0]["channels"] if c["name"] == "display:0")
    client = display["client"]
    path = tmp_path / "one-way.pcap"
    _rewrite(src, path, lambda seg: [] if seg.src == client and seg.payload else [seg])
    code, found = diagnose(path)
    kinds = [f["kind"] for f in above_info(found)]
    assert code == 5 and kinds == ["one_direction_missing"]
    (f,) = above_info(found)
    assert f["channel"] == "display:0" and f["evidence"]["wire_bytes"]["client"] == 0


def test_segments_dropped_with_editcap_are_lost_segments(tmp_path: Path) -> None:
    need_program("editcap")
    src = CAPTURES / "typing.pcapng"
    path = tmp_path / "dropped.pcapng"
    subprocess.run(["editcap", str(src), str(path), "120-125"], check=True, capture_output=True)
    code, found = diagnose(path)
    kinds = {f["kind"] for f in above_info(found)}
    assert code == 5 and "lost_segments" in kinds and kinds <= {"lost_segments", "display_stall"}
    lost = next(f for f in found if f["kind"] == "lost_segments")
    assert lost["evidence"]["bytes"] > 0


def test_a_truncated_file_is_capture_truncated(tmp_path: Path) -> None:
    src = CAPTURES / "typing.pcapng"
    path = tmp_path / "cut.pcapng"
    data = src.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    code, found = diagnose(path)
    kinds = [f["kind"] for f in above_info(found)]
    assert code == 5 and kinds == ["capture_truncated"]
    assert "capture_ended_open" in {f["kind"] for f in found}  # no channel closed: the file stopped first


def test_retransmitted_segments_are_retransmissions(tmp_path: Path) -> None:
    """Every other display segment from the server sent a second time 50 ms later, as a sender does
    whose first copy was lost: the network's share, named on the display channel."""
    src = CAPTURES / "long-desktop.pcapng"
    stats = json.loads(subprocess.run([sys.executable, "-m", "spicetool", "stats", "--json", str(src)],
                                      capture_output=True, text=True, check=True).stdout)
    display = next(c for c in stats["sessions"][0]["channels"] if c["name"] == "display:0")
    server, client = display["server"], display["client"]
    segs = [s for s in open_capture(str(src))]
    again = [s for s in segs if (s.src, s.dst) == (server, client) and len(s.payload) > 1000][::2]
    from dataclasses import replace
    moved = sorted(segs + [replace(s, time=s.time + 0.05) for s in again], key=lambda s: s.time)
    path = tmp_path / "retransmitted.pcap"
    with open(path, "wb") as out:
        writer = PcapWriter(out)
        for s in moved:
            writer.segment(s.time, s.src, s.dst, s.seq, s.ack, s.flags, s.payload)
    code, found = diagnose(path)
    (f,) = [x for x in above_info(found)]
    assert code == 5 and f["kind"] == "retransmissions" and f["channel"] == "display:0"
    assert f["evidence"]["side"] == "server" and f["evidence"]["retransmitted_segments"] >= len(again)
    assert abs(f["time"] - (again[0].time + 0.05 - segs[0].time)) < 0.01


# -- a live session ---------------------------------------------------------------------------
LIVE_PORTS, LIVE_DISPLAYS = range(5986, 5989), range(86, 89)


def test_a_wrong_password_against_xspice_is_auth_refused(tmp_path: Path) -> None:
    """Xspice with a password, spicy-screenshot with a wrong one, tshark on loopback: the server's
    PERMISSION_DENIED is auth_refused, an error at the link reply's time, and nothing else above info."""
    for program in ("Xorg", "xdpyinfo", "spicy-screenshot", "tshark"):
        need_program(program)
    sys.path.insert(0, str(ROOT / "scripts"))
    import peers

    settings = peers.XspiceSettings(port=peers.pick_port(LIVE_PORTS), display=peers.pick_display(LIVE_DISPLAYS),
                                    password="right-pw-16")
    cap = tmp_path / "wrong-password.pcapng"
    with peers.Xspice(settings, tmp_path) as server:
        with peers.Tshark(server.port, cap, log_dir=tmp_path):
            with pytest.raises(peers.PeerError):
                peers.spicy_screenshot(server.port, tmp_path / "never.ppm", password="wrong-pw", timeout=20)
    code, found = diagnose(cap)
    (f,) = above_info(found)
    assert code == 5 and f["kind"] == "auth_refused" and f["severity"] == "error"
    assert f["channel"] == "main:0" and f["evidence"]["error"] == "PERMISSION_DENIED"
    first = next(iter(open_capture(str(cap)))).time
    reply = [s for s in open_capture(str(cap)) if s.src.endswith(f":{server.port}") and s.payload]
    assert any(abs(f["time"] - (s.time - first)) < 1e-3 for s in reply)


def test_a_channel_that_needs_tls_linked_in_plain_is_need_secured(tmp_path: Path) -> None:
    """QEMU with a TLS port and `tls-channel=main`, spicy-screenshot given only the plain port: the server's
    NEED_SECURED reply is need_secured, an error at the link reply's time, and nothing else above info."""
    for program in ("qemu-system-x86_64", "spicy-screenshot", "tshark", "openssl"):
        need_program(program)
    sys.path.insert(0, str(ROOT / "scripts"))
    import peers

    x509 = tmp_path / "x509"
    x509.mkdir()
    files = peers.make_tls_files(tmp_path)
    for src, name in ((files.ca, "ca-cert.pem"), (files.cert, "server-cert.pem"), (files.key, "server-key.pem")):
        shutil.copy(src, x509 / name)
    port = peers.pick_port(LIVE_PORTS)
    tls_port = peers.pick_port([p for p in range(5990, 5996) if p != port])
    settings = peers.QemuSettings(port=port, serial_port=False, webdav=False, usbredir=False, audio=False,
                                  spice_extra=f"tls-port={tls_port},x509-dir={x509},tls-channel=main")
    cap = tmp_path / "need-secured.pcapng"
    with peers.Qemu(settings, tmp_path), peers.Tshark(port, cap, log_dir=tmp_path):
        with pytest.raises(peers.PeerError):
            peers.spicy_screenshot(port, tmp_path / "never.ppm", timeout=20)
    code, found = diagnose(cap)
    (f,) = above_info(found)
    assert code == 5 and f["kind"] == "need_secured" and f["severity"] == "error", f
    assert f["channel"] == "main:0" and f["evidence"]["error"] == "NEED_SECURED", f
    first = next(iter(open_capture(str(cap)))).time
    reply = [s for s in open_capture(str(cap)) if s.src.endswith(f":{port}") and s.payload]
    assert any(abs(f["time"] - (s.time - first)) < 1e-3 for s in reply)


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_a_client_refusing_the_servers_certificate_is_a_tls_error(version: str, tmp_path: Path) -> None:
    """Xspice behind a TLS front with a certificate of our own CA, spicy-screenshot given the TLS port and not
    the CA: the client's fatal unknown_ca alert is a tls_error saying the client refused the certificate; in
    TLS 1.2 it is sent in the clear (found without keys), in TLS 1.3 it is protected (found with the key log)."""
    for program in ("Xorg", "spicy-screenshot", "tshark", "openssl"):
        need_program(program)
    sys.path.insert(0, str(ROOT / "scripts"))
    import peers

    files = peers.make_tls_files(tmp_path)
    port = peers.pick_port(LIVE_PORTS)
    front = peers.pick_port([p for p in range(5990, 5996) if p != port])
    cap, keys = tmp_path / "refused-certificate.pcapng", tmp_path / "keys.log"
    settings = peers.XspiceSettings(port=port, display=peers.pick_display(LIVE_DISPLAYS))
    env = {k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"}  # (the system's CAs: not ours)
    with peers.Xspice(settings, tmp_path), peers.TlsFront(front, port, files, keys, tmp_path, max_version=version), \
            peers.Tshark(front, cap, log_dir=tmp_path):
        r = subprocess.run(["spicy-screenshot", "-h", "127.0.0.1", "-s", str(front), "-o", str(tmp_path / "x.ppm")],
                           capture_output=True, text=True, timeout=30, env=env)
        time.sleep(0.5)
    assert r.returncode != 0 and "certificate" in r.stderr, r.stderr
    code, found = diagnose(cap, *(["--tls-keylog", str(keys)] if version == "1.3" else []))
    (f,) = above_info(found)
    assert code == 5 and f["kind"] == "tls_error" and f["severity"] == "error", found
    assert f["evidence"]["alert"] == "unknown_ca" and f["evidence"]["sent_by"] == "client", f
    assert "refused the server's certificate" in f["title"]
    alert = [s for s in open_capture(str(cap)) if s.dst.endswith(f":{front}") and s.payload][-1]
    first = next(iter(open_capture(str(cap)))).time
    assert abs(f["time"] - (alert.time - first)) < 1e-3, (f, alert.time - first)


def test_spice_html5_through_websockify_to_a_server_that_is_down_is_websocket_closed(tmp_path: Path) -> None:
    """spice-html5 in chromium through websockify whose SPICE server is not there: websockify closes the
    WebSocket with 1011; websocket_closed, an error (nothing SPICE came through), at the close frame's time."""
    for program in ("Xvfb", "chromium", "websockify", "tshark"):
        need_program(program)
    sys.path.insert(0, str(ROOT / "scripts"))
    import peers

    ws, http, dead = (peers.pick_port(range(5990 + i, 5999, 3)) for i in range(3))
    assert peers.port_free(dead)
    cap = tmp_path / "websocket-down.pcapng"
    url = f"http://127.0.0.1:{http}/spice_auto.html?host=127.0.0.1&port={ws}"
    with peers.Xvfb(peers.pick_display(LIVE_DISPLAYS), log_dir=tmp_path) as xv, \
            peers.Websockify(ws, dead, tmp_path) as gateway, peers.HttpServer(http, peers.SPICE_HTML5_DIR, tmp_path), \
            peers.Tshark(ws, cap, log_dir=tmp_path), peers.Chromium(xv.display, url, tmp_path):
        peers.wait_until(lambda: "Failed to connect" in gateway.log_text(), 60, "websockify's failed connect")
        time.sleep(0.5)
    code, found = diagnose(cap)
    above = above_info(found)
    assert code == 5 and above and {f["kind"] for f in above} == {"websocket_closed"}, found
    f = above[0]
    assert f["severity"] == "error" and "1011" in f["title"] and "before any SPICE message from the server" in f["title"], f
    frames = [s for s in open_capture(str(cap)) if s.src.endswith(f":{ws}") and (s.payload[:1] == b"\x88" or b"\r\n\r\n\x88" in s.payload)]  # (after the 101, or alone)
    first = next(iter(open_capture(str(cap)))).time
    assert frames and abs(f["time"] - (frames[0].time - first)) < 1e-3, (f, [s.time - first for s in frames])
