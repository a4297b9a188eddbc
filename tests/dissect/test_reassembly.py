"""TCP reassembly on real captures made worse: reordered, retransmitted and lost segments."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import pytest
from support import CAPTURES

from spicetool.capture import Record, Segment, decode_segments, open_capture, open_records
from spicetool.capture.tcp import ACK_GRACE_FRAMES


def segments(name: str) -> list[Segment]:
    path = CAPTURES / name
    if not path.exists():
        pytest.fail(f"corpus capture {name} is missing")
    return list(open_capture(str(path)))


def streams(records: list[Record]) -> dict[tuple[str, str, str], list[tuple[str, int, int]]]:
    """Per connection and direction: (type, size, stream offset) of every message, in order."""
    out: dict[tuple[str, str, str], list[tuple[str, int, int]]] = defaultdict(list)
    for rec in records:
        if rec.layer in ("message", "link"):
            key = (rec.channel.client, rec.channel.server, rec.direction.value)
            out[key].append((rec.type, rec.size, rec.event.offset))
    return out


def data_segments(segs: list[Segment]) -> list[int]:
    return [i for i, s in enumerate(segs) if s.payload]


@pytest.mark.parametrize("name", ["img-glz.pcap", "typing.pcapng"])
def test_reordered_segments(name: str) -> None:
    segs = segments(name)
    want = streams(list(decode_segments(segs)))
    rng = random.Random(5)
    shuffled = list(segs)
    idx = data_segments(segs)
    swaps = 0
    for i in rng.sample(idx[2:-2], min(40, len(idx) - 4)):
        # swap with the next data segment of the same direction, a few packets on: reordering
        # as a capture point sees it (the reassembler waits ACK_GRACE_FRAMES after an ACK past a hole)
        j = next((k for k in idx if k > i and segs[k].src == segs[i].src and segs[k].dst == segs[i].dst), None)
        if j is not None and j - i <= ACK_GRACE_FRAMES // 4:
            shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
            swaps += 1
    assert swaps > 5
    assert streams(list(decode_segments(shuffled))) == want


@pytest.mark.parametrize("name", ["img-glz.pcap", "agent-audio.pcapng"])
def test_retransmitted_segments(name: str) -> None:
    segs = segments(name)
    want = streams(list(decode_segments(segs)))
    out: list[Segment] = []
    for n, s in enumerate(segs):
        out.append(s)
        if s.payload and n % 4 == 0:
            out.append(s)  # exact retransmission
        if len(s.payload) > 10 and n % 7 == 0:
            out.append(replace(s, payload=s.payload[: len(s.payload) // 2]))  # partial retransmission
    assert streams(list(decode_segments(out))) == want


def test_lost_segment_is_reported_then_resynchronised() -> None:
    segs = segments("img-glz.pcap")
    full = list(decode_segments(segs))
    # the display channel's server stream: drop one of its segments in the middle
    display = next(r.channel for r in full if r.channel.channel == "display")
    mine = [i for i, s in enumerate(segs) if s.payload and s.src == display.server and s.dst == display.client]
    assert len(mine) > 6, "the display stream is too short for this test"
    drop = mine[len(mine) // 2]
    lost = segs[drop]
    damaged = list(decode_segments(segs[:drop] + segs[drop + 1:]))

    gaps = [r for r in damaged if r.layer == "gap"]
    assert len(gaps) == 1 and gaps[0].size == len(lost.payload)
    key = (display.client, display.server, "server")
    before, after = streams(full)[key], streams(damaged)[key]
    # the messages after the resynchronisation are the original ones, at their original offsets
    gap_at = damaged.index(gaps[0])
    resumed = [r for r in damaged[gap_at:] if r.channel is gaps[0].channel and r.layer == "message"
               and r.direction.value == "server"]
    assert resumed, "nothing decoded after the gap"
    original_by_type = [(t, s) for t, s, _ in before]
    resumed_seq = [(r.type, r.size) for r in resumed]
    n = len(resumed_seq)
    assert original_by_type[-n:] == resumed_seq
    # and everything before the hole is untouched
    assert after[: len(after) - n] == before[: len(after) - n]


def test_midsession_capture_is_picked_up() -> None:
    """A capture cut after the link stage: channels are found by their data headers (tshark cannot)."""
    cut = sorted(CAPTURES.glob("*midsession*.pcap*")) + sorted(CAPTURES.glob("*mid-session*.pcap*"))
    if not cut:
        pytest.fail("the corpus has no mid-session capture")
    records = list(open_records(cut[0]))
    channels = {r.channel.channel for r in records if r.layer == "message"}
    assert "display" in channels
    assert not any(r.layer == "link" for r in records)
    assert all(r.channel.midstream for r in records)
    draws = [r for r in records if r.type.startswith("draw_")]
    assert len(draws) > 5
    errors = [r for r in records if r.layer == "error"]
    assert len(errors) <= 2, errors[:3]


def test_every_capture_decodes_without_errors(capture: Path) -> None:
    records = list(open_records(capture))
    bad = [r for r in records if r.layer in ("error", "gap") or getattr(r.event, "error", None)]
    assert not bad, [(r.type, r.fields, getattr(r.event, "error", None)) for r in bad[:5]]
    assert any(r.layer == "message" for r in records)
