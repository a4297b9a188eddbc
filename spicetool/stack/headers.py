"""Data headers: full (18 B, with serial and sub-message list) and mini (6 B)."""
from __future__ import annotations

import struct

FULL = struct.Struct("<QHII")   # serial, type, size, sub_list
MINI = struct.Struct("<HI")     # type, size
SUB_HEADER = struct.Struct("<HI")  # SpiceSubMessage: type, size
FULL_SIZE, MINI_SIZE = FULL.size, MINI.size
MAX_MESSAGE_SIZE = 64 * 1024 * 1024  # larger header sizes are treated as corruption


def pack_full_header(serial: int, type_id: int, size: int, sub_list: int = 0) -> bytes:
    return FULL.pack(serial, type_id, size, sub_list)


def pack_mini_header(type_id: int, size: int) -> bytes:
    return MINI.pack(type_id, size)


def sub_messages(body: bytes, sub_list: int) -> list[tuple[int, int, int]] | str:
    """(offset_in_body, type, size) of each sub-message, or a reason string if malformed."""
    if sub_list + 2 > len(body):
        return f"sub-message list at {sub_list} is outside body of {len(body)}"
    n = int.from_bytes(body[sub_list:sub_list + 2], "little")
    if sub_list + 2 + 4 * n > len(body):
        return f"sub-message list of {n} entries overruns body"
    out = []
    for off in struct.unpack_from(f"<{n}I", body, sub_list + 2):
        if off + SUB_HEADER.size > len(body):
            return f"sub-message at {off} is outside body"
        t, size = SUB_HEADER.unpack_from(body, off)
        if off + SUB_HEADER.size + size > len(body):
            return f"sub-message at {off} of {size} bytes overruns body"
        out.append((off, t, size))
    return out
