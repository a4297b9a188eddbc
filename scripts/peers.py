"""Start and stop real SPICE peers (Xspice, Xvfb, spicy, spice-vdagent, QEMU, a spice-gtk GObject client,
tshark) for recordings and tests.

Every peer runs in its own process group and is ended through its own pid, never by name, so that
several sessions (each with its own port and display number) can run side by side on one machine.
Readiness is found by polling (TCP port open, `xdpyinfo` answering, tshark reporting its capture),
not by fixed sleeps. Everything is a context manager:

    with tempfile.TemporaryDirectory() as tmp, Xspice(XspiceSettings(port=5912, display=12), tmp) as xs, \
            Xvfb(13) as xv, Tshark(port=5912, out="s.pcapng") as cap, Spicy(13, port=5912) as client:
        ...
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator, Sequence

XORG = "/usr/lib/xorg/Xorg"
IMAGE_COMPRESSIONS = ("off", "auto_glz", "auto_lz", "quic", "glz", "lz")
WAN_CHOICES = ("auto", "never", "always")
STREAMING_CHOICES = ("off", "all", "filter")
# What spice-gtk's --spice-preferred-compression accepts.
CLIENT_COMPRESSIONS = ("auto-glz", "auto-lz", "quic", "glz", "lz", "lz4", "off")


class PeerError(RuntimeError):
    """A peer did not start, or did not become ready in time."""


def wait_until(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None,
               interval: float = 0.05) -> None:
    """Poll `predicate` until true; fail early if `proc` died (its log tells why)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise PeerError(f"{what}: process exited with {proc.returncode} before becoming ready")
        time.sleep(interval)
    raise PeerError(f"{what}: not ready after {timeout:.0f} s")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def port_free(port: int) -> bool:
    """True when nothing listens on the port (we try to bind it ourselves)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


def established_to(port: int) -> int:
    """How many established IPv4/IPv6 TCP connections go to local `port` (from /proc/net/tcp*)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                remote_port = int(cols[2].rsplit(":", 1)[1], 16)
                if remote_port == port and cols[3] == "01":  # 01 = TCP_ESTABLISHED
                    count += 1
    return count


def display_answers(display: int) -> bool:
    r = subprocess.run(["xdpyinfo", "-display", f":{display}"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return r.returncode == 0


def display_free(display: int) -> bool:
    """No live X server holds `display`; a stale lock (its pid gone, as after a killed run) is cleared, as X does."""
    lock, sock = Path(f"/tmp/.X{display}-lock"), Path(f"/tmp/.X11-unix/X{display}")
    if lock.exists():
        try:
            pid = int(lock.read_text().strip() or "0")
        except (OSError, ValueError):
            pid = 0
        if pid > 0 and pid_alive(pid):
            return False
        lock.unlink(missing_ok=True)
        sock.unlink(missing_ok=True)
        return True
    return not sock.exists()


def pid_alive(pid: int) -> bool:
    """Whether a process has that pid (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pick_port(candidates: Sequence[int]) -> int:
    """The first port of `candidates` nothing listens on (each test or session takes its own)."""
    for port in candidates:
        if port_free(port) and established_to(port) == 0:
            return port
    raise PeerError(f"no free port among {list(candidates)}")


def pick_display(candidates: Sequence[int], skip: Sequence[int] = ()) -> int:
    """The first X display number of `candidates` with no lock file or socket."""
    for display in candidates:
        if display not in skip and display_free(display):
            return display
    raise PeerError(f"no free display among {list(candidates)}")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_until_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def x_env(display: int) -> dict[str, str]:
    env = dict(os.environ)
    env["DISPLAY"] = f":{display}"
    env.pop("WAYLAND_DISPLAY", None)
    return env


class Peer:
    """One child process in its own process group, with its output in a log file."""

    name = "peer"
    stop_signal = signal.SIGTERM

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self._log: IO[bytes] | None = None
        self._log_start = 0

    def _spawn(self, argv: Sequence[str], log_dir: str | os.PathLike, env: dict[str, str] | None = None,
               stdin=subprocess.DEVNULL) -> subprocess.Popen:
        self.log_path = Path(log_dir) / f"{self.name}.log"
        self._log = open(self.log_path, "ab")
        self._log_start = self._log.tell()  # a log dir may be shared by several runs of one peer
        # start_new_session: own process group, so killpg reaches its children but nothing else.
        self.proc = subprocess.Popen(list(argv), stdin=stdin, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        return self.proc

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_text(self) -> str:
        if self.log_path and self.log_path.exists():
            with open(self.log_path, "rb") as f:
                f.seek(self._log_start)
                return f.read().decode(errors="replace")
        return ""

    def signal_group(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def pause(self) -> None:
        self.signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal_group(signal.SIGCONT)

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal_group(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self.signal_group(self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.proc.wait(timeout)
        # The group may hold children that outlive the leader (tshark's dumpcap finishing its file):
        # give them the same time to end on their own, then kill what is left.
        wait_until_gone(self.proc.pid, timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self._log:
            self._log.close()
            self._log = None

    def _ready_or_stop(self, wait) -> None:
        """Run a readiness wait; a peer that never got ready is stopped, not left behind."""
        try:
            wait()
        except PeerError as e:
            tail = self.log_text()[-1500:]  # read before stop() may remove a private log dir
            self.stop()
            raise PeerError(f"{e}\n--- {self.name} output ---\n{tail}") from e
        except BaseException:
            self.stop()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Program(Peer):
    """Any X client (xterm, xclock, ffplay...) started on a display."""

    def __init__(self, argv: Sequence[str], display: int, log_dir: str | os.PathLike, name: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        super().__init__()
        self.argv = list(argv)
        self.name = name or Path(argv[0]).name
        self._spawn(self.argv, log_dir, env={**x_env(display), **(env or {})})


# ---------------------------------------------------------------- X servers


class XServer(Peer):
    display: int

    def wait_ready(self, timeout: float = 20.0) -> None:
        wait_until(lambda: display_answers(self.display), timeout, f"{self.name} :{self.display}", self.proc)


class Xvfb(XServer):
    """A virtual framebuffer X server, used as the desktop the client windows live on."""

    name = "Xvfb"

    def __init__(self, display: int, size: str = "1280x900x24", log_dir: str | os.PathLike | None = None) -> None:
        super().__init__()
        if not display_free(display):
            raise PeerError(f"display :{display} is in use")
        self.display = display
        self._tmp = None if log_dir else tempfile.TemporaryDirectory(prefix=f"xvfb{display}-")
        self.dir = Path(log_dir or self._tmp.name)
        self._spawn(["Xvfb", f":{display}", "-screen", "0", size, "-nolisten", "tcp", "-noreset"], self.dir)
        self._ready_or_stop(self.wait_ready)

    def stop(self, timeout: float = 5.0) -> None:
        super().stop(timeout)
        if self._tmp:
            self._tmp.cleanup()


@dataclass
class XspiceSettings:
    """Everything spice-server inside Xspice is configured with (Device section options)."""

    port: int
    display: int
    password: str | None = None          # None: ticketing disabled
    image_compression: str | None = None  # off|auto_glz|auto_lz|quic|glz|lz (server default auto_glz)
    jpeg_wan_compression: str | None = None  # auto|never|always
    zlib_glz_wan_compression: str | None = None  # auto|never|always
    streaming_video: str | None = None    # off|all|filter
    video_codecs: str | None = None       # e.g. "spice:mjpeg"
    deferred_fps: int | None = None
    vdagent: bool = False
    playback: bool = False                # make a playback FIFO directory
    extra_options: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        if self.image_compression not in (None, *IMAGE_COMPRESSIONS):
            raise ValueError(f"image_compression {self.image_compression!r}")
        for name in ("jpeg_wan_compression", "zlib_glz_wan_compression"):
            if getattr(self, name) not in (None, *WAN_CHOICES):
                raise ValueError(f"{name} {getattr(self, name)!r}")
        if self.streaming_video not in (None, *STREAMING_CHOICES):
            raise ValueError(f"streaming_video {self.streaming_video!r}")


def xspice_config(s: XspiceSettings, tmp: Path) -> str:
    """An xorg.conf for the spiceqxl driver.

    The buffer sizes and NumHeads are what keeps the Debian build from crashing at start; a Display
    subsection (Modes/Virtual) makes it segfault, so there is none (the screen comes up 1024x768x24).
    """
    opts: dict[str, str] = {
        "FrameBufferSize": "16", "SurfaceBufferSize": "128", "CommandBufferSize": "128", "NumHeads": "1",
        "SpicePort": str(s.port), "SpiceAddr": "127.0.0.1",
    }
    if s.password is None:
        opts["SpiceDisableTicketing"] = "True"
    else:
        opts["SpicePassword"] = s.password
    for key, value in (("SpiceImageCompression", s.image_compression),
                       ("SpiceJpegWanCompression", s.jpeg_wan_compression),
                       ("SpiceZlibGlzWanCompression", s.zlib_glz_wan_compression),
                       ("SpiceStreamingVideo", s.streaming_video),
                       ("SpiceVideoCodecs", s.video_codecs),
                       ("SpiceDeferredFPS", None if s.deferred_fps is None else str(s.deferred_fps))):
        if value is not None:
            opts[key] = value
    if s.vdagent:
        opts.update(SpiceVdagentEnabled="True", SpiceVdagentVirtioPath=str(tmp / "vda.virtio"),
                    SpiceVdagentUinputPath=str(tmp / "vda.uinput"),
                    SpiceVdagentUid=str(os.getuid()), SpiceVdagentGid=str(os.getgid()))
    if s.playback:
        opts["SpicePlaybackFIFODir"] = str(tmp / "audio")
    opts.update(s.extra_options)
    device = "\n".join(f'    Option "{k}" "{v}"' for k, v in opts.items())
    return f"""Section "Device"
    Identifier "XSPICE"
    Driver "spiceqxl"
{device}
EndSection

Section "InputDevice"
    Identifier "XSPICE POINTER"
    Driver "xspice pointer"
EndSection

Section "InputDevice"
    Identifier "XSPICE KEYBOARD"
    Driver "xspice keyboard"
EndSection

Section "Monitor"
    Identifier "Configured Monitor"
EndSection

Section "Screen"
    Identifier "XSPICE Screen"
    Monitor "Configured Monitor"
    Device "XSPICE"
    DefaultDepth 24
EndSection

Section "ServerLayout"
    Identifier "XSPICE Layout"
    Screen "XSPICE Screen"
    InputDevice "XSPICE KEYBOARD"
    InputDevice "XSPICE POINTER"
EndSection

Section "ServerFlags"
    Option "AutoAddDevices" "False"
EndSection
"""


class Xspice(XServer):
    """Xorg with the spiceqxl driver: a real spice-server in front of an X desktop.

    We run Xorg ourselves with a config written into `tmp` (the Xspice wrapper crashes with its
    generated config and cannot combine --config with --vdagent). Ready when the X display answers
    and the SPICE port listens.
    """

    name = "Xspice"

    def __init__(self, settings: XspiceSettings, tmp: str | os.PathLike, timeout: float = 30.0) -> None:
        super().__init__()
        settings.validate()
        self.settings = settings
        self.display = settings.display
        self.port = settings.port
        self.dir = Path(tmp)
        if not display_free(self.display):
            raise PeerError(f"display :{self.display} is in use")
        if not port_free(self.port):
            raise PeerError(f"port {self.port} is in use")
        if settings.playback:
            (self.dir / "audio").mkdir(exist_ok=True)
        self.config_path = self.dir / "xorg.conf"
        self.config_path.write_text(xspice_config(settings, self.dir))
        self.xorg_log = self.dir / "Xorg.log"
        (self.dir / "none.d").mkdir(exist_ok=True)  # an empty config dir: ignore the system's xorg.conf.d
        # The Xorg options are in the config; clear XSPICE_* so a caller's environment cannot override them.
        env = {k: v for k, v in os.environ.items() if not k.startswith("XSPICE_")}
        self._spawn([XORG, "-config", str(self.config_path), "-configdir", str(self.dir / "none.d"),
                     "-logfile", str(self.xorg_log), "-noreset", "-nolisten", "tcp", f":{self.display}"],
                    self.dir, env=env)
        self._ready_or_stop(lambda: (self.wait_ready(timeout), wait_until(
            lambda: port_open(self.port), timeout, f"Xspice port {self.port}", self.proc)))

    @property
    def audio_dir(self) -> Path:
        return self.dir / "audio"

    def xrandr(self, size: str) -> None:
        """Change the desktop resolution (the client sees the primary surface replaced)."""
        subprocess.run(["xrandr", "-display", f":{self.display}", "-s", size], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def screen_size(self) -> tuple[int, int]:
        out = subprocess.run(["xdpyinfo", "-display", f":{self.display}"], check=True, capture_output=True,
                             text=True).stdout
        for line in out.splitlines():
            if "dimensions:" in line:
                w, h = line.split()[1].split("x")
                return int(w), int(h)
        raise PeerError("xdpyinfo shows no dimensions")

    def screenshot(self, png: str | os.PathLike) -> Path:
        return xwd_png(self.display, png)


class VdAgent(Peer):
    """spice-vdagentd + spice-vdagent for an Xspice started with `vdagent=True`.

    `-X -o` (no systemd-logind/console-kit session lookup, one session only) is what makes the
    daemon accept the X session agent; without it no agent messages flow.
    """

    name = "spice-vdagentd"

    def __init__(self, xspice: Xspice, timeout: float = 15.0,
                 file_xfer_dir: str | os.PathLike | None = None) -> None:
        """`file_xfer_dir`: where the session agent saves files the client copies to the guest
        (`spice-vdagent -f DIR -o 0`). Without it the agent looks for the XDG download dir and, finding
        none, disables file transfer (the client then gets STATUS DISABLED)."""
        super().__init__()
        d = xspice.dir
        self.udcs = d / "vda.udcs"
        self.file_xfer_dir = Path(file_xfer_dir) if file_xfer_dir is not None else None
        xfer = [] if self.file_xfer_dir is None else ["-f", str(self.file_xfer_dir), "-o", "0"]
        self._spawn(["spice-vdagentd", "-f", "-x", "-X", "-o", "-S", str(self.udcs),
                     "-s", str(d / "vda.virtio"), "-u", str(d / "vda.uinput")], d)
        self.agent: Program | None = None
        self._ready_or_stop(lambda: wait_until(self.udcs.exists, timeout, "spice-vdagentd socket", self.proc))
        self.agent = Program(["spice-vdagent", "-x", "-s", str(d / "vda.virtio"), "-S", str(self.udcs), *xfer],
                             xspice.display, d, name="spice-vdagent")

    def stop(self, timeout: float = 5.0) -> None:
        if self.agent is not None:
            self.agent.stop(timeout)
        super().stop(timeout)


# ---------------------------------------------------------------- audio


class PlaybackTone(Peer):
    """ffmpeg writing a sine tone as 48 kHz s16le stereo PCM into a FIFO in Xspice's playback dir."""

    name = "ffmpeg-tone"

    def __init__(self, xspice: Xspice, frequency: int = 440, seconds: float = 60.0) -> None:
        super().__init__()
        if not xspice.settings.playback:
            raise PeerError("Xspice was started without a playback FIFO directory")
        self.fifo = xspice.audio_dir / "tone.fifo"
        if not self.fifo.exists():
            os.mkfifo(self.fifo)
        # -re: real-time pace, as a sound server would feed it.
        self._spawn(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
                     "-i", f"sine=frequency={frequency}:sample_rate=48000:duration={seconds}",
                     "-ac", "2", "-ar", "48000", "-f", "s16le", "-y", str(self.fifo)], xspice.dir)


# ---------------------------------------------------------------- clients


class Spicy(Peer):
    """spice-gtk's test client on an X display (usually an Xvfb). Ready when its main channel connected."""

    name = "spicy"

    def __init__(self, display: int, port: int | None, host: str = "127.0.0.1", password: str | None = None,
                 preferred_compression: str | None = None, log_dir: str | os.PathLike | None = None,
                 extra_args: Sequence[str] = (), timeout: float = 20.0, min_channels: int = 2,
                 tls_port: int | None = None, ca_file: str | os.PathLike | None = None,
                 proxy: str | None = None, env: dict[str, str] | None = None) -> None:
        """`tls_port` (-s) with `ca_file`: TLS channels (all of them when `port` is None);
        `proxy`: spice-gtk's SPICE_PROXY (e.g. http://127.0.0.1:3128), each channel one HTTP CONNECT."""
        super().__init__()
        if preferred_compression not in (None, *CLIENT_COMPRESSIONS):
            raise ValueError(f"preferred_compression {preferred_compression!r}")
        if port is None and tls_port is None:
            raise ValueError("spicy needs a port or a TLS port")
        self.display, self.port = display, port
        self._tmp = None if log_dir else tempfile.TemporaryDirectory(prefix="spicy-")
        argv = ["spicy", "-h", host]
        if port is not None:
            argv += ["-p", str(port)]
        if tls_port is not None:
            argv += ["-s", str(tls_port)]
        if ca_file is not None:
            argv.append(f"--spice-ca-file={ca_file}")
        if password is not None:
            argv += ["-w", password]
        if preferred_compression:
            argv.append(f"--spice-preferred-compression={preferred_compression}")
        argv += list(extra_args)
        self.argv = argv
        full_env = {**x_env(display), **(env or {})}
        if proxy:
            full_env["SPICE_PROXY"] = proxy
        # The client's own connections go to the proxy when there is one, else to the (TLS) port.
        watch = int(proxy.rsplit(":", 1)[1].strip("/")) if proxy else (port if port is not None else tls_port)
        before = established_to(watch)
        self._spawn(argv, log_dir or self._tmp.name, env=full_env)
        # main + display (+ inputs, cursor...) channels are separate TCP connections.
        self._ready_or_stop(lambda: wait_until(lambda: established_to(watch) >= before + min_channels, timeout,
                                               f"spicy to port {watch}", self.proc))

    def window_id(self, timeout: float = 10.0) -> str:
        """The X window id of spicy's top-level window on its display."""
        found: list[str] = []

        def search() -> bool:
            r = subprocess.run(["xdotool", "search", "--onlyvisible", "--pid", str(self.pid)],
                               env=x_env(self.display), capture_output=True, text=True)
            found[:] = r.stdout.split()
            return bool(found)

        wait_until(search, timeout, "spicy window", self.proc, interval=0.2)
        return found[-1]

    def stop(self, timeout: float = 5.0) -> None:
        super().stop(timeout)
        if self._tmp:
            self._tmp.cleanup()


def spicy_screenshot(port: int, out: str | os.PathLike, host: str = "127.0.0.1", password: str | None = None,
                     timeout: float = 30.0) -> Path:
    """Run spicy-screenshot (headless: connect, wait for the primary surface, write a PPM, exit)."""
    argv = ["spicy-screenshot", "-h", host, "-p", str(port), "-o", str(out)]
    if password is not None:
        argv += ["-w", password]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise PeerError("spicy-screenshot timed out")
    if p.returncode != 0 or not Path(out).exists():
        raise PeerError(f"spicy-screenshot failed ({p.returncode}): {output.decode(errors='replace')}")
    return Path(out)


GLIB_CLIENT = Path(__file__).resolve().parent / "spice_glib_client.py"


def glib_screenshot(port: int, displays: Sequence[int], out: str | os.PathLike, host: str = "127.0.0.1",
                    timeout: float = 30.0) -> dict[int, Path]:
    """spice-gtk (SpiceClientGLib, through Debian's python3-gi) links every display and cursor
    channel, as spicy does, and shoots each display channel of `displays` as spicy-screenshot
    shoots display 0 (at its MARK) into `out` with {display} replaced by the channel id."""
    argv = ["/usr/bin/python3", str(GLIB_CLIENT), "screenshot", "--host", host, "--port", str(port),
            "--out", str(out), "--timeout", str(int(timeout))]
    for d in displays:
        argv += ["--display", str(d)]
    display = ", ".join(map(str, displays))
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = p.communicate(timeout=timeout + 5)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise PeerError(f"spice_glib_client screenshot of display {display} timed out")
    paths = {d: Path(str(out).replace("{display}", str(d))) for d in displays}
    if p.returncode != 0 or not all(path.exists() for path in paths.values()):
        raise PeerError(f"spice_glib_client screenshot of display {display} failed ({p.returncode}): "
                        f"{output.decode(errors='replace')[-2000:]}")
    return paths


@contextlib.contextmanager
def spicy_on_xvfb(port: int, displays: Sequence[int] = range(10, 31), screen: str = "1280x900x24",
                  **spicy_args) -> Iterator[Spicy]:
    """A spicy client on a fresh Xvfb of its own, connected to `port` (Xspice or our own server)."""
    with Xvfb(pick_display(displays), screen) as xvfb, Spicy(xvfb.display, port, **spicy_args) as client:
        yield client


# ---------------------------------------------------------------- QEMU


QEMU = "qemu-system-x86_64"
# Named spiceport chardevs QEMU offers as SPICE port channels (the names are what the client sees).
SERIAL_PORT_NAME = "org.qemu.console.serial.0"
WEBDAV_PORT_NAME = "org.spice-space.webdav.0"


@dataclass
class QemuSettings:
    """A diskless QEMU whose firmware boot screens are the desktop, served by spice-server through QXL."""

    port: int
    serial_port: bool = True    # spiceport chardev on a virtserialport: a port channel
    webdav: bool = True         # the org.spice-space.webdav.0 spiceport: the webdav channel
    usbredir: bool = True       # qemu-xhci + usb-redir on a spicevmc chardev: a usbredir channel
    audio: bool = True          # -audiodev spice + intel-hda + hda-duplex: playback and record channels
    memory_mib: int = 256
    accel: str = "tcg"          # software emulation: the same on every machine
    network: bool = False       # no NIC: no iPXE, the firmware ends on a still "No bootable device" screen
    monitor: str | None = None  # a unix socket path for the human monitor (stop, screendump)
    spice_extra: str = ""       # more -spice options, e.g. "tls-port=N,x509-dir=D,tls-channel=main"
    incoming: int | None = None  # a migration target: waits for the source's state on 127.0.0.1:PORT

    def argv(self) -> list[str]:
        spice = f"port={self.port},addr=127.0.0.1,disable-ticketing=on" + (f",{self.spice_extra}" if self.spice_extra else "")
        a = [QEMU, "-machine", f"q35,accel={self.accel}", "-m", str(self.memory_mib), "-vga", "qxl",
             "-display", "none", "-spice", spice]
        if not self.network:
            a += ["-nic", "none"]
        if self.monitor:
            a += ["-monitor", f"unix:{self.monitor},server=on,wait=off"]
        if self.serial_port or self.webdav:
            a += ["-device", "virtio-serial"]
        if self.serial_port:
            a += ["-chardev", f"spiceport,id=p0,name={SERIAL_PORT_NAME}",
                  "-device", f"virtserialport,chardev=p0,name={SERIAL_PORT_NAME}"]
        if self.webdav:
            a += ["-chardev", f"spiceport,id=wd,name={WEBDAV_PORT_NAME}",
                  "-device", f"virtserialport,chardev=wd,name={WEBDAV_PORT_NAME}"]
        if self.usbredir:
            a += ["-device", "qemu-xhci", "-chardev", "spicevmc,name=usbredir,id=ur1",
                  "-device", "usb-redir,chardev=ur1,id=urd1"]
        if self.audio:
            a += ["-audiodev", "spice,id=snd0", "-device", "ich9-intel-hda", "-device", "hda-duplex,audiodev=snd0"]
        if self.incoming is not None:
            a += ["-incoming", f"tcp:127.0.0.1:{self.incoming}"]
        return a


class Qemu(Peer):
    """qemu-system-x86_64 with a QXL VGA and SPICE on 127.0.0.1:PORT. Ready when the port listens."""

    name = "qemu"

    def __init__(self, settings: QemuSettings, log_dir: str | os.PathLike, timeout: float = 30.0) -> None:
        super().__init__()
        if not port_free(settings.port):
            raise PeerError(f"port {settings.port} is in use")
        self.settings = settings
        self.port = settings.port
        self._spawn(settings.argv(), log_dir)
        # ready when its SPICE port listens and its monitor socket is there (QEMU makes them in no set order)
        monitor = Path(settings.monitor) if settings.monitor else None
        self._ready_or_stop(lambda: wait_until(lambda: port_open(self.port) and (monitor is None or monitor.exists()),
                                               timeout, f"qemu port {self.port}", self.proc))

    def hmp(self, command: str, timeout: float = 10.0) -> str:
        """One human-monitor command (QemuSettings.monitor must be set); returns its output."""
        if not self.settings.monitor:
            raise PeerError("qemu was started without a monitor socket")
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(self.settings.monitor)
            out = b""
            while not out.endswith(b"(qemu) "):  # the banner and first prompt
                out += s.recv(4096)
            s.sendall(command.encode() + b"\n")
            out = b""
            while not out.endswith(b"(qemu) "):
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
        return out.decode(errors="replace")

    def screendump(self, png: str | os.PathLike) -> Path:
        """Ground truth: QEMU's own framebuffer of the QXL/VGA head (`screendump`), as PNG."""
        ppm = Path(png).with_suffix(".ppm")
        self.hmp(f"screendump {ppm}")
        wait_until(lambda: ppm.exists() and ppm.stat().st_size > 0, 10, "qemu screendump", self.proc)
        convert = shutil.which("convert") or "/usr/bin/convert"
        subprocess.run([convert, f"ppm:{ppm}", f"png:{png}"], check=True, capture_output=True)
        ppm.unlink()
        return Path(png)


# ---------------------------------------------------------------- peers of real deployments


class Tinyproxy(Peer):
    """tinyproxy as an HTTP CONNECT proxy (what Proxmox's spiceproxy and oVirt's SPICE proxy are), with a
    config of our own: loopback only, CONNECT allowed to `connect_ports` only. Ready when its port listens."""

    name = "tinyproxy"

    def __init__(self, port: int, connect_ports: Sequence[int], log_dir: str | os.PathLike,
                 timeout: float = 15.0) -> None:
        super().__init__()
        if not port_free(port):
            raise PeerError(f"port {port} is in use")
        self.port = port
        self.connect_ports = list(connect_ports)
        self.config_path = Path(log_dir) / "tinyproxy.conf"
        self.config = tinyproxy_config(port, self.connect_ports)
        self.config_path.write_text(self.config)
        self._spawn(["tinyproxy", "-d", "-c", str(self.config_path)], log_dir)
        self._ready_or_stop(lambda: wait_until(lambda: port_open(port), timeout, f"tinyproxy port {port}",
                                               self.proc))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def tinyproxy_config(port: int, connect_ports: Sequence[int]) -> str:
    # Timeout: an idle SPICE channel (cursor, inputs) must not be cut by the proxy mid-session.
    return "".join([f"Port {port}\n", "Listen 127.0.0.1\n", "Allow 127.0.0.1\n", "Timeout 600\n",
                    "MaxClients 64\n", "LogLevel Info\n", *(f"ConnectPort {p}\n" for p in connect_ports)])


class Websockify(Peer):
    """websockify relaying WebSocket connections on `port` to the plain TCP `target` (one per channel)."""

    name = "websockify"

    def __init__(self, port: int, target: int, log_dir: str | os.PathLike, timeout: float = 15.0) -> None:
        super().__init__()
        if not port_free(port):
            raise PeerError(f"port {port} is in use")
        self.port, self.target = port, target
        self.argv = ["websockify", f"127.0.0.1:{port}", f"127.0.0.1:{target}"]
        self._spawn(self.argv, log_dir)
        self._ready_or_stop(lambda: wait_until(lambda: port_open(port), timeout, f"websockify port {port}",
                                               self.proc))


class HttpServer(Peer):
    """`python3 -m http.server` serving a directory on 127.0.0.1:PORT (the spice-html5 pages)."""

    name = "http-server"

    def __init__(self, port: int, directory: str | os.PathLike, log_dir: str | os.PathLike,
                 timeout: float = 15.0) -> None:
        super().__init__()
        if not port_free(port):
            raise PeerError(f"port {port} is in use")
        self.port, self.directory = port, Path(directory)
        self.argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                     "--directory", str(directory)]
        self._spawn(self.argv, log_dir)
        self._ready_or_stop(lambda: wait_until(lambda: port_open(port), timeout, f"http.server port {port}",
                                               self.proc))


SPICE_HTML5_DIR = Path("/usr/share/spice-html5")


class Chromium(Peer):
    """Chromium on an X display (an Xvfb) showing one page as an app window (no toolbar), with a
    profile of its own in a private directory. Ready when `min_connections` are established to
    `watch_port` (spice-html5: one WebSocket per channel)."""

    name = "chromium"

    def __init__(self, display: int, url: str, log_dir: str | os.PathLike, watch_port: int | None = None,
                 min_connections: int = 2, window_size: str = "1100,860", timeout: float = 60.0) -> None:
        super().__init__()
        self.display, self.url = display, url
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        before = established_to(watch_port) if watch_port else 0
        # --test-type: no "unsupported command-line flag" infobar over the page.
        self.argv = ["chromium", "--no-sandbox", "--test-type", "--no-first-run", "--disable-gpu",
                     "--no-default-browser-check",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--password-store=basic", "--disable-features=Translate,MediaRouter",
                     f"--user-data-dir={self._profile.name}", f"--window-size={window_size}",
                     "--window-position=0,0", f"--app={url}"]
        self._spawn(self.argv, log_dir, env=x_env(display))
        if watch_port:
            self._ready_or_stop(lambda: wait_until(lambda: established_to(watch_port) >= before + min_connections,
                                                   timeout, f"chromium to port {watch_port}", self.proc,
                                                   interval=0.2))

    def window_id(self, timeout: float = 20.0) -> str:
        """Chromium's visible top-level window (its browser process is the group leader)."""
        found: list[str] = []

        def search() -> bool:
            r = subprocess.run(["xdotool", "search", "--onlyvisible", "--class", "chromium"],
                               env=x_env(self.display), capture_output=True, text=True)
            found[:] = r.stdout.split()
            return bool(found)

        wait_until(search, timeout, "chromium window", self.proc, interval=0.2)
        return found[-1]

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self._profile.cleanup()


@dataclass
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls_files(d: str | os.PathLike, host: str = "127.0.0.1") -> TlsFiles:
    """A self-signed CA and a server certificate for `host` (CN and subjectAltName IP), made with openssl."""
    d = Path(d)
    ca_key, ca, key, csr, cert = (d / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = d / "server.ext"
    ext.write_text(f"subjectAltName=IP:{host},DNS:localhost\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")

    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "30",
         "-subj", "/O=spicetool corpus/CN=spicetool corpus CA")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
         "-subj", f"/O=spicetool corpus/CN={host}")
    ossl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
         "-out", str(cert), "-days", "30", "-extfile", str(ext))
    return TlsFiles(ca, cert, key)


TLS_FRONT = Path(__file__).resolve().parent / "tls_front.py"


class TlsFront(Peer):
    """scripts/tls_front.py: TLS on `port` relayed to the plain `backend` port, every connection's secrets
    written to `keylog` (NSS key log format). Ready when its port listens."""

    name = "tls-front"

    def __init__(self, port: int, backend: int, files: TlsFiles, keylog: str | os.PathLike,
                 log_dir: str | os.PathLike, max_version: str = "1.3", timeout: float = 15.0) -> None:
        super().__init__()
        if not port_free(port):
            raise PeerError(f"port {port} is in use")
        self.port, self.backend, self.keylog = port, backend, Path(keylog)
        self.argv = [sys.executable, str(TLS_FRONT), "--listen", str(port), "--backend", str(backend),
                     "--cert", str(files.cert), "--key", str(files.key), "--keylog", str(keylog),
                     "--max-version", max_version]
        self._spawn(self.argv, log_dir)
        # Ready when it says so (a probe connection would put a failed handshake into its log).
        self._ready_or_stop(lambda: wait_until(lambda: "listening on" in self.log_text(), timeout,
                                               f"tls front port {port}", self.proc))


# ---------------------------------------------------------------- QEMU booting Linux (kernel QXL driver)


QXL_MODULES = ("drm", "ttm", "drm_ttm_helper", "drm_kms_helper", "qxl")  # insmod order (their dependencies)
BUSYBOX = Path("/bin/busybox")
GUEST_READY = "SPICETOOL-GUEST-READY"


def debian_kernel() -> tuple[Path, str]:
    """The newest /boot/vmlinuz-VERSION with its modules in /lib/modules/VERSION."""
    found = sorted((p for p in Path("/boot").glob("vmlinuz-*") if (Path("/lib/modules") / p.name[8:]).is_dir()),
                   key=lambda p: p.stat().st_mtime)
    if not found:
        raise PeerError("no /boot/vmlinuz-* with modules in /lib/modules")
    return found[-1], found[-1].name[len("vmlinuz-"):]


def module_file(version: str, name: str) -> Path:
    base = Path("/lib/modules") / version
    for line in (base / "modules.dep").read_text().splitlines():
        path = line.split(":", 1)[0]
        stem = Path(path).name.split(".ko", 1)[0]
        if stem.replace("-", "_") == name:
            return base / path
    raise PeerError(f"module {name} not in {base}/modules.dep")


def module_bytes(path: Path) -> bytes:
    """A module's ELF bytes (Debian may ship them compressed; busybox insmod wants them plain)."""
    data = path.read_bytes()
    if path.suffix == ".xz":
        import lzma
        return lzma.decompress(data)
    if path.suffix == ".zst":
        return subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
    if path.suffix == ".gz":
        import gzip
        return gzip.decompress(data)
    return data


def cpio_newc(entries: Sequence[tuple[str, int, bytes]]) -> bytes:
    """An uncompressed initramfs (cpio "newc"): (path, mode, data) entries; symlinks carry their target
    as data. Owners root, times 0, so the same packages give the same bytes."""
    out = bytearray()

    def pad4() -> None:
        out.extend(b"\0" * (-len(out) % 4))

    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        fields = [ino if name != "TRAILER!!!" else 0, mode, 0, 0, 1 if not mode & 0o040000 else 2, 0, len(data),
                  0, 0, 0, 0, len(name) + 1, 0]
        out += b"070701" + b"".join(b"%08X" % f for f in fields)
        out += name.encode() + b"\0"
        pad4()
        out += data
        pad4()
    return bytes(out)


def guest_pattern(width: int, lines: int, seed: int) -> bytes:
    """`lines` scanlines of 32-bit BGRX pixels: colour bars with a gradient, different per seed."""
    row = bytearray()
    for x in range(width):
        bar = (x * 8 // width + seed) % 8
        level = 128 + (x * 127 // max(1, width - 1))
        b, g, r = (level if bar & 1 else 40, level if bar & 2 else 40, level if bar & 4 else 40)
        row += bytes((b, g, r, 0))
    out = bytearray()
    for y in range(lines):
        shade = 255 - (y * 3) % 64
        out += bytes(v * shade // 255 if i % 4 != 3 else 0 for i, v in enumerate(row))
    return bytes(out)


def guest_init(heads: int, pattern_lines: int, bands: int) -> str:
    """The initramfs /init: mount, load the QXL modules, fbcon text, then patterns into each framebuffer
    (several scanlines per write: Linux 6.1 computes an empty damage rectangle for exactly one)."""
    fb_writes = []
    for fb in range(heads):
        fb_writes.append(f"""
stride=$(cat /sys/class/graphics/fb{fb}/stride)
vh=$(cat /sys/class/graphics/fb{fb}/virtual_size | cut -d, -f2)
g=/sys/class/graphics/fb{fb}
echo "fb{fb}: stride $stride, virtual_size $(cat $g/virtual_size), bpp $(cat $g/bits_per_pixel)" > /dev/ttyS0
i=0
while [ $i -lt {bands} ]; do
  band=$(( (vh / 2 / {pattern_lines}) + i * 2 ))
  dd if=/pattern{fb}.raw of=/dev/fb{fb} bs=$((stride * {pattern_lines})) seek=$band count=1 conv=notrunc 2>/dev/null
  echo "fb{fb}: wrote {pattern_lines} lines at line $((band * {pattern_lines}))" > /dev/ttyS0
  i=$((i + 1))
  sleep 0.3
done""")
    return f"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /bin /sbin /usr/bin /usr/sbin /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox --install -s
echo "spicetool guest: loading {' '.join(QXL_MODULES)}" > /dev/ttyS0
for m in {' '.join(QXL_MODULES)}; do insmod /lib/modules/$m.ko || echo "insmod $m failed" > /dev/ttyS0; done
n=0
while [ ! -e /dev/fb{heads - 1} ] && [ $n -lt 200 ]; do sleep 0.1; n=$((n + 1)); done
ls -l /dev/fb* > /dev/ttyS0 2>&1
# No blinking cursor and no late kernel messages on the console: the last picture stays still.
echo 0 > /sys/class/graphics/fbcon/cursor_blink
dmesg -n 1
printf '\\033[2J\\033[H\\033[?25l' > /dev/tty1
printf 'spicetool corpus: a Linux guest drawing through the kernel QXL driver\\n\\n' > /dev/tty1
printf 'kernel %s, {heads} QXL device(s)\\n' "$(uname -r)" > /dev/tty1
cat /proc/cmdline > /dev/tty1
printf '\\nfbcon text first, then colour bars written into /dev/fb0 ({pattern_lines} scanlines a write)\\n' > /dev/tty1
sleep 1
{''.join(fb_writes)}
echo {GUEST_READY} > /dev/ttyS0
while true; do sleep 3600; done
"""


def build_initramfs(out: str | os.PathLike, heads: int = 1, width: int = 1024, pattern_lines: int = 16,
                    bands: int = 6) -> dict:
    """A busybox initramfs with the QXL modules of the machine's Debian kernel; what went in, for the record."""
    kernel, version = debian_kernel()
    if not BUSYBOX.exists():
        raise PeerError("busybox-static is not installed (/bin/busybox)")
    entries: list[tuple[str, int, bytes]] = [(d, 0o040755, b"") for d in ("bin", "dev", "proc", "sys", "lib",
                                                                         "lib/modules", "tmp")]
    entries.append(("bin/busybox", 0o100755, BUSYBOX.read_bytes()))
    entries.append(("bin/sh", 0o120777, b"busybox"))
    modules = []
    for name in QXL_MODULES:
        src = module_file(version, name)
        entries.append((f"lib/modules/{name}.ko", 0o100644, module_bytes(src)))
        modules.append(str(src))
    for fb in range(heads):
        entries.append((f"pattern{fb}.raw", 0o100644, guest_pattern(width, pattern_lines, seed=3 * fb)))
    init = guest_init(heads, pattern_lines, bands)
    entries.append(("init", 0o100755, init.encode()))
    Path(out).write_bytes(cpio_newc(entries))
    return {"kernel": str(kernel), "kernel_version": version, "busybox": str(BUSYBOX), "modules": modules,
            "insmod_order": list(QXL_MODULES), "init": init, "pattern_lines_per_write": pattern_lines,
            "bytes": Path(out).stat().st_size}


@dataclass
class QemuLinuxSettings:
    """QEMU booting the machine's Debian kernel with a busybox initramfs; the kernel's qxl driver draws."""

    port: int
    initrd: str
    kernel: str
    monitor: str
    serial_log: str
    heads: int = 1               # QXL devices: the VGA one, plus `-device qxl,id=qxl1` for a second
    memory_mib: int = 512
    accel: str = "tcg"

    def argv(self) -> list[str]:
        a = [QEMU, "-machine", f"pc,accel={self.accel}", "-m", str(self.memory_mib), "-nic", "none",
             "-kernel", self.kernel, "-initrd", self.initrd,
             "-append", "console=ttyS0 console=tty0 rdinit=/init panic=-1",
             "-vga", "qxl", "-spice", f"port={self.port},addr=127.0.0.1,disable-ticketing=on",
             "-display", "none", "-monitor", f"unix:{self.monitor},server=on,wait=off",
             "-serial", f"file:{self.serial_log}", "-no-reboot"]
        for i in range(1, self.heads):
            a += ["-device", f"qxl,id=qxl{i}"]
        return a


class QemuLinux(Qemu):
    """qemu-system-x86_64 booting Linux with QXL head(s); `wait_guest` polls the serial log for /init's
    last line."""

    def __init__(self, settings: QemuLinuxSettings, log_dir: str | os.PathLike, timeout: float = 30.0) -> None:
        Peer.__init__(self)
        if not port_free(settings.port):
            raise PeerError(f"port {settings.port} is in use")
        self.settings = settings  # type: ignore[assignment]  (has .monitor as Qemu.hmp needs)
        self.port = settings.port
        self._spawn(settings.argv(), log_dir)
        monitor = Path(settings.monitor) if settings.monitor else None
        self._ready_or_stop(lambda: wait_until(lambda: port_open(self.port) and (monitor is None or monitor.exists()),
                                               timeout, f"qemu port {self.port}", self.proc))

    def serial_text(self) -> str:
        p = Path(self.settings.serial_log)
        return p.read_text(errors="replace") if p.exists() else ""

    def wait_guest(self, timeout: float = 180.0) -> None:
        try:
            wait_until(lambda: GUEST_READY in self.serial_text(), timeout, "guest /init", self.proc, interval=0.5)
        except PeerError as e:
            raise PeerError(f"{e}\n--- serial ---\n{self.serial_text()[-3000:]}") from e

    def screendump(self, png: str | os.PathLike, device: str | None = None) -> Path:
        """Ground truth of one head: `screendump FILE [DEVICE]` (QEMU 7.2 HMP syntax), as PNG."""
        if device is None:
            return super().screendump(png)
        ppm = Path(png).with_suffix(".ppm")
        self.hmp(f"screendump {ppm} {device}")
        wait_until(lambda: ppm.exists() and ppm.stat().st_size > 0, 10, "qemu screendump", self.proc)
        convert = shutil.which("convert") or "/usr/bin/convert"
        subprocess.run([convert, f"ppm:{ppm}", f"png:{png}"], check=True, capture_output=True)
        ppm.unlink()
        return Path(png)



# ---------------------------------------------------------------- spice-gtk GObject client


GI_PYTHON = "/usr/bin/python3"  # Debian's python: python3-gi and the SpiceClientGLib typelib live there
GLIB_CLIENT = Path(__file__).resolve().parent / "spice_glib_client.py"


class GlibClient(Peer):
    """scripts/spice_glib_client.py (spice-gtk's GObject API, headless): `agent` or `channels` mode.

    It reports each step as one JSON line; `wait_event` polls its log for them.
    """

    name = "spice-glib-client"

    def __init__(self, mode: str, port: int, log_dir: str | os.PathLike, args: Sequence[str] = (),
                 host: str = "127.0.0.1") -> None:
        super().__init__()
        self.mode = mode
        self.argv = [GI_PYTHON, str(GLIB_CLIENT), mode, "--host", host, "--port", str(port), *args]
        self._spawn(self.argv, log_dir)

    def events(self) -> list[dict]:
        out = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def wait_event(self, what: str, timeout: float = 30.0) -> dict:
        found: list[dict] = []

        def seen() -> bool:
            found[:] = [e for e in self.events() if e.get("event") == what]
            return bool(found)

        try:
            wait_until(seen, timeout, f"{self.name}: event {what}", self.proc, interval=0.1)
        except PeerError as e:
            raise PeerError(f"{e}\n--- {self.name} output ---\n{self.log_text()[-2000:]}") from e
        return found[0]

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise PeerError(f"{self.name} still running after {timeout:.0f} s\n{self.log_text()[-2000:]}")


# ---------------------------------------------------------------- capture


def capture_filter(port: int | Sequence[int]) -> str:
    """The BPF filter for one port or several."""
    ports = [port] if isinstance(port, int) else list(port)
    return " or ".join(f"tcp port {p}" for p in ports)


class Tshark(Peer):
    """tshark writing a loopback capture filtered to one TCP port.

    Ready once tshark says it is capturing and the file has its header; SPICE must be captured
    from the link handshake on, so start this before the client connects. Stopped with SIGINT so
    the file is complete.
    """

    name = "tshark"
    stop_signal = signal.SIGINT

    def __init__(self, port: int | Sequence[int], out: str | os.PathLike, pcapng: bool = True, interface: str = "lo",
                 log_dir: str | os.PathLike | None = None, timeout: float = 20.0, buffer_mib: int = 64) -> None:
        """`port`: one TCP port, or several (both legs of a proxy or relay: `tcp port A or tcp port B`)."""
        super().__init__()
        self.filter = capture_filter(port)
        self.out = Path(out)
        self.out.unlink(missing_ok=True)
        self.dropped: int | None = None
        self._tmp = None if log_dir else tempfile.TemporaryDirectory(prefix="tshark-")
        # -B: a loopback burst (a 3 MB uncompressed screen arrives in well under a millisecond)
        # overflows the default 2 MiB kernel buffer, and the capture silently loses segments.
        self._spawn(["tshark", "-n", "-i", interface, "-B", str(buffer_mib), "-f", self.filter, "-F",
                     "pcapng" if pcapng else "pcap", "-w", str(self.out)], log_dir or self._tmp.name)
        self._ready_or_stop(lambda: wait_until(lambda: "Capturing on" in self.log_text() and self.out.exists()
                                               and self.out.stat().st_size > 0, timeout, "tshark", self.proc))

    def stop(self, timeout: float = 10.0, settle: float = 0.3) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # Packets still on their way through the kernel to dumpcap: wait until the file stops growing.
            last, stable_since = -1, time.monotonic()
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                size = self.out.stat().st_size if self.out.exists() else 0
                if size != last:
                    last, stable_since = size, time.monotonic()
                elif time.monotonic() - stable_since >= settle:
                    break
                time.sleep(0.05)
            # SIGINT to the group (tshark and its dumpcap): both finish and close the file cleanly.
            self.signal_group(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
            wait_until_gone(self.proc.pid, timeout)
        super().stop(timeout)
        # tshark reports "N packets dropped ..." on exit when the kernel or dumpcap lost any.
        match = re.search(r"(\d+) packets? dropped", self.log_text())
        self.dropped = int(match.group(1)) if match else 0
        if self._tmp:
            self._tmp.cleanup()


# ---------------------------------------------------------------- X helpers


def xwd_png(display: int, png: str | os.PathLike) -> Path:
    """Ground truth: the X server's root window (exactly what spice-server was told to show) as PNG."""
    xwd = subprocess.run(["xwd", "-root", "-silent", "-display", f":{display}"], check=True,
                         capture_output=True).stdout
    convert = shutil.which("convert") or "/usr/bin/convert"
    subprocess.run([convert, "xwd:-", f"png:{png}"], input=xwd, check=True, capture_output=True)
    return Path(png)


def xdotool(display: int, *args: str) -> str:
    """Run one xdotool command on a display (the client's, to act like a person in front of it)."""
    r = subprocess.run(["xdotool", *args], env=x_env(display), check=True, capture_output=True, text=True)
    return r.stdout


@contextlib.contextmanager
def private_dir(prefix: str = "peers-") -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as d:
        yield Path(d)


# ---------------------------------------------------------------- peers inside a network namespace
# (scripts/netlab.py makes the namespaces; `ip netns exec` execs the program, so its pid is the peer's own)


def netns_sockets(pid: int) -> list[tuple[int, int, str]]:
    """(local port, remote port, state) of the TCP sockets in the network namespace `pid` runs in."""
    out = []
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError), open(f"/proc/{pid}/net/{table}") as f:
            next(f)
            for line in f:
                cols = line.split()
                out.append((int(cols[1].rsplit(":", 1)[1], 16), int(cols[2].rsplit(":", 1)[1], 16), cols[3]))
    return out


class _InNetns:
    netns: str

    def _spawn(self, argv, *args, **kwargs):
        return super()._spawn(["ip", "netns", "exec", self.netns, *argv], *args, **kwargs)  # type: ignore[misc]


class NetnsXspice(Xspice):
    """Xspice (Xorg + spiceqxl) inside network namespace `netns`, spice-server listening on `addr` there.
    The X display is reached from anywhere through its socket file (abstract sockets stay in the namespace)."""

    def __init__(self, settings: XspiceSettings, tmp: str | os.PathLike, netns: str, addr: str,
                 timeout: float = 30.0) -> None:
        Peer.__init__(self)
        settings.extra_options = {**settings.extra_options, "SpiceAddr": addr}
        settings.validate()
        self.settings, self.display, self.port, self.dir = settings, settings.display, settings.port, Path(tmp)
        self.netns, self.addr = netns, addr
        if not display_free(self.display):
            raise PeerError(f"display :{self.display} is in use")
        if settings.playback:
            (self.dir / "audio").mkdir(exist_ok=True)
        self.config_path = self.dir / "xorg.conf"
        self.config_path.write_text(xspice_config(settings, self.dir))
        self.xorg_log = self.dir / "Xorg.log"
        (self.dir / "none.d").mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("XSPICE_")}
        self._spawn(["ip", "netns", "exec", netns, XORG, "-config", str(self.config_path), "-configdir",
                     str(self.dir / "none.d"), "-logfile", str(self.xorg_log), "-noreset", "-nolisten", "tcp",
                     f":{self.display}"], self.dir, env=env)
        listening = lambda: any(lp == self.port and st == "0A" for lp, _, st in netns_sockets(self.pid))  # noqa: E731
        self._ready_or_stop(lambda: (self.wait_ready(timeout),
                                     wait_until(listening, timeout, f"Xspice {addr}:{self.port} in {netns}", self.proc)))


class NetnsSpicy(_InNetns, Spicy):
    """spicy inside network namespace `netns` (on an X display outside it), connected to `host`:`port`.
    Ready when `min_channels` connections to the port are established in its namespace."""

    def __init__(self, netns: str, display: int, port: int, host: str, min_channels: int = 2,
                 timeout: float = 30.0, **kwargs) -> None:
        self.netns = netns
        super().__init__(display, port, host=host, min_channels=0, timeout=timeout, **kwargs)
        up = lambda: sum(1 for _, rp, st in netns_sockets(self.pid) if rp == port and st == "01") >= min_channels  # noqa: E731
        self._ready_or_stop(lambda: wait_until(up, timeout, f"spicy to {host}:{port} in {netns}", self.proc))


class NetnsTshark(_InNetns, Tshark):
    """tshark capturing on `interface` inside network namespace `netns`."""

    def __init__(self, netns: str, port: int | Sequence[int], out: str | os.PathLike, interface: str,
                 **kwargs) -> None:
        self.netns = netns
        super().__init__(port, out, interface=interface, **kwargs)
