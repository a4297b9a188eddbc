"""Captures with lost segments, derived at test time from shipped captures of other settings.

Each shipped capture is first cut to Ethernet's MSS (a loopback capture's segments are up to 64 KB,
a network's 1448 bytes), with the project's pcap writer; that is the intact capture, and its render
the truth. Then editcap drops chosen frames of one channel and direction, picked by a rule (inside a
body, straddling a header, a run of segments, ...). What was lost is worked out here on its own
terms: the TCP sequence numbers of the intact capture say which stream bytes each dropped frame held,
the intact capture's messages say which of them those bytes belonged to, and their draw boxes the
area that could honestly be unknown.
"""
from __future__ import annotations

import functools
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spicetool.capture import PcapWriter, open_capture, open_records
from spicetool.render.frames import picture_at
from spicetool.render.session import RenderStats, SessionScreen
from tests.support import need_program

MSS = 1448
_SCRATCH = tempfile.TemporaryDirectory(prefix="spicetool-lost-headers-")


def scratch() -> Path:
    return Path(_SCRATCH.name)


@functools.cache
def resegmented(path: Path) -> Path:
    """The capture with every TCP payload cut to the MSS (sequence numbers kept right)."""
    out = scratch() / f"{path.stem}.mss.pcap"
    with open(out, "wb") as f:
        w = PcapWriter(f)
        for seg in open_capture(str(path)):
            pieces = [seg.payload[i:i + MSS] for i in range(0, len(seg.payload), MSS)] or [b""]
            seq = seg.seq
            for piece in pieces:
                w.segment(seg.time, seg.src, seg.dst, seq, seg.ack, seg.flags, piece)
                seq = (seq + len(piece)) & 0xFFFFFFFF
    return out


@dataclass(frozen=True)
class Stream:
    """One channel's one direction in the intact capture: its data frames and its messages."""

    frames: dict[int, tuple[int, int]]  # frame -> (stream offset, length)
    messages: tuple  # records of layer "message", in order, with their stream offsets
    size: tuple[int, int] | None  # the primary surface's (width, height)


def _offsets(path: Path) -> dict[tuple[str, str], dict[int, tuple[int, int]]]:
    """(src, dst) -> {frame: (stream offset, length)}: offsets from the SYN's sequence number."""
    isn: dict[tuple[str, str], int] = {}
    out: dict[tuple[str, str], dict[int, tuple[int, int]]] = {}
    for seg in open_capture(str(path)):
        key = (seg.src, seg.dst)
        if seg.flags & 0x02:  # SYN
            isn[key] = (seg.seq + 1) & 0xFFFFFFFF
            continue
        if seg.payload:
            base = isn.setdefault(key, seg.seq)
            out.setdefault(key, {})[seg.frame] = ((seg.seq - base) & 0xFFFFFFFF, len(seg.payload))
    return out


@functools.cache
def stream(intact: Path, channel: str, direction: str) -> Stream:
    recs = [r for r in open_records(str(intact)) if r.channel.channel == channel
            and r.direction.value == direction]
    first = next(r for r in recs if r.layer in ("link", "message"))
    ch = first.channel
    key = (ch.server, ch.client) if direction == "server" else (ch.client, ch.server)
    frames = _offsets(intact)[key]
    msgs = tuple(r for r in recs if r.layer == "message")
    assert first.event.offset == 0 and min(frames.values())[0] == 0  # both count from the first byte
    size = None
    for r in open_records(str(intact), channels=["display"]):
        if r.type == "surface_create" and r.direction.value == "server" and int(r.fields["surface_id"]) == 0:
            size = (int(r.fields["width"]), int(r.fields["height"]))
            break
    return Stream(frames, msgs, size)


def span(m) -> tuple[int, int, int]:
    """(header start, body start, end) of a message in its stream."""
    e = m.event
    return e.offset, e.offset + e.header_size, e.offset + e.header_size + e.size


def _is_draw(m) -> bool:
    return isinstance(m.fields, dict) and isinstance(m.fields.get("base"), dict) and "box" in m.fields["base"]


def chosen(st: Stream, rule: str) -> list[int]:
    """Frames of a stream to drop, by a rule:
    "inside": the middle segment lying wholly in the largest message's body;
    "header": the middle one of the segments that hold a draw's header strictly inside them (so the
       end of one message and the start of the next are lost), after the first few messages;
    "run": three consecutive segments from the first "header" candidate past the middle;
    "middle": the middle one of the stream's segments after its link stage (any channel);
    "first": the first of them (a display channel's client INIT, a main channel's first message)."""
    order = sorted(st.frames)
    ends = {f: sum(st.frames[f]) for f in order}
    if rule == "inside":
        big = max(st.messages, key=lambda m: m.size)
        _, body, end = span(big)
        within = [f for f in order if body < st.frames[f][0] and ends[f] < end]
        assert within, "no segment inside the largest message"
        return [within[len(within) // 2]]
    if rule in ("header", "run"):
        early = span(st.messages[min(5, len(st.messages) - 1)])[2]
        cands = [f for f in order if st.frames[f][0] > early and any(
            st.frames[f][0] < span(m)[0] < ends[f] - 6 for m in st.messages if _is_draw(m))]
        assert cands, "no segment holding a draw's header"
        if rule == "header":
            return [cands[len(cands) // 2]]
        i = order.index(cands[len(cands) // 2])
        return order[i:i + 3]
    after_link = span(st.messages[0])[0] if st.messages else 0
    data = [f for f in order if st.frames[f][0] >= after_link]
    assert data, "no data segment after the link stage"
    if rule == "middle":
        return [data[len(data) // 2]]
    if rule == "first":
        return [data[0]]
    raise ValueError(rule)


def merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


@dataclass
class Cut:
    path: Path
    ranges: list[tuple[int, int]]  # stream offsets [a, b) lost
    hit: list  # the intact capture's messages that lost bytes
    area: np.ndarray  # union of the primary-surface boxes of the draws among them (HxW bool)
    inside: list[bool]  # per lost range: does it lie inside one message's body


def cut(intact: Path, channel: str, direction: str, rule: str) -> Cut:
    st = stream(intact, channel, direction)
    dropped = chosen(st, rule)
    path = scratch() / f"{intact.stem}.{channel}-{direction}-{rule}.pcap"
    if not path.exists():
        subprocess.run([need_program("editcap"), str(intact), str(path), *map(str, dropped)],
                       check=True, timeout=120, capture_output=True)
    ranges = merged([(st.frames[f][0], sum(st.frames[f])) for f in dropped])
    hit, inside = [], []
    for a, b in ranges:
        over = [m for m in st.messages if span(m)[0] < b and span(m)[2] > a]
        inside.append(len([m for m in over if span(m)[1] <= a and b <= span(m)[2]]) == 1)
        hit += over
    w, h = st.size or (0, 0)
    area = np.zeros((h, w), bool)
    if channel == "display" and direction == "server":
        streams = {int(m.fields["id"]): m.fields for m in st.messages if m.type == "stream_create"}
        for m in hit:
            if _is_draw(m) and int(m.fields["base"]["surface_id"]) == 0:
                box = m.fields["base"]["box"]
            elif m.type in ("stream_data", "stream_data_sized") and int(m.fields["base"]["id"]) in streams:
                box = streams[int(m.fields["base"]["id"])]["dest"]  # a video frame draws its stream's area
            else:
                continue
            area[max(box["top"], 0):max(box["bottom"], 0), max(box["left"], 0):max(box["right"], 0)] = True
    return Cut(path, ranges, hit, area, inside)


def render(path: Path, at: float | None = None, cursor: bool = False) -> tuple[np.ndarray, np.ndarray, RenderStats]:
    """(picture, unknown pixels, stats) at `at` seconds (None: the end)."""
    stats, screen = RenderStats(), SessionScreen(cursor=cursor)
    frame = picture_at(str(path), at, stats=stats, screen=screen)
    assert frame is not None
    unknown = screen.unknown()
    return frame.image, (np.zeros(frame.image.shape[:2], bool) if unknown is None else unknown), stats
