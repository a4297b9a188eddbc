"""`spicetool stats` figures against tshark's own reading of the same captures (the whole corpus).

Messages and body bytes per connection direction come from Wireshark's SPICE dissector
(spice.message_type, spice.message_size); wire bytes from tcp.len; PING round trips are
computed here from tshark's ping ids and timestamps and frame times, independently of our code.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

from support import need_program, starts_mid_session


def tshark_rows(path: Path, display_filter: str, *fields: str) -> list[list[str]]:
    tshark = need_program("tshark")
    out = subprocess.run(
        [tshark, "-r", str(path), "-Y", display_filter, "-T", "fields", "-E", "separator=|", "-E", "occurrence=a",
         "-E", "aggregator=,", *[a for f in fields for a in ("-e", f)]],
        capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines()]


def stats_json(path: Path) -> dict:
    r = subprocess.run(["spicetool", "stats", "--json", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def our_channels(figs: dict) -> dict[tuple[int, int], dict]:
    """(client port, server port) -> channel figures."""
    return {(int(c["client"].rsplit(":", 1)[1]), int(c["server"].rsplit(":", 1)[1])): c
            for s in figs["sessions"] for c in s["channels"]}


def test_bytes_and_messages_agree_with_tshark(capture: Path) -> None:
    figs = stats_json(capture)
    ours = our_channels(figs)
    wire: Counter = Counter()
    last_data: dict[tuple[int, int], int] = {}
    for frame, sport, dport, length in tshark_rows(capture, "tcp.len > 0", "frame.number", "tcp.srcport",
                                                   "tcp.dstport", "tcp.len"):
        wire[(int(sport), int(dport))] += int(length)
        last_data[(int(sport), int(dport))] = int(frame)
    msgs: Counter = Counter()
    body: Counter = Counter()
    last_msg: dict[tuple[int, int], int] = {}
    for frame, sport, dport, types, sizes in tshark_rows(capture, "spice.message_type", "frame.number",
                                                         "tcp.srcport", "tcp.dstport", "spice.message_type",
                                                         "spice.message_size"):
        msgs[(int(sport), int(dport))] += len(types.split(","))
        body[(int(sport), int(dport))] += sum(int(x) for x in sizes.split(",") if x)
        last_msg[(int(sport), int(dport))] = int(frame)
    assert ours, f"{capture.name}: no channel"
    compared = 0
    for (cport, sport), ch in ours.items():
        # TCP payload bytes: every byte, whatever tshark makes of SPICE
        assert ch["wire_bytes"]["client"] == wire[(cport, sport)], f"{capture.name} {ch['name']} c→s wire bytes"
        assert ch["wire_bytes"]["server"] == wire[(sport, cport)], f"{capture.name} {ch['name']} s→c wire bytes"
        for direction in ("client", "server"):  # the one-second bins account for every byte and message
            assert sum(ch["bytes_per_second"][direction]) == ch["wire_bytes"][direction]
            assert sum(ch["messages_per_second"][direction]) == ch["messages"].get(direction, 0)
        for direction, key in (("client", (cport, sport)), ("server", (sport, cport))):
            if key not in msgs:
                continue  # tshark decodes nothing here (it cannot pick up a capture mid-session)
            mine, theirs = ch["messages"].get(direction, 0), msgs[key]
            if mine == theirs or last_msg[key] == last_data[key]:  # tshark decoded this direction to the end
                assert mine == theirs, f"{capture.name} {ch['name']} {direction}: {mine} messages, tshark {theirs}"
                assert ch["bytes"].get(direction, 0) == body[key], f"{capture.name} {ch['name']} {direction} bytes"
                compared += 1
            else:  # tshark gave up on the stream part way (gaps, some image payloads): we went further
                assert mine > theirs, f"{capture.name} {ch['name']} {direction}: {mine} messages, tshark {theirs}"
    if not starts_mid_session(capture):
        assert compared >= 4, f"{capture.name}: only {compared} directions compared"


def test_ping_round_trips_agree_with_tshark(capture: Path) -> None:
    syns = tshark_rows(capture, "tcp.flags.syn == 1 && tcp.flags.ack == 0", "tcp.srcport", "tcp.dstport")
    server_of = {int(c): int(s) for c, s in syns}  # client port -> server port
    pings: dict[tuple, float] = {}
    expected: dict[tuple[int, int], list[float]] = defaultdict(list)
    for t, sport, dport, types, ids, stamps in tshark_rows(
            capture, "spice.ping_id", "frame.time_epoch", "tcp.srcport", "tcp.dstport", "spice.message_type",
            "spice.ping_id", "spice.timestamp"):
        sport_i, dport_i = int(sport), int(dport)
        from_server = server_of.get(dport_i) == sport_i
        if not from_server and server_of.get(sport_i) != dport_i:
            continue  # no handshake seen: tshark did not decode this connection from its start
        kinds = [int(x) for x in types.split(",")]
        keyed = list(zip(ids.split(","), stamps.split(",")))
        wanted = 4 if from_server else 3  # PING from the server, PONG from the client
        assert kinds.count(wanted) == len(keyed), f"{capture.name}: ping fields do not line up in tshark's output"
        conn = (dport_i, sport_i) if from_server else (sport_i, dport_i)
        for key in keyed:
            if from_server:
                pings[(conn, key)] = float(t)
            elif (conn, key) in pings:
                expected[conn].append((float(t) - pings.pop((conn, key))) * 1000)
    figs = stats_json(capture)
    got: dict[tuple[int, int], list[float]] = defaultdict(list)
    chans = {c["name"]: k for k, c in our_channels(figs).items()}
    for s in figs["sessions"]:
        for point in s["latency"]["series"]:
            got[chans[point["channel"]]].append(point["ms"])
    if not expected:  # tshark reads PINGs only from a link stage on
        assert starts_mid_session(capture), f"tshark sees no PING/PONG in {capture.name}"
        return
    for conn, rtts in expected.items():
        mine = list(got[conn])
        for rtt in rtts:  # every round trip tshark's fields give, we give too (to the microsecond)
            near = [m for m in mine if abs(m - rtt) <= 0.002]
            assert near, f"{capture.name} {conn}: tshark's round trip {rtt:.3f} ms is not among ours {mine}"
            mine.remove(near[0])
    unmatched = {conn for conn, _key in pings}  # PINGs whose PONG tshark did not decode (it gave up)
    for conn in set(expected) | set(got):
        if conn not in unmatched and server_of.get(conn[0]) == conn[1]:
            assert len(got[conn]) == len(expected[conn]), f"{capture.name} {conn}: {got[conn]} vs {expected[conn]}"


def test_typed_text_is_what_the_client_typed(capture: Path) -> None:
    settings = json.loads(capture.with_suffix(".json").read_text())
    typed = settings.get("typed_text")
    figs = stats_json(capture)
    text = "".join(s["typed_text"] for s in figs["sessions"])
    if typed is None:
        assert text == "", f"{capture.name}: nothing was typed, yet we rebuilt {text!r}"
    elif starts_mid_session(capture):  # what was typed before the cut is not in the capture
        assert (typed + "\n").endswith(text), f"{capture.name}: {text!r} is not the end of {typed!r}"
    else:
        # the recorder types the text and then presses Return
        assert text == typed + "\n"


def test_screen_sizes_follow_the_settings(capture: Path) -> None:
    settings = json.loads(capture.with_suffix(".json").read_text())
    figs = stats_json(capture)
    sizes = [f"{x['width']}x{x['height']}" for s in figs["sessions"] for x in s["screen_sizes"]]
    if settings["capture"].get("starts_mid_session"):
        assert sizes == [] or sizes == settings["screen_sizes"][-len(sizes):]
    else:
        assert sizes == settings["screen_sizes"]
