#!/usr/bin/env python3
"""Record real SPICE sessions (Xspice server, spicy client, tshark on loopback) into captures/.

Each session writes NAME.pcap or NAME.pcapng, NAME.png (the Xspice framebuffer at the end, from
`xwd -root`) and NAME.json (every setting, what ran, what the client did, and when).

    scripts/record_corpus.py --all                 # the whole corpus (CORPUS below)
    scripts/record_corpus.py --only lz4,mjpeg      # some of it
    scripts/record_corpus.py --list
    scripts/record_corpus.py --name my-quic --image-compression quic --password s3cret \
        --preferred-compression lz4 --programs xterm,xclock --type-text 'ls -l' --duration 10

Sessions run one at a time (the machine is small); ports 5910-5935 and displays :10-:30 only.
Two sessions use other peers: `agent-file-transfer` (Xspice + vdagent, port 5930, display :30) and
`qemu-channels` (QEMU, port 5931), both with scripts/spice_glib_client.py (spice-gtk's GObject API, run
by Debian's /usr/bin/python3) as the client.

Captures as support engineers get them (see notes/real-peers.md, "Peers of real deployments"):
- a route between client and Xspice: `--proxy` (tinyproxy, HTTP CONNECT, port 5932), `--tls` (a TLS front
  with a key log, scripts/tls_front.py, port 5935; NAME.keys.log and NAME.dsb.pcapng beside the capture),
  `--client spice-html5` (chromium on the client Xvfb; `--websockify` on port 5933, page server on 5934),
  `--capture-legs client` (only the client's hop captured, else every hop's port);
- `--video-codecs gstreamer:vp8|h264|vp9` with `--streaming-video all` and the testsrc program;
- `--kind qemu-linux [--qxl-heads 2]`: QEMU (port 5929) booting the machine's Debian kernel with a busybox
  initramfs built at record time; truth per head from the monitor's screendump (NAME.png, NAME.qxl1.png);
- `--drop-frames N`: editcap cuts N display data segments mid-message; NAME.intact.pcapng is kept.
These captures do not go into captures/ yet (the library cannot read all of them): record them elsewhere,
e.g. `scripts/record_corpus.py --only proxy-both-legs,linux-qxl --out /work/corpus-new`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402  (a sibling module, not an installed package)

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
SERVER_PORT, SERVER_DISPLAY, CLIENT_DISPLAY = 5916, 16, 17
CLIENT_SCREEN = "1280x900x24"

# Programs that can run on the Xspice desktop: argv and whether they animate (stopped before the PNG).
# Photo-like content must be drawn while the client is connected: before that it only reaches the client
# inside the one whole-screen image, whose compression is chosen for the screen as a whole.
# What the xterm lists when it starts: files of the recorder's own, made with fixed sizes, modes and
# times and listed in UTC without owners, so the screen is the same on every machine (a listing of a
# system directory shows the day the machine's packages were installed).
XTERM_FILES = ("README", "clock.conf", "desktop.log", "photo.ppm", "session.json", "xorg.conf")
XTERM_LISTING = (
    'd="$HOME/desktop-files"; mkdir -p "$d"; i=0; for f in ' + " ".join(XTERM_FILES) + '; do i=$((i+1)); '
    'head -c $((i*1337)) /dev/zero > "$d/$f"; chmod 644 "$d/$f"; '
    'TZ=UTC touch -d "2024-0$i-1$i 1$i:0$i:00" "$d/$f"; done; '
    'TZ=UTC LC_ALL=C ls -lgo --time-style="+%b %e %H:%M" "$d" | tail -n +2')
LATE_PROGRAMS = ("photo", "photo-large", "argb-photo")
PROGRAMS: dict[str, tuple[list[str], bool]] = {
    "xterm": (["xterm", "-geometry", "80x24+20+20", "-title", "xterm",
               "-e", "bash", "--norc", "--noprofile", "-c",
               "printf 'spicetool corpus session\\n\\n'; " + XTERM_LISTING
               + "; export PS1=\"\\$ \"; exec bash --norc --noprofile -i"],
              False),
    "xclock": (["xclock", "-update", "1", "-geometry", "160x160+560+20"], True),
    "xeyes": (["xeyes", "-geometry", "160x100+740+20"], True),
    "xlogo": (["xlogo", "-geometry", "120x120+560+220", "-render"], False),
    # Photo-like content (a smooth plasma with noise): images that QUIC/JPEG are chosen for.
    "photo": (["display", "-title", "photo", "-geometry", "+600+400", "-size", "300x220", "-seed", "7",
               "plasma:steelblue-orange", "-blur", "0x3"], False),
    # A photo over most of the screen: one image of about a megabyte whatever the compression, so that a
    # lost-segments session of a compressed image has segments inside one message to drop.
    "photo-large": (["display", "-title", "photo-large", "-geometry", "+40+60", "-size", "900x600", "-seed", "11",
                     "plasma:darkgreen-khaki", "-blur", "0x2"], False),
    # Photo-like content with a real alpha plane: a GTK3 window with an RGBA visual painting premultiplied
    # ARGB32 pixels (scripts/argb_photo.py, on Debian's /usr/bin/python3 with python3-gi, gir1.2-gtk-3.0 and
    # python3-gi-cairo); the alpha bytes reach spice-server in the RGBA bitmaps of the screen.
    "argb-photo": (["/usr/bin/python3", str(ROOT / "scripts" / "argb_photo.py"), "--x", "600", "--y", "400"], False),
    # Animated video-like content: what spice-server's streaming detector turns into an MJPEG stream.
    "testsrc": (["ffplay", "-hide_banner", "-loglevel", "error", "-an", "-noborder", "-left", "360", "-top", "360",
                 "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"], True),
    "testsrc-wide": (["ffplay", "-hide_banner", "-loglevel", "error", "-an", "-noborder", "-left", "360", "-top", "360",
                      "-f", "lavfi", "-i", "testsrc=size=480x270:rate=25"], True),
}
DEFAULT_PROGRAMS = ("xterm", "xclock", "xeyes", "xlogo")
# Programs run by Debian's /usr/bin/python3 with GTK 3: python3-gi, gir1.2-gtk-3.0, python3-gi-cairo.
GTK_PROGRAMS = ("argb-photo",)


@dataclass
class Session:
    name: str
    description: str = ""
    # server (Xspice) settings
    image_compression: str | None = None
    jpeg_wan_compression: str | None = "never"
    zlib_glz_wan_compression: str | None = "never"
    streaming_video: str | None = "off"
    password: str | None = None
    vdagent: bool = False
    audio: bool = False
    # desktop and client
    programs: tuple[str, ...] = DEFAULT_PROGRAMS
    client: str = "spicy"  # spicy | spicy-screenshot
    preferred_compression: str | None = None
    duration: float = 10.0
    move_window: bool = True
    mouse: bool = True
    type_text: str | None = None
    resize_to: str | None = None  # xrandr size applied mid-session
    resize_first: str | None = None  # xrandr size a second after the client connected (e.g. 1920x1080)
    second_head: str | None = None  # a second monitor of this size right of the first (NumHeads 2, xrandr)
    select_text: bool = False  # double-click a word in the xterm on the guest (a selection the agent announces)
    # capture
    pcapng: bool = True
    cut_seconds: float = 0.0  # editcap drops this many seconds from the start
    # where the peers run (tests record beside other tests on ports and displays of their own)
    port: int = SERVER_PORT
    server_display: int = SERVER_DISPLAY
    client_display: int = CLIENT_DISPLAY
    # what records it: "xspice" (Xspice + spicy, above), "agent-transfer" (Xspice + vdagent + the GObject
    # client copying a file and exchanging the clipboard), "qemu" (QEMU with extra channels + the GObject client)
    # or "qemu-linux" (QEMU booting Debian's kernel, whose qxl driver draws fbcon text and framebuffer writes)
    kind: str = "xspice"
    # the route between client and server, as in deployments (Xspice sessions)
    video_codecs: str | None = None  # spice-server's video codecs, e.g. gstreamer:vp8 (with streaming_video)
    proxy: bool = False  # spicy through tinyproxy (HTTP CONNECT, SPICE_PROXY=http://127.0.0.1:PROXY_PORT)
    tls: bool = False  # TLS front (scripts/tls_front.py, key log) before Xspice's plain port; spicy -s TLS_PORT
    websockify: bool = False  # spice-html5 through websockify (else to Xspice's own port, which speaks WebSocket)
    capture_legs: str = "all"  # all: every hop's port; client: the client's hop only (proxy, TLS or WS port)
    proxy_port: int = 5932
    ws_port: int = 5933
    http_port: int = 5934
    tls_port: int = 5935
    drop_frames: int = 0  # lost segments: editcap drops this many display-channel data frames mid-capture
    qxl_heads: int = 1  # qemu-linux: QXL devices (a second one: -device qxl,id=qxl1, its own display channel)

    def server_settings(self, tmp: Path) -> peers.XspiceSettings:
        extra = {"NumHeads": "2"} if self.second_head else {}
        return peers.XspiceSettings(
            port=self.port, display=self.server_display, password=self.password,
            image_compression=self.image_compression, jpeg_wan_compression=self.jpeg_wan_compression,
            zlib_glz_wan_compression=self.zlib_glz_wan_compression, streaming_video=self.streaming_video,
            video_codecs=self.video_codecs, vdagent=self.vdagent, playback=self.audio, extra_options=extra)

    def validate(self) -> None:
        if self.client not in CLIENTS:
            raise ValueError(f"client {self.client!r}: one of {CLIENTS}")
        if self.capture_legs not in ("all", "client"):
            raise ValueError(f"capture_legs {self.capture_legs!r}")
        if self.websockify and self.client != "spice-html5":
            raise ValueError("websockify is spice-html5's route")
        if (self.proxy or self.tls) and self.client != "spicy":
            raise ValueError("the proxy and TLS routes are spicy's")
        if self.capture_legs == "client" and not (self.proxy or self.tls or self.websockify):
            raise ValueError("capture_legs client needs a hop between client and server")
        if self.tls and not self.pcapng:
            raise ValueError("a TLS session's secrets go into pcapng only")


CLIENTS = ("spicy", "spicy-screenshot", "spice-html5")


CORPUS: list[Session] = [
    Session("img-off", "image compression off: raw bitmaps", image_compression="off", duration=8),
    Session("img-quic", "QUIC images", image_compression="quic", programs=(*DEFAULT_PROGRAMS, "photo")),
    Session("img-lz", "LZ images", image_compression="lz"),
    Session("img-glz", "GLZ images (shared dictionary)", image_compression="glz", pcapng=False),
    Session("img-auto-glz", "auto_glz: QUIC for photo-like, GLZ for the rest", image_compression="auto_glz",
            programs=(*DEFAULT_PROGRAMS, "photo")),
    Session("img-auto-lz", "auto_lz: QUIC for photo-like, LZ for the rest", image_compression="auto_lz",
            programs=(*DEFAULT_PROGRAMS, "photo"), pcapng=False),
    Session("img-zlib-glz", "GLZ images wrapped in zlib (zlib-glz-wan-compression always)",
            image_compression="glz", zlib_glz_wan_compression="always"),
    Session("img-jpeg", "JPEG for photo-like images (jpeg-wan-compression always)", image_compression="auto_glz",
            jpeg_wan_compression="always", programs=(*DEFAULT_PROGRAMS, "photo")),
    Session("img-jpeg-alpha", "JPEG_ALPHA with a real alpha plane: a GTK3 RGBA-visual window painting a "
            "photo-like ARGB picture (auto_glz, jpeg-wan-compression always)", image_compression="auto_glz",
            jpeg_wan_compression="always", programs=(*DEFAULT_PROGRAMS, "argb-photo")),
    Session("img-lz4", "LZ4 images: the client asks for them (spicy --spice-preferred-compression=lz4)",
            image_compression="auto_glz", preferred_compression="lz4"),
    Session("resize", "resolution change mid-session: xrandr 1024x768 -> 800x600", image_compression="auto_glz",
            resize_to="800x600", duration=12),
    Session("mjpeg-stream", "MJPEG video stream (--streaming-video all) of an ffplay testsrc",
            image_compression="auto_glz", streaming_video="all", programs=("xterm", "testsrc"), duration=8,
            move_window=False),
    Session("password", "ticketing with a password (RSA-encrypted ticket)", image_compression="auto_glz",
            password="corpus-pw-42", pcapng=False),
    Session("agent-audio", "spice-vdagent running (agent channel data, client mouse mode) and a 440 Hz tone "
            "on the playback channel", image_compression="auto_glz", vdagent=True, audio=True, select_text=True, duration=11),
    Session("typing", "the client types into an xterm and moves the mouse (xdotool on the client display)",
            image_compression="auto_glz", type_text="echo hello from the spice client; uname -s", duration=12),
    Session("mid-session", "capture starting mid-session: the first 4 s cut with editcap (no link handshake)",
            image_compression="quic", type_text="seq 1 40", duration=12, cut_seconds=4.0, pcapng=False),
    Session("screenshot-client", "spicy-screenshot: one short connection that takes the primary surface",
            image_compression="lz", client="spicy-screenshot", move_window=False, mouse=False, duration=3),
    Session("agent-file-transfer", "vdagent file transfer (a 300000-byte file, five FILE_XFER_DATA messages) and "
            "the clipboard both ways, from spice-gtk's GObject API", image_compression="auto_glz", vdagent=True,
            programs=("xterm",), client="spice-glib-client agent", move_window=False, mouse=False,
            port=5930, server_display=30, kind="agent-transfer"),
    Session("hd-1080", "the desktop grows from 1024x768 to 1920x1080 (xrandr) a second after the client "
            "connected, then is used at that size: the render benchmark's large session",
            image_compression="auto_glz", programs=(*DEFAULT_PROGRAMS, "photo"), resize_first="1920x1080",
            type_text="ls /usr/share", duration=12),
    Session("long-desktop", "a minute of an ordinary desktop: typing into an xterm, the mouse, the clock ticking "
            "every second: the render benchmark's long 1024x768 session", image_compression="auto_glz",
            type_text="for i in $(seq 1 30); do date; ls /usr/share | head -3; sleep 1.5; done", duration=60),
    Session("two-heads", "two monitors on one display channel (spiceqxl NumHeads 2, xrandr: 1024x768 + 800x600 "
            "right of it): MONITORS_CONFIG with two heads of one 1824x768 surface", image_compression="auto_glz",
            second_head="800x600", duration=10),
    Session("qemu-channels", "QEMU (QXL, no disk: firmware boot screens) with port, webdav, usbredir, playback "
            "and record channels, all linked by spice-gtk's GObject API", programs=(),
            client="spice-glib-client channels", move_window=False, mouse=False, duration=10, port=5931,
            kind="qemu"),
    # Captures as support engineers get them: proxies, browsers, TLS, video codecs, real guests, lost segments.
    Session("proxy-both-legs", "spicy through an HTTP CONNECT proxy (tinyproxy, SPICE_PROXY; what Proxmox's "
            "spiceproxy and oVirt's SPICE proxy are), captured on loopback with both legs: client<->proxy "
            "(CONNECT, then SPICE in the tunnel) and proxy<->Xspice (plain SPICE), one CONNECT per channel",
            image_compression="auto_glz", proxy=True, type_text="echo through the proxy", duration=10),
    Session("proxy-client-leg", "spicy through tinyproxy, the capture on the proxy port only: the client's "
            "leg (HTTP CONNECT request and answer, then SPICE), no proxy<->Xspice leg",
            image_compression="auto_glz", proxy=True, capture_legs="client", duration=10),
    Session("html5-websockify", "spice-html5 (Debian's /usr/share/spice-html5) in chromium through websockify "
            "(what OpenStack's spice console is): masked WebSocket binary frames on the browser leg, plain SPICE "
            "on the websockify<->Xspice leg; auto_lz (spice-html5 decodes no GLZ/LZ4); the client types "
            "(KEY_DOWN/KEY_UP)", image_compression="auto_lz", client="spice-html5", websockify=True,
            type_text="echo from the browser", mouse=False, duration=12),
    Session("html5-direct", "spice-html5 in chromium straight to Xspice's own SPICE port (spice-server 0.15 "
            "speaks WebSocket there): every channel one WebSocket, QUIC images", image_compression="quic",
            client="spice-html5", mouse=False, programs=(*DEFAULT_PROGRAMS, "photo"), duration=12),
    Session("tls-proxy-keylog", "TLS through the HTTP CONNECT proxy: spicy -s TLS_PORT "
            "--spice-secure-channels=all via tinyproxy to a TLS front (Python ssl, self-signed CA made at "
            "record time) relaying to Xspice's plain port; captured on the proxy port (the client's leg); the "
            "TLS key log beside it (NAME.keys.log) and a copy with the secrets inside (NAME.dsb.pcapng)",
            image_compression="auto_glz", proxy=True, tls=True, capture_legs="client", duration=10),
    Session("gst-vp8", "a VP8 video stream (spice-server's gstreamer:vp8 encoder, --streaming-video all) of an "
            "ffplay testsrc; spicy decodes it with gstreamer", image_compression="auto_glz", streaming_video="all",
            video_codecs="gstreamer:vp8", programs=("xterm", "testsrc"), duration=9, move_window=False),
    Session("gst-h264", "an H.264 video stream (gstreamer:h264) of an ffplay testsrc", image_compression="auto_glz",
            streaming_video="all", video_codecs="gstreamer:h264", programs=("xterm", "testsrc"), duration=9,
            move_window=False),
    Session("gst-vp9", "a VP9 video stream (gstreamer:vp9) of an ffplay testsrc", image_compression="auto_glz",
            streaming_video="all", video_codecs="gstreamer:vp9", programs=("xterm", "testsrc"), duration=9,
            move_window=False),
    Session("linux-qxl", "QEMU booting Debian's Linux kernel (TCG) with a busybox initramfs built at record time: "
            "the kernel qxl driver draws the boot log and fbcon text, then colour bars written into /dev/fb0 "
            "(DRAW_COPYs clipped to the damage); spicy connected from the firmware on", programs=(),
            move_window=False, mouse=False, duration=10, port=5929, kind="qemu-linux"),
    Session("linux-qxl-two-heads", "Linux with two QXL devices (-vga qxl + -device qxl,id=qxl1): two display "
            "channels, fbcon on fb0, colour bars into /dev/fb0 and /dev/fb1; a truth PNG per head",
            programs=(), move_window=False, mouse=False, duration=10, port=5929, kind="qemu-linux", qxl_heads=2),
    Session("lost-segments", "uncompressed bitmaps (image compression off) from which editcap dropped three "
            "server->client data segments of the display channel inside large messages (a capture that lost "
            "packets); the intact capture beside it (NAME.intact.pcapng) is the truth's source",
            image_compression="off", duration=8, drop_frames=3),
]

# Sessions whose captures the library cannot read yet: never recorded into captures/ (the suite's corpus
# tests read every capture there).
OUTSIDE_CAPTURES = ("proxy-both-legs", "proxy-client-leg", "html5-websockify", "html5-direct", "tls-proxy-keylog",
                    "gst-vp8", "gst-h264", "gst-vp9", "linux-qxl", "linux-qxl-two-heads", "lost-segments")

# agent-file-transfer: what is copied and what goes through the clipboard.
TRANSFER_FILE_NAME = "spicetool-transfer-300k.bin"
TRANSFER_FILE_SIZE = 300_000
CLIPBOARD_TO_GUEST = "clipboard from the spice client: grüße ✓ 5930"
CLIPBOARD_FROM_GUEST = "clipboard from the guest xterm session: ünïcode ♥"


def clean_env(home: Path) -> dict[str, str]:
    """A small environment for desktop programs, so nothing of ours leaks onto the recorded screen."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
            "TERM": "xterm", "PS1": "$ ", "SDL_AUDIODRIVER": "dummy", "NO_AT_BRIDGE": "1"}


class Timeline:
    """Log of what was done, in seconds from the start of the capture."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.events: list[dict] = []

    def note(self, action: str, **details) -> None:
        self.events.append({"t": round(time.monotonic() - self.t0, 2), "action": action, **details})


def tool_versions() -> dict[str, str]:
    pkgs = ["xserver-xspice", "libspice-server1", "spice-client-gtk", "tshark", "spice-vdagent", "ffmpeg"]
    out = subprocess.run(["dpkg-query", "-W", *pkgs], capture_output=True, text=True).stdout
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def move_window_steps(display: int, window: str, start: tuple[int, int], step: tuple[int, int], n: int,
                      tl: Timeline) -> None:
    x, y = start
    for i in range(n):
        x, y = x + step[0], y + step[1]
        peers.xdotool(display, "windowmove", window, str(x), str(y))
        time.sleep(0.15)
    tl.note("move_window", window="xlogo", to=[x, y], steps=n)


def mouse_path(client_display: int, spicy: peers.Spicy, tl: Timeline) -> None:
    """Click into spicy's window (grabs the pointer in server mouse mode) and sweep the mouse."""
    win = spicy.window_id()
    geo = peers.xdotool(client_display, "getwindowgeometry", "--shell", win)
    g = dict(line.split("=") for line in geo.split())
    x0, y0 = int(g["X"]), int(g["Y"])
    peers.xdotool(client_display, "mousemove", str(x0 + 300), str(y0 + 200), "click", "1")
    points = [(300, 200), (500, 150), (650, 300), (400, 450), (200, 300), (120, 120)]
    for px, py in points:
        peers.xdotool(client_display, "mousemove", str(x0 + px), str(y0 + py))
        time.sleep(0.12)
    tl.note("mouse", display=f":{client_display}", clicked_at=[300, 200], path=points,
            note="coordinates relative to the spicy window")


class CaptureIncomplete(RuntimeError):
    """tshark reported packets it could not capture: the file would have holes."""


@dataclass
class Desktop:
    """An Xspice desktop made ready for a session: what runs on it and what was done."""

    xs: peers.Xspice
    progs: dict[str, peers.Program]
    ran: list[dict]  # for the JSON: every program started, in order
    sizes: list[str]  # screen sizes, the first one before the client connects
    heads: list[dict]  # monitors when there are two (xrandr), else empty


def capture_files(s: Session, out_dir: Path) -> tuple[Path, Path]:
    """The capture and ground-truth paths of a session, old captures of that name removed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in (out_dir / f"{s.name}.pcap", out_dir / f"{s.name}.pcapng"):
        old.unlink(missing_ok=True)
    return out_dir / f"{s.name}.{'pcapng' if s.pcapng else 'pcap'}", out_dir / f"{s.name}.png"


def keep_capture(s: Session, raw: Path, final: Path) -> dict | None:
    """The raw capture into its place (cut at its start when the session says so); the cut made, if any."""
    cut = cut_start(raw, final, s.cut_seconds, s.pcapng) if s.cut_seconds > 0 else None
    if cut is None:
        raw.replace(final)
    final.chmod(0o644)  # tshark writes 0600
    return cut


@contextlib.contextmanager
def xspice_desktop(s: Session, tmp: Path, env: dict[str, str], file_xfer_dir: Path | None = None) -> Iterator[Desktop]:
    """Xspice with the session's monitors, root colour, agent, sound and programs, each window mapped
    before a client connects (late programs are started by session_actions); all stopped at the end."""
    with peers.Xspice(s.server_settings(tmp), tmp) as xs:
        desk = Desktop(xs, {}, [], [], screen_layout(s, xs))
        desk.sizes.append("%dx%d" % xs.screen_size())
        agent = peers.VdAgent(xs, file_xfer_dir=file_xfer_dir) if s.vdagent else None
        tone = peers.PlaybackTone(xs) if s.audio else None
        try:
            subprocess.run(["xsetroot", "-display", f":{xs.display}", "-solid", "#2f4f6f"], check=True)
            desk.ran.append({"program": "xsetroot -solid #2f4f6f"})
            for p in s.programs:
                argv, _ = PROGRAMS[p]
                shown = shlex.join(argv).replace(f"{ROOT}/", "")  # our own scripts relative to the checkout
                if p in LATE_PROGRAMS:
                    desk.ran.append({"program": p, "argv": shown, "when": "after the client connected"})
                    continue
                desk.progs[p] = peers.Program(argv, xs.display, tmp, name=p, env=env)
                desk.ran.append({"program": p, "argv": shown})
            for p, prog in desk.progs.items():
                peers.wait_until(lambda prog=prog: window_of(xs.display, prog) is not None, 15, f"{p} window",
                                 prog.proc, interval=0.2)
            if agent and file_xfer_dir:
                desk.ran.append({"program": f"spice-vdagentd -f -x -X -o + spice-vdagent -x -f {file_xfer_dir.name}/"
                                            " -o 0", "file_xfer_save_dir": "a private directory (spice-vdagent -f DIR)"})
            elif agent:
                desk.ran.append({"program": "spice-vdagentd -f -x -X -o + spice-vdagent -x"})
            if tone:
                desk.ran.append({"program": "ffmpeg lavfi sine=440 Hz -> 48 kHz s16le stereo into the playback FIFO"})
            yield desk
        finally:
            for prog in desk.progs.values():
                prog.stop()
            if tone:
                tone.stop()
            if agent:
                agent.stop()


@dataclass
class Route:
    """The hops between the client and Xspice for one session, and what the capture sees of them."""

    capture_ports: list[int]
    legs: list[dict]  # each hop: from, to, port, captured
    ran: list[dict]  # the route's peers, for the JSON
    proxy_url: str | None = None
    tls: peers.TlsFiles | None = None
    keylog: Path | None = None
    html5_url: str | None = None
    client_port: int = 0  # where the client's own connections go (its readiness)


@contextlib.contextmanager
def client_route(s: Session, xs: peers.Xspice, tmp: Path) -> Iterator[Route]:
    """Start the proxy, TLS front, websockify and page server the session's route needs (each in its own
    process group), innermost first; stopped in reverse order."""
    with contextlib.ExitStack() as stack:
        ran: list[dict] = []
        hops: list[tuple[str, int]] = []  # (peer, port it listens on) from the server outwards
        target = xs.port
        tls_files = keylog = None
        if s.tls:
            tls_files = peers.make_tls_files(tmp)
            keylog = tmp / "keys.log"
            front = stack.enter_context(peers.TlsFront(s.tls_port, xs.port, tls_files, keylog, tmp))
            ran.append({"program": "tls-front", "argv": shlex.join(front.argv).replace(str(tmp), "$TMP").replace(
                f"{ROOT}/", ""), "certificates": "self-signed CA and a server certificate for 127.0.0.1 "
                "(CN and subjectAltName IP), openssl at record time", "keylog": "SSLContext.keylog_filename"})
            hops.append(("tls-front", s.tls_port))
            target = s.tls_port
        html5_url = None
        if s.websockify:
            ws = stack.enter_context(peers.Websockify(s.ws_port, xs.port, tmp))
            ran.append({"program": "websockify", "argv": shlex.join(ws.argv)})
            hops.append(("websockify", s.ws_port))
            target = s.ws_port
        if s.client == "spice-html5":
            http = stack.enter_context(peers.HttpServer(s.http_port, peers.SPICE_HTML5_DIR, tmp))
            ran.append({"program": "http.server", "argv": shlex.join(["python3", *http.argv[1:]]),
                        "serves": str(peers.SPICE_HTML5_DIR)})
            query = f"host=127.0.0.1&port={target}" + (f"&password={s.password}" if s.password else "")
            html5_url = f"http://127.0.0.1:{s.http_port}/spice_auto.html?{query}"
        proxy_url = None
        if s.proxy:
            proxy = stack.enter_context(peers.Tinyproxy(s.proxy_port, [target], tmp))
            ran.append({"program": "tinyproxy", "argv": "tinyproxy -d -c tinyproxy.conf",
                        "config": proxy.config.splitlines()})
            hops.append(("tinyproxy", s.proxy_port))
            proxy_url = proxy.url
        # The legs, client first: client -> outermost hop -> ... -> Xspice.
        chain = [(s.client, None), *reversed(hops), ("Xspice", xs.port)]
        legs = []
        for (a, _), (b, port) in itertools.pairwise(chain):
            legs.append({"from": a, "to": b, "port": port})
        client_port = legs[0]["port"]
        ports = [client_port] if s.capture_legs == "client" else [leg["port"] for leg in legs]
        for leg in legs:
            leg["captured"] = leg["port"] in ports
        yield Route(ports, legs, ran, proxy_url, tls_files, keylog, html5_url, client_port)


def start_client(s: Session, xv: peers.Xvfb, xs: peers.Xspice, route: Route, tmp: Path):
    """spicy (plain, TLS, through the proxy) or spice-html5 in chromium, connected; ready to be driven."""
    if s.client == "spice-html5":
        assert route.html5_url
        return peers.Chromium(xv.display, route.html5_url, tmp, watch_port=route.client_port)
    extra = ["--spice-secure-channels=all"] if s.tls else []
    return peers.Spicy(xv.display, None if s.tls else xs.port, password=s.password,
                       preferred_compression=s.preferred_compression, log_dir=tmp, extra_args=extra,
                       tls_port=s.tls_port if s.tls else None, ca_file=route.tls.ca if route.tls else None,
                       proxy=route.proxy_url)


def record(s: Session, out_dir: Path = CAPTURES) -> dict:
    s.validate()
    if s.kind == "agent-transfer":
        return record_agent_transfer(s, out_dir)
    if s.kind == "qemu":
        return record_qemu(s, out_dir)
    if s.kind == "qemu-linux":
        return record_qemu_linux(s, out_dir)
    final, png = capture_files(s, out_dir)
    started = dt.datetime.now(dt.timezone.utc)
    route = None
    with tempfile.TemporaryDirectory(prefix=f"corpus-{s.name}-") as tmpname:
        tmp = Path(tmpname)
        home = tmp / "home"
        home.mkdir()
        raw = tmp / final.name
        with xspice_desktop(s, tmp, clean_env(home)) as desk:
            xs, progs = desk.xs, desk.progs
            if s.client in ("spicy", "spice-html5"):
                with peers.Xvfb(s.client_display, CLIENT_SCREEN) as xv, client_route(s, xs, tmp) as route:
                    with peers.Tshark(route.capture_ports, raw, pcapng=s.pcapng, log_dir=tmp) as cap:
                        tl = Timeline()
                        tl.note("capture_started", filter=cap.filter)
                        with start_client(s, xv, xs, route, tmp) as cl:
                            tl.note("client_connected")
                            view = None
                            if s.streaming_video == "all":
                                # What the client shows while the stream plays (its decoder at work), not the truth.
                                view = threading.Timer(4.0, client_view, (s, xv, out_dir, tl, "stream"))
                                view.start()
                            session_actions(s, xs, cl, progs, tl, desk.sizes)
                            if view is not None:
                                view.join()
                            final_picture(s, xs, progs, png, tl)
                            if s.client == "spice-html5":  # what the browser showed (not the truth)
                                client_view(s, xv, out_dir, tl, "client")
                            client_argv = cl.argv
                            client_log = cl.log_text()
                        tl.note("client_closed")
                        time.sleep(0.5)
                    if route.keylog is not None:
                        keylog_text = route.keylog.read_text() if route.keylog.exists() else ""
            else:
                with peers.Tshark(xs.port, raw, pcapng=s.pcapng, log_dir=tmp) as cap:
                    tl = Timeline()
                    tl.note("capture_started", filter=f"tcp port {xs.port}")
                    time.sleep(max(0.0, s.duration - 2))
                    final_picture(s, xs, progs, png, tl)
                    peers.spicy_screenshot(xs.port, tmp / "client.ppm", password=s.password)
                    tl.note("spicy-screenshot done")
                    time.sleep(0.5)
        if s.drop_frames:
            intact = final.with_name(f"{s.name}.intact.{final.suffix[1:]}")
            keep_capture(s, raw, intact)
            cut = None
            dropped = drop_segments(s, intact, final)
        else:
            cut = keep_capture(s, raw, final)
    if cap.dropped:
        raise CaptureIncomplete(f"{s.name}: tshark dropped {cap.dropped} packets")
    meta = describe(s, started, desk.sizes, desk.ran, tl, final, png, cut)
    meta["capture"]["packets_dropped_by_capture"] = cap.dropped
    if any(p in GTK_PROGRAMS for p in s.programs):
        meta["versions"].update(gtk_versions())
    if desk.heads:
        meta["heads"] = desk.heads
    if s.video_codecs:
        meta["server"]["video_codecs"] = s.video_codecs
        meta["versions"].update(package_versions(GST_PACKAGES))
        meta["client"]["log"] = client_log.strip().splitlines()[-30:]  # gstreamer decoder complaints, if any
    if route is not None and (len(route.legs) > 1 or s.client == "spice-html5"):
        describe_route(s, meta, route, client_argv, tmp)
    if route is not None and route.keylog is not None:
        keep_keylog(s, meta, final, keylog_text, out_dir)
    if s.drop_frames:
        meta["capture"]["lost_segments"] = dropped
    (out_dir / f"{s.name}.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return meta


def client_view(s: Session, xv: peers.Xvfb, out_dir: Path, tl: Timeline, what: str) -> None:
    """A screenshot of the client's own X display (NAME.WHAT.png): what the client showed, for checking."""
    png = peers.xwd_png(xv.display, out_dir / f"{s.name}.{what}.png")
    tl.note("client_view", file=png.name, how=f"xwd -root -display :{xv.display} (the client's Xvfb)")


GST_PACKAGES = ("gstreamer1.0-plugins-base", "gstreamer1.0-plugins-good", "gstreamer1.0-plugins-ugly",
                "gstreamer1.0-plugins-bad", "gstreamer1.0-libav")
ROUTE_PACKAGES = ("tinyproxy", "websockify", "spice-html5", "chromium", "openssl")


def package_versions(pkgs) -> dict[str, str]:
    out = subprocess.run(["dpkg-query", "-W", *pkgs], capture_output=True, text=True, check=False).stdout
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def describe_route(s: Session, meta: dict, route: Route, client_argv: list[str], tmp: Path) -> None:
    """The hops, ports and the client's command line of a session with a route."""
    meta["ports"] = {"spice": s.port, **({"proxy": s.proxy_port} if s.proxy else {}),
                     **({"tls": s.tls_port} if s.tls else {}), **({"websocket": s.ws_port} if s.websockify else {}),
                     **({"http": s.http_port} if s.client == "spice-html5" else {})}
    meta["legs"] = route.legs
    meta["route_programs"] = route.ran
    meta["capture"]["filter"] = peers.capture_filter(route.capture_ports)
    meta["capture"]["legs_captured"] = s.capture_legs
    meta["capture"]["tool"] = (f"tshark -i lo -f '{meta['capture']['filter']}' "
                               f"-F {'pcapng' if s.pcapng else 'pcap'}")
    client = meta["client"]
    client["argv"] = shlex.join(client_argv).replace(str(tmp), "$TMP")
    if route.proxy_url:
        client["environment"] = {"SPICE_PROXY": route.proxy_url}
    if s.tls:
        client["tls"] = {"port": s.tls_port, "secure_channels": "all", "ca_file": "$TMP/ca.pem (made at record time)"}
    if s.client == "spice-html5":
        client["program"] = "spice-html5 (Debian's /usr/share/spice-html5) in chromium (--app window)"
        client["url"] = route.html5_url
        client["display"] = f"Xvfb {CLIENT_SCREEN}"
    meta["versions"].update(package_versions(ROUTE_PACKAGES))


def keep_keylog(s: Session, meta: dict, final: Path, keylog_text: str, out_dir: Path) -> None:
    """The TLS front's key log beside the capture, and a copy of the capture with the secrets inside (DSB)."""
    keys = out_dir / f"{s.name}.keys.log"
    keys.write_text(keylog_text)
    dsb = out_dir / f"{s.name}.dsb.pcapng"
    dsb.unlink(missing_ok=True)
    cmd = ["editcap", "--inject-secrets", f"tls,{keys}", str(final), str(dsb)]
    subprocess.run(cmd, check=True, capture_output=True)
    dsb.chmod(0o644)
    meta["tls"] = {
        "keylog": {"file": keys.name, "lines": len(keylog_text.splitlines()),
                   "labels": sorted({line.split()[0] for line in keylog_text.splitlines() if line.strip()}),
                   "written_by": "the TLS front (Python ssl, SSLContext.keylog_filename)"},
        "with_secrets": {"file": dsb.name, "bytes": dsb.stat().st_size,
                         "command": f"editcap --inject-secrets tls,{keys.name} {final.name} {dsb.name}"},
    }


def display_stream(capture: Path, port: int) -> int:
    """The TCP stream (tshark's numbering) of the display channel: its link message goes to `port`."""
    out = subprocess.run(["tshark", "-r", str(capture), "-Y", f"spice.channel_type == 2 && tcp.dstport == {port}",
                          "-T", "fields", "-e", "tcp.stream"], capture_output=True, text=True, check=True).stdout
    streams = sorted({int(x) for x in out.split()})
    if not streams:
        raise peers.PeerError(f"no display channel link found in {capture}")
    return streams[0]


def drop_segments(s: Session, intact: Path, final: Path) -> dict:
    """Cut `s.drop_frames` server->client data segments of the display channel out of the capture, each inside
    a large message (its neighbours in that direction are full-size segments too), spread over the middle."""
    stream = display_stream(intact, s.port)
    wanted = f"tcp.stream == {stream} && tcp.srcport == {s.port} && tcp.len > 0"
    out = subprocess.run(["tshark", "-r", str(intact), "-Y", wanted, "-T", "fields", "-e", "frame.number",
                          "-e", "tcp.len"],
                         capture_output=True, text=True, check=True).stdout
    segs = [(int(f), int(n)) for f, n in (line.split("\t") for line in out.splitlines())]
    full = max(n for _, n in segs)
    # spice-server writes a large message 64 KiB at a time; loopback's MSS splits each write into a full
    # segment and a small remainder. A full segment with two such neighbours each side is mid-message.
    bulk = {full, 65536 - full}
    inside = [segs[i][0] for i in range(2, len(segs) - 2)
              if segs[i][1] == full and all(segs[j][1] in bulk for j in (i - 2, i - 1, i + 1, i + 2))]
    rule = (f"{len(inside)} full-size ({full}-byte) segments whose two neighbours each side in that direction are "
            f"{full}-byte segments or {65536 - full}-byte remainders of 64 KiB writes (inside large messages)")
    if len(inside) < s.drop_frames:
        # Writes that reached the capture in other sizes (a compressed image sent while the socket was
        # busy): a segment of at least half the largest size among four such neighbours, inside one big message.
        big = [n >= full // 2 for _, n in segs]
        inside = [segs[i][0] for i in range(2, len(segs) - 2) if all(big[i - 2:i + 3])]
        rule = (f"{len(inside)} segments of at least {full // 2} bytes (half the largest) whose two neighbours each "
                "side in that direction are as large (inside large messages)")
    if len(inside) < s.drop_frames:
        raise peers.PeerError(f"only {len(inside)} segments inside large messages, {s.drop_frames} wanted")
    n = s.drop_frames
    picks = sorted({inside[len(inside) * (i + 1) // (n + 1)] for i in range(n)})
    final.unlink(missing_ok=True)
    cmd = ["editcap", str(intact), str(final), *map(str, picks)]
    subprocess.run(cmd, check=True, capture_output=True)
    final.chmod(0o644)
    lens = dict(segs)
    return {"tool": "editcap", "command": f"editcap {intact.name} {final.name} " + " ".join(map(str, picks)),
            "intact_file": intact.name, "intact_bytes": intact.stat().st_size,
            "intact_packets": count_packets(intact),
            "dropped_frames": picks, "frame_numbers_of": "the intact capture",
            "dropped_frame_bytes": [lens[f] for f in picks],
            "display_tcp_stream": stream, "direction": f"server (port {s.port}) -> client",
            "chosen_from": f"{rule}, at 1/(n+1) .. n/(n+1) of that list",
            "truth_source": "the intact capture: the ground truth PNG is what the client was shown in it"}


def screen_layout(s: Session, xs: peers.Xspice) -> list[dict]:
    """A second monitor before the client connects; the heads as xrandr reports them."""
    if not s.second_head:
        return []
    env = peers.x_env(xs.display)
    subprocess.run(["xrandr", "--addmode", "qxl-1", s.second_head], env=env, check=True, capture_output=True)
    subprocess.run(["xrandr", "--output", "qxl-1", "--mode", s.second_head, "--right-of", "qxl-0"], env=env,
                   check=True, capture_output=True)
    out = subprocess.run(["xrandr", "-q"], env=env, check=True, capture_output=True, text=True).stdout
    heads = []
    for line in out.splitlines():  # "qxl-1 connected 800x600+1024+0 0mm x 0mm"
        parts = line.split()
        if len(parts) > 2 and parts[1] == "connected":
            geo = next(p for p in parts[2:] if "+" in p)
            size, x, y = geo.split("+")
            w, h = size.split("x")
            heads.append({"output": parts[0], "x": int(x), "y": int(y), "width": int(w), "height": int(h)})
    return heads


def transfer_file(path: Path, size: int = TRANSFER_FILE_SIZE) -> Path:
    """The file copied to the guest: a text header, then SHA-256 counter-mode bytes (incompressible,
    the same on every run), so a corrupted or reordered chunk shows in the checksum."""
    head = (f"spicetool corpus file-transfer payload, {size} bytes; the rest is SHA-256(i) for i = 0, 1, ...\n"
            .encode())
    out = bytearray(head)
    i = 0
    while len(out) < size:
        out += hashlib.sha256(i.to_bytes(8, "little")).digest()
        i += 1
    path.write_bytes(bytes(out[:size]))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def guest_read_clipboard(display: int, env: dict[str, str]) -> str:
    """A guest program reading the CLIPBOARD selection (the vdagent owns it after the client's grab)."""
    r = subprocess.run(["xclip", "-o", "-selection", "clipboard", "-display", f":{display}"],
                       env={**env, "DISPLAY": f":{display}"}, capture_output=True, timeout=20)
    if r.returncode != 0:
        raise peers.PeerError(f"xclip -o failed: {r.stderr.decode(errors='replace')}")
    return r.stdout.decode()


def client_timeline(tl: Timeline, client: peers.GlibClient, wall0: float, tmp: Path) -> None:
    """The client's own step reports (stamped with the wall clock), placed on the capture's timeline."""
    for e in client.events():
        e.pop("t")
        t = e.pop("wall") - wall0
        e = json.loads(json.dumps(e).replace(str(tmp), "$TMP"))
        tl.events.append({"t": round(t, 2), "action": "client:" + e.pop("event"), **e})
    tl.events.sort(key=lambda e: e["t"])


def record_agent_transfer(s: Session, out_dir: Path) -> dict:
    """Xspice + vdagent; the GObject client copies a file to the guest and exchanges the clipboard."""
    final, png = capture_files(s, out_dir)
    started = dt.datetime.now(dt.timezone.utc)
    with tempfile.TemporaryDirectory(prefix=f"corpus-{s.name}-") as tmpname:
        tmp = Path(tmpname)
        home, received, client_dir = tmp / "home", tmp / "received", tmp / "client"
        for d in (home, received, client_dir):
            d.mkdir()
        env = clean_env(home)
        src = transfer_file(client_dir / TRANSFER_FILE_NAME)
        raw = tmp / final.name
        with xspice_desktop(s, tmp, env, file_xfer_dir=received) as desk:
            xs = desk.xs
            guest_clip = None
            try:
                with peers.Tshark(xs.port, raw, pcapng=s.pcapng, log_dir=tmp) as cap:
                    tl = Timeline()
                    wall0 = time.time()
                    tl.note("capture_started", filter=f"tcp port {xs.port}")
                    client = peers.GlibClient("agent", xs.port, tmp, ["--file", str(src), "--to-guest",
                                                                       CLIPBOARD_TO_GUEST, "--timeout", "60"])
                    try:
                        client.wait_event("agent_connected", 30)
                        done = client.wait_event("file_copy_done", 30)
                        if not done.get("ok"):
                            raise peers.PeerError(f"file copy failed: {done}")
                        client.wait_event("client_grab", 10)
                        time.sleep(0.5)
                        # Guest side reads the clipboard: the agent asks the client (CLIPBOARD_REQUEST).
                        tl.note("guest_read_clipboard", display=f":{xs.display}", how="xclip -o -selection clipboard")
                        read_in_guest = guest_read_clipboard(xs.display, env)
                        tl.events[-1]["text"] = read_in_guest
                        client.wait_event("clipboard_sent", 10)
                        time.sleep(0.5)
                        # Guest side copies text: the agent grabs the client's clipboard; the client requests it.
                        clip_file = tmp / "guest-clipboard.txt"
                        clip_file.write_text(CLIPBOARD_FROM_GUEST)
                        tl.note("guest_set_clipboard", display=f":{xs.display}",
                                how="xclip -i -selection clipboard", text=CLIPBOARD_FROM_GUEST)
                        guest_clip = peers.Program(["xclip", "-quiet", "-i", "-selection", "clipboard",
                                                    str(clip_file)], xs.display, tmp, name="xclip", env=env)
                        got = client.wait_event("clipboard_received", 15)
                        client.wait_exit(15)
                        time.sleep(0.5)
                        xs.screenshot(png)
                        tl.note("ground_truth", file=png.name,
                                how=f"xwd -root -silent -display :{xs.display} | convert xwd:- png")
                    finally:
                        client.stop()
                        client_timeline(tl, client, wall0, tmp)
                    time.sleep(0.5)
            finally:
                if guest_clip:
                    guest_clip.stop()
        arrived = received / TRANSFER_FILE_NAME
        if not arrived.exists():
            raise peers.PeerError(f"the file did not arrive in the guest: {sorted(received.iterdir())}")
        transfer = {
            "file_name": TRANSFER_FILE_NAME, "size": src.stat().st_size, "sha256": sha256(src),
            "content": "a one-line text header, then SHA-256(i) for i = 0, 1, ... (8-byte little-endian i), "
                       "cut at the size",
            "how": "spice_main_channel_file_copy_async (spice-gtk GObject API, scripts/spice_glib_client.py)",
            "received_as": arrived.name, "received_size": arrived.stat().st_size,
            "received_sha256": sha256(arrived),
            "received_intact": arrived.read_bytes() == src.read_bytes(),
            "guest_save_dir": "spice-vdagent -f <private dir> -o 0",
        }
        if not transfer["received_intact"]:
            raise peers.PeerError(f"the file arrived damaged: {transfer}")
        clipboard = {
            "client_to_guest": {"text": CLIPBOARD_TO_GUEST, "read_in_guest": read_in_guest,
                                "intact": read_in_guest == CLIPBOARD_TO_GUEST,
                                "how": "client clipboard_selection_grab(CLIPBOARD, [UTF8_TEXT]); guest xclip -o; "
                                       "agent CLIPBOARD_REQUEST; client clipboard_selection_notify"},
            "guest_to_client": {"text": CLIPBOARD_FROM_GUEST, "received_by_client": got["text"],
                                "intact": got["text"] == CLIPBOARD_FROM_GUEST,
                                "how": "guest xclip -i; agent CLIPBOARD_GRAB; client "
                                       "clipboard_selection_request(UTF8_TEXT); agent CLIPBOARD"},
        }
        keep_capture(s, raw, final)
    if cap.dropped:
        raise CaptureIncomplete(f"{s.name}: tshark dropped {cap.dropped} packets")
    meta = describe(s, started, desk.sizes, desk.ran, tl, final, png, None)
    meta["client"] = {"program": "scripts/spice_glib_client.py agent (spice-gtk 0.42 SpiceClientGLib from "
                                 "Debian's /usr/bin/python3, headless: links main, display, inputs, cursor)",
                      "argv": shlex.join(client.argv).replace(str(tmp), "$TMP")}
    meta["file_transfer"] = transfer
    meta["clipboard"] = clipboard
    meta["capture"]["packets_dropped_by_capture"] = cap.dropped
    meta["versions"].update(extra_versions())
    (out_dir / f"{s.name}.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return meta


def record_qemu(s: Session, out_dir: Path) -> dict:
    """QEMU (QXL, port/webdav/usbredir/audio devices) and the GObject client linking every channel."""
    final, png = capture_files(s, out_dir)
    started = dt.datetime.now(dt.timezone.utc)
    with tempfile.TemporaryDirectory(prefix=f"corpus-{s.name}-") as tmpname:
        tmp = Path(tmpname)
        qs = peers.QemuSettings(port=s.port, monitor=str(tmp / "hmp.sock"))
        share = tmp / "share"
        share.mkdir()
        (share / "readme.txt").write_text("shared by the spicetool corpus client over webdav\n")
        raw = tmp / final.name
        with peers.Qemu(qs, tmp) as qemu:
            with peers.Tshark(qemu.port, raw, pcapng=s.pcapng, log_dir=tmp) as cap:
                tl = Timeline()
                wall0 = time.time()
                tl.note("capture_started", filter=f"tcp port {qemu.port}")
                client = peers.GlibClient("channels", qemu.port, tmp, ["--shared-dir", str(share), "--duration",
                                                                        str(s.duration), "--timeout", "60"])
                try:
                    # The firmware is done long before: pause the guest, let the client catch up, then
                    # take QEMU's own framebuffer as the ground truth while the client is still connected.
                    time.sleep(max(0.0, tl.t0 + s.duration - 3.0 - time.monotonic()))
                    qemu.hmp("stop")
                    tl.note("guest_paused", how="monitor: stop")
                    time.sleep(2.0)
                    qemu.screendump(png)
                    tl.note("ground_truth", file=png.name, how="monitor: screendump (PPM) | convert png")
                    client.wait_exit(s.duration + 30)
                finally:
                    client.stop()
                    client_timeline(tl, client, wall0, tmp)
                time.sleep(0.5)
            qemu_log = qemu.log_text()
        keep_capture(s, raw, final)
    if cap.dropped:
        raise CaptureIncomplete(f"{s.name}: tshark dropped {cap.dropped} packets")
    events = [e for e in tl.events if e["action"].startswith("client:")]
    # The primary surface sizes spice-gtk's display channel was told to create, in order.
    sizes = [f"{e['width']}x{e['height']}" for e in events if e["action"] == "client:primary_create"]
    meta = {
        "name": s.name,
        "description": s.description,
        "date": started.isoformat(timespec="seconds"),
        "server": {
            "program": "qemu-system-x86_64 (spice-server inside), QXL VGA, no disk, no NIC: the desktop is "
                       "the SeaBIOS boot screen (VGA text mode), software emulation (TCG)",
            "address": f"127.0.0.1:{qs.port}",
            "argv": shlex.join(qs.argv()).replace(str(tmp), "$TMP"),
            "ticketing": False,
            "port_channels": [peers.SERIAL_PORT_NAME, peers.WEBDAV_PORT_NAME],
            "usbredir": qs.usbredir, "audio": "-audiodev spice + ich9-intel-hda + hda-duplex (playback, record)",
            "log": qemu_log.strip() or None,
        },
        "client": {
            "program": "scripts/spice_glib_client.py channels (spice-gtk 0.42 SpiceClientGLib from Debian's "
                       "/usr/bin/python3, headless): enable-audio with SpiceAudio, enable-usbredir with the USB "
                       "device manager, webdav with a shared directory; connects every channel listed",
            "argv": shlex.join(client.argv).replace(str(tmp), "$TMP"),
            "port_channels": "on PORT_INIT each port gets a PORT_EVENT BREAK (2) from the client; no guest OS "
                             "opens the ports, so spice-gtk sends no port data (it refuses writes to a closed port)",
            "duration_s": s.duration,
        },
        "screen_sizes": sizes,
        "screen_sizes_from": "the client's display-primary-create signals (spice-gtk)",
        "timeline_origin": "t=0 is when tshark reported it was capturing, just before the client connected",
        "timeline": tl.events,
        "capture": {
            "file": final.name,
            "format": "pcapng" if s.pcapng else "pcap",
            "tool": f"tshark -i lo -f 'tcp port {qs.port}' -F {'pcapng' if s.pcapng else 'pcap'}",
            "bytes": final.stat().st_size,
            "packets": count_packets(final),
            "cut": None,
            "starts_mid_session": False,
            "packets_dropped_by_capture": cap.dropped,
        },
        "ground_truth": {"file": png.name, "what": "QEMU's own framebuffer of the QXL head (monitor screendump) "
                                                  "after the guest was paused, 2 s before the client left"},
        "versions": {**tool_versions(), **extra_versions()},
        "regenerate": "scripts/record_corpus.py " + shlex.join(cli_args(s)),
    }
    (out_dir / f"{s.name}.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return meta


def record_qemu_linux(s: Session, out_dir: Path) -> dict:
    """QEMU booting the machine's Debian kernel with a busybox initramfs built now (never committed): the kernel
    qxl driver draws fbcon text, then /init writes colour bars into each framebuffer; spicy on an Xvfb is
    connected from the firmware on. Truth: QEMU's screendump of every head, taken while the guest runs
    (a stopped guest's screendump shows the device memory, which the driver's commands never touched)."""
    final, png = capture_files(s, out_dir)
    head_pngs = [png] + [out_dir / f"{s.name}.qxl{i}.png" for i in range(1, s.qxl_heads)]
    started = dt.datetime.now(dt.timezone.utc)
    with tempfile.TemporaryDirectory(prefix=f"corpus-{s.name}-") as tmpname:
        tmp = Path(tmpname)
        initrd = tmp / "initramfs.cpio"
        built = peers.build_initramfs(initrd, heads=s.qxl_heads)
        qs = peers.QemuLinuxSettings(port=s.port, initrd=str(initrd), kernel=built["kernel"],
                                     monitor=str(tmp / "hmp.sock"), serial_log=str(tmp / "serial.log"),
                                     heads=s.qxl_heads)
        raw = tmp / final.name
        truth = []
        # QEMU first: its readiness probes of the SPICE port stay out of the capture; the guest is still in
        # its firmware when the client connects.
        with peers.Xvfb(s.client_display, CLIENT_SCREEN) as xv, peers.QemuLinux(qs, tmp) as qemu:
            qemu_listening = time.monotonic()
            with peers.Tshark(s.port, raw, pcapng=s.pcapng, log_dir=tmp) as cap:
                tl = Timeline()
                tl.note("capture_started", filter=cap.filter,
                        qemu_port_listening_s_before=round(tl.t0 - qemu_listening, 2))
                with peers.Spicy(xv.display, qemu.port, log_dir=tmp) as cl:
                    tl.note("client_connected")
                    qemu.wait_guest(240)
                    tl.note("guest_ready", how=f"serial console printed {peers.GUEST_READY}")
                    # The guest is still from now on (no cursor blink, console log level 1).
                    time.sleep(max(2.0, tl.t0 + s.duration - time.monotonic() - 2.0))
                    for i, head_png in enumerate(head_pngs):
                        device = None if i == 0 else f"qxl{i}"
                        qemu.screendump(head_png, device)
                        how = f"monitor: screendump FILE{' ' + device if device else ''} (PPM) | convert png"
                        truth.append({"file": head_png.name, "device": device or "the -vga qxl device",
                                      "how": how})
                        tl.note("ground_truth", file=head_png.name, how=how)
                    behind = wait_heads_sent(raw, head_pngs, timeout=30.0)
                    tl.note("heads_sent" if not behind else "heads_not_sent", behind=behind)
                    time.sleep(1.0)
                    client_argv = cl.argv
                tl.note("client_closed")
                serial = qemu.serial_text()
                qemu_log = qemu.log_text()
                time.sleep(0.5)
        keep_capture(s, raw, final)
    if cap.dropped:
        raise CaptureIncomplete(f"{s.name}: tshark dropped {cap.dropped} packets")
    if behind:
        raise CaptureIncomplete(f"{s.name}: the server never sent the truth's screen: {'; '.join(behind)}")
    meta = {
        "name": s.name,
        "description": s.description,
        "date": started.isoformat(timespec="seconds"),
        "server": {
            "program": "qemu-system-x86_64 (spice-server inside) booting Debian's Linux kernel under TCG; the "
                       "kernel qxl DRM driver (fbdev emulation, fbcon) draws",
            "address": f"127.0.0.1:{qs.port}",
            "argv": shlex.join(qs.argv()).replace(str(tmp), "$TMP"),
            "ticketing": False,
            "qxl_devices": s.qxl_heads,
            "log": qemu_log.strip() or None,
        },
        "guest": {
            "kernel": built["kernel"], "kernel_version": built["kernel_version"],
            "initramfs": "busybox-static + the modules below, built at record time (cpio newc, uncompressed); "
                         "never committed", "initramfs_bytes": built["bytes"], "modules": built["modules"],
            "insmod_order": built["insmod_order"], "pattern_lines_per_write": built["pattern_lines_per_write"],
            "init": built["init"].splitlines(),
            "serial_console": serial.splitlines()[-40:],
        },
        "client": {"program": "spicy", "argv": shlex.join(client_argv), "display": f"Xvfb {CLIENT_SCREEN}"},
        "timeline_origin": "t=0 is when tshark reported it was capturing: QEMU's SPICE port listened, the client "
                           "was not yet connected",
        "timeline": tl.events,
        "capture": {
            "file": final.name,
            "format": "pcapng" if s.pcapng else "pcap",
            "tool": f"tshark -i lo -f '{cap.filter}' -F {'pcapng' if s.pcapng else 'pcap'}",
            "bytes": final.stat().st_size,
            "packets": count_packets(final),
            "cut": None,
            "starts_mid_session": False,
            "packets_dropped_by_capture": cap.dropped,
        },
        "ground_truth": {"file": png.name, "heads": truth,
                         "what": "QEMU's framebuffer of each QXL head (monitor screendump) while the guest runs, "
                                 "after /init finished drawing"},
        "versions": {**tool_versions(), **extra_versions(),
                     **package_versions(("busybox-static", f"linux-image-{built['kernel_version']}"))},
        "regenerate": "scripts/record_corpus.py " + shlex.join(cli_args(s)),
    }
    (out_dir / f"{s.name}.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return meta


def heads_behind(capture: Path, head_pngs: list[Path]) -> tuple[list[str], int]:
    """What the capture still lacks of the truth: each display channel whose last primary surface is not the
    size of its head's screendump (the device's mode is set before spice-server sends it: on a loaded machine
    a second head's worker has been seen seconds behind); and the display messages captured so far."""
    from PIL import Image

    from spicetool.capture import CaptureFailure, open_records

    size: dict[int, tuple[int, int]] = {}
    count = 0
    try:
        for r in open_records(str(capture)):
            if r.channel.channel_type != 2 or r.layer != "message":   # SPICE_CHANNEL_DISPLAY
                continue
            count += 1
            if r.type == "surface_create" and r.fields.get("surface_id") == 0:
                size[r.channel.channel_id] = (r.fields["width"], r.fields["height"])
    except CaptureFailure:
        pass   # the file's last packet half written: what came before it counts
    behind = []
    for i, png in enumerate(head_pngs):
        with Image.open(png) as img:
            want = img.size
        if size.get(i) != want:
            got = "no primary surface" if i not in size else "%dx%d" % size[i]
            behind.append(f"display {i}: {got}, the device shows {want[0]}x{want[1]}")
    return behind, count


def wait_heads_sent(capture: Path, head_pngs: list[Path], timeout: float) -> list[str]:
    """Waits until the capture holds every head's screen at the screendumps' sizes and its display channels
    have been quiet for a second; what it still lacks at the timeout."""
    deadline = time.monotonic() + timeout
    before = -1
    while True:
        behind, count = heads_behind(capture, head_pngs)
        if not behind and count == before:
            return []
        if time.monotonic() > deadline:
            return behind or ["the display channels never went quiet"]
        before = count
        time.sleep(1.0)


def extra_versions() -> dict[str, str]:
    pkgs = ["qemu-system-x86", "python3-gi", "gir1.2-spiceclientglib-2.0", "libspice-client-glib-2.0-8", "xclip"]
    out = subprocess.run(["dpkg-query", "-W", *pkgs], capture_output=True, text=True).stdout
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def gtk_versions() -> dict[str, str]:
    """Debian's GTK 3 for Python, which the GTK_PROGRAMS run on."""
    pkgs = ["python3-gi", "gir1.2-gtk-3.0", "python3-gi-cairo", "libgtk-3-0", "libcairo2"]
    out = subprocess.run(["dpkg-query", "-W", *pkgs], capture_output=True, text=True).stdout
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def window_of(display: int, prog: peers.Program) -> str | None:
    """The program's visible top-level window, found by pid (xdotool) or, failing that, by name."""
    env = peers.x_env(display)
    r = subprocess.run(["xdotool", "search", "--onlyvisible", "--pid", str(prog.pid)], env=env,
                       capture_output=True, text=True)
    if not r.stdout.strip():
        r = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", prog.name], env=env,
                           capture_output=True, text=True)
    ids = r.stdout.split()
    return ids[0] if ids else None


def session_actions(s: Session, xs: peers.Xspice, cl: peers.Spicy, progs: dict[str, peers.Program],
                    tl: Timeline, sizes: list[str]) -> None:
    """What happens while the client is connected: about `s.duration` seconds of activity."""
    end = tl.t0 + s.duration - 2.5  # the last ~2.5 s belong to the frozen final picture
    if s.resize_first:
        time.sleep(1.0)
        xs.xrandr(s.resize_first)
        sizes.append(s.resize_first)
        tl.note("xrandr", size=s.resize_first)
    time.sleep(1.5)
    if s.mouse:
        mouse_path(cl.display, cl, tl)
    for p in s.programs:
        if p in LATE_PROGRAMS:
            progs[p] = peers.Program(PROGRAMS[p][0], xs.display, xs.dir, name=p, env=clean_env(xs.dir / "home"))
            peers.wait_until(lambda: window_of(xs.display, progs[p]) is not None, 15, f"{p} window",
                             progs[p].proc, interval=0.2)
            tl.note("started", program=p)
            time.sleep(0.5)
    if s.move_window and "xlogo" in progs:
        win = window_of(xs.display, progs["xlogo"])
        if win:
            move_window_steps(xs.display, win, (560, 220), (-12, 10), 12, tl)
    if s.type_text and "xterm" in progs:
        # The guest side gives the xterm keyboard focus (as an earlier click would have); the client types.
        win = window_of(xs.display, progs["xterm"])
        peers.xdotool(xs.display, "windowfocus", "--sync", win)
        peers.xdotool(cl.display, "windowfocus", cl.window_id())
        peers.xdotool(cl.display, "type", "--delay", "90", s.type_text)
        peers.xdotool(cl.display, "key", "Return")
        tl.note("type", display=f":{cl.display}", text=s.type_text, then="Return")
    if s.select_text and "xterm" in progs:
        # Guest side: xterm's first line is at y≈30; a double-click selects "spicetool" into PRIMARY.
        peers.xdotool(xs.display, "mousemove", "60", "30", "click", "--repeat", "2", "--delay", "80", "1")
        tl.note("select_text", display=f":{xs.display}", at=[60, 30], how="double-click, PRIMARY selection")
        time.sleep(1.0)
    if s.resize_to:
        time.sleep(max(0.0, min(1.5, end - time.monotonic())))
        xs.xrandr(s.resize_to)
        sizes.append(s.resize_to)
        tl.note("xrandr", size=s.resize_to)
        time.sleep(1.0)
        if s.move_window and "xlogo" in progs:
            win = window_of(xs.display, progs["xlogo"])
            if win:
                move_window_steps(xs.display, win, (416, 340), (10, -8), 8, tl)
    if s.mouse and time.monotonic() < end - 1:
        mouse_path(cl.display, cl, tl)
    time.sleep(max(0.0, end - time.monotonic()))


def final_picture(s: Session, xs: peers.Xspice, progs: dict[str, peers.Program], png: Path, tl: Timeline) -> None:
    """Freeze the animating programs, let the client catch up, then take the ground truth."""
    frozen = [name for name, p in progs.items() if PROGRAMS[name][1]]
    for name in frozen:
        progs[name].pause()
    tl.note("SIGSTOP", programs=frozen)
    # Xspice draws the X pointer into the frames it sends, and xwd leaves it out: park the pointer
    # on the bare root window, whose cursor is made invisible, so the truth is what the client saw
    park = (4, xs.screen_size()[1] - 4)
    blank = Path(xs.dir) / "blank.xbm"
    blank.write_text("#define blank_width 8\n#define blank_height 8\n#define blank_x_hot 0\n#define blank_y_hot 0\n"
                     "static unsigned char blank_bits[] = {\n 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 };\n")
    subprocess.run(["xsetroot", "-display", f":{xs.display}", "-cursor", str(blank), str(blank)], check=True)
    peers.xdotool(xs.display, "mousemove", str(park[0]), str(park[1]))
    tl.note("pointer_parked", at=list(park), cursor="blank root cursor")
    time.sleep(2.0)
    xs.screenshot(png)
    tl.note("ground_truth", file=png.name, how=f"xwd -root -silent -display :{xs.display} | convert xwd:- png")


def cut_start(raw: Path, final: Path, seconds: float, pcapng: bool) -> dict:
    """Drop the first `seconds` of the capture with editcap -A (a capture that starts mid-session)."""
    first = subprocess.run(["tshark", "-r", str(raw), "-c", "1", "-T", "fields", "-e", "frame.time_epoch"],
                           capture_output=True, text=True, check=True).stdout.strip()
    start = dt.datetime.fromtimestamp(float(first) + seconds, dt.timezone.utc)
    stamp = start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    cmd = ["editcap", "-F", "pcapng" if pcapng else "pcap", "-A", stamp, str(raw), str(final)]
    subprocess.run(cmd, check=True, capture_output=True)
    before = count_packets(raw)
    return {"tool": "editcap", "seconds_cut": seconds, "measured_from": "the first packet of the full capture",
            "start_time_utc": stamp,
            "command": shlex.join(["editcap", *cmd[1:-2], "full", final.name]),
            "packets_before": before, "packets_dropped": before - count_packets(final)}


def count_packets(path: Path) -> int:
    out = subprocess.run(["capinfos", "-c", "-M", "-T", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1].split("\t")[-1])


def describe(s: Session, started: dt.datetime, sizes: list[str], ran: list[dict], tl: Timeline, capture: Path,
             png: Path, cut: dict | None) -> dict:
    return {
        "name": s.name,
        "description": s.description,
        "date": started.isoformat(timespec="seconds"),
        "server": {
            "program": "Xspice (Xorg + spiceqxl driver, libspice-server), own xorg.conf",
            "address": f"127.0.0.1:{s.port}",
            "image_compression": s.image_compression or "default (auto_glz)",
            "jpeg_wan_compression": s.jpeg_wan_compression or "default (auto)",
            "zlib_glz_wan_compression": s.zlib_glz_wan_compression or "default (auto)",
            "streaming_video": s.streaming_video or "default (filter)",
            "password": s.password,
            "ticketing": s.password is not None,
            "vdagent": s.vdagent,
            "playback_audio": s.audio,
        },
        "screen_sizes": sizes,
        "client": {
            "program": s.client,
            "preferred_compression": s.preferred_compression,
            "password_given": s.password is not None,
            "display": f"Xvfb {CLIENT_SCREEN}" if s.client == "spicy" else None,
        },
        "desktop_programs": ran,
        "typed_text": s.type_text,
        "timeline_origin": "t=0 is when tshark reported it was capturing, just before the client connected",
        "timeline": tl.events,
        "capture": {
            "file": capture.name,
            "format": "pcapng" if s.pcapng else "pcap",
            "tool": f"tshark -i lo -f 'tcp port {s.port}' -F {'pcapng' if s.pcapng else 'pcap'}",
            "bytes": capture.stat().st_size,
            "packets": count_packets(capture),
            "cut": cut,
            "starts_mid_session": cut is not None,
        },
        "ground_truth": {"file": png.name, "what": "Xspice root window at the end of the session (xwd -root)"},
        "versions": tool_versions(),
        "regenerate": "scripts/record_corpus.py " + shlex.join(cli_args(s)),
    }


def cli_args(s: Session) -> list[str]:
    """The command line that records this session again."""
    where = ("port", "server_display", "client_display")  # given apart: --port, --displays
    base = next((c for c in CORPUS if c.name == s.name), None) or Session(s.name)
    moved = [] if all(getattr(s, k) == getattr(base, k) for k in where) else [
        "--port", str(s.port), "--displays", f"{s.server_display},{s.client_display}"]
    if any(c.name == s.name and dataclasses.replace(s, **{k: getattr(c, k) for k in where}) == c for c in CORPUS):
        return ["--only", s.name, *moved]
    args = ["--name", s.name, *moved]
    for f in dataclasses.fields(Session):
        value, default = getattr(s, f.name), f.default if f.default is not dataclasses.MISSING else None
        if f.name in ("name", *where) or value == default:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + f.name.replace("_", "-"))
        elif isinstance(value, tuple):
            args += [flag, ",".join(value)]
        else:
            args += [flag, str(value)]
    return args


def summarize(capture: Path) -> dict:
    """What Wireshark's SPICE dissector sees in a capture: channels linked, image types, message counts."""
    def fields(*names: str, extra: tuple[str, ...] = ()) -> list[list[str]]:
        out = subprocess.run(["tshark", "-r", str(capture), "-Y", "spice", *extra, "-T", "fields",
                              *[a for n in names for a in ("-e", n)]], capture_output=True, text=True).stdout
        return [line.split("\t") for line in out.splitlines()]

    channels = sorted({int(c) for row in fields("spice.channel_type") for c in row[0].split(",") if c})
    images: dict[str, int] = {}
    messages: dict[str, int] = {}
    verbose = subprocess.run(["tshark", "-r", str(capture), "-Y", "spice", "-V"], capture_output=True,
                             text=True).stdout
    for line in verbose.splitlines():
        line = line.strip()
        if line.startswith("Image type: "):
            key = line.removeprefix("Image type: ")
            images[key] = images.get(key, 0) + 1
        elif line.startswith("Message type: ") and "(" in line:
            key = line.removeprefix("Message type: ")
            messages[key] = messages.get(key, 0) + 1
    return {"channels_linked": channels, "image_types": images, "messages": messages}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--all", action="store_true", help="record the whole corpus")
    ap.add_argument("--only", help="comma-separated corpus session names")
    ap.add_argument("--list", action="store_true", help="list the corpus sessions")
    ap.add_argument("--summary", action="store_true",
                    help="print what tshark decodes in each capture under --out (channels, image types)")
    ap.add_argument("--out", type=Path, default=CAPTURES)
    ap.add_argument("--name", help="record one custom session under this name")
    ap.add_argument("--description", default="")
    ap.add_argument("--image-compression", choices=peers.IMAGE_COMPRESSIONS)
    ap.add_argument("--jpeg-wan-compression", choices=peers.WAN_CHOICES, default="never")
    ap.add_argument("--zlib-glz-wan-compression", choices=peers.WAN_CHOICES, default="never")
    ap.add_argument("--streaming-video", choices=peers.STREAMING_CHOICES, default="off")
    ap.add_argument("--password")
    ap.add_argument("--vdagent", action=argparse.BooleanOptionalAction, default=False)
    ap.add_argument("--audio", action=argparse.BooleanOptionalAction, default=False)
    ap.add_argument("--programs", default=",".join(DEFAULT_PROGRAMS), help=f"from {','.join(PROGRAMS)}")
    ap.add_argument("--preferred-compression", choices=peers.CLIENT_COMPRESSIONS)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--move-window", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--mouse", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--type-text")
    ap.add_argument("--resize-to", help="xrandr size mid-session, e.g. 800x600")
    ap.add_argument("--select-text", action=argparse.BooleanOptionalAction, default=False,
                    help="double-click a word in the guest xterm (agent clipboard traffic)")
    ap.add_argument("--pcapng", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--cut-seconds", type=float, default=0.0)
    ap.add_argument("--resize-first", help="xrandr size a second after the client connected, e.g. 1920x1080")
    ap.add_argument("--second-head", help="a second monitor of this size, e.g. 800x600")
    ap.add_argument("--kind", choices=("xspice", "qemu-linux"), default="xspice",
                    help="xspice: Xspice desktop; qemu-linux: QEMU booting Debian's kernel (kernel qxl driver)")
    ap.add_argument("--client", choices=CLIENTS, default="spicy")
    ap.add_argument("--video-codecs", help="spice-server video codecs, e.g. gstreamer:vp8 (with --streaming-video all)")
    ap.add_argument("--proxy", action=argparse.BooleanOptionalAction, default=False,
                    help="spicy through tinyproxy (HTTP CONNECT, SPICE_PROXY)")
    ap.add_argument("--tls", action=argparse.BooleanOptionalAction, default=False,
                    help="spicy over TLS to a TLS front with a key log (scripts/tls_front.py)")
    ap.add_argument("--websockify", action=argparse.BooleanOptionalAction, default=False,
                    help="spice-html5 through websockify (else to Xspice's own port)")
    ap.add_argument("--capture-legs", choices=("all", "client"), default="all",
                    help="all: every hop's port; client: the client's hop only")
    ap.add_argument("--proxy-port", type=int, default=5932)
    ap.add_argument("--ws-port", type=int, default=5933)
    ap.add_argument("--http-port", type=int, default=5934)
    ap.add_argument("--tls-port", type=int, default=5935)
    ap.add_argument("--drop-frames", type=int, default=0,
                    help="lost segments: drop this many display-channel data frames mid-capture (editcap)")
    ap.add_argument("--qxl-heads", type=int, default=1, help="qemu-linux: QXL devices (1 or 2)")
    ap.add_argument("--port", type=int, help=f"server port (default {SERVER_PORT}; Xspice sessions)")
    ap.add_argument("--displays", help=f"server,client X displays (default {SERVER_DISPLAY},{CLIENT_DISPLAY})")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.list:
        for s in CORPUS:
            print(f"{s.name:20} {s.description}")
        return 0
    if a.summary:
        for cap in sorted([*a.out.glob("*.pcap"), *a.out.glob("*.pcapng")]):
            info = summarize(cap)
            print(f"{cap.name}: {cap.stat().st_size} bytes, channels {info['channels_linked']}, "
                  f"images {info['image_types']}")
        return 0
    if a.name:
        programs = tuple(p for p in a.programs.split(",") if p)
        unknown = [p for p in programs if p not in PROGRAMS]
        if unknown:
            raise SystemExit(f"unknown programs: {unknown}")
        given = {f.name: getattr(a, f.name) for f in dataclasses.fields(Session)
                 if f.name not in ("name", "programs", "port", "server_display", "client_display")
                 and getattr(a, f.name, None) is not None}
        sessions = [Session(a.name, programs=programs, **given)]
        if sessions[0].kind == "qemu-linux" and not a.port:
            sessions[0].port = 5929
        sessions[0].validate()
    elif a.all or a.only:
        wanted = None if a.all else set(a.only.split(","))
        sessions = [s for s in CORPUS if wanted is None or s.name in wanted]
        if wanted and len(sessions) != len(wanted):
            raise SystemExit(f"unknown sessions: {wanted - {s.name for s in sessions}}")
        if a.out.resolve() == CAPTURES.resolve():
            outside = [s.name for s in sessions if s.name in OUTSIDE_CAPTURES]
            if wanted and outside:
                raise SystemExit(f"{', '.join(outside)}: not into captures/ yet (the library cannot read them); "
                                 "give --out DIR")
            if outside:
                print(f"skipped (record them with --out DIR): {', '.join(outside)}", flush=True)
            sessions = [s for s in sessions if s.name not in OUTSIDE_CAPTURES]
    else:
        raise SystemExit("nothing to do: give --all, --only NAMES, --list or --name NAME")
    if a.port or a.displays:  # beside other users of the default port and displays
        server_display, client_display = (int(d) for d in a.displays.split(",")) if a.displays else (
            SERVER_DISPLAY, CLIENT_DISPLAY)
        sessions = [dataclasses.replace(s, port=a.port or s.port, server_display=server_display,
                                        client_display=client_display) if s.kind != "qemu" else s
                    for s in sessions]
    for s in sessions:
        t = time.monotonic()
        try:
            meta = record(s, a.out)
        except CaptureIncomplete as e:
            print(f"{e}; recording it again", flush=True)
            meta = record(s, a.out)
        c = meta["capture"]
        print(f"{s.name}: {c['file']} {c['bytes']} bytes, {c['packets']} packets "
              f"({time.monotonic() - t:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the context managers' cleanup
    sys.exit(main())
