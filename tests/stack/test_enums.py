"""stack.enums: spice-protocol's numbers by name, and the schema tables they are views of."""
from __future__ import annotations

from enum import IntEnum, IntFlag

import pytest

from spicetool.stack import enums as e
from spicetool.stack.channels import MESSAGES, display
from spicetool.stack.events import Direction
from spicetool.stack.messages import build_message, describe, parse_body
from spicetool.stack.types import CHANNEL_CAPS, COMMON_CAPS, caps_to_names, names_to_caps


def test_values_are_spice_protocols():
    # spice-facts §3, §4, §1 and the display/image sections
    assert e.ChannelType.MAIN == 1 and e.ChannelType.DISPLAY == 2 and e.ChannelType.CURSOR == 4
    assert e.ChannelType.PLAYBACK == 5 and e.ChannelType.WEBDAV == 11
    assert e.Msgc.ACK_SYNC == 1 and e.Msgc.PONG == 3 and e.Msg.PING == 4 and e.Msg.BASE_LAST == 100
    assert e.MSG_FIRST_AVAIL == 101
    assert e.MsgDisplay.DRAW_COPY == 304 and e.MsgDisplay.SURFACE_CREATE == 314
    assert e.MsgMain.AGENT_DATA == 109 and e.MsgcMain.AGENT_DATA == 107
    assert e.MsgcInputs.KEY_SCANCODE == 104 and e.MsgInputs.MOUSE_MOTION_ACK == 111
    assert e.MsgPort.INIT == 201 and e.MsgcPort.EVENT == 201 and e.MsgPort.DATA == 101
    assert e.LinkErr.OK == 0 and e.LinkErr.PERMISSION_DENIED == 7
    assert e.ImageType.BITMAP == 0 and e.ImageType.LZ_PLT == 100 and e.ImageType.LZ4 == 109
    assert e.ImageFlags.CACHE_ME == 1 and e.ImageFlags.CACHE_REPLACE_ME == 4
    assert e.BitmapFlags.PAL_FROM_CACHE == 2 and e.BitmapFlags.TOP_DOWN == 4
    assert e.BitmapFmt.FMT_32BIT == 8 and e.BitmapFmt.RGBA == 9 and e.BitmapFmt.FMT_1BIT_BE == 2
    assert e.SurfaceFlags.PRIMARY == 1 and e.SurfaceFlags.STREAMING_MODE == 2
    assert e.SurfaceFmt.FMT_32_xRGB == 32 and e.SurfaceFmt.FMT_16_565 == 80
    assert e.PRIMARY_SURFACE_ID == 0
    assert e.Ropd.OP_PUT == 8 and e.Ropd.INVERS_RES == 1 << 10
    assert e.LineFlags.STYLED == 8 and e.LineFlags.START_WITH_GAP == 4
    assert e.ClipType.RECTS == 1 and e.BrushType.SOLID == 1 and e.BrushType.PATTERN == 2
    assert e.ImageScaleMode.NEAREST == 1
    assert e.StreamFlags.TOP_DOWN == 1 and e.VideoCodecType.MJPEG == 1 and e.VideoCodecType.H265 == 5
    assert e.CursorFlags.NONE == 1 and e.CursorFlags.FROM_CACHE == 4 and e.CursorType.ALPHA == 0
    assert e.StringFlags.RASTER_A8 == 4
    assert e.KeyboardModifierFlags.NUM_LOCK == 2 and e.KeyboardModifierFlags.CAPS_LOCK == 4
    assert e.MouseMode.SERVER == 1 and e.MouseMode.CLIENT == 2
    assert e.CommonCap.MINI_HEADER == 3 and e.DisplayCap.LZ4_COMPRESSION == 5
    assert e.DisplayCap.CODEC_MJPEG == 9 and e.InputsCap.KEY_SCANCODE == 0
    assert e.AgentMsg.ANNOUNCE_CAPABILITIES == 6 and e.AgentCap.CLIPBOARD_SELECTION == 6
    assert e.MAX_NUM_STREAMS == 64 and e.INPUT_MOTION_ACK_BUNCH == 4
    assert e.AGENT_MAX_DATA_SIZE == 2048 and e.AGENT_PROTOCOL == 1
    assert (e.VERSION_MAJOR, e.VERSION_MINOR) == (2, 2)
    assert e.ResType.PIXMAP == 1
    assert e.QuicImageType.RGB32 == 4 and e.LzImageType.RGB32 == 8 and e.LzImageType.XXXA == 10


def test_member_names_follow_one_rule():
    assert e.member_name("draw_copy", "MsgDisplay") == "DRAW_COPY"
    assert e.member_name("32_xRGB", "SurfaceFmt") == "FMT_32_xRGB"
    assert e.BitmapFmt["FMT_8BIT"] == 5
    assert e.by_schema_name(e.BitmapFmt)["32BIT"] == e.BitmapFmt.FMT_32BIT
    assert e.by_schema_name(e.SurfaceFmt)["32_xRGB"] == 32


def _message_classes():
    for (ct, d) in MESSAGES:
        if ct != e.ChannelType.TUNNEL:  # obsolete: no messages, not even the base ones
            yield ct, d, e.message_ids(ct, d)


@pytest.mark.parametrize("ct,d,cls", list(_message_classes()),
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_message_ids_round_trip_through_the_tables(ct, d, cls):
    tab = MESSAGES[(ct, d)]
    base = MESSAGES[(0, d)] if ct else {}
    assert {m.value for m in cls} == set(tab) - set(base)  # every id the table adds, no other
    for m in cls:
        tid, name, node = describe(ct, d, m.name.lower())
        assert (tid, name) == (m, tab[m][0]) and node is tab[m][1]
        assert e.member_name(name, cls.__name__) == m.name


def test_base_messages_are_every_channels():
    for ct in (e.ChannelType.MAIN, e.ChannelType.DISPLAY, e.ChannelType.PORT):
        assert describe(ct, Direction.CLIENT, "ack_sync")[0] == e.Msgc.ACK_SYNC
        assert describe(ct, Direction.SERVER, "ping")[0] == e.Msg.PING
    assert e.message_ids(e.ChannelType.TUNNEL, Direction.SERVER) is e.Msg  # no table of its own


def _schema_enums():
    from spicetool.stack import vdagent
    from spicetool.stack.channels import audio, common, cursor, inputs, main, spicevmc
    pairs = {
        "MigrateFlags": common.migrate_flags, "MouseMode": main.mouse_mode,
        "ClipType": display.clip_type, "PathFlags": display.path_flags,
        "VideoCodecType": display.video_codec_type, "StreamFlags": display.stream_flags,
        "BrushType": display.brush_type, "MaskFlags": display.mask_flags,
        "ImageType": display.image_type, "ImageCompression": display.image_compression,
        "ImageFlags": display.image_flags, "BitmapFmt": display.bitmap_fmt,
        "BitmapFlags": display.bitmap_flags, "ImageScaleMode": display.image_scale_mode,
        "Ropd": display.ropd, "LineFlags": display.line_flags, "StringFlags": display.string_flags,
        "SurfaceFlags": display.surface_flags, "SurfaceFmt": display.surface_fmt,
        "CompositeFlags": display.composite_flags, "KeyboardModifierFlags": inputs.keyboard_modifier_flags,
        "MouseButton": inputs.mouse_button, "CursorType": cursor.cursor_type,
        "CursorFlags": cursor.cursor_flags, "AudioDataMode": audio.audio_data_mode,
        "DataCompressionType": spicevmc.data_compression_type,
        "AgentClipboardType": vdagent.clipboard_type,
    }
    return sorted(pairs.items())


@pytest.mark.parametrize("cls_name,prim", _schema_enums(), ids=lambda v: v if isinstance(v, str) else "")
def test_enums_are_the_schemas_names(cls_name, prim):
    cls = getattr(e, cls_name)
    assert issubclass(cls, IntFlag if prim.kind == "flags" else IntEnum)
    assert {m.value: m.name for m in cls} == {v: e.member_name(n, cls_name) for v, n in prim.names.items()}
    for v, n in prim.names.items():
        assert prim.encode(n) == cls[e.member_name(n, cls_name)]
        if prim.kind == "enum":
            assert prim.decode(cls(v)) == n


def test_surface_create_parses_to_the_enum_names():
    fields = {"surface_id": e.PRIMARY_SURFACE_ID, "width": 8, "height": 8,
              "format": "32_xRGB", "flags": e.SurfaceFlags.PRIMARY}
    raw = build_message(e.ChannelType.DISPLAY, Direction.SERVER, e.MsgDisplay.SURFACE_CREATE, fields)
    name, parsed, err = parse_body(e.ChannelType.DISPLAY, Direction.SERVER, e.MsgDisplay.SURFACE_CREATE, raw[6:])
    assert err is None and name == "surface_create"
    assert e.SurfaceFmt[e.member_name(parsed["format"], "SurfaceFmt")] == e.SurfaceFmt.FMT_32_xRGB
    assert parsed["flags"] == e.SurfaceFlags.PRIMARY


def test_caps_classes_are_the_cap_tables():
    assert [m.name.lower() for m in e.CommonCap] == COMMON_CAPS
    for ct, names in CHANNEL_CAPS.items():
        assert [m.name.lower() for m in e.CHANNEL_CAP_ENUMS[ct]] == names


def test_one_packer():
    words = e.pack_caps([e.CommonCap.PROTOCOL_AUTH_SELECTION, e.CommonCap.AUTH_SPICE, e.CommonCap.MINI_HEADER])
    assert words == [0x0B]  # spice-facts §1: the server's usual common word
    assert e.unpack_caps(words) == [0, 1, 3]
    assert e.has_cap(words, e.CommonCap.MINI_HEADER) and not e.has_cap(words, e.CommonCap.AUTH_SASL)
    assert e.pack_caps([33], nwords=3) == [0, 2, 0] and e.unpack_caps([0, 2, 0]) == [33]
    assert e.pack_caps([]) == []
    assert names_to_caps(["mini_header", 40], COMMON_CAPS) == [8, 1 << 8]
    assert caps_to_names([8, 1 << 8], COMMON_CAPS) == ["mini_header", 40]
