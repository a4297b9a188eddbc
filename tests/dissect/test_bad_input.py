"""Bad input: a clear one-line error, a documented exit code, never a traceback or a hang;
what was decodable before the damage is still shown."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from support import corpus

EXIT_NO_SPICE, EXIT_UNREADABLE, EXIT_DAMAGED = 1, 3, 4


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spicetool", "dissect", *args], capture_output=True, text=True,
                          timeout=timeout)


def one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error:"), res.stderr
    return lines[-1]


def test_missing_file(tmp_path: Path) -> None:
    res = run(str(tmp_path / "nope.pcap"))
    assert res.returncode == EXIT_UNREADABLE
    assert "No such file" in one_line_error(res)


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "random.pcap"
    path.write_bytes(random.Random(1).randbytes(100_000))
    res = run(str(path))
    assert res.returncode == EXIT_UNREADABLE
    assert "not a pcap or pcapng" in one_line_error(res)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcapng"
    path.write_bytes(b"")
    res = run(str(path))
    assert res.returncode == EXIT_UNREADABLE
    one_line_error(res)


def test_capture_of_something_else(tmp_path: Path) -> None:
    """A valid capture with TCP traffic that is not SPICE: no SPICE found, exit 1."""
    from spicetool.capture import PcapWriter

    path = tmp_path / "http.pcap"
    rng = random.Random(2)
    with open(path, "wb") as f:
        w = PcapWriter(f)
        seq_c, seq_s = 1000, 5000
        for i in range(50):
            body = b"GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n" + rng.randbytes(200)
            seq_c = w.segment(1.0 + i, "10.0.0.1:40000", "10.0.0.2:80", seq_c, seq_s, 0x18, body)
            seq_s = w.segment(1.0 + i, "10.0.0.2:80", "10.0.0.1:40000", seq_s, seq_c, 0x18, rng.randbytes(1400))
    res = run(str(path))
    assert res.returncode == EXIT_NO_SPICE
    assert "no SPICE traffic" in one_line_error(res)


@pytest.mark.parametrize("keep", [0.3, 0.7])
def test_truncated_capture(tmp_path: Path, keep: float) -> None:
    """A capture cut in the middle of a record: what came before is reported, then exit 4."""
    files = [p for p in corpus() if p.stat().st_size > 200_000]
    if not files:
        pytest.fail("the corpus has no capture to truncate")
    src = files[0]
    data = src.read_bytes()
    path = tmp_path / ("cut" + src.suffix)
    path.write_bytes(data[: int(len(data) * keep) + 7])  # +7: surely inside a record
    res = run("--json", str(path))
    assert res.returncode == EXIT_DAMAGED, res.stderr
    assert "truncated" in one_line_error(res)
    full = run("--json", str(src))
    assert full.returncode == 0, full.stderr
    got = [json.loads(line) for line in res.stdout.splitlines()]
    want = [json.loads(line) for line in full.stdout.splitlines()]
    # everything decoded before the cut is exactly what the whole capture gives there
    # (records of the last frame read may differ: the end of the data flushes what waited)
    last = max(g["frame"] for g in got)
    before = [g for g in got if g["frame"] < last]
    assert len(before) > 10
    assert before == want[: len(before)]


def test_corrupt_payload_bytes(tmp_path: Path) -> None:
    """Bytes flipped inside SPICE payloads: errors are shown in place, no traceback, no hang."""
    src = next((p for p in corpus() if p.suffix == ".pcap"), None)
    if src is None:
        pytest.fail("the corpus has no .pcap capture")
    data = bytearray(src.read_bytes())
    rng = random.Random(3)
    for _ in range(200):
        pos = rng.randrange(1000, len(data))
        data[pos] = rng.randrange(256)
    path = tmp_path / "corrupt.pcap"
    path.write_bytes(bytes(data))
    res = run("--json", str(path))
    assert "Traceback" not in res.stderr
    assert res.returncode in (0, EXIT_DAMAGED), res.stderr
    assert res.stdout.count("\n") > 10


def test_help_is_fast_and_documents_exit_codes() -> None:
    res = run("--help")
    assert res.returncode == 0
    assert "Exit codes" in res.stdout and "Examples" in res.stdout
    # `spicetool --help` lists every command without importing any of them (nor numpy, scapy, av)
    code = ("import sys; from click.testing import CliRunner; from spicetool.cli import main; "
            "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0 and 'dissect' in r.output; "
            "print(sorted(m for m in ('numpy', 'scapy', 'av', 'spicetool.stack', 'spicetool.dissect') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert out.stdout.strip() == "[]"
