"""Typed text from PC AT set-1 scancodes, as SPICE's inputs channel carries them.

KEY_DOWN/KEY_UP carry a u32 whose little-endian bytes are the scancode sequence (0xE0 prefix for
extended keys, bit 7 set on release); KEY_SCANCODE carries the raw byte sequence. Both are fed to
one decoder. The layout assumed is US: SPICE sends key positions, not characters, so a guest with
another layout would have seen other characters for the same codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spicetool.stack.enums import KeyboardModifierFlags

# code -> (unshifted, shifted) for keys that produce a character on a US layout
_CHARS: dict[int, tuple[str, str]] = {}
for _row, _codes in (("1234567890-=", range(0x02, 0x0E)), ("qwertyuiop[]", range(0x10, 0x1C)),
                     ("asdfghjkl;'`", range(0x1E, 0x2A)), ("\\zxcvbnm,./", range(0x2B, 0x36))):
    for _ch, _code in zip(_row, _codes):
        _CHARS[_code] = (_ch, '!@#$%^&*()_+QWERTYUIOP{}ASDFGHJKL:"~|ZXCVBNM<>?'[
            '1234567890-=qwertyuiop[]asdfghjkl;\'`\\zxcvbnm,./'.index(_ch)])
_CHARS[0x39] = (" ", " ")
_KEYPAD = {0x47: "7", 0x48: "8", 0x49: "9", 0x4A: "-", 0x4B: "4", 0x4C: "5", 0x4D: "6", 0x4E: "+", 0x4F: "1",
           0x50: "2", 0x51: "3", 0x52: "0", 0x53: ".", 0x37: "*"}

NAMES: dict[int, str] = {
    0x01: "Esc", 0x0E: "Backspace", 0x0F: "Tab", 0x1C: "Return", 0x1D: "Ctrl", 0x2A: "Shift", 0x36: "Shift",
    0x38: "Alt", 0x3A: "CapsLock", 0x45: "NumLock", 0x46: "ScrollLock", 0x57: "F11", 0x58: "F12",
    **{0x3B + i: f"F{i + 1}" for i in range(10)},
}
EXTENDED: dict[int, str] = {
    0x1C: "KP_Enter", 0x1D: "Ctrl", 0x35: "KP_/", 0x38: "AltGr", 0x47: "Home", 0x48: "Up", 0x49: "PageUp",
    0x4B: "Left", 0x4D: "Right", 0x4F: "End", 0x50: "Down", 0x51: "PageDown", 0x52: "Insert", 0x53: "Delete",
    0x5B: "Super", 0x5C: "Super", 0x5D: "Menu", 0x37: "PrintScreen",
}
SHIFT, CTRL, ALT = {0x2A, 0x36}, {0x1D}, {0x38}
MOD_NUM_LOCK, MOD_CAPS_LOCK = int(KeyboardModifierFlags.NUM_LOCK), int(KeyboardModifierFlags.CAPS_LOCK)


@dataclass
class Key:
    """One key press as the timeline shows it."""

    time: float
    name: str  # "a", "A", "Return", "Ctrl+c", ...
    char: str | None  # what it added to the text, if anything
    code: str  # the scancode bytes, hex


@dataclass
class TextDecoder:
    text: list[str] = field(default_factory=list)
    keys: list[Key] = field(default_factory=list)
    shift: set[int] = field(default_factory=set)
    ctrl: set[int] = field(default_factory=set)
    alt: set[int] = field(default_factory=set)
    caps_lock: bool = False
    num_lock: bool = False
    unknown: int = 0
    _extended: bool = False

    def modifiers(self, flags: int) -> None:
        """KEY_MODIFIERS from the client: the lock states it believes in."""
        self.caps_lock = bool(flags & MOD_CAPS_LOCK)
        self.num_lock = bool(flags & MOD_NUM_LOCK)

    def feed(self, time: float, data: bytes) -> None:
        for byte in data:
            if byte == 0xE0:
                self._extended = True
                continue
            if byte in (0xE1, 0x00):  # Pause's E1 sequence, padding in a u32 code
                continue
            ext, self._extended = self._extended, False
            code, released = byte & 0x7F, bool(byte & 0x80)
            if ext:  # right Ctrl and AltGr; E0 2A/AA are fake shifts around extended keys
                held = self.ctrl if code == 0x1D else self.alt if code == 0x38 else None
                if code in SHIFT:
                    continue
            else:
                held = self.shift if code in SHIFT else self.ctrl if code in CTRL else self.alt if code in ALT else None
            if held is not None:
                (held.discard if released else held.add)((0xE000 if ext else 0) | code)
                continue
            if released:
                continue
            self._press(time, code, ext, f"{'e0' if ext else ''}{byte:02x}")

    def _press(self, time: float, code: int, ext: bool, hexcode: str) -> None:
        char: str | None = None
        if ext:
            name = EXTENDED.get(code, f"key e0{code:02x}")
            if code == 0x1C:
                char = "\n"
            elif code == 0x35:
                char = "/"
        elif code in _CHARS:
            plain, shifted = _CHARS[code]
            upper = bool(self.shift) != (self.caps_lock and plain.isalpha())
            char = shifted if upper else plain
            name = "Space" if char == " " else char
        elif code in _KEYPAD:
            char = _KEYPAD[code] if self.num_lock or code in (0x37, 0x4A, 0x4E) else None
            name = f"KP_{_KEYPAD[code]}"
        elif code in NAMES:
            name = NAMES[code]
            char = {0x1C: "\n", 0x0F: "\t"}.get(code)
            if code == 0x3A:
                self.caps_lock = not self.caps_lock
        else:
            name = f"key {code:02x}"
            self.unknown += 1
        chord = [m for m, held in (("Ctrl", self.ctrl), ("Alt", self.alt - {0xE038}),
                                   ("AltGr", self.alt & {0xE038})) if held]
        if chord:  # a shortcut, not text
            name, char = "+".join(chord + [name]), None
        elif code == 0x0E and not ext:
            if self.text:
                self.text.pop()
        if char is not None:
            self.text.append(char)
        self.keys.append(Key(time, name, char, hexcode))

    @property
    def typed(self) -> str:
        return "".join(self.text)


def code_bytes(code: int) -> bytes:
    """A KEY_DOWN/KEY_UP u32 code as the scancode bytes it stands for."""
    return bytes(b for b in code.to_bytes(4, "little") if b) or b"\0"
