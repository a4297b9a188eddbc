"""Resynchronising after a hole costs what the sample holds. The client side of a busy display channel is
hundreds of identical acks (a run of one message counts as one header, so no offset among them is good
enough until a pong follows): every segment after a gap once walked every ack from every ack."""
from __future__ import annotations

import random

import pytest
from corpus_support import CAPTURES
from tcp_payloads import read_connections

from spicetool.stack import ChannelConnection, Direction, Message, find_resync_point
from spicetool.stack import resync

TWO_HEADS = CAPTURES / "deployment" / "linux-qxl-two-heads.pcapng"
SAMPLE = 64 * 1024


def _busiest_display() -> dict[Direction, tuple[bytes, list[Message]]]:
    """Each direction's bytes of the display channel with the most messages, and its messages."""
    best: dict[Direction, tuple[bytes, list[Message]]] = {}
    for tc in read_connections(TWO_HEADS, server_port=5929):
        conn = ChannelConnection()
        events = []
        for d in ("client", "server"):
            for _, chunk in tc.chunks[d]:
                events += conn.receive(Direction(d), chunk)
        if conn.channel_type != 2:  # display
            continue
        msgs = [e for e in events if isinstance(e, Message)]
        if not best or len(msgs) > sum(len(m) for _, m in best.values()):
            best = {d: (tc.data(d.value), [m for m in msgs if m.direction is d]) for d in Direction}
    return best


@pytest.fixture(scope="module")
def display() -> dict[Direction, tuple[bytes, list[Message]]]:
    if not TWO_HEADS.exists():
        pytest.fail(f"{TWO_HEADS} missing from the corpus")
    return _busiest_display()


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bodies decoded by the resync search, counted."""
    count = [0]
    real = resync._parse

    def counting(*args):
        count[0] += 1
        return real(*args)

    monkeypatch.setattr(resync, "_parse", counting)
    return count


@pytest.mark.parametrize("direction", list(Direction))
def test_resync_decodes_each_header_of_the_sample_a_few_times_at_most(display, parses, direction) -> None:
    data, msgs = display[direction]
    starts = [m.offset for m in msgs]
    names = {m.name for m in msgs}
    assert len(starts) > 1000 and ("ack" in names if direction is Direction.CLIENT else "draw_copy" in names)
    rng = random.Random(3)
    landed = tried = 0
    for _ in range(20):
        cut = rng.randrange(starts[len(starts) // 10], starts[-50])
        sample = data[cut:cut + SAMPLE]
        parses[0] = 0
        found = find_resync_point(sample, direction, 2)
        inside = [m for m in msgs if cut <= m.offset < cut + len(sample)]
        # each header decoded a couple of times at most (it was each header from each earlier offset)
        assert parses[0] <= 2 * len(inside) + 64, (cut, parses[0], len(inside))
        if len({(m.name, m.size) for m in inside[1:]}) > 1:  # messages of two kinds after the cut: found
            tried += 1
            landed += found is not None and cut + found[0] == inside[0].offset
    # on the next header almost always (compressed image bytes can hold a chain of plausible headers)
    assert tried >= 5 and landed >= tried - 2, (landed, tried)


def test_a_run_of_acks_without_a_pong_is_walked_once(display, parses) -> None:
    """No offset among identical acks is good enough: the search gives up having decoded each once or twice."""
    data, msgs = display[Direction.CLIENT]
    runs, run = [], []
    for m in msgs:
        if m.name == "ack":
            run.append(m)
        else:
            runs, run = runs + [run], []
    run = max(runs + [run], key=len)
    assert len(run) >= 200, len(run)
    for k in (50, 200, len(run)):
        sample = data[run[0].offset - 3:run[k - 1].offset + run[k - 1].size + 6]  # (starting inside a header)
        parses[0] = 0
        assert find_resync_point(sample, Direction.CLIENT, 2) is None
        assert parses[0] <= 2 * k + 64, (k, parses[0])
