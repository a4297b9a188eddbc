"""Key logs that do not fit the capture, made from the real TLS-through-a-proxy session: one of
another session (client randoms changed), malformed lines, a file that does not exist."""

from __future__ import annotations

from pathlib import Path

from derived import spicetool, tls_files

from spicetool.capture import EXIT_NO_SPICE, EXIT_UNREADABLE


def _other_session(keys: Path, out: Path) -> Path:
    lines = []
    for line in keys.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and not line.startswith("#"):
            parts[1] = "ff" + parts[1][2:]  # another client random: a key log of another session
        lines.append(" ".join(parts) if not line.startswith("#") else line)
    out.write_text("\n".join(lines) + "\n")
    return out


def test_a_key_log_of_another_session(tmp_path: Path) -> None:
    plain, keys, _dsb = tls_files()
    other = _other_session(keys, tmp_path / "other.log")
    r, _ = spicetool("dissect", "--tls-keylog", str(other), str(plain))
    assert r.returncode == EXIT_NO_SPICE and "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [
        f"error: no SPICE traffic found in {plain}: the key log {other} has no secrets for this capture's TLS "
        "connections (4 connections, client randoms not in the key log: a key log of another session?)"]
    assert "handshake is not in the capture" not in r.stdout + r.stderr
    r, _ = spicetool("render", "-q", "--last", "-o", str(tmp_path / "x.png"), "--tls-keylog", str(other), str(plain))
    assert r.returncode == 1 and "has no secrets for this capture's TLS connections" in r.stderr
    assert len(r.stderr.splitlines()) == 1


def test_malformed_lines_are_skipped_with_a_warning(tmp_path: Path) -> None:
    plain, keys, _dsb = tls_files()
    log = tmp_path / "keys.log"
    log.write_text(keys.read_text() + "CLIENT_RANDOM nothex 00\nnot a key log line at all\n")
    r, _ = spicetool("dissect", "--summary", "--tls-keylog", str(log), str(plain))
    assert r.returncode == 0 and r.stderr.splitlines() == [
        f"warning: {log}: 2 malformed key log lines skipped (not LABEL <client random, 64 hex digits> <secret in hex>)"]
    assert "(4 connections)" in r.stdout


def test_a_key_log_that_does_not_exist(tmp_path: Path) -> None:
    plain, _keys, _dsb = tls_files()
    missing = tmp_path / "missing.log"
    for argv in (["dissect"], ["stats"]):
        r, _ = spicetool(*argv, "--tls-keylog", str(missing), str(plain))
        assert r.returncode == EXIT_UNREADABLE and r.stderr == f"error: {missing}: No such file or directory\n"
