"""Inputs channel (type 3): keyboard and mouse from the client."""
from __future__ import annotations

from ..schema import Struct, enum, flags, i32, u16, u32, u8
from .common import Data, Empty

keyboard_modifier_flags = flags(u16, ["SCROLL_LOCK", "NUM_LOCK", "CAPS_LOCK"])
mouse_button = enum(u8, ["INVALID", "LEFT", "MIDDLE", "RIGHT", "UP", "DOWN", "SIDE", "EXTRA"])
mouse_button_mask = flags(u16, ["LEFT", "MIDDLE", "RIGHT", "UP", "DOWN", "SIDE", "EXTRA"])

_button = Struct([("button", mouse_button), ("buttons_state", mouse_button_mask)])

CLIENT: dict[int, tuple[str, Struct]] = {
    101: ("key_down", Struct([("code", u32)])),
    102: ("key_up", Struct([("code", u32)])),
    103: ("key_modifiers", Struct([("modifiers", keyboard_modifier_flags)])),
    104: ("key_scancode", Data),
    111: ("mouse_motion", Struct([("dx", i32), ("dy", i32), ("buttons_state", mouse_button_mask)])),
    112: ("mouse_position", Struct([("x", u32), ("y", u32), ("buttons_state", mouse_button_mask),
                                    ("display_id", u8)])),
    113: ("mouse_press", _button),
    114: ("mouse_release", _button),
}

SERVER: dict[int, tuple[str, Struct]] = {
    101: ("init", Struct([("keyboard_modifiers", keyboard_modifier_flags)])),
    102: ("key_modifiers", Struct([("modifiers", keyboard_modifier_flags)])),
    111: ("mouse_motion_ack", Empty),
}
