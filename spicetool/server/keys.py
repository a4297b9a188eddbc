"""PC/AT scancodes (set 1, what SPICE inputs carry) -> key names, for the input log."""
from __future__ import annotations

_ROWS = {
    0x01: "Escape", 0x0E: "BackSpace", 0x0F: "Tab", 0x1C: "Return", 0x1D: "Control_L",
    0x2A: "Shift_L", 0x36: "Shift_R", 0x38: "Alt_L", 0x39: "space", 0x3A: "Caps_Lock",
    0x45: "Num_Lock", 0x46: "Scroll_Lock", 0x29: "grave", 0x0C: "minus", 0x0D: "equal",
    0x1A: "bracketleft", 0x1B: "bracketright", 0x27: "semicolon", 0x28: "apostrophe",
    0x2B: "backslash", 0x33: "comma", 0x34: "period", 0x35: "slash",
}
for _i, _c in enumerate("1234567890"):
    _ROWS[0x02 + _i] = _c
for _start, _letters in ((0x10, "qwertyuiop"), (0x1E, "asdfghjkl"), (0x2C, "zxcvbnm")):
    for _i, _c in enumerate(_letters):
        _ROWS[_start + _i] = _c
for _i in range(10):
    _ROWS[0x3B + _i] = f"F{_i + 1}"
_ROWS[0x57], _ROWS[0x58] = "F11", "F12"

# 0xE0-prefixed keys: spice-gtk sends 0xE0 in the low byte and the key in the next (0xE0 | key << 8).
_EXTENDED = {0x1C: "KP_Enter", 0x1D: "Control_R", 0x38: "Alt_R", 0x47: "Home", 0x48: "Up",
             0x49: "Prior", 0x4B: "Left", 0x4D: "Right", 0x4F: "End", 0x50: "Down", 0x51: "Next",
             0x52: "Insert", 0x53: "Delete", 0x5B: "Super_L", 0x5C: "Super_R", 0x5D: "Menu"}


def key_name(code: int) -> str:
    """Name of a KEY_DOWN/KEY_UP code (the release bit 0x80 is ignored)."""
    extended = code & 0xFF == 0xE0
    base = (code >> 8) & 0x7F if extended else code & 0x7F
    name = (_EXTENDED if extended else _ROWS).get(base)
    return name if name is not None else f"scancode_0x{code:x}"


def is_release(code: int) -> bool:
    return bool(code & (0x8000 if code & 0xFF == 0xE0 else 0x80))
