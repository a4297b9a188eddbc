"""The two captures the Xspice corpus lacked, decoded by `spicetool dissect --json` and checked
against what their recorder did (NAME.json) and against Wireshark where it decodes the same thing.

- agent-file-transfer.pcapng: spice-gtk's GObject API copies a 300000-byte file to the guest through
  the vdagent (FILE_XFER_START / STATUS / DATA) and exchanges the clipboard both ways.
- qemu-channels.pcapng: QEMU with a serial spiceport, the webdav spiceport, a usbredir spicevmc and
  spice audio: main, display, inputs, cursor, playback, record, usbredir, port and webdav channels.
  (Its picture against QEMU's screendump is checked by the render corpus tests, as for every PNG.)
"""

from __future__ import annotations

import configparser
import hashlib
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from support import CAPTURES, need_program

from spicetool.capture import open_records

AGENT = CAPTURES / "agent-file-transfer.pcapng"
QEMU = CAPTURES / "qemu-channels.pcapng"
# SPICE channel types (spice-protocol enums.h)
CHANNEL_TYPES = {"main": 1, "display": 2, "inputs": 3, "cursor": 4, "playback": 5, "record": 6,
                 "usbredir": 9, "port": 10, "webdav": 11}


def dissect_json(path: Path) -> list[dict]:
    r = subprocess.run([sys.executable, "-m", "spicetool", "dissect", "--json", str(path)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def agent() -> tuple[list[dict], dict]:
    return dissect_json(AGENT), json.loads(AGENT.with_suffix(".json").read_text())


@pytest.fixture(scope="module")
def qemu() -> tuple[list[dict], dict]:
    return dissect_json(QEMU), json.loads(QEMU.with_suffix(".json").read_text())


def tshark_rows(path: Path, *fields: str, display_filter: str = "spice") -> list[list[str]]:
    tshark = need_program("tshark")
    out = subprocess.run([tshark, "-r", str(path), "-Y", display_filter, "-T", "fields", "-E", "separator=|",
                          "-E", "occurrence=a", "-E", "aggregator=,", *[a for f in fields for a in ("-e", f)]],
                         capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines()]


def ints(cell: str) -> list[int]:
    return [int(v, 0) for v in cell.split(",") if v]


# ---------------------------------------------------------------- both captures


@pytest.mark.parametrize("path", [AGENT, QEMU], ids=lambda p: p.stem)
def test_every_message_decodes_without_error(path: Path) -> None:
    recs = dissect_json(path)
    assert len(recs) > 100  # the capture was read at all
    errors = [r for r in recs if r["layer"] in ("error", "gap")]
    assert errors == []
    # a message the schema could not decode carries an "error" field (link replies carry "error": "OK")
    bad = [r for r in recs if r["layer"] in ("message", "agent") and "error" in r["fields"]]
    assert bad == []
    bad_links = [r for r in recs if r["layer"] == "link" and r["fields"].get("error", "OK") != "OK"]
    assert bad_links == []
    assert not any(r["type"].startswith("unknown_") for r in recs)


# ---------------------------------------------------------------- agent-file-transfer


def agent_records(recs: list[dict], name: str, direction: str | None = None) -> list[dict]:
    return [r for r in recs if r["layer"] == "agent" and r["type"] == "vd_agent_" + name
            and (direction is None or r["direction"] == direction)]


def text_of(hexdata: str) -> str:
    return bytes.fromhex(hexdata).decode()


def test_file_transfer_start_names_the_file_the_client_sent(agent) -> None:
    recs, meta = agent
    xfer = meta["file_transfer"]
    starts = agent_records(recs, "file_xfer_start", "client")
    assert len(starts) == 1
    start = starts[0]
    data = start["fields"]["data"]
    # short data is shown in full as hex; this one (a GKeyFile of ~66 bytes) as {size, head} if long
    raw = bytes.fromhex(data) if isinstance(data, str) else None
    if raw is None:
        raw = full_agent_fields(AGENT, "file_xfer_start")[0]["data"]
    keyfile = configparser.ConfigParser()
    keyfile.read_string(raw.decode().rstrip("\x00"))
    assert keyfile["vdagent-file-xfer"]["name"] == xfer["file_name"] == "spicetool-transfer-300k.bin"
    assert int(keyfile["vdagent-file-xfer"]["size"]) == xfer["size"] == 300_000


def test_file_transfer_status_and_data_chunks(agent) -> None:
    recs, meta = agent
    size = meta["file_transfer"]["size"]
    start = agent_records(recs, "file_xfer_start", "client")[0]
    xid = start["fields"]["id"]
    statuses = agent_records(recs, "file_xfer_status", "server")
    assert [(s["fields"]["id"], s["fields"]["result"]) for s in statuses] == [(xid, "CAN_SEND_DATA"),
                                                                             (xid, "SUCCESS")]
    chunks = agent_records(recs, "file_xfer_data", "client")
    assert {c["fields"]["id"] for c in chunks} == {xid}
    # spice-gtk reads the file in 64 KiB pieces: 4 x 65536 + 37856
    assert [c["fields"]["size"] for c in chunks] == [65536] * 4 + [size - 4 * 65536]
    assert sum(c["fields"]["data"]["size"] for c in chunks) == size
    assert all(c["fields"]["data"]["size"] == c["fields"]["size"] for c in chunks)
    # order on the wire: START, CAN_SEND_DATA, every DATA, then SUCCESS
    assert start["frame"] <= statuses[0]["frame"] <= chunks[0]["frame"]
    assert chunks[-1]["frame"] <= statuses[1]["frame"]
    # each chunk travelled in many AGENT_DATA messages of at most 2048 bytes (VD_AGENT_MAX_DATA_SIZE)
    client_agent_data = [r for r in recs if r["channel"] == "main" and r["type"] == "agent_data"
                         and r["direction"] == "client"]
    assert len(client_agent_data) > size // 2048
    assert max(r["size"] for r in client_agent_data) == 2048


def full_agent_fields(path: Path, name: str) -> list[dict]:
    """Agent messages with their whole data (the JSON output abbreviates long byte strings)."""
    records = open_records(path)
    out = [dict(rec.fields) for rec in records if rec.layer == "agent" and rec.type == "vd_agent_" + name]
    assert records.damage is None
    return out


def test_file_transfer_data_reassembles_to_the_file_that_arrived(agent) -> None:
    _, meta = agent
    xfer = meta["file_transfer"]
    assert xfer["received_intact"] is True and xfer["received_sha256"] == xfer["sha256"]
    data = b"".join(f["data"] for f in full_agent_fields(AGENT, "file_xfer_data"))
    assert len(data) == xfer["size"]
    assert hashlib.sha256(data).hexdigest() == xfer["sha256"]
    assert data.startswith(b"spicetool corpus file-transfer payload, 300000 bytes")


def test_clipboard_client_to_guest(agent) -> None:
    recs, meta = agent
    clip = meta["clipboard"]["client_to_guest"]
    assert clip["intact"] and clip["read_in_guest"] == clip["text"]
    grabs = agent_records(recs, "clipboard_grab", "client")
    requests = agent_records(recs, "clipboard_request", "server")
    datas = agent_records(recs, "clipboard", "client")
    assert [(g["fields"]["selection"], g["fields"]["types"]) for g in grabs] == [("CLIPBOARD", ["UTF8_TEXT"])]
    assert [(r["fields"]["selection"], r["fields"]["type"]) for r in requests] == [("CLIPBOARD", "UTF8_TEXT")]
    assert len(datas) == 1 and datas[0]["fields"]["type"] == "UTF8_TEXT"
    assert text_of(datas[0]["fields"]["data"]) == clip["text"] == "clipboard from the spice client: grüße ✓ 5930"
    assert grabs[0]["frame"] < requests[0]["frame"] < datas[0]["frame"]


def test_clipboard_guest_to_client(agent) -> None:
    recs, meta = agent
    clip = meta["clipboard"]["guest_to_client"]
    assert clip["intact"] and clip["received_by_client"] == clip["text"]
    grabs = agent_records(recs, "clipboard_grab", "server")
    requests = agent_records(recs, "clipboard_request", "client")
    datas = agent_records(recs, "clipboard", "server")
    assert [(g["fields"]["selection"], g["fields"]["types"]) for g in grabs] == [("CLIPBOARD", ["UTF8_TEXT"])]
    assert [(r["fields"]["selection"], r["fields"]["type"]) for r in requests] == [("CLIPBOARD", "UTF8_TEXT")]
    assert len(datas) == 1
    assert text_of(datas[0]["fields"]["data"]) == clip["text"] == "clipboard from the guest xterm session: ünïcode ♥"
    # both ends announced VD_AGENT_CAP_CLIPBOARD_GRAB_SERIAL: the agent's grab carries a serial
    assert grabs[0]["fields"]["serial"] >= 1
    assert grabs[0]["frame"] < requests[0]["frame"] < datas[0]["frame"]


def test_agent_messages_agree_with_tshark(agent) -> None:
    """Where Wireshark decodes a vdagent message, it is the one we decode in that frame.

    Wireshark 4.0 does not skip the 4-byte body of VD_AGENT_MAX_CLIPBOARD (type 14, which it calls
    END_MESSAGE): it reads those bytes and the next message's type as a header (type 0, size
    0x00030640) and from there decodes the client's main stream at wrong offsets. Its client-side
    agent types are compared up to that point; the server side it follows throughout.
    """
    recs, _ = agent
    ours: dict[int, list[int]] = defaultdict(list)
    for r in recs:
        if r["layer"] == "agent":
            ours[r["frame"]].append(r["type_id"])
    server_port = 5930
    lost: set[int] = set()  # client ports whose stream tshark lost
    compared = Counter()
    for frame, sport, mtypes, atypes in tshark_rows(AGENT, "frame.number", "tcp.srcport", "spice.message_type",
                                                    "spice.agent_message_type"):
        side = "server" if int(sport) == server_port else "client"
        if side == "client" and 0 in ints(mtypes):
            lost.add(int(sport))
        if int(sport) in lost or not atypes:
            continue
        for t in ints(atypes):
            assert t in ours[int(frame)], f"frame {frame}: tshark agent type {t}, ours {ours[int(frame)]}"
            compared[(side, t)] += 1
    # tshark shows both capability announcements, both FILE_XFER_STATUS and the guest's clipboard traffic
    assert compared[("client", 6)] == 1 and compared[("server", 6)] == 1
    assert compared[("server", 11)] == 2
    assert compared[("server", 7)] == compared[("server", 8)] == compared[("server", 4)] == 1


# ---------------------------------------------------------------- qemu-channels


def test_every_channel_links(qemu) -> None:
    recs, meta = qemu
    links = [r for r in recs if r["layer"] == "link" and r["type"] == "link_mess"]
    linked = {r["channel"]: r["fields"]["channel_type"] for r in links}
    assert linked == CHANNEL_TYPES
    assert len(links) == len(CHANNEL_TYPES)
    results = [r for r in recs if r["layer"] == "link" and r["type"] == "link_result"]
    assert sorted(r["channel"] for r in results) == sorted(CHANNEL_TYPES)
    # the server's CHANNELS_LIST offered exactly the channels the client then linked (besides main)
    listed = [r for r in recs if r["type"] == "channels_list"]
    assert len(listed) == 1
    offered = {c["type"] for c in listed[0]["fields"]["channels"]}
    assert offered == set(CHANNEL_TYPES.values()) - {1}
    # the client reported a new channel object for each
    made = {e["channel"] for e in meta["timeline"] if e["action"] == "client:channel_new"}
    assert len(made) == len(CHANNEL_TYPES)


def test_port_init_names(qemu) -> None:
    recs, meta = qemu
    inits = {r["channel"]: r["fields"] for r in recs if r["type"] == "init" and r["channel"] in ("port", "webdav")}
    names = {ch: bytes.fromhex(f["name"]) for ch, f in inits.items()}
    # name_size counts the terminating NUL that QEMU sends
    assert names == {"port": b"org.qemu.console.serial.0\x00", "webdav": b"org.spice-space.webdav.0\x00"}
    assert {ch: f["name_size"] for ch, f in inits.items()} == {"port": 26, "webdav": 25}
    # no guest OS opened the virtio-serial ports
    assert {ch: f["opened"] for ch, f in inits.items()} == {"port": 0, "webdav": 0}
    assert sorted(n.rstrip(b"\x00").decode() for n in names.values()) == sorted(meta["server"]["port_channels"])
    seen_by_client = {e["port"] for e in meta["timeline"] if e["action"] == "client:port_init"}
    assert seen_by_client == set(meta["server"]["port_channels"])


def test_port_events_from_the_client(qemu) -> None:
    recs, meta = qemu
    events = [(r["channel"], r["fields"]["event"]) for r in recs
              if r["type"] == "event" and r["direction"] == "client"]
    sent = [e["value"] for e in meta["timeline"] if e["action"] == "client:port_event_sent"]
    assert sent == [2, 2]  # SPICE_PORT_EVENT_BREAK on each port
    assert sorted(events) == [("port", 2), ("webdav", 2)]


def test_usbredir_hello_both_ways(qemu) -> None:
    recs, _ = qemu
    data = [r for r in recs if r["channel"] == "usbredir" and r["type"] == "data"]
    by_dir = {r["direction"]: bytes.fromhex(r["fields"]["data"]["head"]) for r in data}
    assert len(data) == 2 and set(by_dir) == {"server", "client"}
    for head in by_dir.values():
        # usbredir packet header: type 0 (hello), length 68 (64-byte version string + caps), id 0
        assert head[:12] == (0).to_bytes(4, "little") + (68).to_bytes(4, "little") + bytes(4)
    assert by_dir["server"][12:].startswith(b"qemu usb-redir guest")
    assert by_dir["client"][12:].startswith(b"spice-gtk 0.42")
    assert all(r["size"] == 80 for r in data)


def test_audio_channels(qemu) -> None:
    recs, _ = qemu
    modes = [r for r in recs if r["channel"] == "playback" and r["type"] == "mode"]
    assert len(modes) == 1 and modes[0]["fields"]["mode"] in ("RAW", "OPUS")
    # no guest OS plays or records: the audio channels carry only their mode and pings
    rec_types = {r["type"] for r in recs if r["channel"] == "record" and r["layer"] == "message"}
    assert rec_types == {"ping", "pong"}


def test_qemu_screen(qemu) -> None:
    """One 720x400 primary surface (VGA text mode), the size QEMU's own screendump has."""
    from PIL import Image

    recs, meta = qemu
    surfaces = [f"{r['fields']['width']}x{r['fields']['height']}" for r in recs if r["type"] == "surface_create"]
    assert surfaces == meta["screen_sizes"] == ["720x400"]
    assert meta["ground_truth"]["file"] == "qemu-channels.png"
    assert Image.open(CAPTURES / "qemu-channels.png").size == (720, 400)


def test_qemu_channels_agree_with_tshark(qemu) -> None:
    recs, _ = qemu
    link_types = {r["frame"]: r["fields"]["channel_type"] for r in recs if r["type"] == "link_mess"}
    theirs = {int(f): ints(t)[0] for f, t in tshark_rows(QEMU, "frame.number", "spice.channel_type",
                                                          display_filter="spice.channel_type") if t}
    # tshark also lists the channel types inside CHANNELS_LIST: keep the link frames
    assert {f: t for f, t in theirs.items() if f in link_types} == link_types
    assert set(link_types) <= set(theirs)
    # port INIT (server, 201) and the client's PORT_EVENT (201): tshark shows the type, not the fields
    by_frame: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for r in recs:
        if r["layer"] == "message":
            by_frame[r["frame"]].append((r["channel"], r["type_id"]))
    port_frames = [f for f, msgs in by_frame.items() if any(ch in ("port", "webdav") and t == 201
                                                            for ch, t in msgs)]
    assert len(port_frames) == 4
    tmsgs = {int(f): ints(t) for f, t in tshark_rows(QEMU, "frame.number", "spice.message_type",
                                                     display_filter="spice.message_type")}
    for f in port_frames:
        assert 201 in tmsgs.get(f, []), f"frame {f}: tshark {tmsgs.get(f)}"
    # usbredir DATA (101) in the frames where we decode it
    for r in recs:
        if r["channel"] == "usbredir" and r["type"] == "data":
            assert 101 in tmsgs.get(r["frame"], [])
