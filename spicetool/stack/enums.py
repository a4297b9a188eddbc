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

A class made from a table is made on its first look-up (`_lazy` below), as are the names made
from them (MSG_FIRST_AVAIL, CHANNEL_CAP_ENUMS): `from spicetool.stack.enums import MsgDisplay`
and `enums.MsgDisplay` read as for any module attribute, and give the same class every time.
"""
from __future__ import annotations

import threading
from enum import IntEnum, IntFlag
from typing import Any, Callable

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


# enum's metaclass costs ~15 us a member: making the ~70 classes of the tables (~430 members)
# was 6 ms (60 M instructions) of every command's start, and a command uses a few of them. So
# each is made when first looked up (PEP 562) and from then on is a plain module attribute.
_MAKERS: dict[str, Callable[[], Any]] = {}
_MAKING = threading.RLock()  # two threads' first look-ups make one class, not two (RLock: a maker looks others up)


def _lazy(name: str, make: Callable[..., Any], *args: Any) -> None:
    _MAKERS[name] = lambda: make(name, *args)


def __getattr__(name: str) -> Any:
    make = _MAKERS.get(name)
    if make is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _MAKING:
        if name not in globals():
            globals()[name] = make()
        return globals()[name]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MAKERS))


# --- channels and the link stage (types.py) ---
ChannelType = _from("ChannelType", CHANNEL_NAMES, IntEnum)
_lazy("LinkErr", _list, LINK_ERRORS)

# --- capabilities: bit numbers, one class per channel (types.py) ---
_lazy("CommonCap", _list, COMMON_CAPS)
_lazy("MainCap", _list, CHANNEL_CAPS[ChannelType.MAIN])
_lazy("DisplayCap", _list, CHANNEL_CAPS[ChannelType.DISPLAY])
_lazy("InputsCap", _list, CHANNEL_CAPS[ChannelType.INPUTS])
_lazy("PlaybackCap", _list, CHANNEL_CAPS[ChannelType.PLAYBACK])
_lazy("RecordCap", _list, CHANNEL_CAPS[ChannelType.RECORD])
_lazy("SpicevmcCap", _list, CHANNEL_CAPS[ChannelType.USBREDIR])
_CHANNEL_CAPS_CLASS = {
    ChannelType.MAIN: "MainCap", ChannelType.DISPLAY: "DisplayCap", ChannelType.INPUTS: "InputsCap",
    ChannelType.PLAYBACK: "PlaybackCap", ChannelType.RECORD: "RecordCap",
    ChannelType.SMARTCARD: "SpicevmcCap", ChannelType.USBREDIR: "SpicevmcCap",
    ChannelType.PORT: "SpicevmcCap", ChannelType.WEBDAV: "SpicevmcCap",
}
# CHANNEL_CAP_ENUMS: dict[int, type], {channel type: its caps class}
_MAKERS["CHANNEL_CAP_ENUMS"] = lambda: {ct: __getattr__(n) for ct, n in _CHANNEL_CAPS_CLASS.items()}

# --- message ids per channel and direction (channels/*.py) ---
SERVER, CLIENT = Direction.SERVER, Direction.CLIENT


def _messages(cls_name: str, channel_type: int, direction: Direction) -> type:
    base = MESSAGES[(0, direction)] if channel_type else {}
    tab = MESSAGES[(channel_type, direction)]
    return _from(cls_name, {t: n for t, (n, _) in tab.items() if t not in base}, IntEnum)


_lazy("Msg", _messages, 0, SERVER)
_lazy("Msgc", _messages, 0, CLIENT)
# MSG_FIRST_AVAIL = Msg.BASE_LAST + 1, SPICE_MSG(C)_FIRST_AVAIL: the first channel-specific id
_MAKERS["MSG_FIRST_AVAIL"] = lambda: __getattr__("Msg").BASE_LAST + 1
_lazy("MsgMain", _messages, ChannelType.MAIN, SERVER)
_lazy("MsgcMain", _messages, ChannelType.MAIN, CLIENT)
_lazy("MsgDisplay", _messages, ChannelType.DISPLAY, SERVER)
_lazy("MsgcDisplay", _messages, ChannelType.DISPLAY, CLIENT)
_lazy("MsgInputs", _messages, ChannelType.INPUTS, SERVER)
_lazy("MsgcInputs", _messages, ChannelType.INPUTS, CLIENT)
_lazy("MsgCursor", _messages, ChannelType.CURSOR, SERVER)
_lazy("MsgcCursor", _messages, ChannelType.CURSOR, CLIENT)
_lazy("MsgPlayback", _messages, ChannelType.PLAYBACK, SERVER)
_lazy("MsgcPlayback", _messages, ChannelType.PLAYBACK, CLIENT)
_lazy("MsgRecord", _messages, ChannelType.RECORD, SERVER)
_lazy("MsgcRecord", _messages, ChannelType.RECORD, CLIENT)
_lazy("MsgSmartcard", _messages, ChannelType.SMARTCARD, SERVER)
_lazy("MsgcSmartcard", _messages, ChannelType.SMARTCARD, CLIENT)
_lazy("MsgUsbredir", _messages, ChannelType.USBREDIR, SERVER)
_lazy("MsgcUsbredir", _messages, ChannelType.USBREDIR, CLIENT)
_lazy("MsgPort", _messages, ChannelType.PORT, SERVER)
_lazy("MsgcPort", _messages, ChannelType.PORT, CLIENT)
_lazy("MsgWebdav", _messages, ChannelType.WEBDAV, SERVER)
_lazy("MsgcWebdav", _messages, ChannelType.WEBDAV, CLIENT)

_MESSAGE_IDS: dict[tuple[int, Direction], str] = {
    (0, SERVER): "Msg", (0, CLIENT): "Msgc",
    (ChannelType.MAIN, SERVER): "MsgMain", (ChannelType.MAIN, CLIENT): "MsgcMain",
    (ChannelType.DISPLAY, SERVER): "MsgDisplay", (ChannelType.DISPLAY, CLIENT): "MsgcDisplay",
    (ChannelType.INPUTS, SERVER): "MsgInputs", (ChannelType.INPUTS, CLIENT): "MsgcInputs",
    (ChannelType.CURSOR, SERVER): "MsgCursor", (ChannelType.CURSOR, CLIENT): "MsgcCursor",
    (ChannelType.PLAYBACK, SERVER): "MsgPlayback", (ChannelType.PLAYBACK, CLIENT): "MsgcPlayback",
    (ChannelType.RECORD, SERVER): "MsgRecord", (ChannelType.RECORD, CLIENT): "MsgcRecord",
    (ChannelType.SMARTCARD, SERVER): "MsgSmartcard", (ChannelType.SMARTCARD, CLIENT): "MsgcSmartcard",
    (ChannelType.USBREDIR, SERVER): "MsgUsbredir", (ChannelType.USBREDIR, CLIENT): "MsgcUsbredir",
    (ChannelType.PORT, SERVER): "MsgPort", (ChannelType.PORT, CLIENT): "MsgcPort",
    (ChannelType.WEBDAV, SERVER): "MsgWebdav", (ChannelType.WEBDAV, CLIENT): "MsgcWebdav",
}


def message_ids(channel_type: int | None, direction: Direction) -> type:
    """The class of a channel's own message ids in one direction (the base: Msg / Msgc)."""
    direction = Direction(direction)
    return __getattr__(_MESSAGE_IDS.get((channel_type or 0, direction), _MESSAGE_IDS[(0, direction)]))


# --- base channel (channels/common.py) ---
_lazy("MigrateFlags", _of, common.migrate_flags)
_lazy("NotifySeverity", _of, common.notify_severity)
_lazy("NotifyVisibility", _of, common.notify_visibility)

# --- main channel ---
_lazy("MouseMode", _of, main.mouse_mode)

# --- display channel ---
_lazy("ClipType", _of, display.clip_type)
_lazy("PathFlags", _of, display.path_flags)
_lazy("VideoCodecType", _of, display.video_codec_type)
_lazy("StreamFlags", _of, display.stream_flags)
_lazy("BrushType", _of, display.brush_type)
_lazy("MaskFlags", _of, display.mask_flags)
_lazy("ImageType", _of, display.image_type)
_lazy("ImageCompression", _of, display.image_compression)
_lazy("ImageFlags", _of, display.image_flags)
_lazy("BitmapFmt", _of, display.bitmap_fmt)
_lazy("BitmapFlags", _of, display.bitmap_flags)
_lazy("JpegAlphaFlags", _of, display.jpeg_alpha_flags)
_lazy("ImageScaleMode", _of, display.image_scale_mode)
_lazy("Ropd", _of, display.ropd)
_lazy("LineFlags", _of, display.line_flags)
_lazy("StringFlags", _of, display.string_flags)
_lazy("SurfaceFlags", _of, display.surface_flags)
_lazy("SurfaceFmt", _of, display.surface_fmt)
_lazy("AlphaFlags", _of, display.alpha_flags)
_lazy("CompositeFlags", _of, display.composite_flags)
_lazy("GlScanoutFlags", _of, display.gl_scanout_flags)

# --- the inner headers of compressed images (spice-common quic.h, lz_common.h; image_headers.py) ---
_lazy("QuicImageType", _from, image_headers.QUIC_TYPES, IntEnum)
_lazy("LzImageType", _from, image_headers.LZ_TYPES, IntEnum)

# --- inputs channel ---
_lazy("KeyboardModifierFlags", _of, inputs.keyboard_modifier_flags)
_lazy("MouseButton", _of, inputs.mouse_button)
_lazy("MouseButtonMask", _of, inputs.mouse_button_mask)

# --- cursor channel ---
_lazy("CursorType", _of, cursor.cursor_type)
_lazy("CursorFlags", _of, cursor.cursor_flags)

# --- playback and record ---
_lazy("AudioDataMode", _of, audio.audio_data_mode)
_lazy("AudioFmt", _of, audio.audio_fmt)

# --- spicevmc channels ---
_lazy("DataCompressionType", _of, spicevmc.data_compression_type)

# --- vdagent (vdagent.py) ---
_lazy("AgentMsg", _from, {t: n for t, (n, _) in AGENT_TYPES.items()}, IntEnum)
_lazy("AgentCap", _list, AGENT_CAPS)
_lazy("AgentClipboardType", _of, clipboard_type)
_lazy("AgentClipboardSelection", _of, _agent_selection)
_lazy("AgentFileXferStatus", _of, _agent_xfer_status)


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
