"""Parse and build message bodies and whole messages from the channel tables."""
from __future__ import annotations

from .channels import BY_NAME, table
from .events import Direction
from .headers import pack_full_header, pack_mini_header
from .schema import BuildError, Struct, build_body as _build, parse_body as _parse


def describe(channel_type: int | None, direction: Direction,
             name_or_type_id: str | int) -> tuple[int, str, Struct | None]:
    tab = table(channel_type, direction)
    if isinstance(name_or_type_id, str):
        tid = BY_NAME.get((channel_type or 0, direction), {}).get(name_or_type_id)
        if tid is None:
            if name_or_type_id.startswith("unknown_") and name_or_type_id[8:].isdigit():
                return int(name_or_type_id[8:]), name_or_type_id, None
            raise BuildError(f"no message {name_or_type_id!r} for channel {channel_type} "
                             f"from {direction.value}")
    else:
        tid = name_or_type_id
    entry = tab.get(tid)
    if entry is None:
        return tid, f"unknown_{tid}", None
    return tid, entry[0], entry[1]


def parse_body(channel_type: int | None, direction: Direction, type_id: int,
               body: bytes) -> tuple[str, dict, str | None]:
    """(name, fields, error) for one body; never raises on bad bytes."""
    entry = table(channel_type, direction).get(type_id)
    if entry is None:
        return f"unknown_{type_id}", {}, None
    fields, err = _parse(entry[1], body)
    return entry[0], fields, err


def build_body(channel_type: int | None, direction: Direction, name_or_type_id: str | int,
               fields: dict) -> bytes:
    """Bytes of a body from its fields.  A `body` key is used verbatim for unknown types."""
    _, _, node = describe(channel_type, direction, name_or_type_id)
    if node is None:
        raw = fields.get("body", b"")
        if not isinstance(raw, (bytes, bytearray)):
            raise BuildError("unknown message type: give its raw bytes as fields['body']")
        return bytes(raw)
    return _build(node, fields)


def build_message(channel_type: int | None, direction: Direction, name_or_type_id: str | int,
                  fields: dict, mini_header: bool = True, serial: int | None = None) -> bytes:
    tid, _, _ = describe(channel_type, direction, name_or_type_id)
    body = build_body(channel_type, direction, tid, fields)
    if mini_header:
        return pack_mini_header(tid, len(body)) + body
    if serial is None:
        raise BuildError("a full header needs a serial")
    return pack_full_header(serial, tid, len(body)) + body


def message_bytes(message) -> bytes:
    """Header + body of a parsed Message, rebuilt from its fields; bodies that could not be
    decoded (message.error set, or an unknown type) fall back to the raw body."""
    if message.error is None and not message.name.startswith("unknown_"):
        body = build_body(message.channel_type, message.direction, message.type_id, message.fields)
    else:
        body = bytes(message.body)
    if message.header_size == 6:
        return pack_mini_header(message.type_id, len(body)) + body
    return pack_full_header(message.serial or 0, message.type_id, len(body)) + body
