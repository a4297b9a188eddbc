"""A pcapng that carries its own TLS key log (editcap --inject-secrets) decrypts with no
--tls-keylog, exactly as the plain capture with its key log; blocks after the packets, several
blocks, and a key log given as well are merged; damaged blocks are one line, exit 4."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from derived import TLS, first_dsb, segments, spicetool, tls_files, write
from PIL import Image
from support import deployment_capture

from spicetool.capture import EXIT_DAMAGED, open_records


def _messages(stdout: str) -> list[dict]:
    out = []
    for line in stdout.splitlines():
        rec = json.loads(line)
        rec.pop("frame", None)
        out.append(rec)
    return out


def test_injected_secrets_decrypt_as_the_key_log_does(tmp_path: Path) -> None:
    plain, keys, dsb = tls_files()
    with_log, _ = spicetool("dissect", "--json", "--tls-keylog", str(keys), str(plain))
    injected, _ = spicetool("dissect", "--json", str(dsb))
    assert with_log.returncode == 0 and injected.returncode == 0, injected.stderr
    ours = _messages(injected.stdout)
    assert ours == _messages(with_log.stdout)
    assert sum(r["layer"] == "message" for r in ours) >= 300
    png = tmp_path / "last.png"
    r, _ = spicetool("render", "-q", "--last", "-o", str(png), str(dsb))
    assert r.returncode == 0, r.stderr
    got = np.asarray(Image.open(png).convert("RGB"))
    truth = np.asarray(Image.open(deployment_capture(f"{TLS}.png")).convert("RGB"))
    assert got.shape == truth.shape and int((got != truth).any(axis=2).sum()) == 0


def test_summary_and_stats_say_where_the_keys_came_from() -> None:
    plain, keys, dsb = tls_files()
    r, _ = spicetool("dissect", "--summary", str(dsb))
    assert r.returncode == 0 and "keys from the capture's Decryption Secrets block (4 connections)" in r.stdout
    r, _ = spicetool("dissect", "--summary", "--tls-keylog", str(keys), str(plain))
    assert f"keys from {keys} (4 connections)" in r.stdout
    r, _ = spicetool("stats", "--json", str(dsb))
    tls = {(c["tls"], c["tls_keys"]) for s in json.loads(r.stdout)["sessions"] for c in s["channels"]}
    assert tls == {("TLS 1.3, TLS_AES_256_GCM_SHA384", "the capture's Decryption Secrets block")}


def _count(path: Path, keylog: str | None = None) -> int:
    return sum(r.layer == "message" for r in open_records(path, keylog=keylog))


def test_blocks_after_the_packets_several_blocks_and_a_key_log_merged(tmp_path: Path) -> None:
    plain, keys, dsb = tls_files()
    expected = _count(dsb)
    segs = segments(plain)
    lines = keys.read_bytes().splitlines(keepends=True)
    randoms = list(dict.fromkeys(x.split()[1] for x in lines if not x.startswith(b"#")))
    firsts = set(randoms[:len(randoms) // 2])  # the halves split between connections, not inside one
    lines.sort(key=lambda x: x.startswith(b"#") or x.split()[1] not in firsts)
    half = sum(not x.startswith(b"#") and x.split()[1] in firsts for x in lines)
    after = write(tmp_path / "after.pcapng", segs, [(len(segs), keys.read_bytes())])
    assert _count(after) == expected
    split = write(tmp_path / "split.pcapng", segs, [(0, b"".join(lines[:half])), (len(segs) // 2,
                                                                                  b"".join(lines[half:]))])
    assert _count(split) == expected
    first_half = tmp_path / "first.log"
    first_half.write_bytes(b"".join(lines[:half]))
    rest = write(tmp_path / "rest.pcapng", segs, [(0, b"".join(lines[half:]))])
    assert _count(rest) < expected and _count(rest, str(first_half)) == expected


def test_a_truncated_secrets_block_is_one_line_exit_4(tmp_path: Path) -> None:
    _plain, _keys, dsb = tls_files()
    data = dsb.read_bytes()
    off, blen = first_dsb(data)
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[:off + blen // 2])
    for argv in (["dissect"], ["stats"]):
        r, _ = spicetool(*argv, str(cut))
        assert r.returncode == EXIT_DAMAGED and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.splitlines()[-1].startswith(f"error: {cut}: capture truncated in decryption secrets block 1")
    r, _ = spicetool("render", "-q", "--last", "-o", str(tmp_path / "x.png"), str(cut))
    assert r.returncode == 1 and "decryption secrets block 1" in r.stderr and len(r.stderr.splitlines()) == 1


def test_a_secrets_length_beyond_its_block_is_one_line_and_the_rest_still_read(tmp_path: Path) -> None:
    _plain, _keys, dsb = tls_files()
    data = bytearray(dsb.read_bytes())
    off, blen = first_dsb(bytes(data))
    data[off + 12:off + 16] = (blen * 4).to_bytes(4, "little")
    bad = tmp_path / "overclaim.pcapng"
    bad.write_bytes(bytes(data))
    r, _ = spicetool("dissect", str(bad))
    assert r.returncode == EXIT_DAMAGED, r.stderr
    last = r.stderr.splitlines()[-1]
    assert last.startswith(f"error: {bad}: corrupt decryption secrets block after frame 0 (block 1, at byte {off})")
    assert f"its secrets length {blen * 4}" in last
    assert r.stderr.splitlines() == [last]  # one line: the block's padding is no malformed key log line
    assert r.stdout.count(" display:0 ") > 200  # the packets after it were read, and decrypted
