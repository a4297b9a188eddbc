"""Every SPICE protocol constant by its spice-protocol name (spice/enums.h, protocol.h, vd_agent.h).

Naming (one rule, so a reader finds `SPICE_X_Y_Z` as `XY.Z`):
- an enum or flag set of spice-protocol is a class named after it without SPICE_:
  SPICE_IMAGE_TYPE_LZ4 -> ImageType.LZ4, SPICE_BITMAP_FLAGS_PAL_FROM_CACHE ->
  BitmapFlags.PAL_FROM_CACHE, SPICE_LINK_ERR_PERMISSION_DENIED -> LinkErr.PERMISSION_DENIED.
  A member that would begin with a digit keeps the prefix's last word:
  SPICE_BITMAP_FMT_32BIT -> BitmapFmt.FMT_32BIT, SPICE_SURFACE_FMT_32_xRGB -> SurfaceFmt.FMT_32_xRGB.
- message ids: Msg<Channel> from the server (SPICE_MSG_DISPLAY_DRAW_COPY -> MsgDisplay.DRAW_COPY),
  Msgc<Channel> from the client (SPICE_MSGC_DISPLAY_INIT -> MsgcDisplay.INIT). The base messages
  every channel shares are Msg / Msgc (SPICE_MSG_PING -> Msg.PING, SPICE_MSGC_ACK_SYNC ->
  Msgc.ACK_SYNC); a channel's class holds what its table adds to them (the port channels also
  hold spicevmc's DATA). `message_ids(channel_type, direction)` picks the class.
- capabilities are bit numbers: CommonCap, MainCap, DisplayCap, InputsCap, PlaybackCap,
  RecordCap, SpicevmcCap (SPICE_DISPLAY_CAP_LZ4_COMPRESSION -> DisplayCap.LZ4_COMPRESSION);
  pack_caps / unpack_caps / has_cap are the one packer of capability words.
- vdagent (spice/vd_agent.h): AgentMsg (VD_AGENT_CLIPBOARD -> AgentMsg.CLIPBOARD), AgentCap
  (VD_AGENT_CAP_CLIPBOARD_SELECTION -> AgentCap.CLIPBOARD_SELECTION), AgentClipboardType.

The values are views of the one description the schema already holds (channels/*.py, types.py,
vdagent.py): nothing here repeats a number those tables know. Constants no table holds are
defined here, once.

Members are ints (IntEnum, IntFlag) and compare equal to them; IntFlag arithmetic and class
attribute lookups cost more than a plain int, so a hot loop binds `_X = int(Cls.X)` at module
level.
"""
from __future__ import annotations

from enum import IntEnum, IntFlag

from . import image_headers
from .channels import MESSAGES, audio, common, cursor, display, inputs, main, spicevmc
from .events import Direction
from .schema import Prim
from .types import CHANNEL_CAPS, CHANNEL_NAMES, COMMON_CAPS, LINK_ERRORS
from .types import has_cap as has_cap  # the one packer
from .types import pack_caps as pack_caps
from .types import unpack_caps as unpack_caps
from .vdagent import AGENT_CAPS, clipboard_type
from .vdagent import PROTOCOL as AGENT_PROTOCOL  # noqa: F401  (VD_AGENT_PROTOCOL, re-exported)
from .vdagent import TYPES as AGENT_TYPES
from .vdagent import selection as _agent_selection
from .vdagent import xfer_status as _agent_xfer_status


def member_name(schema_name: str, cls_name: str) -> str:
    """The Python member name of a schema name: upper-cased message and cap names, enum names
    as the schema spells them (32_xRGB keeps its x); a leading digit gets the prefix's last word."""
    name = schema_name if any(c.isupper() for c in schema_name) else schema_name.upper()
    if name[0].isdigit():
        name = _LAST_WORD[cls_name] + "_" + name
    return name


_LAST_WORD = {"BitmapFmt": "FMT", "SurfaceFmt": "FMT"}


_SCHEMA_NAMES: dict[type, dict[str, int]] = {}


def _from(cls_name: str, names: dict[int, str], base: type) -> type:
    members = {member_name(n, cls_name): v for v, n in names.items()}
    cls = base(cls_name, members, module=__name__, qualname=cls_name)
    _SCHEMA_NAMES[cls] = {n: v for v, n in names.items()}
    return cls


def by_schema_name(cls: type) -> dict[str, int]:
    """{name as parsed fields spell it: value} of a class made from a table ("32BIT": 8)."""
    return _SCHEMA_NAMES[cls]


def _of(cls_name: str, prim: Prim) -> type:
    """The enum (IntEnum) or flag set (IntFlag) a schema Prim names."""
    return _from(cls_name, prim.names, IntFlag if prim.kind == "flags" else IntEnum)


def _list(cls_name: str, names: list[str], start: int = 0) -> type:
    return _from(cls_name, {i + start: n for i, n in enumerate(names)}, IntEnum)


# --- channels and the link stage (types.py) ---
ChannelType = _from("ChannelType", CHANNEL_NAMES, IntEnum)
LinkErr = _list("LinkErr", LINK_ERRORS)

# --- capabilities: bit numbers, one class per channel (types.py) ---
CommonCap = _list("CommonCap", COMMON_CAPS)
MainCap = _list("MainCap", CHANNEL_CAPS[ChannelType.MAIN])
DisplayCap = _list("DisplayCap", CHANNEL_CAPS[ChannelType.DISPLAY])
InputsCap = _list("InputsCap", CHANNEL_CAPS[ChannelType.INPUTS])
PlaybackCap = _list("PlaybackCap", CHANNEL_CAPS[ChannelType.PLAYBACK])
RecordCap = _list("RecordCap", CHANNEL_CAPS[ChannelType.RECORD])
SpicevmcCap = _list("SpicevmcCap", CHANNEL_CAPS[ChannelType.USBREDIR])
CHANNEL_CAP_ENUMS: dict[int, type] = {
    ChannelType.MAIN: MainCap, ChannelType.DISPLAY: DisplayCap, ChannelType.INPUTS: InputsCap,
    ChannelType.PLAYBACK: PlaybackCap, ChannelType.RECORD: RecordCap,
    ChannelType.SMARTCARD: SpicevmcCap, ChannelType.USBREDIR: SpicevmcCap,
    ChannelType.PORT: SpicevmcCap, ChannelType.WEBDAV: SpicevmcCap,
}

# --- message ids per channel and direction (channels/*.py) ---
SERVER, CLIENT = Direction.SERVER, Direction.CLIENT


def _messages(cls_name: str, channel_type: int, direction: Direction) -> type:
    base = MESSAGES[(0, direction)] if channel_type else {}
    tab = MESSAGES[(channel_type, direction)]
    return _from(cls_name, {t: n for t, (n, _) in tab.items() if t not in base}, IntEnum)


Msg = _messages("Msg", 0, SERVER)
Msgc = _messages("Msgc", 0, CLIENT)
MSG_FIRST_AVAIL = Msg.BASE_LAST + 1   # SPICE_MSG(C)_FIRST_AVAIL: the first channel-specific id
MsgMain = _messages("MsgMain", ChannelType.MAIN, SERVER)
MsgcMain = _messages("MsgcMain", ChannelType.MAIN, CLIENT)
MsgDisplay = _messages("MsgDisplay", ChannelType.DISPLAY, SERVER)
MsgcDisplay = _messages("MsgcDisplay", ChannelType.DISPLAY, CLIENT)
MsgInputs = _messages("MsgInputs", ChannelType.INPUTS, SERVER)
MsgcInputs = _messages("MsgcInputs", ChannelType.INPUTS, CLIENT)
MsgCursor = _messages("MsgCursor", ChannelType.CURSOR, SERVER)
MsgcCursor = _messages("MsgcCursor", ChannelType.CURSOR, CLIENT)
MsgPlayback = _messages("MsgPlayback", ChannelType.PLAYBACK, SERVER)
MsgcPlayback = _messages("MsgcPlayback", ChannelType.PLAYBACK, CLIENT)
MsgRecord = _messages("MsgRecord", ChannelType.RECORD, SERVER)
MsgcRecord = _messages("MsgcRecord", ChannelType.RECORD, CLIENT)
MsgSmartcard = _messages("MsgSmartcard", ChannelType.SMARTCARD, SERVER)
MsgcSmartcard = _messages("MsgcSmartcard", ChannelType.SMARTCARD, CLIENT)
MsgUsbredir = _messages("MsgUsbredir", ChannelType.USBREDIR, SERVER)
MsgcUsbredir = _messages("MsgcUsbredir", ChannelType.USBREDIR, CLIENT)
MsgPort = _messages("MsgPort", ChannelType.PORT, SERVER)
MsgcPort = _messages("MsgcPort", ChannelType.PORT, CLIENT)
MsgWebdav = _messages("MsgWebdav", ChannelType.WEBDAV, SERVER)
MsgcWebdav = _messages("MsgcWebdav", ChannelType.WEBDAV, CLIENT)

_MESSAGE_IDS: dict[tuple[int, Direction], type] = {
    (0, SERVER): Msg, (0, CLIENT): Msgc,
    (ChannelType.MAIN, SERVER): MsgMain, (ChannelType.MAIN, CLIENT): MsgcMain,
    (ChannelType.DISPLAY, SERVER): MsgDisplay, (ChannelType.DISPLAY, CLIENT): MsgcDisplay,
    (ChannelType.INPUTS, SERVER): MsgInputs, (ChannelType.INPUTS, CLIENT): MsgcInputs,
    (ChannelType.CURSOR, SERVER): MsgCursor, (ChannelType.CURSOR, CLIENT): MsgcCursor,
    (ChannelType.PLAYBACK, SERVER): MsgPlayback, (ChannelType.PLAYBACK, CLIENT): MsgcPlayback,
    (ChannelType.RECORD, SERVER): MsgRecord, (ChannelType.RECORD, CLIENT): MsgcRecord,
    (ChannelType.SMARTCARD, SERVER): MsgSmartcard, (ChannelType.SMARTCARD, CLIENT): MsgcSmartcard,
    (ChannelType.USBREDIR, SERVER): MsgUsbredir, (ChannelType.USBREDIR, CLIENT): MsgcUsbredir,
    (ChannelType.PORT, SERVER): MsgPort, (ChannelType.PORT, CLIENT): MsgcPort,
    (ChannelType.WEBDAV, SERVER): MsgWebdav, (ChannelType.WEBDAV, CLIENT): MsgcWebdav,
}


def message_ids(channel_type: int | None, direction: Direction) -> type:
    """The class of a channel's own message ids in one direction (the base: Msg / Msgc)."""
    direction = Direction(direction)
    return _MESSAGE_IDS.get((channel_type or 0, direction), _MESSAGE_IDS[(0, direction)])


# --- base channel (channels/common.py) ---
MigrateFlags = _of("MigrateFlags", common.migrate_flags)
NotifySeverity = _of("NotifySeverity", common.notify_severity)
NotifyVisibility = _of("NotifyVisibility", common.notify_visibility)

# --- main channel ---
MouseMode = _of("MouseMode", main.mouse_mode)

# --- display channel ---
ClipType = _of("ClipType", display.clip_type)
PathFlags = _of("PathFlags", display.path_flags)
VideoCodecType = _of("VideoCodecType", display.video_codec_type)
StreamFlags = _of("StreamFlags", display.stream_flags)
BrushType = _of("BrushType", display.brush_type)
MaskFlags = _of("MaskFlags", display.mask_flags)
ImageType = _of("ImageType", display.image_type)
ImageCompression = _of("ImageCompression", display.image_compression)
ImageFlags = _of("ImageFlags", display.image_flags)
BitmapFmt = _of("BitmapFmt", display.bitmap_fmt)
BitmapFlags = _of("BitmapFlags", display.bitmap_flags)
JpegAlphaFlags = _of("JpegAlphaFlags", display.jpeg_alpha_flags)
ImageScaleMode = _of("ImageScaleMode", display.image_scale_mode)
Ropd = _of("Ropd", display.ropd)
LineFlags = _of("LineFlags", display.line_flags)
StringFlags = _of("StringFlags", display.string_flags)
SurfaceFlags = _of("SurfaceFlags", display.surface_flags)
SurfaceFmt = _of("SurfaceFmt", display.surface_fmt)
AlphaFlags = _of("AlphaFlags", display.alpha_flags)
CompositeFlags = _of("CompositeFlags", display.composite_flags)
GlScanoutFlags = _of("GlScanoutFlags", display.gl_scanout_flags)

# --- the inner headers of compressed images (spice-common quic.h, lz_common.h; image_headers.py) ---
QuicImageType = _from("QuicImageType", image_headers.QUIC_TYPES, IntEnum)
LzImageType = _from("LzImageType", image_headers.LZ_TYPES, IntEnum)

# --- inputs channel ---
KeyboardModifierFlags = _of("KeyboardModifierFlags", inputs.keyboard_modifier_flags)
MouseButton = _of("MouseButton", inputs.mouse_button)
MouseButtonMask = _of("MouseButtonMask", inputs.mouse_button_mask)

# --- cursor channel ---
CursorType = _of("CursorType", cursor.cursor_type)
CursorFlags = _of("CursorFlags", cursor.cursor_flags)

# --- playback and record ---
AudioDataMode = _of("AudioDataMode", audio.audio_data_mode)
AudioFmt = _of("AudioFmt", audio.audio_fmt)

# --- spicevmc channels ---
DataCompressionType = _of("DataCompressionType", spicevmc.data_compression_type)

# --- vdagent (vdagent.py) ---
AgentMsg = _from("AgentMsg", {t: n for t, (n, _) in AGENT_TYPES.items()}, IntEnum)
AgentCap = _list("AgentCap", AGENT_CAPS)
AgentClipboardType = _of("AgentClipboardType", clipboard_type)
AgentClipboardSelection = _of("AgentClipboardSelection", _agent_selection)
AgentFileXferStatus = _of("AgentFileXferStatus", _agent_xfer_status)


# --- constants no table holds: defined here, once ---

class ResType(IntEnum):
    """SpiceResourceType: what an INVAL_LIST entry names."""
    INVALID = 0
    PIXMAP = 1


class CompositeRepeat(IntEnum):
    """The repeat of DRAW_COMPOSITE's SRC_REPEAT / MASK_REPEAT bits (pixman's repeat values)."""
    NONE = 0
    NORMAL = 1
    PAD = 2
    REFLECT = 3


class CompositeFilter(IntEnum):
    """The filter of DRAW_COMPOSITE's SRC_FILTER / MASK_FILTER bits (pixman's filter values)."""
    NEAREST = 0
    BILINEAR = 1


VERSION_MAJOR, VERSION_MINOR = 2, 2   # SPICE_VERSION_MAJOR, SPICE_VERSION_MINOR of the link header
# The primary surface is the one with this id (SPICE_SURFACE_FLAGS_PRIMARY is a flag, below).
PRIMARY_SURFACE_ID = 0
MAX_NUM_STREAMS = 64            # SPICE_MAX_NUM_STREAMS: stream ids lie in [0, 64)
INPUT_MOTION_ACK_BUNCH = 4      # SPICE_INPUT_MOTION_ACK_BUNCH: one MOUSE_MOTION_ACK per 4 motions
AGENT_MAX_DATA_SIZE = 2048      # VD_AGENT_MAX_DATA_SIZE: the agent bytes of one AGENT_DATA
