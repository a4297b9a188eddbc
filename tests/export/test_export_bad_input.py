"""export on bad input: one line, a documented exit code, no output left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import CAPTURES

from spicetool.capture import PcapngWriter

EXIT_NO_SPICE, EXIT_USAGE, EXIT_UNREADABLE, EXIT_OUTPUT = 1, 2, 3, 5


def export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spicetool", "export", *args], capture_output=True, text=True,
                          timeout=300)


def one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    return lines[0]


def test_no_spice(tmp_path: Path) -> None:
    source, out = tmp_path / "http.pcapng", tmp_path / "out.pcapng"
    with source.open("wb") as f:  # an HTTP exchange over TCP, nothing of SPICE's
        w = PcapngWriter(f, "test")
        w.segment(1.0, "10.0.0.1:40000", "10.0.0.2:80", 1, 0, 0x02)
        w.segment(1.1, "10.0.0.2:80", "10.0.0.1:40000", 7, 2, 0x12)
        w.segment(1.2, "10.0.0.1:40000", "10.0.0.2:80", 2, 8, 0x18, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        w.segment(1.3, "10.0.0.2:80", "10.0.0.1:40000", 8, 29, 0x18, b"HTTP/1.1 200 OK\r\n\r\nhello" * 20)
    res = export(str(source), "-o", str(out))
    assert res.returncode == EXIT_NO_SPICE
    assert "no SPICE traffic" in one_line_error(res)
    assert not out.exists() and not Path(str(out) + ".part").exists()


def test_unwritable_output(tmp_path: Path) -> None:
    out = tmp_path / "no-such-dir" / "out.pcapng"
    res = export(str(CAPTURES / "img-glz.pcap"), "-o", str(out))
    assert res.returncode == EXIT_OUTPUT
    assert "cannot write" in one_line_error(res)


def test_missing_capture(tmp_path: Path) -> None:
    res = export(str(tmp_path / "nope.pcapng"), "-o", str(tmp_path / "out.pcapng"))
    assert res.returncode == EXIT_UNREADABLE
    one_line_error(res)


def test_not_a_capture(tmp_path: Path) -> None:
    source = tmp_path / "junk.pcap"
    source.write_bytes(b"not a capture at all" * 100)
    res = export(str(source), "-o", str(tmp_path / "out.pcapng"))
    assert res.returncode == EXIT_UNREADABLE
    one_line_error(res)
    assert not (tmp_path / "out.pcapng").exists()


def test_output_is_the_capture(tmp_path: Path) -> None:
    res = export(str(CAPTURES / "img-glz.pcap"), "-o", str(CAPTURES / "img-glz.pcap"))
    assert res.returncode == EXIT_USAGE
    assert "Traceback" not in res.stderr


def test_help_says_what_redact_leaves() -> None:
    res = subprocess.run([sys.executable, "-m", "spicetool", "export", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    assert "The screen stays as it is" in text and "Exit codes" in text
    listing = subprocess.run([sys.executable, "-m", "spicetool", "--help"], capture_output=True, text=True,
                             timeout=60).stdout
    assert "export" in listing


def test_truncated_capture_exports_what_came_before(tmp_path: Path) -> None:
    source, out = tmp_path / "cut.pcapng", tmp_path / "out.pcapng"
    source.write_bytes((CAPTURES / "typing.pcapng").read_bytes()[:250_000])
    res = export(str(source), "-o", str(out))
    assert res.returncode == 4  # EXIT_DAMAGED: written up to the damage
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("error:") and "truncated" in res.stderr
    assert out.exists() and out.stat().st_size > 1000
