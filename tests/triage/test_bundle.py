"""`spicetool bundle`: every member of the zip is what its own command gives for the same capture
(stats --json, diagnose --json, render --last of every display channel, export re-dissected to the
same messages, a report with the same figures), with a README that lists them and the capture's
sha256; --redact leaves the typed text in no member; bad input fails as `stats` does."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import CAPTURES, deployment_capture

SPICE_LAYERS = ("link", "message", "agent", "gap")  # the transport's own records do not survive an export
TYPED = "echo hello from the spice client; uname -s"  # what typing.pcapng's client typed


def spicetool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spicetool", *args], capture_output=True, text=True, timeout=600)


def message_key(rec: dict) -> tuple:
    return (rec["session"], rec["channel"], rec["channel_id"], rec["client"], rec["server"], rec["direction"],
            rec["layer"], rec["type"], rec["size"], json.dumps(rec["fields"], sort_keys=True))


def messages(path: Path, *extra: str) -> list[tuple]:
    r = spicetool("dissect", "--json", str(path), *extra)
    assert r.returncode == 0, r.stderr
    return [message_key(rec) for rec in map(json.loads, r.stdout.splitlines()) if rec["layer"] in SPICE_LAYERS]


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


CASES = {  # name -> (capture, options both the bundle and each single command get)
    "typing": (CAPTURES / "typing.pcapng", []),
    "tls-proxy-keylog": (deployment_capture("tls-proxy-keylog.pcapng"),
                         ["--tls-keylog", str(deployment_capture("tls-proxy-keylog.keys.log"))]),
    "linux-qxl-two-heads": (deployment_capture("linux-qxl-two-heads.pcapng"), []),  # two display channels
}


@pytest.mark.parametrize("name", CASES)
def test_each_member_is_what_its_command_gives(name: str, tmp_path: Path) -> None:
    capture, extra = CASES[name]
    out = tmp_path / "case.zip"
    r = spicetool("bundle", str(capture), *extra, "-o", str(out))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    z = zipfile.ZipFile(out)
    names = z.namelist()
    stats = spicetool("stats", "--json", str(capture), *extra)
    assert stats.returncode == 0
    figs = json.loads(stats.stdout)
    displays = sorted(c["channel_id"] for c in figs["sessions"][0]["channels"] if c["channel"] == "display")
    pngs = [f"final-display{d}.png" for d in displays]
    assert names == ["README.txt", "report.html", "stats.json", "findings.jsonl", *pngs, "plain.pcapng"]
    assert len(pngs) == (2 if name == "linux-qxl-two-heads" else 1)

    readme = z.read("README.txt").decode()
    digest = hashlib.sha256(capture.read_bytes()).hexdigest()
    assert f"sha256 {digest}  {capture.name}" in readme
    for member in names:
        assert re.search(rf"^  {re.escape(member)} ", readme, re.MULTILINE), member

    assert z.read("stats.json").decode() == stats.stdout
    diagnose = spicetool("diagnose", "--json", str(capture), *extra)
    assert diagnose.returncode in (0, 5) and z.read("findings.jsonl").decode() == diagnose.stdout
    page = z.read("report.html").decode()
    found = re.search(r'<script type="application/json" id="figures">(.*?)</script>', page, re.DOTALL)
    assert found and json.loads(found.group(1).replace("<\\/", "</")) == figs
    assert 'id="timeline-data"' in page

    for d, png in zip(displays, pngs):
        single = tmp_path / f"last{d}.png"
        rendered = spicetool("render", str(capture), *extra, "--last", "--display", str(d), "-o", str(single))
        assert rendered.returncode == 0, rendered.stderr
        assert np.array_equal(pixels(z.read(png)), pixels(single.read_bytes())), png
    if len(pngs) == 2:  # two heads, two pictures
        assert not np.array_equal(pixels(z.read(pngs[0])), pixels(z.read(pngs[1])))

    plain = tmp_path / "plain.pcapng"
    plain.write_bytes(z.read("plain.pcapng"))
    original = messages(capture, *extra)
    assert len(original) > 100 and messages(plain) == original


def test_redact_leaves_the_typed_text_in_no_member(tmp_path: Path) -> None:
    capture = CAPTURES / "typing.pcapng"
    assert TYPED in json.loads(spicetool("stats", "--json", str(capture)).stdout)["sessions"][0]["typed_text"]
    out = tmp_path / "case.zip"
    r = spicetool("bundle", str(capture), "--redact", "-o", str(out))
    assert r.returncode == 0, r.stderr
    z = zipfile.ZipFile(out)
    for member in z.namelist():
        assert b"echo hello" not in z.read(member), member
    figs = json.loads(z.read("stats.json"))
    assert figs["sessions"][0]["typed_text"] == ""
    assert "Redacted" in z.read("README.txt").decode()
    # the export is `export --redact`'s: the same messages
    single = tmp_path / "redacted.pcapng"
    assert spicetool("export", str(capture), "--redact", "-o", str(single)).returncode == 0
    plain = tmp_path / "plain.pcapng"
    plain.write_bytes(z.read("plain.pcapng"))
    assert messages(plain) == messages(single)
    # and every other member is made from it
    assert z.read("stats.json").decode() == spicetool("stats", "--json", str(single)).stdout


def test_a_capture_that_cannot_be_read_fails_as_stats_does(tmp_path: Path) -> None:
    out = tmp_path / "case.zip"
    bad = tmp_path / "notes.pcap"
    bad.write_text("hello\n" * 10)
    for path in (bad, tmp_path / "missing.pcap"):
        r = spicetool("bundle", str(path), "-o", str(out))
        s = spicetool("stats", str(path))
        assert r.returncode == s.returncode == 3 and r.stderr == s.stderr and r.stderr.count("\n") == 1
        assert not out.exists()


def test_a_truncated_capture_is_bundled_up_to_the_damage(tmp_path: Path) -> None:
    whole = (CAPTURES / "typing.pcapng").read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(whole[: len(whole) * 9 // 10 + 3])
    out = tmp_path / "case.zip"
    r = spicetool("bundle", str(cut), "-o", str(out))
    stats = spicetool("stats", "--json", str(cut))
    assert r.returncode == stats.returncode == 4 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1] == stats.stderr.splitlines()[-1] and "truncated" in r.stderr
    z = zipfile.ZipFile(out)
    assert z.read("stats.json").decode() == stats.stdout
    assert "damaged" in z.read("README.txt").decode()


def test_tls_without_keys_says_the_export_is_missing(tmp_path: Path) -> None:
    out = tmp_path / "case.zip"
    r = spicetool("bundle", str(deployment_capture("tls-proxy-keylog.pcapng")), "-o", str(out))
    assert r.returncode == 0, r.stderr
    z = zipfile.ZipFile(out)
    assert "plain.pcapng" not in z.namelist()
    assert "no plain.pcapng" in z.read("README.txt").decode() and "--tls-keylog" in z.read("README.txt").decode()
