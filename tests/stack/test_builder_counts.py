"""The builder derives count and length fields (spice.proto `rects[num_rects]`, `data[data_size]`)
from the lists and bytes it is given, and refuses a given count that contradicts them."""
import json
import struct

import pytest
from corpus_support import CAPTURES, require_corpus
from tcp_payloads import read_connections

from spicetool.stack import (
    ChannelConnection,
    Direction,
    Message,
    build_agent_message,
    build_body,
    build_message,
    parse_body,
)
from spicetool.stack.messages import describe
from spicetool.stack.schema import Array, BuildError, LengthError, Pointer, Struct, merged_members

S, C = Direction.SERVER, Direction.CLIENT
DISPLAY, MAIN, CURSOR, PORT = 2, 1, 4, 10

RECT = {"top": 10, "left": 20, "bottom": 110, "right": 220}
RECT_BYTES = struct.pack("<4i", 10, 20, 110, 220)
NO_MASK = {"flags": 0, "pos": {"x": 0, "y": 0}, "bitmap": None}


def without(d: dict, *keys: str) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


def agent(tid: int, data: bytes) -> bytes:
    return struct.pack("<IIQI", 1, tid, 0, len(data)) + data


def fill(rects: dict | None) -> dict:
    clip = {"type": "NONE"} if rects is None else {"type": "RECTS", "rects": rects}
    return {"base": {"surface_id": 0, "box": RECT, "clip": clip},
            "data": {"brush": {"type": "SOLID", "color": 0xFF}, "rop_descriptor": 8, "mask": NO_MASK}}


def test_clip_rects_count_is_derived():
    two = [RECT, {"top": 1, "left": 2, "bottom": 3, "right": 4}]
    body = build_body(DISPLAY, S, "draw_fill", fill({"rects": two}))
    clip = b"\1" + struct.pack("<I", 2) + RECT_BYTES + struct.pack("<4i", 1, 2, 3, 4)
    assert body[4 + 16:4 + 16 + len(clip)] == clip
    assert body == build_body(DISPLAY, S, "draw_fill", fill({"num_rects": 2, "rects": two}))
    _, f, err = parse_body(DISPLAY, S, 302, body)
    assert err is None and f["base"]["clip"]["rects"] == {"num_rects": 2, "rects": two}


def test_monitors_config_heads_count_is_derived():
    head = {"monitor_id": 0, "surface_id": 0, "width": 800, "height": 600, "x": 0, "y": 0, "flags": 0}
    body = build_body(DISPLAY, S, "monitors_config", {"max_allowed": 1, "heads": [head]})
    assert body == struct.pack("<HH7I", 1, 1, 0, 0, 800, 600, 0, 0, 0)


def test_agent_monitors_config_counts_both_arrays():
    mon = [{"height": 600, "width": 800, "depth": 32, "x": 0, "y": 0},
           {"height": 768, "width": 1024, "depth": 32, "x": 800, "y": 0}]
    data = struct.pack("<II", 2, 0) + struct.pack("<IIIii", 600, 800, 32, 0, 0) + struct.pack(
        "<IIIii", 768, 1024, 32, 800, 0)
    assert build_agent_message("monitors_config", {"flags": 0, "monitors": mon}) == agent(2, data)
    sizes = [{"height": 190, "width": 340}, {"height": 200, "width": 360}]
    with_sizes = build_agent_message("monitors_config", {"flags": 2, "monitors": mon,
                                                         "physical_sizes": sizes})
    assert with_sizes[20:24] == struct.pack("<I", 2)
    with pytest.raises(BuildError, match="physical_sizes: num_of_monitors is 2 but 1 element is given"):
        build_agent_message("monitors_config", {"flags": 2, "monitors": mon, "physical_sizes": sizes[:1]})


def test_channels_list_count_is_derived():
    channels = [{"type": 1, "id": 0}, {"type": 2, "id": 0}, {"type": 4, "id": 0}]
    body = build_body(MAIN, S, "channels_list", {"channels": channels})
    assert body == struct.pack("<I", 3) + b"\1\0\2\0\4\0"
    assert build_body(MAIN, S, "channels_list", {"num_of_channels": 3, "channels": channels}) == body


def bitmap_copy(palette: dict) -> dict:
    image = {"descriptor": {"id": 1, "type": "BITMAP", "flags": 0, "width": 4, "height": 2},
             "bitmap": {"format": "8BIT", "flags": 0, "x": 4, "y": 2, "stride": 4,
                        "palette": palette, "data": bytes(range(8))}}
    return {"base": {"surface_id": 0, "box": RECT, "clip": {"type": "NONE"}},
            "data": {"src_bitmap": image, "src_area": RECT, "rop_descriptor": 8,
                     "scale_mode": "INTERPOLATE", "mask": NO_MASK}}


def test_palette_ents_count_is_derived_behind_its_pointer():
    ents = [0xFF0000, 0x00FF00, 0x0000FF]
    body = build_body(DISPLAY, S, "draw_copy", bitmap_copy({"unique": 99, "ents": ents}))
    assert body.endswith(struct.pack("<QH3I", 99, 3, *ents))
    assert body == build_body(DISPLAY, S, "draw_copy", bitmap_copy({"unique": 99, "num_ents": 3, "ents": ents}))
    with pytest.raises(BuildError, match="num_ents is 4 but 3 elements are given"):
        build_body(DISPLAY, S, "draw_copy", bitmap_copy({"unique": 99, "num_ents": 4, "ents": ents}))


def test_style_and_glyph_counts_across_switches():
    stroke = {"base": {"surface_id": 0, "box": RECT, "clip": {"type": "NONE"}},
              "data": {"path": {"segments": [{"flags": 1, "points": [{"x": 16, "y": 16}]}]},
                       "attr": {"flags": 8, "style": [48, 32]},
                       "brush": {"type": "SOLID", "color": 0xFF}, "fore_mode": 1, "back_mode": 2}}
    body = build_body(DISPLAY, S, "draw_stroke", stroke)
    _, f, err = parse_body(DISPLAY, S, 310, body)
    assert err is None
    assert f["data"]["attr"] == {"flags": 8, "style_nseg": 2, "style": [48, 32]}
    assert f["data"]["path"]["num_segments"] == 1 and f["data"]["path"]["segments"][0]["count"] == 1
    glyph = {"render_pos": {"x": 1, "y": 2}, "glyph_origin": {"x": 3, "y": 4}, "width": 9, "height": 2,
             "data": b"\xff\x80\x01\x00"}
    text = {"base": stroke["base"], "data": {"str": {"flags": 1, "glyphs": [glyph, glyph]},
                                             "back_area": RECT, "fore_brush": {"type": "NONE"},
                                             "back_brush": {"type": "NONE"}, "fore_mode": 3, "back_mode": 4}}
    _, f, err = parse_body(DISPLAY, S, 311, build_body(DISPLAY, S, "draw_text", text))
    assert err is None and f["data"]["str"]["length"] == 2


def test_byte_lengths_are_derived():
    jpeg = b"\xff\xd8" + bytes(30) + b"\xff\xd9"
    body = build_body(DISPLAY, S, "stream_data", {"base": {"id": 3, "multi_media_time": 1000}, "data": jpeg})
    assert body == struct.pack("<III", 3, 1000, len(jpeg)) + jpeg
    assert build_body(MAIN, S, "name", {"name": b"vm\0"}) == struct.pack("<I", 3) + b"vm\0"
    notify = build_body(MAIN, S, "notify", {"time_stamp": 1, "severity": "INFO", "visibilty": "LOW",
                                            "what": 0, "message": b"hi"})
    assert notify == struct.pack("<QIIII", 1, 0, 0, 0, 2) + b"hi"
    quic = {"descriptor": {"id": 1, "type": "QUIC", "flags": 0, "width": 4, "height": 4},
            "quic": {"data": b"QUIC" + bytes(12)}}
    copy = bitmap_copy({})
    copy["data"]["src_bitmap"] = quic
    assert build_body(DISPLAY, S, "draw_copy", copy).endswith(struct.pack("<I", 16) + b"QUIC" + bytes(12))


def test_agent_data_length():
    address = b"pci/0000/02.0"
    info = {"display_info": [{"channel_id": 0, "monitor_id": 0, "device_display_id": 1,
                              "device_address": address}]}
    data = struct.pack("<IIIII", 1, 0, 0, 1, len(address)) + address
    assert build_agent_message("graphics_device_info", info) == agent(16, data)
    # the AGENT_DATA message around it: its header gives the size of the agent bytes
    chunk = agent(16, data)
    assert build_message(MAIN, C, "agent_data", {"data": chunk}) == struct.pack("<HI", 107, len(chunk)) + chunk


def test_port_data_lengths():
    body = build_body(PORT, S, "init", {"name": b"org.spice\0", "opened": 1})
    assert body == struct.pack("<IIB", 10, 9, 1) + b"org.spice\0"
    assert build_message(PORT, C, "data", {"data": b"xyz"}) == struct.pack("<HI", 101, 3) + b"xyz"
    vsc = build_body(8, C, "data", {"type": "APDU", "reader_id": 0, "data": b"\0\xa4"})
    assert vsc == struct.pack("<III", 7, 0, 2) + b"\0\xa4"


def test_cursor_data_length():
    header = {"unique": 9, "type": "ALPHA", "width": 2, "height": 2, "hot_spot_x": 0, "hot_spot_y": 0}
    shape = bytes(16)
    m = build_message(CURSOR, S, "set", {"position": {"x": 3, "y": 4}, "visible": 1,
                                         "cursor": {"flags": 2, "header": header, "data": shape}})
    body = struct.pack("<hhBH", 3, 4, 1, 2) + struct.pack("<QBHHHH", 9, 0, 2, 2, 0, 0) + shape
    assert m == struct.pack("<HI", 103, len(body)) + body


def test_migrate_host_lengths_behind_pointers():
    dst = {"port": 5900, "sport": 0, "host_data": b"host\0", "cert_subject_data": None}
    body = build_body(MAIN, S, "migrate_begin", {"dst_info": dst})
    assert body == struct.pack("<HHIIII", 5900, 0, 5, 20, 0, 0) + b"host\0"


@pytest.mark.parametrize("channel, name, fields, match", [
    (MAIN, "channels_list", {"num_of_channels": 3, "channels": [{"type": 1, "id": 0}]},
     "channels: num_of_channels is 3 but 1 element is given"),
    (MAIN, "channels_list", {"num_of_channels": 1, "channels": [{"type": 1, "id": 0}] * 2},
     "num_of_channels is 1 but 2 elements are given"),
    (DISPLAY, "draw_fill", fill({"num_rects": 2, "rects": [RECT]}),
     "base.clip.rects.rects: num_rects is 2 but 1 element is given"),
    (DISPLAY, "stream_data", {"base": {"id": 3, "multi_media_time": 0}, "data_size": 5, "data": b"abcd"},
     "data: data_size is 5 but 4 bytes are given"),
    (MAIN, "name", {"name_len": 2, "name": b"vm\0"}, "name_len is 2 but 3 bytes are given"),
    (PORT, "init", {"name_size": 3, "name": b"org\0", "opened": 1}, "name_size is 3 but 4 bytes are given"),
    (MAIN, "uuid", {"uuid": bytes(15)}, "the layout says 16 but 15 bytes are given"),
])
def test_contradicting_counts_are_refused(channel, name, fields, match):
    with pytest.raises(LengthError, match=match) as e:
        build_body(channel, S, name, fields)
    assert isinstance(e.value, BuildError)


def test_bitmap_data_must_match_stride_times_rows():
    copy = bitmap_copy(None)
    copy["data"]["src_bitmap"]["bitmap"]["data"] = bytes(7)
    with pytest.raises(BuildError, match="the layout says 8 but 7 bytes are given"):
        build_body(DISPLAY, S, "draw_copy", copy)


def test_agent_count_contradiction_is_refused():
    mon = [{"height": 600, "width": 800, "depth": 32, "x": 0, "y": 0}]
    with pytest.raises(BuildError, match="num_of_monitors is 2 but 1 element is given"):
        build_agent_message("monitors_config", {"num_of_monitors": 2, "flags": 0, "monitors": mon})


def test_explicit_correct_count_gives_the_same_bytes():
    for channel, name, fields, count in [
            (MAIN, "channels_list", {"num_of_channels": 2, "channels": [{"type": 1, "id": 0}] * 2},
             "num_of_channels"),
            (DISPLAY, "inval_list", {"count": 2, "resources": [{"type": 1, "id": 5}, {"type": 1, "id": 6}]},
             "count"),
            (MAIN, "name", {"name_len": 3, "name": b"vm\0"}, "name_len"),
            (DISPLAY, "stream_data", {"base": {"id": 1, "multi_media_time": 2}, "data_size": 3, "data": b"abc"},
             "data_size")]:
        assert build_body(channel, S, name, fields) == build_body(channel, S, name, without(fields, count))


@pytest.mark.parametrize("channel, direction, name, fields, count, n", [
    (5, S, "volume", {"volume": [100, 200]}, "nchannels", 2),
    (DISPLAY, C, "preferred_video_codec_type", {"codecs": ["VP8", "H264", "MJPEG"]}, "num_of_codecs", 3),
    (MAIN, S, "wait_for_channels", {"wait_list": [{"channel_type": 2, "channel_id": 0, "message_serial": 9}]},
     "wait_count", 1),
    (DISPLAY, S, "inval_list", {"resources": [{"type": 1, "id": 5}] * 4}, "count", 4),
])
def test_other_counts_are_derived(channel, direction, name, fields, count, n):
    body = build_body(channel, direction, name, fields)
    assert parse_body(channel, direction, describe(channel, direction, name)[0], body)[1][count] == n
    assert build_body(channel, direction, name, {**fields, count: n}) == body
    with pytest.raises(LengthError, match=f"{count} is {n + 1} but {n} element"):
        build_body(channel, direction, name, {**fields, count: n + 1})


def test_the_callers_fields_are_left_as_they_were():
    fields = {"channels": [{"type": 1, "id": 0}]}
    build_body(MAIN, S, "channels_list", fields)
    assert fields == {"channels": [{"type": 1, "id": 0}]}
    fields["channels"] = fields["channels"] * 3   # the same dict built again with another list
    assert build_body(MAIN, S, "channels_list", fields)[:4] == struct.pack("<I", 3)


def test_a_count_with_nothing_to_count_is_still_missing():
    with pytest.raises(BuildError, match="missing field 'num_of_channels'"):
        build_body(MAIN, S, "channels_list", {})


def without_counts(node, value):
    """Parsed fields with every count and length the builder can derive left out."""
    if isinstance(node, Pointer):
        return None if value is None else without_counts(node.target, value)
    if isinstance(node, Array) and isinstance(value, list):
        return [without_counts(node.elem, v) for v in value]
    if isinstance(node, Struct) and isinstance(value, dict):
        counts = {ref for ref, _ in node.derived}
        d = {k: v for k, v in value.items() if k not in counts}
        members = {}
        for name, sub in merged_members(node.members):
            members.setdefault(name, sub)
        return {k: without_counts(members[k], v) if k in members else v for k, v in d.items()}
    return value


@pytest.mark.parametrize("name", ["mjpeg-stream.pcapng", "qemu-channels.pcapng", "long-desktop.pcapng"])
def test_corpus_messages_rebuild_the_same_without_their_counts(name):
    """Clip rects, stream and image data sizes, names, port names, monitors, channel lists:
    what real peers sent, rebuilt from the lists and bytes alone."""
    require_corpus()
    path = CAPTURES / name
    port = int(json.loads(path.with_suffix(".json").read_text())["server"]["address"].rsplit(":", 1)[1])
    dropped = 0
    for tc in read_connections(path, server_port=port):
        conn = ChannelConnection()
        for d in ("client", "server"):
            for _, chunk in tc.chunks[d]:
                for e in conn.receive(Direction(d), chunk):
                    if not isinstance(e, Message) or e.error or e.name.startswith("unknown_"):
                        continue
                    node = describe(e.channel_type, e.direction, e.type_id)[2]
                    fields = without_counts(node, e.fields)
                    dropped += fields != e.fields
                    assert build_body(e.channel_type, e.direction, e.type_id, fields) == bytes(e.body), e.name
    assert dropped > 0
