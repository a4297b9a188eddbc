"""A capture of many sessions (as a hypervisor's capture holds them): one line per session.

The capture is a real session of the corpus repeated on fresh client addresses; `dissect
--summary` and `stats` give one line per session with that session's figures (the same as
--json gives) instead of several tables each, and a capture of few sessions keeps its tables.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from support import CAPTURES

from spicetool.capture import TCP_ACK, PcapWriter, open_capture
from spicetool.capture.summary import MANY_SESSIONS


def repeated(source: Path, copies: int, out: Path) -> Path:
    segments = list(open_capture(str(source)))
    first = segments[0].time
    with open(out, "wb") as f:
        w = PcapWriter(f)
        for rep in range(copies):
            for seg in segments:
                from_client = int(seg.src.rsplit(":", 1)[1]) > int(seg.dst.rsplit(":", 1)[1])
                moved = lambda ep: f"10.1.{rep}.{ep.rsplit(':', 1)[0].rsplit('.', 1)[1]}:{ep.rsplit(':', 1)[1]}"  # noqa: E731
                w.segment(1e9 + rep * 60 + seg.time - first, moved(seg.src) if from_client else seg.src,
                          seg.dst if from_client else moved(seg.dst), seg.seq, seg.ack, seg.flags or TCP_ACK,
                          seg.payload)
    return out


def run(*args: str) -> str:
    r = subprocess.run(["spicetool", *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return repeated(CAPTURES / "password.pcap", MANY_SESSIONS + 5, tmp_path_factory.mktemp("many") / "many.pcap")


def rows(text: str) -> dict[str, list[str]]:
    """The lines of the first plain table, by their first column."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("-------")) + 1
    out = {}
    for line in lines[start:]:
        if not line.strip():
            break
        out[line.split()[0]] = line.split()
    return out


def test_dissect_summary_is_one_line_per_session(many: Path) -> None:
    text = run("dissect", "--summary", str(many))
    assert text.splitlines()[0].startswith(f"{MANY_SESSIONS + 5} sessions, one line each")
    table = rows(text)
    assert len(table) == MANY_SESSIONS + 5
    per_session: dict[str, list[int]] = {}
    for line in run("dissect", "--summary", "--json", str(many)).splitlines():
        ch = json.loads(line)
        totals = per_session.setdefault(str(ch["session"]), [0, 0, 0, 0])
        for i, (key, d) in enumerate((("messages", "client"), ("messages", "server"), ("bytes", "client"),
                                      ("bytes", "server"))):
            totals[i] += ch[key].get(d, 0)
    for session, figures in per_session.items():
        columns = table[session]
        assert [int(v) for v in columns[5:9]] == figures, (session, columns)  # after session, id, server, client, channels
    assert "message types of all" in text and "password" not in text


def test_stats_is_one_line_per_session(many: Path) -> None:
    text = run("stats", str(many))
    table = rows(text)
    figs = json.loads(run("stats", "--json", str(many)))
    assert len(table) == len(figs["sessions"]) == MANY_SESSIONS + 5
    for s in figs["sessions"]:
        columns = table[str(s["session"])]
        assert int(columns[5]) == sum(c["messages"].get("client", 0) for c in s["channels"])
        assert int(columns[6]) == sum(c["messages"].get("server", 0) for c in s["channels"])
    assert ": overview" not in text


def test_few_sessions_keep_their_tables(tmp_path: Path) -> None:
    few = repeated(CAPTURES / "password.pcap", 2, tmp_path / "few.pcap")
    assert re.search(r"^session 2 .*: message types$", run("dissect", "--summary", str(few)), re.M)
    assert re.search(r"^session 2 .*: overview$", run("stats", str(few)), re.M)


def test_a_late_session_has_series_of_its_own_length(many: Path) -> None:
    """Per-second series start at the channel's first second: a session an hour into a capture
    has as many values as it lasted, not an hour of zeros before them."""
    figs = json.loads(run("stats", "--json", str(many)))
    last = figs["sessions"][-1]
    for c in last["channels"]:
        assert c["per_second_from"] >= 60 * MANY_SESSIONS
        for d in ("client", "server"):
            assert len(c["bytes_per_second"][d]) <= 60 and sum(c["bytes_per_second"][d]) == c["wire_bytes"][d]
