"""Our dissector against Wireshark's SPICE dissector, on every capture of the corpus.

For every message tshark decodes, we report the same connection, direction and message
type, in the same order and in the same frame; where tshark shows a field we decode too
(surface size, image type, stream codec, mouse position, key code), the values agree.
"""

from __future__ import annotations

import subprocess
from collections import defaultdict
from pathlib import Path

from support import need_program, starts_mid_session, wireshark_in_step

from spicetool.capture import Record, open_records

# tshark field -> how to find the same values in our records
FIELDS = ("spice.surface_width", "spice.surface_height", "spice.image_type", "spice.display_stream_codec_type",
          "spice.keyboard_key_code", "spice.point32.x", "spice.point32.y")
INPUT_POINTS = {"spice.point32.x": "x", "spice.point32.y": "y"}  # compared where a frame holds only inputs


def tshark_messages(path: Path) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """(src port, dst port) -> [(frame, message type), ...] in capture order, as tshark decodes them."""
    tshark = need_program("tshark")
    out = subprocess.run(
        [tshark, "-r", str(path), "-Y", "spice.message_type", "-T", "fields", "-E", "separator=|",
         "-E", "occurrence=a", "-E", "aggregator=,", "-e", "frame.number", "-e", "tcp.srcport", "-e", "tcp.dstport",
         "-e", "spice.message_type", *[a for f in FIELDS for a in ("-e", f)]],
        capture_output=True, text=True, check=True,
    ).stdout
    seqs: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    fields: dict[int, dict[str, list[int]]] = {}
    for line in out.splitlines():
        frame, sport, dport, types, *values = line.split("|")
        for t in types.split(","):
            seqs[(int(sport), int(dport))].append((int(frame), int(t)))
        fields[int(frame)] = {f: [int(v, 0) for v in val.split(",") if v] for f, val in zip(FIELDS, values)}
        fields[int(frame)]["types"] = [int(t) for t in types.split(",")]
    seqs["fields"] = fields  # type: ignore[index]
    return seqs


def our_messages(path: Path) -> tuple[dict[tuple[int, int], list[tuple[int, int]]], dict[int, list[Record]]]:
    records = open_records(path)
    seqs: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    by_frame: dict[int, list[Record]] = defaultdict(list)
    for rec in records:
        if rec.layer != "message":
            continue
        c, s = rec.channel.client, rec.channel.server
        src, dst = (c, s) if rec.direction.value == "client" else (s, c)
        seqs[(int(src.rsplit(":", 1)[1]), int(dst.rsplit(":", 1)[1]))].append((rec.frame, rec.type_id))
        by_frame[rec.frame].append(rec)
    assert records.damage is None
    return seqs, by_frame


def test_same_messages_as_tshark(capture: Path) -> None:
    theirs = tshark_messages(capture)
    tfields = theirs.pop("fields")  # type: ignore[arg-type]
    ours, by_frame = our_messages(capture)
    if not theirs:  # tshark finds SPICE only from a link stage on; a later start is read by us alone
        assert starts_mid_session(capture), f"tshark decodes no SPICE message in {capture.name}"
        assert any(ours.values()), f"{capture.name}: we decode nothing of it either"
        return
    for key, seq in theirs.items():
        seq = wireshark_in_step(seq, lambda m: m[1])
        mine = ours.get(key, [])
        # tshark may give up on a stream (we go on): what it decodes is the head of ours, message for message
        assert mine[: len(seq)] == seq, f"{capture.name} {key}: first difference at " + str(
            next((i, a, b) for i, (a, b) in enumerate(zip(mine, seq)) if a != b) if mine else "no messages of ours"
        )
    compared = 0
    for frame, values in tfields.items():
        recs = by_frame.get(frame, [])
        inputs_only = bool(recs) and all(r.channel.channel == "inputs" for r in recs)
        for field, expected in values.items():
            if not expected or field == "types" or (field in INPUT_POINTS and not inputs_only):
                continue
            got = sorted(v for rec in recs for v in _our_values(rec, field))
            assert got == sorted(expected), f"{capture.name} frame {frame} {field}: ours {got}, tshark {expected}"
            compared += 1
    # every session with a display draws on a primary surface whose size tshark shows
    assert compared >= 2, f"{capture.name}: no field compared with tshark"


def _walk(value: object, key: str) -> list[object]:
    """Every value stored under `key` anywhere in a field tree."""
    found: list[object] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k == key:
                found.append(v)
            if isinstance(v, (dict, list)):
                found.extend(_walk(v, key))
    elif isinstance(value, list):
        for v in value:
            found.extend(_walk(v, key))
    return found


def _our_values(rec: Record, tshark_field: str) -> list[int]:
    from spicetool.stack.channels.display import image_type, video_codec_type

    f = rec.fields
    if tshark_field == "spice.surface_width":
        return [f["width"]] if rec.type == "surface_create" else []
    if tshark_field == "spice.surface_height":
        return [f["height"]] if rec.type == "surface_create" else []
    if tshark_field == "spice.image_type":
        return [image_type.encode(d["type"]) for d in _walk(f, "descriptor") if isinstance(d, dict)]
    if tshark_field == "spice.display_stream_codec_type":
        return [video_codec_type.encode(v) for v in _walk(f, "codec_type")] if rec.type == "stream_create" else []
    if tshark_field == "spice.keyboard_key_code":
        return [f["code"]] if rec.type in ("key_down", "key_up") else []
    if tshark_field in INPUT_POINTS:
        return [f[INPUT_POINTS[tshark_field]]] if rec.type == "mouse_position" else []
    raise KeyError(tshark_field)
