"""Find where data headers start in a stream whose alignment is unknown (mid-session capture)."""
from __future__ import annotations

import numpy as np

from .channels import table
from .enums import MSG_FIRST_AVAIL
from .events import Direction
from .headers import FULL, MINI
from .schema import TRAILING, parse_body as _parse
from .types import CHANNEL_NAMES

MIN_RUN = 3                     # consecutive plausible headers required
ENOUGH = 8                      # headers of two kinds or more that settle an offset (a run ranks up to this)
REPEAT_KEY = 64                 # body bytes that tell one repeated message from another,
REPEAT_BODY = 16                # in bodies this long at least (a short one's bytes, a key's scancode, prove little)
MAX_PLAUSIBLE = 16 * 1024 * 1024
SCAN_LIMIT = 64 * 1024          # candidate start offsets examined


def _known_ids(channel_type: int, direction: Direction) -> dict:
    return table(channel_type, direction)


def _chain(data: bytes, start: int, mini: bool, tab: dict, visited: set[int] | None = None) -> tuple[int, bool]:
    """(how many consecutive headers from start parse as known messages with valid bodies,
    whether any of them is channel-specific, i.e. not a base message).

    A run that repeats one (type, size) pair, e.g. empty messages, counts as one header: periodic
    patterns inside image data would otherwise look like a burst of messages. Bodies of REPEAT_BODY
    bytes or more that differ (a stream of small draws of one size) count as different messages."""
    n, specific, kinds = _walk(data, start, mini, tab, visited)
    return (n if kinds > 1 else min(n, 1)), specific


def _walk(data: bytes, start: int, mini: bool, tab: dict, visited: set[int] | None = None) -> tuple[int, bool, int]:
    """Follows headers from start; each header's offset goes into visited (a later candidate there walks
    a suffix of this run: no longer and of no more kinds, so it need not be walked again)."""
    h = MINI if mini else FULL
    pos, n, last_serial, specific = start, 0, None, False
    seen: set[tuple[int, int, bytes]] = set()
    while pos + h.size <= len(data):
        if n >= ENOUGH and len(seen) > 1:
            break  # settled: more headers would not rank it higher
        if mini:
            tid, size = h.unpack_from(data, pos)
        else:
            serial, tid, size, sub_list = h.unpack_from(data, pos)
            if sub_list > size or (last_serial is not None and serial != last_serial + 1):
                break  # (this offset not marked: a walk starting here has no serial to follow)
            last_serial = serial
        if visited is not None:
            visited.add(pos)
        entry = tab.get(tid)
        if entry is None or size > MAX_PLAUSIBLE:
            break
        end = pos + h.size + size
        if end > len(data):
            # a message cut by the end of the sample still counts if its header is sane
            if entry[1].min_size <= size:
                seen.add(_kind(tid, size, data, pos + h.size))
                return n + 1, specific or tid >= MSG_FIRST_AVAIL, len(seen)
            return n, specific, len(seen)
        fields, err = _parse(entry[1], data[pos + h.size:end])
        if err is not None or TRAILING in fields:  # a body longer than its layout: implausible
            break
        n += 1
        specific = specific or tid >= MSG_FIRST_AVAIL
        seen.add(_kind(tid, size, data, pos + h.size))
        pos = end
    return n, specific, len(seen)


def _kind(tid: int, size: int, data: bytes, body: int) -> tuple[int, int, bytes]:
    return tid, size, (data[body:body + min(size, REPEAT_KEY)] if size >= REPEAT_BODY else b"")


def _candidates(data: bytes, mini: bool, ids: np.ndarray) -> np.ndarray:
    h = MINI if mini else FULL
    limit = min(len(data) - h.size + 1, SCAN_LIMIT)
    if limit <= 0:
        return np.empty(0, dtype=np.int64)
    a = np.frombuffer(data, dtype=np.uint8)
    toff = 0 if mini else 8
    idx = np.arange(limit)
    t = a[idx + toff].astype(np.uint32) | (a[idx + toff + 1].astype(np.uint32) << 8)
    s = (a[idx + toff + 2].astype(np.uint64) | (a[idx + toff + 3].astype(np.uint64) << 8)
         | (a[idx + toff + 4].astype(np.uint64) << 16) | (a[idx + toff + 5].astype(np.uint64) << 24))
    ok = np.isin(t, ids) & (s <= MAX_PLAUSIBLE)
    return np.nonzero(ok)[0]


def find_resync_point(data: bytes, direction: Direction, channel_type: int | None,
                      mini_header: bool = True) -> tuple[int, int | None] | None:
    """(offset, channel_type) of the first run of plausible headers, or None.

    With channel_type None every channel type is tried: runs with channel-specific messages
    beat runs of base messages only, then the longer run (up to 8), then the earlier offset.
    A winning run of base messages only (acks, pongs) fits every channel: the type is None.
    """
    data = bytes(data)
    direction = Direction(direction)
    types = [channel_type] if channel_type is not None else list(CHANNEL_NAMES)
    best: tuple | None = None  # (-specific, -run, offset, type)
    for ct in types:
        tab = _known_ids(ct, direction)
        if not tab:
            continue
        ids = np.fromiter(tab.keys(), dtype=np.uint32)
        visited: set[int] = set()
        for off in _candidates(data, mini_header, ids):
            off = int(off)
            if off in visited:
                continue  # inside a run already walked from an earlier offset, which was not good enough
            run, specific = _chain(data, off, mini_header, tab, visited)
            need = MIN_RUN
            if run >= need or (run >= 2 and _reaches_end(data, off, mini_header, tab, run)):
                score = (-int(specific), -min(run, 8), off, ct)
                if best is None or score < best:
                    best = score
                break  # the earliest good offset for this channel type
    if best is None:
        return None
    if channel_type is None and not best[0]:
        return best[2], None
    return best[2], best[3]


def _reaches_end(data: bytes, off: int, mini: bool, tab: dict, run: int) -> bool:
    """True when the run of headers covers the whole sample (a short capture)."""
    h = MINI if mini else FULL
    pos = off
    for _ in range(run):
        if mini:
            _, size = h.unpack_from(data, pos)
        else:
            _, _, size, _ = h.unpack_from(data, pos)
        pos += h.size + size
    return pos >= len(data)
