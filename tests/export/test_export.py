"""`spicetool export` on the real deployment sessions: the SPICE of a proxied (HTTP CONNECT), WebSocket
(spice-html5 direct, and through websockify) and TLS (with its key log) capture written as plain SPICE
over TCP. dissect reads the same messages in the same order, tshark decodes it with nothing
malformed and as many SPICE messages as we do, render's last picture is the same to the pixel."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import deployment_capture, need_program

# name -> extra arguments its reading needs
TRANSPORTS = {
    "proxy-client-leg": [],
    "html5-direct": [],
    "html5-websockify": [],  # both legs: the browser's WebSocket one and websockify's plain one
    "tls-proxy-keylog": ["--tls-keylog", "tls-proxy-keylog.keys.log"],
}
SPICE_LAYERS = ("link", "message", "agent", "gap")  # the transport's own records do not survive an export


def spicetool(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spicetool", *args], capture_output=True, text=True,
                          timeout=timeout)


def extra_args(name: str) -> list[str]:
    args = TRANSPORTS[name]
    return [str(deployment_capture(a)) if a.endswith(".log") else a for a in args]


def dissect_json(path: Path, *extra: str) -> list[dict]:
    res = spicetool("dissect", "--json", str(path), *extra)
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


def message_key(rec: dict) -> tuple:
    return (rec["session"], rec["channel"], rec["channel_id"], rec["client"], rec["server"], rec["direction"],
            rec["layer"], rec["type"], rec["size"], json.dumps(rec["fields"], sort_keys=True))


def spice_records(recs: list[dict]) -> list[dict]:
    return [r for r in recs if r["layer"] in SPICE_LAYERS]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("export")
    done = {}
    for name in TRANSPORTS:
        path = out / f"{name}.pcapng"
        res = spicetool("export", str(deployment_capture(f"{name}.pcapng")), *extra_args(name), "-o", str(path))
        assert res.returncode == 0, res.stderr
        assert "Traceback" not in res.stderr
        done[name] = path
    return done


@pytest.mark.parametrize("name", TRANSPORTS)
def test_dissect_shows_the_same_messages_in_the_same_order(name: str, exported: dict[str, Path]) -> None:
    original = spice_records(dissect_json(deployment_capture(f"{name}.pcapng"), *extra_args(name)))
    plain = dissect_json(exported[name])
    assert [r for r in plain if r["layer"] not in SPICE_LAYERS] == []  # no transport left, nothing broken
    assert len(original) > 100
    assert [message_key(r) for r in plain] == [message_key(r) for r in original]
    # the true capture times (pcapng keeps microseconds)
    assert max(abs(a["time"] - b["time"]) for a, b in zip(original, plain)) < 2e-6


@pytest.mark.parametrize("name", TRANSPORTS)
def test_tshark_decodes_the_export(name: str, exported: dict[str, Path]) -> None:
    tshark = need_program("tshark")
    path = str(exported[name])
    malformed = subprocess.run([tshark, "-r", path, "-Y", "_ws.malformed"], capture_output=True, text=True,
                               timeout=300)
    assert malformed.returncode == 0 and malformed.stdout.strip() == "", malformed.stdout[:2000]
    types = subprocess.run([tshark, "-r", path, "-Y", "spice.message_type", "-T", "fields", "-e",
                            "spice.message_type"], capture_output=True, text=True, timeout=300).stdout
    # Wireshark 4.0 adds type-0 entries inside some display messages (the original shows the same)
    theirs = [t for line in types.splitlines() for t in line.split(",") if t and t != "0"]
    ours = [r for r in dissect_json(exported[name]) if r["layer"] == "message"]
    assert len(theirs) == len(ours)


@pytest.mark.parametrize("name", TRANSPORTS)
def test_render_gives_the_same_picture(name: str, exported: dict[str, Path], tmp_path: Path) -> None:
    pictures = []
    for source, extra in ((deployment_capture(f"{name}.pcapng"), extra_args(name)), (exported[name], [])):
        png = tmp_path / f"{len(pictures)}.png"
        res = spicetool("render", str(source), *extra, "--last", "-o", str(png))
        assert res.returncode == 0, res.stderr
        pictures.append(np.asarray(Image.open(png).convert("RGBA")))
    before, after = pictures
    assert before.shape == after.shape
    assert int((before != after).any(axis=-1).sum()) == 0


def test_lost_segments_stay_lost(tmp_path: Path) -> None:
    # the same gaps, in the same place of each channel's stream (across channels a gap's record may
    # come a little later: a reader waits some frames before it gives a hole up, and the export has fewer)
    source = deployment_capture("lost-segments.pcapng")
    out = tmp_path / "lost.pcapng"
    res = spicetool("export", str(source), "-o", str(out))
    assert res.returncode == 0, res.stderr
    original, plain = dissect_json(source), dissect_json(out)

    def per_stream(recs: list[dict]) -> dict[tuple, list[tuple]]:
        streams: dict[tuple, list[tuple]] = {}
        for r in recs:
            streams.setdefault((r["client"], r["server"], r["direction"]), []).append(message_key(r))
        return streams

    assert per_stream(plain) == per_stream(original)
    assert sum(r["type"] == "tcp_gap" for r in plain) == sum(r["type"] == "tcp_gap" for r in original) == 3
