"""vdagent messages (spice/vd_agent.h) carried inside main-channel AGENT_DATA, and reassembly."""
from __future__ import annotations

import struct

from .events import AgentMessage, Direction
from .schema import (END, Array, Bytes, Struct, Switch, build_body, enum, i32, parse_body, u8,
                     u16, u32, u64)
from .types import unpack_caps

HEADER = struct.Struct("<IIQI")  # protocol, type, opaque, size
PROTOCOL = 1
MAX_AGENT_MESSAGE = 64 * 1024 * 1024

AGENT_CAPS = ["mouse_state", "monitors_config", "reply", "clipboard", "display_config",
              "clipboard_by_demand", "clipboard_selection", "sparse_monitors_config",
              "guest_lineend_lf", "guest_lineend_crlf", "max_clipboard", "audio_volume_sync",
              "monitors_config_position", "file_xfer_disabled", "file_xfer_detailed_errors",
              "graphics_device_info", "clipboard_no_release_on_regrab", "clipboard_grab_serial"]
CAP_CLIPBOARD_SELECTION = AGENT_CAPS.index("clipboard_selection")
CAP_CLIPBOARD_GRAB_SERIAL = AGENT_CAPS.index("clipboard_grab_serial")

clipboard_type = enum(u32, ["NONE", "UTF8_TEXT", "IMAGE_PNG", "IMAGE_BMP", "IMAGE_TIFF",
                            "IMAGE_JPG", "FILE_LIST"])
selection = enum(u8, ["CLIPBOARD", "PRIMARY", "SECONDARY"])
xfer_status = enum(u32, ["CAN_SEND_DATA", "CANCELLED", "ERROR", "SUCCESS", "NOT_ENOUGH_SPACE",
                         "SESSION_LOCKED", "VDAGENT_NOT_CONNECTED", "DISABLED"])
_sel = [("selection", selection), ("__reserved", Bytes(3))]

MonConfig = Struct([("height", u32), ("width", u32), ("depth", u32), ("x", i32), ("y", i32)])
MonitorMM = Struct([("height", u16), ("width", u16)])
MONITORS_FLAG_PHYSICAL_SIZE = 2
DeviceDisplayInfo = Struct([("channel_id", u32), ("monitor_id", u32), ("device_display_id", u32),
                            ("device_address_len", u32),
                            ("device_address", Bytes("device_address_len"))])

TYPES: dict[int, tuple[str, Struct]] = {
    1: ("mouse_state", Struct([("x", u32), ("y", u32), ("buttons", u32), ("display_id", u8)])),
    2: ("monitors_config", Struct([("num_of_monitors", u32), ("flags", u32),
                                   ("monitors", Array(MonConfig, "num_of_monitors")),
                                   ("u", Switch("flags", [({MONITORS_FLAG_PHYSICAL_SIZE}, [
                                       ("physical_sizes", Array(MonitorMM, "num_of_monitors"))])],
                                       bits=True))])),
    3: ("reply", Struct([("type", u32), ("error", enum(u32, {1: "SUCCESS", 2: "ERROR"}))])),
    4: ("clipboard", Struct([*_sel, ("type", clipboard_type), ("data", Bytes(END))])),
    5: ("display_config", Struct([("flags", u32), ("depth", u32)])),
    6: ("announce_capabilities", Struct([("request", u32), ("caps", Array(u32, END))])),
    7: ("clipboard_grab", Struct([*_sel, ("types", Array(clipboard_type, END))])),
    8: ("clipboard_request", Struct([*_sel, ("type", clipboard_type)])),
    9: ("clipboard_release", Struct(_sel)),
    10: ("file_xfer_start", Struct([("id", u32), ("data", Bytes(END))])),  # data: GKeyFile text
    11: ("file_xfer_status", Struct([("id", u32), ("result", xfer_status), ("data", Bytes(END))])),
    12: ("file_xfer_data", Struct([("id", u32), ("size", u64), ("data", Bytes(END))])),
    13: ("client_disconnected", Struct([])),
    14: ("max_clipboard", Struct([("max", i32)])),
    15: ("audio_volume_sync", Struct([("is_playback", u8), ("mute", u8), ("nchannels", u8),
                                      ("volume", Array(u16, "nchannels"))])),
    16: ("graphics_device_info", Struct([("count", u32),
                                         ("display_info", Array(DeviceDisplayInfo, "count"))])),
}
# Variants chosen by the capabilities both ends announced.
_GRAB_SERIAL = Struct([*_sel, ("serial", u32), ("types", Array(clipboard_type, END))])
BY_NAME = {name: tid for tid, (name, _) in TYPES.items()}
_CLIPBOARD_GRAB, _ANNOUNCE_CAPABILITIES = BY_NAME["clipboard_grab"], BY_NAME["announce_capabilities"]
_NO_SEL = {BY_NAME["clipboard"]: Struct([("type", clipboard_type), ("data", Bytes(END))]),
           _CLIPBOARD_GRAB: Struct([("types", Array(clipboard_type, END))]),
           BY_NAME["clipboard_request"]: Struct([("type", clipboard_type)]),
           BY_NAME["clipboard_release"]: Struct([])}


def _layout(type_id: int, caps: set[int]) -> tuple[str, Struct] | None:
    entry = TYPES.get(type_id)
    if entry is None:
        return None
    if type_id in _NO_SEL and CAP_CLIPBOARD_SELECTION not in caps:
        return entry[0], _NO_SEL[type_id]
    if type_id == _CLIPBOARD_GRAB and CAP_CLIPBOARD_GRAB_SERIAL in caps:
        return entry[0], _GRAB_SERIAL
    return entry


def parse_agent_message(direction: Direction, type_id: int, opaque: int, data: bytes,
                        caps: set[int] = frozenset({CAP_CLIPBOARD_SELECTION})) -> AgentMessage:
    layout = _layout(type_id, caps)
    if layout is None:
        return AgentMessage(direction, type_id, f"unknown_{type_id}", len(data), {"data": data}, opaque)
    fields, err = parse_body(layout[1], data)
    if err:
        fields["error"] = err
    return AgentMessage(direction, type_id, layout[0], len(data), fields, opaque)


def build_agent_message(name_or_type_id: str | int, fields: dict, opaque: int = 0,
                        caps: set[int] = frozenset({CAP_CLIPBOARD_SELECTION})) -> bytes:
    """VDAgentMessage header + data (what goes into AGENT_DATA, possibly chunked)."""
    tid = BY_NAME[name_or_type_id] if isinstance(name_or_type_id, str) else name_or_type_id
    layout = _layout(tid, caps)
    data = bytes(fields.get("data", b"")) if layout is None else build_body(layout[1], fields)
    return HEADER.pack(PROTOCOL, tid, opaque, len(data)) + data


def caps_bits(words: list[int]) -> set[int]:
    return set(unpack_caps(words))


class AgentReassembler:
    """Joins AGENT_DATA chunks of one direction into whole vdagent messages."""

    def __init__(self, direction: Direction):
        self.direction = direction
        self.buf = bytearray()
        self.caps: set[int] | None = None  # bits this side announced

    def feed(self, chunk: bytes, peer_caps: set[int] | None) -> tuple[list[AgentMessage], str | None]:
        self.buf += chunk
        out: list[AgentMessage] = []
        while len(self.buf) >= HEADER.size:
            proto, tid, opaque, size = HEADER.unpack_from(self.buf)
            if size > MAX_AGENT_MESSAGE:
                self.buf.clear()
                return out, f"agent message of {size} bytes exceeds {MAX_AGENT_MESSAGE}; dropped"
            if len(self.buf) < HEADER.size + size:
                break
            data = bytes(self.buf[HEADER.size:HEADER.size + size])
            del self.buf[:HEADER.size + size]
            caps = {CAP_CLIPBOARD_SELECTION}
            if self.caps is not None and peer_caps is not None:
                caps = self.caps & peer_caps
            msg = parse_agent_message(self.direction, tid, opaque, data, caps)
            if proto != PROTOCOL:
                msg.fields["protocol"] = proto
            if tid == _ANNOUNCE_CAPABILITIES and "caps" in msg.fields:
                self.caps = caps_bits(msg.fields["caps"])
            out.append(msg)
        return out, None
