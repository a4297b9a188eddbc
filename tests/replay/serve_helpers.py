"""Helpers for the serve tests: a real `spicetool serve` server in a thread of the test process, so a test can hold the demo
still, read the model's framebuffer and input log, and point real clients at it.

Ports 5940-5949 and X displays :40-:49 belong to these tests (others use other ranges).
"""
from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path

import os
import shutil

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import peers  # noqa: E402

from spicetool.replay.demo import DemoDesktop  # noqa: E402
from spicetool.replay.inputlog import InputLog  # noqa: E402
from spicetool.replay.qxl import QxlDevice  # noqa: E402
from spicetool.replay.server import SpiceServer  # noqa: E402

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


def free_display() -> int:
    return peers.pick_display(DISPLAYS)


class ServerThread:
    """SpiceServer + demo desktop on an event loop in a background thread."""

    def __init__(self, tmp: Path, password: bytes | None = None, size: tuple[int, int] = (640, 480),
                 link_timeout: float = 10.0, ping_interval: float = 10.0, port: int | None = None):
        self.port = port or free_port()
        self.input_log_path = tmp / "inputs.jsonl"
        self.messages: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.device = QxlDevice()
        self.desktop = DemoDesktop(self.device, *size)
        self.desktop.draw_initial()
        self.input_log = InputLog(self.input_log_path)
        self.server = SpiceServer(self.device, password, self.input_log, link_timeout=link_timeout,
                                  ping_interval=ping_interval, log=self.messages.append, verbose=True)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.call(self.server.start("127.0.0.1", self.port))
        self._anim: asyncio.Task | None = None

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


def read_ppm(path: Path) -> np.ndarray:
    """A binary P6 PPM (what spicy-screenshot writes) as (h, w, 3) uint8."""
    data = path.read_bytes()
    fields: list[bytes] = []
    pos = 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    assert fields[0] == b"P6" and fields[3] == b"255", fields
    w, h = int(fields[1]), int(fields[2])
    pixels = data[pos + 1:pos + 1 + w * h * 3]
    return np.frombuffer(pixels, dtype=np.uint8).reshape(h, w, 3)


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
