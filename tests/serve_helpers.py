"""Helpers for the serve tests: a real `spicetool serve` server in a thread of the test process, so a test can hold the demo
still, read the model's framebuffer and input log, and point real clients at it.

Ports 5940-5949 and X displays :40-:49 belong to these tests (others use other ranges).
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import peers  # noqa: E402
from support import read_ppm  # noqa: F401  (the serve tests import it from here)

from spicetool.qxl.demo import DemoDesktop  # noqa: E402
from spicetool.qxl.device import QxlDevice  # noqa: E402
from spicetool.server.inputlog import InputLog  # noqa: E402
from spicetool.server.server import SpiceServer  # noqa: E402

PORTS = range(5940, 5950)
DISPLAYS = range(40, 50)


def need(program: str) -> str:
    """A real peer's path; a failure under CI=true, a skip elsewhere."""
    path = shutil.which(program)
    if path is None:
        message = f"{program} is not installed (bash scripts/test.sh installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    return peers.pick_port(PORTS)


_held: list = []  # display locks of the running test (released by the autouse fixture)


def free_display() -> int:
    """A free display of ours, locked against the other pytest-xdist workers for this test."""
    import fcntl
    for display in DISPLAYS:
        f = open(f"/tmp/.spicetool-serve-tests-display-{display}.lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        if peers.display_free(display):
            _held.append(f)
            return display
        f.close()
    raise peers.PeerError(f"no free display among {list(DISPLAYS)}")


def release_displays() -> None:
    while _held:
        _held.pop().close()


class ServerThread:
    """SpiceServer + demo desktop on an event loop in a background thread."""

    def __init__(self, tmp: Path, password: bytes | None = None, size: tuple[int, int] = (640, 480),
                 link_timeout: float = 10.0, ping_interval: float = 10.0, port: int | None = None,
                 replay: Path | None = None, speed: float = 1.0, loop: bool = False,
                 start: float = 0.0, stop: float | None = None, pause_at: float | None = None,
                 agent: bool = False, agent_dir: Path | None = None, agent_max_file: int = 1 << 20,
                 tls: bool = False, secure_channels: set = frozenset(), heads: bool = False,
                 image_compression: str = "off", keylog: Path | None = None, replay_mode: str = "pictures"):
        """`heads`: replay every display channel of the capture, a device each (as `spicetool
        serve --replay` does); without, display 0 into `device` alone."""
        self.port = 0
        self.input_log_path = tmp / "inputs.jsonl"
        self.messages: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.device = QxlDevice()
        self.replay = None
        displays = None
        if replay is not None and heads:
            from spicetool.replay.heads import HeadsReplay
            self.replay = HeadsReplay(str(replay), speed, loop, start=start, stop=stop, pause_at=pause_at,
                                      keylog=str(keylog) if keylog is not None else None,
                                      warn=self.messages.append, mode=replay_mode)
            self.replay.prepare()
            displays = self.replay.devices
            self.device = displays[min(displays)]
        elif replay is not None:
            from spicetool.replay.capture_replay import CaptureReplay
            self.replay = CaptureReplay(self.device, str(replay), speed, loop, start=start, stop=stop,
                                        pause_at=pause_at, mode=replay_mode)
            self.replay.prepare()
        else:
            self.desktop = DemoDesktop(self.device, *size)
            self.desktop.draw_initial()
        self.input_log = InputLog(self.input_log_path)
        self.agent = None
        if agent or agent_dir is not None:
            from spicetool.server.agent import GuestAgent
            self.agent = GuestAgent(agent_dir, agent_max_file,
                                    resize=self.desktop.resize if replay is None else None)
        self.server = SpiceServer(self.device, password, self.input_log, link_timeout=link_timeout,
                                  ping_interval=ping_interval, log=self.messages.append, verbose=True,
                                  agent=self.agent, secure_channels=secure_channels, displays=displays,
                                  image_compression=image_compression)
        if self.replay is not None:  # as `spicetool serve` wires it
            from spicetool.qxl.worker import Prebuilder
            self.replay.prepare_command = Prebuilder(lambda: self.server.image_compression)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        # another xdist worker may take a port between our look and our bind: try the next
        for candidate in [port] if port else PORTS:
            if port is None and not peers.port_free(candidate):
                continue
            try:
                self.call(self.server.start("127.0.0.1", candidate))
            except OSError:
                if port is not None:
                    raise
                continue
            self.port = candidate
            break
        else:
            raise peers.PeerError(f"no free port among {list(PORTS)}")
        self._anim: asyncio.Task | None = None
        self.tls_port = 0
        self.ca_file: Path | None = None
        if tls:
            from spicetool.server.tls import self_signed, server_context
            self.ca_file, key = self_signed("127.0.0.1", tmp / "tls")
            ctx = server_context(self.ca_file, key)
            for candidate in PORTS:
                if candidate == self.port or not peers.port_free(candidate):
                    continue
                try:
                    self.call(self.server.start_tls("127.0.0.1", candidate, ctx))
                except OSError:
                    continue
                self.tls_port = candidate
                break
            else:
                raise peers.PeerError(f"no free TLS port among {list(PORTS)}")

    def call(self, what, timeout: float = 30.0):
        """Run a coroutine or a plain function on the server's loop and return its result."""
        if asyncio.iscoroutine(what):
            return asyncio.run_coroutine_threadsafe(what, self.loop).result(timeout)

        async def wrap():
            return what()
        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(timeout)

    def animate(self, fps: float = 20) -> None:
        async def start():
            async def loop():
                while True:
                    self.desktop.step()
                    await asyncio.sleep(1 / fps)
            self._anim = asyncio.create_task(loop())
        self.call(start())

    def start_replay(self) -> threading.Event:
        """Run the capture replay; the returned event is set when it has finished."""
        finished = threading.Event()

        async def start():
            async def go():
                try:
                    await self.replay.run()
                finally:
                    finished.set()
            self._anim = asyncio.create_task(go())
        self.call(start())
        return finished

    def pause(self) -> None:
        def stop():
            if self._anim is not None:
                self._anim.cancel()
                self._anim = None
        self.call(stop)

    def step(self, n: int = 1) -> None:
        def go():
            for _ in range(n):
                self.desktop.step()
        self.call(go)

    def framebuffer(self) -> np.ndarray:
        return self.call(self.device.framebuffer_rgb)

    def pending(self) -> int:
        """Messages still waiting in any channel's pipe."""
        return self.call(lambda: sum(len(ch.pipe) for s in self.server.sessions.values()
                                     for ch in s.channels))

    def wait_idle(self, timeout: float = 10.0) -> None:
        peers.wait_until(lambda: self.pending() == 0, timeout, "server pipes drained")
        time.sleep(0.3)

    def inputs(self) -> list[dict]:
        if not self.input_log_path.exists():
            return []
        return [json.loads(l) for l in self.input_log_path.read_text().splitlines() if l]

    def sessions(self) -> int:
        return self.call(lambda: len(self.server.sessions))

    def stop(self) -> None:
        self.pause()
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.input_log.close()





def served_display_messages(cap: Path, port: int) -> list[dict]:
    """A capture of our server's traffic, checked (Wireshark finds nothing malformed in it, our
    dissector no error): the display messages the server sent, as `dissect --json` gives them."""
    import subprocess
    malformed = subprocess.run(["tshark", "-n", "-r", str(cap), "-d", f"tcp.port=={port},spice",
                                "-Y", "_ws.malformed"], capture_output=True, text=True)
    assert malformed.returncode == 0 and malformed.stdout.strip() == "", malformed.stdout + malformed.stderr
    out = subprocess.run([sys.executable, "-m", "spicetool", "dissect", "--json", str(cap)],
                         capture_output=True, text=True, check=True).stdout
    records = [json.loads(line) for line in out.splitlines()]
    assert not [o for o in records if o["layer"] == "error"]
    return [o for o in records
            if o["layer"] == "message" and o["channel"] == "display" and o["direction"] == "server"]


def find_subimage(haystack: np.ndarray, needle: np.ndarray) -> tuple[int, int] | None:
    """Top-left (x, y) where `needle` appears exactly inside `haystack`, or None."""
    nh, nw = needle.shape[:2]
    hh, hw = haystack.shape[:2]
    first = needle[0]
    for y in range(hh - nh + 1):
        row = haystack[y]
        # candidate x positions where the first pixel matches, then the whole first row
        xs = np.nonzero(np.all(row[:hw - nw + 1] == first[0], axis=1))[0]
        for x in xs:
            if np.array_equal(row[x:x + nw], first) and np.array_equal(haystack[y:y + nh, x:x + nw], needle):
                return int(x), int(y)
    return None


# ---------------------------------------------------------------- a raw client, on the stack

import socket  # noqa: E402

from spicetool.stack import (  # noqa: E402
    ChannelEndpoint,
    ClientLink,
    LinkAccepted,
    LinkFailed,
    LinkRefused,
    Message,
    Role,
)
from spicetool.stack.link import parse_link_reply  # noqa: E402


class RawClient:
    """A scripted client: the link stage is the stack's ClientLink, messages are built and
    split by its endpoint; raw bytes can be sent as they are (hostile clients)."""

    def __init__(self, port: int, timeout: float = 5.0, sock: socket.socket | None = None):
        self.sock = sock if sock is not None else socket.create_connection(("127.0.0.1", port),
                                                                          timeout=timeout)
        self.buf = b""
        self.endpoint: ChannelEndpoint | None = None
        self.reply: dict | None = None      # the server's LinkReply fields, once read
        self.backlog: list = []             # data-phase events that came with the link result

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _recv(self) -> bytes:
        if self.buf:
            data, self.buf = self.buf, b""
            return data
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("closed by the server")
        return chunk

    def recv_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"closed after {len(self.buf)} of {n} bytes")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def closed_by_server(self, within: float = 5.0) -> bool:
        """True when the server closes the connection (EOF or reset) within `within` seconds."""
        self.sock.settimeout(within)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def link_reply(self, channel_type: int | None = 1) -> dict:
        """The LinkReply that answers raw bytes sent by the test (parsed by the stack)."""
        while (parsed := parse_link_reply(self.buf, 0, channel_type)) is None:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"closed after {len(self.buf)} bytes of a link reply")
            self.buf += chunk
        fields, size = parsed
        self.buf = self.buf[size:]
        return fields

    def link(self, channel_type: int = 1, connection_id: int = 0, password: bytes = b"",
             caps: tuple = ("protocol_auth_selection", "mini_header"), channel_id: int = 0,
             channel_caps: tuple = (), auth_mechanism: int = 1, ticket: bytes | None = None) -> str:
        """The whole link stage; returns the link error name (of the reply or the result)."""
        ep = ChannelEndpoint(Role.CLIENT, ClientLink(
            {"channel_type": channel_type, "channel_id": channel_id, "connection_id": connection_id,
             "common_caps": list(caps), "channel_caps": list(channel_caps)}, password,
            auth_mechanism=auth_mechanism, ticket=ticket))
        self.send(ep.data_to_send())
        while True:
            events = ep.receive_data(self._recv())
            self.send(ep.data_to_send())
            self.reply = ep.link.reply
            for i, ev in enumerate(events):
                if isinstance(ev, LinkRefused):
                    return ev.error
                if isinstance(ev, LinkFailed):
                    raise AssertionError(f"link failed: {ev.reason}")
                if isinstance(ev, LinkAccepted):
                    self.endpoint, self.channel_type = ep, channel_type
                    self.backlog = events[i + 1:]
                    return "OK"

    def messages(self, within: float = 1.0) -> list[Message]:
        """Messages the server sends in the next `within` seconds."""
        assert self.endpoint is not None
        out: list[Message] = [e for e in self.backlog if isinstance(e, Message)]
        self.backlog = []
        if self.buf:
            out += [e for e in self.endpoint.receive_data(self.buf) if isinstance(e, Message)]
            self.buf = b""
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                break
            if not chunk:
                break
            out += [e for e in self.endpoint.receive_data(chunk) if isinstance(e, Message)]
        return out

    def message(self, name: str, fields: dict | None = None) -> bytes:
        assert self.endpoint is not None
        return self.endpoint.send(name, fields or {})

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def spice_server(tmp_path):
    """A factory of servers in this test process; all stopped (and the test's X display locks
    released) at the end of the test.  Test modules import it (no conftest.py here, so that
    `from conftest import ...` elsewhere in tests/ always finds tests/conftest.py)."""
    servers: list[ServerThread] = []

    def make(**kw) -> ServerThread:
        s = ServerThread(tmp_path, **kw)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.stop()
    release_displays()


# ---------------------------------------------------------------- an agent client, on the stack

from spicetool.stack import Direction, build_agent_message  # noqa: E402
from spicetool.stack.enums import AgentCap, ChannelType, pack_caps  # noqa: E402
from spicetool.stack.vdagent import AgentReassembler, caps_bits  # noqa: E402

CLIENT_AGENT_CAPS = ["mouse_state", "monitors_config", "reply", "clipboard_by_demand",
                     "clipboard_selection", "sparse_monitors_config", "guest_lineend_lf",
                     "max_clipboard", "file_xfer_detailed_errors", "clipboard_no_release_on_regrab",
                     "clipboard_grab_serial"]


def agent_caps_words(names) -> list[int]:
    return pack_caps((AgentCap[n.upper()] for n in names), nwords=1)


class AgentClient:
    """A client main channel talking to the guest agent: AGENT_START, token accounting both
    ways, vdagent messages built and reassembled by the stack."""

    def __init__(self, port: int, caps=CLIENT_AGENT_CAPS, tokens: int = 10, start: bool = True,
                 auto_tokens: bool = True):
        self.auto_tokens = auto_tokens
        self.raw = RawClient(port)
        assert self.raw.link(ChannelType.MAIN, caps=("protocol_auth_selection", "mini_header")) == "OK"
        self.backlog: list[Message] = []
        init = self.wait_main("init")
        self.init = init.fields
        self.tokens = init.fields["agent_tokens"]   # AGENT_DATA we may send
        self.given = tokens                          # AGENT_DATA the server may send us
        self.received_data = 0
        self.reasm = AgentReassembler(Direction.SERVER)
        self.agent: list = []
        self.caps = list(caps)
        self.token_msgs = 0
        if start:
            self.raw.send(self.raw.message("agent_start", {"num_tokens": tokens}))

    def _pump(self, within: float) -> None:
        for m in self.raw.messages(within):
            if m.name == "agent_token":
                self.tokens += m.fields["num_tokens"]
                self.token_msgs += 1
            elif m.name == "agent_data":
                self.received_data += 1
                if self.auto_tokens:
                    self.give_tokens(1)
                msgs, err = self.reasm.feed(m.fields["data"], caps_bits(agent_caps_words(self.caps)))
                assert err is None, err
                for a in msgs:
                    a.fields.pop("__reserved", None)
                self.agent += msgs
            self.backlog.append(m)

    def wait_main(self, name: str, timeout: float = 5.0) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            for m in self.backlog:
                if m.name == name:
                    self.backlog.remove(m)
                    return m
            if time.monotonic() > deadline:
                raise AssertionError(f"no {name}; got {[m.name for m in self.backlog]}")
            self._pump(0.2)

    def give_tokens(self, n: int) -> None:
        self.raw.send(self.raw.message("agent_token", {"num_tokens": n}))

    def send(self, name: str, fields: dict, caps: set | None = None) -> None:
        caps = caps if caps is not None else self.negotiated()
        if "selection" in fields:
            fields = {**fields, "__reserved": b"\0\0\0"}
        data = build_agent_message(name, fields, caps=caps)
        for i in range(0, len(data), 2048):
            deadline = time.monotonic() + 5
            while self.tokens <= 0:
                assert time.monotonic() < deadline, "server returns no agent tokens"
                self._pump(0.1)
            self.tokens -= 1
            self.raw.send(self.raw.message("agent_data", {"data": data[i:i + 2048]}))

    def send_raw_chunk(self, chunk: bytes) -> None:
        """One AGENT_DATA with these bytes (tokens respected), whatever they hold."""
        deadline = time.monotonic() + 5
        while self.tokens <= 0:
            assert time.monotonic() < deadline, "server returns no agent tokens"
            self._pump(0.05)
        self.tokens -= 1
        self.raw.send(self.raw.message("agent_data", {"data": chunk}))

    def negotiated(self) -> set:
        mine = caps_bits(agent_caps_words(self.caps))
        return mine & self.reasm.caps if self.reasm.caps is not None else {AgentCap.CLIPBOARD_SELECTION}

    def announce(self) -> object:
        self.send("announce_capabilities", {"request": 1, "caps": agent_caps_words(self.caps)}, caps={AgentCap.CLIPBOARD_SELECTION})
        return self.wait_agent("announce_capabilities")

    def wait_agent(self, name: str, timeout: float = 5.0, **match):
        deadline = time.monotonic() + timeout
        while True:
            for m in self.agent:
                if m.name == name and all(m.fields.get(k) == v for k, v in match.items()):
                    self.agent.remove(m)
                    return m
            if time.monotonic() > deadline:
                raise AssertionError(f"no agent {name} {match}; got {[(m.name, m.fields) for m in self.agent]}")
            self._pump(0.1)

    def close(self) -> None:
        self.raw.close()


# ----------------------------------------------------------------------------- a client's window

def xvfb_shot(display: int, tmp) -> np.ndarray:
    from PIL import Image
    png = peers.xwd_png(display, tmp / f"x{display}.png")
    return np.asarray(Image.open(png).convert("RGB"))


def wait_for_picture(srv, display: int, tmp, timeout: float = 20.0) -> tuple[int, int]:
    """Where the model's framebuffer sits on the Xvfb screen, once the client shows it."""
    found: list = []

    def shows() -> bool:
        found[:] = [find_subimage(xvfb_shot(display, tmp), srv.framebuffer())]
        return found[0] is not None
    peers.wait_until(shows, timeout, "client window showing the server's framebuffer", interval=0.5)
    return found[0]


def animate_and_follow(srv, display: int, tmp, fps: float, seconds: float) -> None:
    """The client shows the still picture; the demo animates for `seconds` and stops; the
    client shows exactly the model's picture again."""
    wait_for_picture(srv, display, tmp)
    srv.animate(fps=fps)
    time.sleep(seconds)
    srv.pause()
    srv.wait_idle()
    wait_for_picture(srv, display, tmp)
