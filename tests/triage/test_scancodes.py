"""The typed-text decoder on set-1 sequences whose meaning is fixed by the PC AT keyboard (US layout).

The corpus and the real-peer typing test cover what spice-gtk sends for plain and shifted text;
these cover the keys a person rarely types in a test session: Caps Lock, Backspace, shortcuts,
extended keys, and the u32 codes of KEY_DOWN/KEY_UP.
"""

from __future__ import annotations

from spicetool.triage.scancodes import TextDecoder, code_bytes

A, B, SHIFT_L, CTRL_L, BACKSPACE, CAPS, RETURN = 0x1E, 0x30, 0x2A, 0x1D, 0x0E, 0x3A, 0x1C


def tap(code: int) -> bytes:
    return bytes([code, code | 0x80])


def test_shift_caps_lock_and_backspace() -> None:
    d = TextDecoder()
    d.feed(0, bytes([SHIFT_L]) + tap(A) + bytes([SHIFT_L | 0x80]) + tap(A))      # "Aa"
    d.feed(1, tap(CAPS) + tap(B) + bytes([SHIFT_L]) + tap(B) + bytes([SHIFT_L | 0x80]))  # caps: "B", shift+caps: "b"
    d.feed(2, tap(CAPS) + tap(0x02) + tap(BACKSPACE) + tap(RETURN))               # "1", erased, newline
    assert d.typed == "AaBb\n"
    assert [k.name for k in d.keys] == ["A", "a", "CapsLock", "B", "b", "CapsLock", "1", "Backspace", "Return"]


def test_shortcuts_are_keys_not_text() -> None:
    d = TextDecoder()
    d.feed(0, bytes([CTRL_L]) + tap(0x2E) + bytes([CTRL_L | 0x80]) + tap(0x2E))  # Ctrl+c, then c
    assert d.typed == "c"
    assert [k.name for k in d.keys] == ["Ctrl+c", "c"]


def test_extended_keys_and_key_down_codes() -> None:
    d = TextDecoder()
    # KEY_DOWN/KEY_UP carry E0-prefixed codes as (code << 8) | 0xE0 in a u32
    for code in (0x48E0, 0xC8E0, 0x1E, 0x9E, 0x1CE0, 0x9CE0, 0x38E0, 0x1E, 0x9E, 0xB8E0):
        d.feed(0, code_bytes(code))
    assert [k.name for k in d.keys] == ["Up", "a", "KP_Enter", "AltGr+a"]
    assert d.typed == "a\n"


def test_lock_states_from_key_modifiers() -> None:
    d = TextDecoder()
    d.modifiers(4 | 2)  # caps lock and num lock on, as the client reported them
    d.feed(0, tap(A) + tap(0x4F))  # a, keypad 1
    assert d.typed == "A1"
    d.modifiers(0)
    d.feed(0, tap(A) + tap(0x4F))  # keypad 1 without num lock is End: no text
    assert d.typed == "A1a"
