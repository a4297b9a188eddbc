"""Issue 12: dissect finds every SPICE message of every connection, link stage included, as a
count of our own that shares no code with spicetool says (tests/independent_count.py: tshark
reassembles TCP and decrypts TLS, the transports and the SPICE framing are peeled there).

Compared per TCP connection (by its ports) and direction: the link-stage messages in order, and
the data messages by type, then in order with their sizes. Where a capture holds both legs of
each connection (taken at the proxy), each leg carries the same messages.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from functools import cache
from pathlib import Path

import independent_count as ic
import pytest
from support import CAPTURES, deployment_capture, fresh_deployment, need_program

# every deployment session but the one with holes (tested apart below), and its intact original; then the
# same kinds recorded fresh with other settings (tests/support.py FRESH_DEPLOYMENT)
DEPLOYMENT = ["proxy-both-legs.pcapng", "proxy-client-leg.pcapng", "html5-websockify.pcapng", "html5-direct.pcapng",
              "tls-proxy-keylog.pcapng", "tls-proxy-keylog.dsb.pcapng", "gst-vp8.pcapng", "gst-h264.pcapng",
              "gst-vp9.pcapng", "linux-qxl.pcapng", "linux-qxl-two-heads.pcapng", "lost-segments.intact.pcapng",
              *fresh_deployment("fresh:fresh-proxy-legs.pcapng", "fresh:fresh-html5-websockify.pcapng",
                                "fresh:fresh-html5-direct.pcapng", "fresh:fresh-tls-proxy.pcapng",
                                "fresh:fresh-tls-proxy.dsb.pcapng", "fresh:fresh-gst-h264-wide.pcapng",
                                "fresh:fresh-linux-qxl-two-heads.pcapng", "fresh:fresh-lost-segments.intact.pcapng")]
LOST = ["lost-segments", *fresh_deployment("fresh:fresh-lost-segments")]
# direct sessions of the main corpus: plain, every QEMU channel, a password, the agent, two displays
DIRECT = ["typing.pcapng", "qemu-channels.pcapng", "password.pcap", "agent-audio.pcapng", "two-heads.pcapng"]

Counts = dict[tuple[int, int], dict[str, tuple[list[str], list[tuple[int, int]]]]]


def _path(name: str) -> Path:
    return CAPTURES / name if name in DIRECT else deployment_capture(name)


def _meta(name: str) -> dict:
    """NAME.json of a deployment capture (NAME.intact.pcapng and NAME.dsb.pcapng are NAME's)."""
    return json.loads(deployment_capture(name.split(".")[0] + ".json").read_text())


def _keylog(name: str) -> Path | None:
    """The key log beside a TLS capture that does not carry its own secrets."""
    if name in DIRECT or name.endswith(".dsb.pcapng") or "tls" not in _meta(name):
        return None
    return deployment_capture(name.split(".")[0] + ".keys.log")


@cache
def dissect(name: str) -> tuple[dict, ...]:
    keylog = _keylog(name)
    args = ["--tls-keylog", str(keylog)] if keylog else []
    res = subprocess.run([sys.executable, "-m", "spicetool", "dissect", "--json", *args, str(_path(name))],
                         capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    return tuple(json.loads(line) for line in res.stdout.splitlines())


@cache
def independent(name: str) -> tuple[ic.Connection, ...]:
    need_program("tshark")
    return tuple(ic.count(_path(name), _keylog(name)))


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def ours(records: tuple[dict, ...]) -> Counts:
    """dissect's link-stage types and (type id, size) of data messages per connection and direction."""
    found: Counts = {}
    for rec in records:
        if rec["layer"] not in ("link", "message"):
            continue
        sides = found.setdefault((_port(rec["client"]), _port(rec["server"])),
                                 {"client": ([], []), "server": ([], [])})
        link, messages = sides[rec["direction"]]
        if rec["layer"] == "link":
            link.append(rec["type"])
        else:
            messages.append((rec["type_id"], rec["size"]))
    return found


def theirs(connections: tuple[ic.Connection, ...]) -> Counts:
    return {c.ports: {d: (s.link, s.sequence) for d, s in c.sides.items()} for c in connections}


def assert_same(name: str, mine: Counts, truth: Counts) -> None:
    assert set(mine) == set(truth), f"{name}: connections ours {sorted(mine)}, independent {sorted(truth)}"
    for ports, sides in truth.items():
        for direction, (link, sequence) in sides.items():
            our_link, our_sequence = mine[ports][direction]
            where = f"{name} {ports} {direction}"
            assert our_link == link, f"{where}: link stage ours {our_link}, independent {link}"
            have, want = Counter(t for t, _ in our_sequence), Counter(t for t, _ in sequence)
            assert have == want, f"{where}: by type, ours lack {dict(want - have)}, have extra {dict(have - want)}"
            assert our_sequence == sequence, f"{where}: same types, other order or sizes"


def test_the_independent_count_reads_every_byte() -> None:
    """The counter itself: every connection of a two-leg capture linked fully and framed to its last byte."""
    connections = independent("proxy-both-legs.pcapng")
    assert len(connections) == 8
    for conn in connections:
        assert conn.sides["client"].link == ["link_mess", "auth_mechanism", "ticket"]
        assert conn.sides["server"].link == ["link_reply", "link_result"]
        assert all(s.leftover == 0 and s.messages for s in conn.sides.values()), conn
    assert {tuple(c.transports) for c in connections} == {("http_connect",), ()}


@pytest.mark.parametrize("name", DEPLOYMENT + DIRECT)
def test_dissect_finds_every_message_of_every_connection(name: str) -> None:
    truth = independent(name)
    assert truth, f"{name}: the independent count found no SPICE connection"
    for conn in truth:  # each connection was read to its end: nothing left short of a whole message
        assert all(s.leftover == 0 for s in conn.sides.values()), f"{name} {conn.ports}: bytes left over"
    assert_same(name, ours(dissect(name)), theirs(truth))


@pytest.mark.parametrize("name", [n for n in DEPLOYMENT if n.endswith(".pcapng") and not n.endswith(".dsb.pcapng")])
def test_each_leg_carries_the_same_messages(name: str) -> None:
    """Paired by the client's link message: one connection per group, or two where the capture
    was taken at a proxy with both legs; the two legs' messages are the same, both ways."""
    meta = _meta(name)
    captured = [leg for leg in meta.get("legs", []) if leg["captured"]] or [None]
    groups = ic.legs(list(independent(name)))
    assert {len(g) for g in groups} == {len(captured)}, f"{name}: legs per connection {[len(g) for g in groups]}"
    for group in groups:
        for direction in ("client", "server"):
            first = group[0].sides[direction]
            for other in group[1:]:
                s = other.sides[direction]
                assert (s.link, s.sequence) == (first.link, first.sequence), \
                    f"{name} {group[0].ports} and {other.ports} {direction}: the legs differ"


@pytest.mark.parametrize("session", LOST)
def test_lost_segments_gaps_are_where_the_capture_has_holes(session: str) -> None:
    """Where tshark's sequence numbers show bytes missing, dissect reports a gap of that many bytes
    in that frame and direction; and as the framing is kept, every message of the intact original
    is still found, in the same connection and direction."""
    name = f"{session}.pcapng"
    need_program("tshark")
    records = dissect(name)
    gaps = sorted((_port(r["server"] if r["direction"] == "server" else r["client"]), r["frame"],
                   r["fields"]["lost_bytes"]) for r in records if r["layer"] == "gap")
    holes = sorted((sport, frame, size) for _, sport, frame, size in ic.holes(deployment_capture(name)))
    dropped = _meta(name)["capture"]["lost_segments"]["dropped_frames"]   # three in the shipped one
    assert len(holes) == len(dropped) and gaps == holes
    assert not ic.holes(deployment_capture(f"{session}.intact.pcapng"))
    truth = theirs(independent(f"{session}.intact.pcapng"))
    mine = ours(records)
    assert_same(name, mine, truth)
