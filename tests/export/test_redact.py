"""`spicetool export --redact`: what was typed, copied and sent is gone, every other message is the same."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from support import CAPTURES, deployment_capture

# the messages --redact rewrites: their type and size stay, their contents do not
REDACTED = {"key_down", "key_up", "key_scancode", "agent_data", "vd_agent_clipboard", "vd_agent_file_xfer_data"}


def spicetool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spicetool", *args], capture_output=True, text=True, timeout=600)


def dissect_json(path: Path) -> list[dict]:
    res = spicetool("dissect", "--json", str(path))
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


def redact(source: Path, out: Path) -> str:
    res = spicetool("export", "--redact", str(source), "-o", str(out))
    assert res.returncode == 0, res.stderr
    return res.stderr


def assert_only_the_contents_changed(source: Path, out: Path) -> int:
    """Every record the same but the redacted ones, which keep their type, size and place; how many changed."""
    # (a WebSocket's or proxy's own records do not survive an export)
    before = [r for r in dissect_json(source) if r["layer"] != "transport"]
    after = dissect_json(out)
    assert len(before) == len(after)
    changed = 0
    for a, b in zip(before, after):
        shape = [(r["session"], r["channel"], r["direction"], r["layer"], r["type"], r["size"]) for r in (a, b)]
        assert shape[0] == shape[1]
        assert abs(a["time"] - b["time"]) < 2e-6
        if a["fields"] != b["fields"]:
            assert a["type"] in REDACTED, a
            changed += 1
    return changed


def test_typed_text_is_gone(tmp_path: Path) -> None:
    source, out = CAPTURES / "typing.pcapng", tmp_path / "typing.pcapng"
    said = redact(source, out)
    assert "redacted 43 key messages" in said

    def typed(path: Path) -> list[str]:
        res = spicetool("stats", "--json", str(path))
        assert res.returncode == 0, res.stderr
        return [s["typed_text"] for s in json.loads(res.stdout)["sessions"]]

    assert typed(source) == ["echo hello from the spice client; uname -s\n"]
    assert typed(out) == [""]
    assert assert_only_the_contents_changed(source, out) == 43
    presses = [r for r in dissect_json(out) if r["type"] == "key_scancode"]
    assert presses and all(set(bytes.fromhex(r["fields"]["data"])) == {0} for r in presses)


def typed(path: Path) -> list[str]:
    res = spicetool("stats", "--json", str(path))
    assert res.returncode == 0, res.stderr
    return [s["typed_text"] for s in json.loads(res.stdout)["sessions"]]


def test_key_down_and_up_are_gone(tmp_path: Path) -> None:
    # spice-html5 sends KEY_DOWN/KEY_UP codes; both legs of the websockify session carry them
    source, out = deployment_capture("html5-websockify.pcapng"), tmp_path / "ws.pcapng"
    assert "redacted 88 key messages" in redact(source, out)
    assert any(typed(source)) and not any(typed(out))
    assert assert_only_the_contents_changed(source, out) == 88
    codes = {r["fields"]["code"] for r in dissect_json(out) if r["type"] in ("key_down", "key_up")}
    assert codes == {0}


def test_clipboard_and_file_contents_are_gone(tmp_path: Path) -> None:
    source, out = CAPTURES / "agent-file-transfer.pcapng", tmp_path / "agent.pcapng"
    truth = json.loads((CAPTURES / "agent-file-transfer.json").read_text())
    said = redact(source, out)
    assert "2 clipboard, 5 file data" in said
    texts = [truth["clipboard"]["client_to_guest"]["text"].encode(), truth["clipboard"]["guest_to_client"]["text"].encode()]
    # the file: a text line, then SHA-256 of i = 0, 1, ... (8 bytes little-endian) (see its JSON)
    digests = [hashlib.sha256(i.to_bytes(8, "little")).digest() for i in range(0, 300000 // 32, 5)]
    original, redacted = source.read_bytes(), out.read_bytes()
    assert all(t in original for t in texts)
    assert sum(d in original for d in digests) > len(digests) * 0.9
    assert not any(t in redacted for t in texts)
    assert not any(d in redacted for d in digests)
    changed = assert_only_the_contents_changed(source, out)
    assert changed >= 2 + 5 + 300000 // 2048  # the agent messages and every AGENT_DATA that carried them
    after = dissect_json(out)
    clip = [r for r in after if r["type"] == "vd_agent_clipboard"]
    assert len(clip) == 2 and all(r["fields"]["type"] == "UTF8_TEXT" for r in clip)


def test_a_capture_with_nothing_to_redact_is_unchanged(tmp_path: Path) -> None:
    source, out = CAPTURES / "img-glz.pcap", tmp_path / "glz.pcapng"
    redact(source, out)
    assert assert_only_the_contents_changed(source, out) == 0
