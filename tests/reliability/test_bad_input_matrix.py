"""The bad-input matrix (scripts/bad_input_matrix.py) in the suite, at fewer cut points than the on-demand
run (20 points, every command: `python scripts/bad_input_matrix.py`): every corpus capture cut, bit-flipped,
with segments dropped, duplicated and reordered, through dissect and stats; a capture of each kind through
every other command; and the matrix's checks shown to catch what they are for."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from support import CAPTURES, ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import bad_input_matrix as matrix  # noqa: E402

POINTS = 4            # cut points per capture here (20 in the on-demand run)
TIMEOUT = 120.0       # seconds a run may take
MAX_RSS_MIB = 1024.0
# a capture of each kind for the commands that cost more: direct TCP with its link stage, one caught
# mid-session, TLS with its key log beside it, WebSocket (spice-html5 through websockify), an HTTP CONNECT
# proxy's two legs, and one with segments really lost
KINDS = ("typing.pcapng", "mid-session.pcap", "deployment/tls-proxy-keylog.pcapng",
         "deployment/html5-websockify.pcapng", "deployment/proxy-both-legs.pcapng",
         "deployment/lost-segments.pcapng")
HEAVY = ("report", "render", "export", "serve")


def _run(captures: list[Path], commands: list[str], points: int, work: Path) -> list[matrix.Result]:
    lines: list[str] = []
    results = matrix.run_matrix(captures, commands, points, 2, TIMEOUT, MAX_RSS_MIB, work, log=lines.append)
    failed = [r for r in results if r.problems]
    assert not failed, "\n".join(lines)
    return results


def test_every_capture_damaged_every_way_through_dissect_and_stats(tmp_path: Path) -> None:
    captures = matrix.corpus("*")
    assert len(captures) >= 30, [p.name for p in captures]
    results = _run(captures, ["dissect", "stats"], POINTS, tmp_path)
    damages = {r.job.damage.split("@")[0] for r in results}
    assert damages == {"cut", *matrix.DAMAGE}, damages
    # each capture at every damage: a capture too short to cut is no capture of the corpus
    per = {(Path(r.job.capture).name, r.job.command) for r in results}
    assert len(per) == 2 * len(captures)
    exits = {r.exit for r in results}
    assert 4 in exits and 0 in exits, exits   # cuts are said damaged; a duplicated segment is not damage


@pytest.mark.parametrize("kind", KINDS)
def test_a_capture_of_each_kind_through_every_command(kind: str, tmp_path: Path) -> None:
    from spicetool.cli import SUBCOMMANDS

    commands = [*HEAVY, *(["batch"] if "batch" in SUBCOMMANDS else [])]
    results = _run([CAPTURES / kind], commands, 2, tmp_path)
    assert {r.job.command for r in results} == set(commands)


# --- the checks catch what they are for --------------------------------------------------------

def _job(tmp_path: Path, command: str, damage: str = "flip", stderr: str = "", stdout: str = "") -> matrix.Job:
    out = tmp_path / f"{command}-{damage}-{len(list(tmp_path.iterdir()))}"
    out.mkdir()
    (out / "stderr").write_text(stderr)
    (out / "stdout").write_text(stdout)
    return matrix.Job(command, str(CAPTURES / "typing.pcapng"), damage, str(CAPTURES / "typing.pcapng"), str(out))


def _got(exit: int | None = 0, escaped: str | None = None, rss: float = 50.0) -> dict:
    return {"exit": exit, "escaped": escaped, "seconds": 0.1, "rss_mib": rss}


def test_the_checks_flag_every_kind_of_failure(tmp_path: Path) -> None:
    ok = matrix.check(_job(tmp_path, "stats", stdout='{"sessions": []}'), _got(), MAX_RSS_MIB, None)
    assert ok.problems == []
    cases = {
        "escaped": (_job(tmp_path, "stats"), _got(None, "KeyError: 'x'")),
        "a traceback": (_job(tmp_path, "stats", stderr="Traceback (most recent call last):\n"), _got(1)),
        "not a documented code": (_job(tmp_path, "stats", stderr="error: x\n"), _got(2)),
        "peak RSS": (_job(tmp_path, "stats", stdout='{"sessions": []}'), _got(0, rss=4096.0)),
        "error lines": (_job(tmp_path, "stats", stderr="error: one\nerror: two\n"), _got(3)),
        "exit 5 with": (_job(tmp_path, "stats", stderr="error: a transport broke\n"), _got(5)),
        "no JSON": (_job(tmp_path, "stats", stdout="nothing"), _got(0)),
        "no report.html": (_job(tmp_path, "report"), _got(0)),
    }
    for want, (job, got) in cases.items():
        r = matrix.check(job, got, MAX_RSS_MIB, None)
        assert any(want in p for p in r.problems), (want, r.problems)


def test_a_cut_that_loses_or_invents_messages_is_flagged(tmp_path: Path) -> None:
    intact = matrix.intact_records(CAPTURES / "typing.pcapng", {})
    last = intact[len(intact) // 2]["frame"]
    before = [r for r in intact if r["frame"] <= last]
    said = f"error: the capture ends inside a packet record after frame {last}\n"
    good = _job(tmp_path, "dissect", "cut@1", stderr=said, stdout="".join(json.dumps(r) + "\n" for r in before))
    assert matrix.check(good, _got(4), MAX_RSS_MIB, intact).problems == []
    invented = [dict(r) for r in before]
    invented[len(invented) // 3]["size"] += 1
    bad = _job(tmp_path, "dissect", "cut@1", stderr=said, stdout="".join(json.dumps(r) + "\n" for r in invented))
    assert any("not the intact capture's" in p for p in matrix.check(bad, _got(4), MAX_RSS_MIB, intact).problems)
    half = before[::2] + before[-1:]
    lost = _job(tmp_path, "dissect", "cut@1", stderr=said, stdout="".join(json.dumps(r) + "\n" for r in half))
    assert any("records before the cut" in p for p in matrix.check(lost, _got(4), MAX_RSS_MIB, intact).problems)
