"""The dissect command's views and filters, on real captures."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from support import CAPTURES

TYPING = CAPTURES / "typing.pcapng"
AGENT = CAPTURES / "agent-audio.pcapng"


def dissect(*args: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([sys.executable, "-m", "spicetool", "dissect", *args], capture_output=True, text=True,
                         timeout=300)
    assert "Traceback" not in res.stderr, res.stderr
    return res


def records(*args: str) -> list[dict]:
    res = dissect("--json", *args)
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_json_keys_are_stable() -> None:
    recs = records(str(TYPING))
    for rec in recs:
        assert {"time", "session", "client", "server", "channel", "channel_id", "direction", "type", "size",
                "fields"} <= rec.keys()
        assert rec["direction"] in ("client", "server")
        if rec["layer"] == "message":
            assert isinstance(rec["type_id"], int)
    times = [r["time"] for r in recs]
    assert times == sorted(times)  # capture order
    channels = {r["channel"] for r in recs}
    assert {"main", "display", "inputs", "cursor"} <= channels


def test_filters_select_subsets() -> None:
    everything = records(str(TYPING))
    inputs = records("--channel", "inputs", str(TYPING))
    assert inputs == [r for r in everything if r["channel"] == "inputs"]
    pings = records("--type", "ping,pong", str(TYPING))
    assert pings and pings == [r for r in everything if r["type"] in ("ping", "pong")]
    window = records("--from", "1", "--to", "3", str(TYPING))
    assert window == [r for r in everything if 1 <= r["time"] <= 3]
    assert records("--session", "1", str(TYPING)) == [r for r in everything if r["session"] == 1]
    assert records("--session", "2", str(TYPING)) == []


def test_summary_counts_match_the_messages() -> None:
    recs = records(str(AGENT))
    res = dissect("--summary", "--json", str(AGENT))
    assert res.returncode == 0
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    want: Counter = Counter()
    for r in recs:
        if r["layer"] == "message":
            want[(r["channel"], r["channel_id"], r["direction"])] += 1
    got = Counter({(row["channel"], row["channel_id"], d): n for row in rows for d, n in row["messages"].items()})
    assert got == want
    main = next(row for row in rows if row["channel"] == "main")
    assert main["auth"] == "spice"
    assert "mini_header" in main["caps"]["server_common_caps"]
    assert any(t.startswith("client:vd_agent_") for t in main["types"])  # the agent spoke


def test_human_view_and_field_tree() -> None:
    res = dissect("--channel", "display", "--type", "surface_create", "-v", str(TYPING))
    assert res.returncode == 0
    lines = res.stdout.splitlines()
    assert any("surface_create" in line and "width=1024" in line for line in lines)
    assert any("height: 768" in line for line in lines)  # the field tree


def test_agent_messages_are_decoded() -> None:
    recs = [r for r in records("--channel", "main", str(AGENT)) if r["layer"] == "agent"]
    types = {r["type"] for r in recs}
    assert "vd_agent_announce_capabilities" in types
    caps = next(r for r in recs if r["type"] == "vd_agent_announce_capabilities")["fields"]
    assert caps, "announce_capabilities without fields"


def test_password_session_shows_ticket_and_link_results(tmp_path: Path) -> None:
    pw = sorted(CAPTURES.glob("*password*.pcap*"))
    assert pw, "the corpus has no password-protected session"
    recs = records(str(pw[0]))
    tickets = [r for r in recs if r["type"] == "ticket"]
    assert tickets and all(r["size"] == 128 for r in tickets)
    results = [r["fields"]["error"] for r in recs if r["type"] == "link_result"]
    assert results and all(e == "OK" for e in results)
