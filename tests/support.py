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


def need_module(name: str):
    """A Python module of an optional extra (bash scripts/test.sh installs them all); a failure under CI,
    a skip elsewhere. Returns the module."""
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"Python module {name} is not installed (bash scripts/test.sh installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def need_package(name: str) -> None:
    """A Debian package a real peer needs that has no program of its own (plugins, a kernel, web pages);
    a failure under CI, a skip elsewhere."""
    import subprocess
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", name], capture_output=True, text=True, check=False)
    if "install ok installed" not in done.stdout:
        message = f"Debian package {name} is not installed (bash scripts/test.sh installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


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

# Deployment sessions recorded at test time, one of each route the shipped ones take, with settings they
# lack (compression, programs, the proxies' own ports). Named "fresh:NAME" in the tests' parameters; their
# files ("fresh:NAME.pcapng", "fresh:NAME.keys.log", ...) come from deployment_capture like the shipped ones.
FRESH_DEPLOYMENT: dict[str, dict] = {
    "fresh-proxy-legs": dict(
        description="spicy through tinyproxy, both legs; server glz, the client prefers lz4; a password",
        proxy=True, image_compression="glz", preferred_compression="lz4", password="fresh-proxy-pw",
        type_text="echo fresh proxy", duration=9),
    "fresh-html5-websockify": dict(
        description="spice-html5 through websockify, both legs; quic, a photo drawn while connected",
        client="spice-html5", websockify=True, image_compression="quic", mouse=False,
        programs=("xterm", "xclock", "xlogo", "photo"), type_text="echo fresh ws", duration=11),
    "fresh-html5-direct": dict(
        description="spice-html5 straight to Xspice's port; lz, xterm and xeyes, typing",
        client="spice-html5", image_compression="lz", mouse=False, programs=("xterm", "xeyes"),
        type_text="uname -a", duration=10),
    "fresh-tls-proxy": dict(
        description="TLS through tinyproxy, the client's leg with its key log and DSB copy; quic, a photo",
        proxy=True, tls=True, capture_legs="client", image_compression="quic",
        programs=("xterm", "xclock", "photo"), duration=9),
    "fresh-lost-segments": dict(
        description="quic, a 900x600 photo drawn while connected; editcap drops two segments inside it",
        image_compression="quic", programs=("xterm", "photo-large"), move_window=False, drop_frames=2, duration=8),
    "fresh-gst-h264-wide": dict(
        description="gstreamer:h264 stream of a 480x270 testsrc (the shipped ones: vp8 default, 320x240)",
        image_compression="lz", streaming_video="all", video_codecs="gstreamer:h264",
        programs=("xterm", "testsrc-wide"), move_window=False, duration=9),
    "fresh-linux-qxl-two-heads": dict(
        description="QEMU booting Linux with two QXL devices, on a port of its own",
        kind="qemu-linux", qxl_heads=2, programs=(), move_window=False, mouse=False, duration=8),
}


def _peers_of(settings: dict) -> tuple[list[str], list[str]]:
    """The programs and the Debian packages (those with no program of their own) a fresh session needs."""
    qemu = settings.get("kind") == "qemu-linux"
    html5 = settings.get("client") == "spice-html5"
    programs = ["tshark", "Xvfb", "spicy", *(["qemu-system-x86_64"] if qemu else ["Xorg", "xdotool"]),
                *(["chromium"] if html5 else []), *(["tinyproxy"] if settings.get("proxy") else []),
                *(["openssl", "editcap"] if settings.get("tls") else []),
                *(["websockify"] if settings.get("websockify") else []),
                *(["editcap"] if settings.get("drop_frames") else []),
                *(["ffplay"] if settings.get("video_codecs") else [])]
    packages = [*(["spice-html5"] if html5 else []), *(["linux-image-amd64", "busybox-static"] if qemu else []),
                *(["gstreamer1.0-plugins-good", "gstreamer1.0-plugins-ugly", "gstreamer1.0-libav"]
                  if settings.get("video_codecs") else [])]
    return programs, packages


FRESH_ROUTE_PORTS = range(5986, 5999)   # proxy, WebSocket, page and TLS ports of the fresh deployment sessions


class FreshDeployment:
    """Records each fresh deployment session once per test run, on first use, into a directory of its
    own (removed at exit); a session that failed to record fails every test that wants it, once each."""

    def __init__(self) -> None:
        self.directory: Path | None = None
        self.done: dict[str, Path] = {}
        self.failed: dict[str, str] = {}
        self.seconds: dict[str, float] = {}   # recording time of each session

    def _dir(self) -> Path:
        if self.directory is None:
            kept = os.environ.get("SPICETOOL_FRESH_DEPLOYMENT_DIR")
            if kept:  # sessions recorded there before are taken as they are, the others recorded into it
                self.directory = Path(kept)
                self.directory.mkdir(parents=True, exist_ok=True)
                self.done.update({n: self.directory for n in FRESH_DEPLOYMENT
                                  if (self.directory / f"{n}.json").exists()})
            else:
                import atexit
                import tempfile
                self.directory = Path(tempfile.mkdtemp(prefix="spicetool-fresh-deployment-"))
                atexit.register(shutil.rmtree, self.directory, True)
        return self.directory

    def session(self, name: str) -> Path:
        """The directory holding session `name`'s files, recorded now if not yet."""
        if name not in FRESH_DEPLOYMENT:
            raise AssertionError(f"{name}: no such fresh deployment session")
        self._dir()
        if name in self.failed:
            pytest.fail(f"fresh session {name} did not record: {self.failed[name]}")
        if name not in self.done:
            settings = FRESH_DEPLOYMENT[name]
            programs, packages = _peers_of(settings)
            for tool in programs:
                need_program(tool)
            for package in packages:
                need_package(package)
            sys.path.insert(0, str(ROOT / "scripts"))
            import time

            import peers
            import record_corpus

            port = peers.pick_port(FRESH_PORTS)
            server = peers.pick_display(FRESH_DISPLAYS)
            client = peers.pick_display(FRESH_DISPLAYS, skip=(server,))
            free = [p for p in FRESH_ROUTE_PORTS if peers.port_free(p) and peers.established_to(p) == 0]
            if len(free) < 4:
                raise peers.PeerError(f"no four free ports among {list(FRESH_ROUTE_PORTS)}")
            route = dict(zip(("proxy_port", "ws_port", "http_port", "tls_port"), free))
            session = record_corpus.Session(name, port=port, server_display=server, client_display=client,
                                            **route, **settings)
            started = time.monotonic()
            try:
                try:
                    record_corpus.record(session, self._dir())
                except record_corpus.CaptureIncomplete:
                    record_corpus.record(session, self._dir())   # as the recorder's own command does
            except Exception as e:  # said once per test that wants it
                self.failed[name] = f"{type(e).__name__}: {e}"
                raise
            self.seconds[name] = time.monotonic() - started
            self.done[name] = self._dir()
        return self.done[name]


# tests import this module both as `support` and as `tests.support`: one recorder for both names
_twin = sys.modules.get("tests.support" if __name__ == "support" else "support")
FRESH_DEPLOYMENT_RECORDER: FreshDeployment = getattr(_twin, "FRESH_DEPLOYMENT_RECORDER", None) or FreshDeployment()


def fresh_deployment(*names: str) -> list[str]:
    """Test parameters for fresh deployment files: "fresh:NAME.SUFFIX" (none when SPICETOOL_FRESH=0)."""
    return list(names) if fresh_enabled() else []


def deployment_capture(name: str) -> Path:
    """A file of the deployment corpus (multi-head guests, lost segments; NAME.json and the truth
    PNGs beside each capture). Kept apart from captures/ until every corpus test holds on them.
    "fresh:NAME.SUFFIX" is a file of a fresh deployment session, recorded on first use."""
    if name.startswith("fresh:"):
        file = name.removeprefix("fresh:")
        path = FRESH_DEPLOYMENT_RECORDER.session(file.split(".")[0]) / file
        if not path.exists():
            raise AssertionError(f"{path}: the fresh session wrote no such file")
        return path
    path = DEPLOYMENT_CORPUS / name
    if not path.exists():
        raise AssertionError(f"{path}: deployment capture missing from the repository")
    return path


def diagnose(path: str | os.PathLike, *extra: str) -> tuple[int, list[dict]]:
    """`spicetool diagnose --json` of a capture: its exit code and its findings (no traceback allowed)."""
    import json
    import subprocess
    done = subprocess.run([sys.executable, "-m", "spicetool", "diagnose", "--json", *extra, str(path)],
                          capture_output=True, text=True, timeout=600)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


def above_info(found: list[dict]) -> list[dict]:
    return [f for f in found if f["severity"] != "info"]
