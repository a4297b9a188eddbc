"""What a message that lost bytes in a capture gap still says.

A gap inside a message keeps the framing (ChannelConnection.gap): the lost bytes are zeros in
its body and `Message.lost` lists where they were. Which fields are intact is found by parsing
the body a second time with the holes filled with 0xFF: a field that reads the same both times
did not come from the holes (bytes fields compare byte by byte, so a bitmap tells its rows).
"""
from __future__ import annotations

from typing import Any

from .events import Message
from .messages import parse_body


def filled(message: Message, value: int = 0xFF) -> bytes:
    """The body with its lost ranges filled with `value` instead of zeros."""
    body = bytearray(message.body)
    for a, b in message.lost:
        body[a:b] = bytes([value]) * (b - a)
    return bytes(body)


def alternate_fields(message: Message) -> dict[str, Any] | None:
    """The fields parsed from the body with its holes filled with 0xFF (None for an intact message)."""
    if not message.lost:
        return None
    _, fields, _ = parse_body(message.channel_type, message.direction, message.type_id, filled(message))
    return fields


def intact(a: Any, b: Any, skip: tuple[str, ...] = ()) -> bool:
    """Whether two parses agree everywhere except in the keys named in `skip` (at any depth)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return False
        return all(k in skip or intact(a[k], b[k], skip) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(intact(x, y, skip) for x, y in zip(a, b))
    return bool(a == b)


def lost_rows(a: bytes, b: bytes, stride: int, rows: int) -> list[int]:
    """Rows (in wire order) of a bitmap's data that differ between the two parses: the lost ones."""
    if stride <= 0 or len(a) != len(b):
        return list(range(rows))
    out = []
    for r in range(rows):
        if a[r * stride:(r + 1) * stride] != b[r * stride:(r + 1) * stride]:
            out.append(r)
    return out
