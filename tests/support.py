"""What the tests share: the corpus of real captures, fresh captures recorded during the run
with settings the corpus lacks, and the real peers (required under CI=true).

A module of its own (not conftest.py) so that test files anywhere under tests/ can import it
by one unambiguous name.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
IN_CI = os.environ.get("CI") == "true"

# Sessions recorded at test time, the way the corpus was made but with settings it lacks, so
# that what holds for the corpus is seen to hold for the protocol. SPICETOOL_FRESH=0 leaves them out.
FRESH_SESSIONS: dict[str, dict] = {
    "fresh-lz-quicpref-password-resize": dict(
        description="server lz, client prefers quic, password, xrandr to 800x600 mid-session, pcap",
        image_compression="lz", preferred_compression="quic", password="fresh-pw-7", resize_to="800x600",
        type_text="ls /", pcapng=False, duration=10),
    "fresh-zlibglz-agent-photo": dict(
        description="glz wrapped in zlib, vdagent, a photo drawn while connected, pcapng",
        image_compression="glz", zlib_glz_wan_compression="always", vdagent=True,
        programs=("xterm", "xclock", "xlogo", "photo"), duration=9),
}
FRESH_PORTS, FRESH_DISPLAYS = range(5952, 5958), range(52, 58)


def _extra_sessions() -> dict[str, dict]:
    """SPICETOOL_FRESH_EXTRA=FILE.json ({name: settings of scripts/record_corpus.py's Session}): more
    fresh sessions for this run, to try the acceptance tests on settings nobody has tried yet."""
    path = os.environ.get("SPICETOOL_FRESH_EXTRA")
    if not path:
        return {}
    import json
    extra = json.loads(Path(path).read_text())
    return {name: {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
            for name, settings in extra.items()}


FRESH_SESSIONS.update(_extra_sessions())


def corpus() -> list[Path]:
    """Every capture shipped in captures/ (pcap and pcapng)."""
    return sorted(p for p in CAPTURES.glob("*") if p.suffix in (".pcap", ".pcapng"))


def starts_mid_session(capture: Path) -> bool:
    """Whether a corpus or fresh capture was cut after its link stage (its NAME.json says so)."""
    import json
    return bool(json.loads(capture.with_suffix(".json").read_text()).get("capture", {}).get("starts_mid_session"))


def need_program(name: str) -> str:
    """Path of a real peer program; a failure under CI, a skip elsewhere."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (bash scripts/test.sh installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path




def fresh_enabled() -> bool:
    return os.environ.get("SPICETOOL_FRESH", "1") != "0"


class FreshCaptures:
    """Records each fresh session once per test run, on first use."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.done: dict[str, Path] = {}

    def get(self, name: str) -> Path:
        if name not in self.done:
            for tool in ("Xorg", "spicy", "tshark", "xdotool", "Xvfb"):
                need_program(tool)
            sys.path.insert(0, str(ROOT / "scripts"))
            import peers
            import record_corpus

            port = peers.pick_port(FRESH_PORTS)
            server = peers.pick_display(FRESH_DISPLAYS)
            client = peers.pick_display(FRESH_DISPLAYS, skip=(server,))
            session = record_corpus.Session(name, port=port, server_display=server, client_display=client,
                                            **FRESH_SESSIONS[name])
            meta = record_corpus.record(session, self.directory)
            self.done[name] = self.directory / meta["capture"]["file"]
        return self.done[name]


def wireshark_in_step(seq: list, type_of) -> list:
    """Wireshark's messages up to where it lost its place in the stream.

    Wireshark 4.0 does not skip the body of VD_AGENT_MAX_CLIPBOARD inside the main channel
    and reads the next bytes as a data header of type 0, which no channel defines; from there on
    it decodes that stream at wrong offsets. What comes before is a real second opinion."""
    for i, m in enumerate(seq):
        if type_of(m) == 0:
            return seq[:i]
    return seq


def read_ppm(path: Path):
    """A picture file (spicy-screenshot writes binary PPM) as an (h, w, 3) uint8 array."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


DEPLOYMENT_CORPUS = CAPTURES / "deployment"   # issue 12's real-deployment sessions, by the same recorder


def deployment_capture(name: str) -> Path:
    """A file of the deployment corpus (multi-head guests, lost segments; NAME.json and the truth
    PNGs beside each capture). Kept apart from captures/ until every corpus test holds on them."""
    path = DEPLOYMENT_CORPUS / name
    if not path.exists():
        raise AssertionError(f"{path}: deployment capture missing from the repository")
    return path
