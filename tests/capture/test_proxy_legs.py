"""The two legs of each connection in captures taken at a proxy (issue 12, "Legs"), on the real
deployment sessions: proxy-both-legs (spicy -> tinyproxy by HTTP CONNECT -> Xspice) and
html5-websockify (spice-html5 -> websockify in WebSocket frames -> Xspice).

The legs are paired above their transport layers (the CONNECT or WebSocket leg and the plain leg
have the same link message and reply), and each leg carries the same messages. The plain server
leg is counted here on its own terms: tshark's reassembled stream, walked from the link stage by
SPICE's mini headers (type u16, size u32), without spicetool.
"""
from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections import Counter

import pytest

from spicetool.stack.enums import ChannelType

from support import deployment_capture, need_program

CAPTURES = {"proxy-both-legs": "connect", "html5-websockify": "websocket"}
SERVER_PORT = 5916  # Xspice's, in both sessions' NAME.json
TICKET = 128  # the RSA-encrypted password a SPICE-auth client sends


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "spicetool", *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _summary(name: str, leg: str = "both") -> list[dict]:
    path = deployment_capture(f"{name}.pcapng")
    return [json.loads(line) for line in _run("dissect", "--summary", "--json", "--leg", leg, str(path)).splitlines()]


def _streams(name: str) -> list[tuple[str, bytes, bytes]]:
    """(client address, client bytes, server bytes) of each TCP connection to Xspice's port, by tshark."""
    need_program("tshark")
    path = str(deployment_capture(f"{name}.pcapng"))
    conv = subprocess.run(["tshark", "-r", path, "-q", "-T", "fields", "-e", "tcp.stream",
                           "-Y", f"tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.dstport == {SERVER_PORT}"],
                          capture_output=True, text=True, timeout=300, check=True).stdout.split()
    out = []
    for stream in conv:
        text = subprocess.run(["tshark", "-r", path, "-q", "-z", f"follow,tcp,raw,{stream}"],
                              capture_output=True, text=True, timeout=300, check=True).stdout
        client, server, node0 = bytearray(), bytearray(), None
        for line in text.splitlines():
            if line.startswith("Node 0: "):
                node0 = line.split(": ", 1)[1].strip()
            elif line.startswith("\t") and line.strip():
                server += bytes.fromhex(line.strip())
            elif line and all(c in "0123456789abcdef" for c in line):
                client += bytes.fromhex(line)
        assert node0 is not None
        out.append((node0, bytes(client), bytes(server)))
    return out


def _walk(data: bytes, start: int) -> int:
    """Complete mini-header messages from `start` on."""
    count, at = 0, start
    while at + 6 <= len(data):
        _type, size = struct.unpack_from("<HI", data, at)
        if at + 6 + size > len(data):
            break
        count, at = count + 1, at + 6 + size
    return count


def _own_count(client: bytes, server: bytes) -> tuple[int, dict[str, int]]:
    """(channel type, messages per direction) of one plain SPICE connection."""
    assert client[:4] == server[:4] == b"REDQ"
    mess_end = 16 + struct.unpack_from("<I", client, 12)[0]
    channel_type = client[20]
    assert struct.unpack_from("<I", client, mess_end)[0] == 1  # auth mechanism: SPICE (a ticket follows)
    reply_end = 16 + struct.unpack_from("<I", server, 12)[0]
    assert struct.unpack_from("<I", server, reply_end)[0] == 0  # link result OK
    return channel_type, {"client": _walk(client, mess_end + 4 + TICKET), "server": _walk(server, reply_end + 4)}


@pytest.mark.parametrize("name", CAPTURES)
def test_each_connection_is_two_legs_of_one_session(name: str) -> None:
    rows = _summary(name)
    assert {r["session"] for r in rows} == {1}
    assert Counter(r["leg"] for r in rows) == {"client": 4, "server": 4}
    by_index = {r["client"]: r for r in rows}
    kind = CAPTURES[name]
    for r in rows:
        if r["leg"] == "client":
            assert [layer["layer"] for layer in r["transport_chain"]] == [kind]
            assert r["server"].endswith(":5932" if kind == "connect" else ":5933")
        else:
            assert r["transport_chain"] == [] and r["transport"] is None
            assert r["server"] == f"127.0.0.1:{SERVER_PORT}"
        assert r["failure"] is None
    assert len({(r["channel"], r["channel_id"]) for r in by_index.values()}) == 4


@pytest.mark.parametrize("name", CAPTURES)
def test_both_legs_carry_the_same_messages(name: str) -> None:
    rows = _summary(name)
    legs = {(r["channel"], r["channel_id"], r["leg"]): r for r in rows}
    own = {}
    for client, c_bytes, s_bytes in _streams(name):
        channel_type, counts = _own_count(c_bytes, s_bytes)
        own[client] = (channel_type, counts)
    assert len(own) == 4
    for (channel, channel_id, leg), r in legs.items():
        if leg != "server":
            continue
        twin = legs[(channel, channel_id, "client")]
        for d in ("client", "server"):  # per channel and direction
            assert twin["messages"].get(d, 0) == r["messages"].get(d, 0), (channel, d)
        channel_type, counts = own[r["client"]]
        assert ChannelType(channel_type).name.lower() == channel
        assert {d: r["messages"].get(d, 0) for d in counts} == counts, channel


@pytest.mark.parametrize("name", CAPTURES)
def test_one_leg_alone_gives_every_message_once(name: str) -> None:
    both = _summary(name)
    for leg in ("server", "client"):
        rows = _summary(name, leg)
        assert {r["leg"] for r in rows} == {leg}
        want = {(r["channel"], r["channel_id"]): r["messages"] for r in both if r["leg"] == leg}
        assert {(r["channel"], r["channel_id"]): r["messages"] for r in rows} == want


@pytest.mark.parametrize("name", CAPTURES)
def test_the_proxys_added_delay_pairs_every_message(name: str) -> None:
    rows = _summary(name)
    delay = rows[0]["proxy_delay"]
    servers = [r for r in rows if r["leg"] == "server"]
    for key, d in (("client_to_server", "client"), ("server_to_client", "server")):
        f = delay[key]
        assert f["count"] == sum(r["messages"].get(d, 0) for r in servers)  # each message on both legs
        assert 0 <= f["p50_ms"] <= f["p95_ms"] <= f["max_ms"] < 1000  # a proxy on the same machine
    stats = json.loads(_run("stats", "--json", str(deployment_capture(f"{name}.pcapng"))))
    legs = stats["sessions"][0]["legs"]
    assert legs["proxy_delay"] == delay and legs["shown"] == "server" and "nth" in legs["proxy_delay_how"]
    for p in legs["pairs"]:
        assert p["client_leg"]["transport_chain"][0]["layer"] == CAPTURES[name]
        assert p["server_leg"]["transport"] is None


def test_dissect_labels_each_connection_with_its_leg_and_transport() -> None:
    text = _run("dissect", str(deployment_capture("proxy-both-legs.pcapng")))
    heads = [line for line in text.splitlines() if line.startswith("── connection")]
    assert len(heads) == 8
    assert sum("client leg" in h and "transport: CONNECT 127.0.0.1:5916 -> 200 Connection established" in h
               for h in heads) == 4
    assert sum("server leg" in h and "transport: plain TCP" in h for h in heads) == 4
    records = [json.loads(line) for line in
               _run("dissect", "--json", "--type", "link_mess", str(deployment_capture("html5-websockify.pcapng")))
               .splitlines()]
    assert Counter(r["leg"] for r in records) == {"client": 4, "server": 4}
    for r in records:
        if r["leg"] == "client":
            assert r["transport"].startswith("WebSocket GET /websockify host 127.0.0.1:5933")
            assert "relay such as websockify" in r["transport"]
        else:
            assert "transport" not in r
