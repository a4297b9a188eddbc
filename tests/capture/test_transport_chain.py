"""Each connection's transport chain as dissect and stats show it (issue 12): the CONNECT target and
the proxy's answer, Proxmox's spiceproxy targets decoded, WebSocket (path, host, who answered), TLS
(version, cipher, decrypted or not), and a refused CONNECT as the session's failure.

The Proxmox and 403 captures are derived from the real proxy-client-leg session: its packets written
again by spicetool's own pcap writer with the CONNECT target (or the proxy's answer) rewritten, the
sequence and acknowledgement numbers after it moved by the change in length. A Proxmox target is
`pvespiceproxy:TIME:VMID:NODE::SIGNATURE` (pve-common's PVE::Ticket: TIME the ticket's Unix time in
8 hex digits, SIGNATURE 40 hex digits), and the client's CONNECT adds `:PORT` (the VM's TLS port).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from spicetool.capture import open_capture
from spicetool.capture.frames import TCP_FIN
from spicetool.capture.pcap import PcapWriter

from support import deployment_capture

TICKET_TIME = datetime(2026, 12, 3, 8, 18, 0, tzinfo=timezone.utc)
PVE_HOST = f"pvespiceproxy:{int(TICKET_TIME.timestamp()):08x}:101:pve1::" + "0ce019e3c7" * 4
FORBIDDEN = b"HTTP/1.1 403 Forbidden\r\nServer: tinyproxy/1.11.1\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n"


def rewrite_connect(src: Path, dst: Path, *, target: str | None = None, answer: bytes | None = None) -> None:
    """`src` written again with each CONNECT's target replaced by `target`, or the first connection's
    answer replaced by `answer` (then that connection ends, FIN both ways, and the others are left
    out: a client whose main channel was refused opens no other)."""
    shift: dict[tuple[str, str], int] = {}  # (src, dst) -> bytes added to that direction so far
    first: tuple[str, str] | None = None
    with open(dst, "wb") as out:
        writer = PcapWriter(out)
        reader = open_capture(str(src))
        for seg in reader:
            key, back = (seg.src, seg.dst), (seg.dst, seg.src)
            first = first or key
            if answer is not None and key not in (first, first[::-1]):
                continue
            payload = seg.payload
            seq = (seg.seq + shift.get(key, 0)) & 0xFFFFFFFF
            ack = (seg.ack + shift.get(back, 0)) & 0xFFFFFFFF
            if target is not None and payload.startswith(b"CONNECT "):
                line_end = payload.index(b"\r\n")
                version = payload[:line_end].rsplit(b" ", 1)[1]
                payload = b"CONNECT " + target.encode() + b" " + version + payload[line_end:]
            if answer is not None and key == first[::-1] and payload.startswith(b"HTTP/"):
                payload = answer  # b"": the proxy closes without a word
                if payload:
                    writer.segment(seg.time, seg.src, seg.dst, seq, ack, seg.flags, payload)
                end = (seq + len(payload)) & 0xFFFFFFFF
                writer.segment(seg.time + 1e-4, seg.src, seg.dst, end, ack, seg.flags | TCP_FIN)
                writer.segment(seg.time + 2e-4, seg.dst, seg.src, ack, (end + 1) & 0xFFFFFFFF, seg.flags | TCP_FIN)
                break
            shift[key] = shift.get(key, 0) + len(payload) - len(seg.payload)
            writer.segment(seg.time, seg.src, seg.dst, seq, ack, seg.flags, payload)
        reader.close()


def _run(*args: str, code: int = 0) -> str:
    done = subprocess.run([sys.executable, "-m", "spicetool", *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def _summary(path: Path | str, *extra: str) -> list[dict]:
    return [json.loads(line) for line in _run("dissect", "--summary", "--json", *extra, str(path)).splitlines()]


@pytest.fixture(scope="module")
def derived(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("derived")
    src = deployment_capture("proxy-client-leg.pcapng")
    pve, refused = base / "proxmox.pcap", base / "refused-403.pcap"
    rewrite_connect(src, pve, target=f"{PVE_HOST}:61000")
    rewrite_connect(src, refused, answer=FORBIDDEN)
    return {"original": src, "proxmox": pve, "refused": refused}


def test_connect_target_and_answer_are_shown() -> None:
    rows = _summary(deployment_capture("proxy-client-leg.pcapng"))
    assert len(rows) == 4 and all(r["leg"] is None for r in rows)  # one leg captured: nothing to pair
    for r in rows:
        assert r["transport"] == "CONNECT 127.0.0.1:5916 -> 200 Connection established"
        (layer,) = r["transport_chain"]
        assert layer["target"] == "127.0.0.1:5916" and layer["status"] == 200 and layer["proxmox"] is None
        assert layer["status_line"] == "HTTP/1.0 200 Connection established"
    stats = json.loads(_run("stats", "--json", str(deployment_capture("proxy-client-leg.pcapng"))))
    (s,) = stats["sessions"]
    assert s["transport"] == ["CONNECT 127.0.0.1:5916 -> 200 Connection established"] and s["failure"] is None
    assert {c["transport"] for c in s["channels"]} == {s["transport"][0]}
    text = _run("stats", str(deployment_capture("proxy-client-leg.pcapng")))
    assert "CONNECT 127.0.0.1:5916 -> 200 Connection established" in text


def test_proxmox_targets_are_decoded(derived: dict[str, Path]) -> None:
    rows, original = _summary(derived["proxmox"]), _summary(derived["original"])
    assert [r["messages"] for r in rows] == [r["messages"] for r in original]  # the tunnel is untouched
    for r in rows:
        (layer,) = r["transport_chain"]
        assert layer["target"] == f"{PVE_HOST}:61000"
        assert layer["proxmox"] == {"vmid": 101, "node": "pve1", "port": 61000, "ticket_time": "2026-12-03T08:18:00Z"}
        assert r["transport"] == ("CONNECT Proxmox VM 101 on node pve1 port 61000, ticket of 2026-12-03T08:18:00Z"
                                  " -> 200 Connection established")
    assert "Proxmox VM 101 on node pve1" in _run("stats", str(derived["proxmox"]))
    assert "Proxmox VM 101 on node pve1" in _run("dissect", "--type", "link_mess", str(derived["proxmox"]))


def test_a_refused_connect_is_the_sessions_failure(derived: dict[str, Path]) -> None:
    (row,) = _summary(derived["refused"])
    assert row["failure"] == "the proxy refused HTTP CONNECT 127.0.0.1:5916: HTTP/1.1 403 Forbidden"
    assert row["transport"] == "CONNECT 127.0.0.1:5916 -> 403 Forbidden" and row["messages"] == {}
    text = _run("dissect", "--summary", str(derived["refused"]))
    assert "failed: " in text and "HTTP/1.1 403 Forbidden" in text
    (s,) = json.loads(_run("stats", "--json", str(derived["refused"])))["sessions"]
    assert s["failure"] == row["failure"]
    assert [p["kind"] for p in s["problems"]] == ["proxy_refused"]
    text = _run("stats", str(derived["refused"]))
    assert "failed" in text and "HTTP/1.1 403 Forbidden" in text


def test_websocket_says_who_answered() -> None:
    direct = _summary(deployment_capture("html5-direct.pcapng"))
    assert len(direct) == 4
    for r in direct:
        (layer,) = r["transport_chain"]
        assert layer == {"layer": "websocket", "path": "/websockify", "host": "127.0.0.1:5916", "subprotocol": "binary",
                         "status_line": "HTTP/1.1 101 Switching Protocols", "server": "spice-server"}
        assert r["transport"].endswith("-> 101 Switching Protocols, spice-server's own port")
    relayed = [r for r in _summary(deployment_capture("html5-websockify.pcapng")) if r["leg"] == "client"]
    assert len(relayed) == 4 and {r["transport_chain"][0]["server"] for r in relayed} == {"relay"}
    assert {r["transport_chain"][0]["host"] for r in relayed} == {"127.0.0.1:5933"}


def test_tls_inside_connect_says_whether_it_was_decrypted() -> None:
    path = deployment_capture("tls-proxy-keylog.pcapng")
    keys = deployment_capture("tls-proxy-keylog.keys.log")
    for extra, decrypted in ((("--tls-keylog", str(keys)), True), ((), False)):
        rows = _summary(path, *extra)
        assert len(rows) == 4
        for r in rows:
            connect, tls = r["transport_chain"]
            assert connect["layer"] == "connect" and connect["status"] == 200
            assert tls["layer"] == "tls" and tls["version"] == "TLS 1.3" and tls["decrypted"] is decrypted
            assert r["transport"].endswith("(decrypted)" if decrypted else "(not decrypted)")


@pytest.mark.parametrize("answer, status_line", [
    (b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"tinyproxy\"\r\n\r\n",
     "HTTP/1.1 407 Proxy Authentication Required"),
    (b"HTTP/1.0 502 Bad Gateway\r\n\r\n", "HTTP/1.0 502 Bad Gateway"),
    (b"", None),
])
def test_other_refusals_and_a_closed_proxy(answer: bytes, status_line: str | None, tmp_path: Path) -> None:
    path = tmp_path / "refused.pcap"
    rewrite_connect(deployment_capture("proxy-client-leg.pcapng"), path, answer=answer)
    (row,) = _summary(path)
    if status_line is None:
        assert re.fullmatch(r"HTTP CONNECT 127\.0\.0\.1:5916 never got an answer from the proxy in \d+\.\d s",
                            row["failure"]), row["failure"]
        assert row["transport"] == "CONNECT 127.0.0.1:5916 -> no answer"
    else:
        assert row["failure"].endswith(f": {status_line}") and row["transport_chain"][0]["established"] is False
    (s,) = json.loads(_run("stats", "--json", str(path)))["sessions"]
    assert s["failure"] == row["failure"]
