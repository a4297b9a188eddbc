"""`--replay CAPTURE`: a captured session's display and cursor, fed through the QXL model to
every client, paced by the capture's timestamps.

The frames come from a Timeline (timeline.py), computed on a thread of their own a little ahead
of time: decoding the capture, comparing pictures and encoding the new images for the server's
codec stay off the event loop, which only waits for each frame's due time and submits it. The
worker turns the commands into messages for each client as usual, so a client that joins at
any moment gets the picture of that moment, and no client ever depends on caches or GLZ
windows from the original session.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Callable, Iterator

from spicetool.qxl.commands import Command
from spicetool.qxl.device import QxlDevice
from spicetool.replay.timeline import Frame, ReplayError, Timeline, changed_bands  # noqa: F401 (re-exported)

AHEAD_FRAMES = 32      # frames computed ahead of their due time, at most
AHEAD_BYTES = 64 << 20  # and at most this many bytes of new images


class FrameFeed:
    """Runs a frame iterator on a thread, `ahead` frames ahead of the event loop that reads it."""

    def __init__(self, frames: Iterator[Frame], prepare: Callable[[Command], None] | None = None,
                 ahead: int = AHEAD_FRAMES, ahead_bytes: int = AHEAD_BYTES):
        self._frames, self._prepare = frames, prepare
        self._ahead, self._ahead_bytes = ahead, ahead_bytes
        self._ready: deque = deque()   # (frame, bytes) or (None, exception or None): the end
        self._bytes = 0
        self._cond = threading.Condition()
        self._closed = False
        self._arrived: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._arrived = asyncio.Event()
        self._thread = threading.Thread(target=self._produce, name="replay-frames", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        end: BaseException | None = None
        try:
            for frame in self._frames:
                size = 0
                for cmd in frame.commands:
                    size += getattr(getattr(cmd, "pixels", None), "nbytes", 0)
                    if self._prepare is not None:
                        self._prepare(cmd)
                with self._cond:
                    self._cond.wait_for(lambda: self._closed or len(self._ready) < self._ahead and (
                        not self._ready or self._bytes + size <= self._ahead_bytes))
                    if self._closed:
                        return
                    self._ready.append((frame, size))
                    self._bytes += size
                self._wake()
        except BaseException as e:  # handed to the reader, raised there
            end = e
        with self._cond:
            self._ready.append((None, end))
        self._wake()

    def _wake(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._arrived.set)
        except RuntimeError:
            pass  # the loop is closed: nobody reads any more

    async def get(self) -> Frame | None:
        """The next frame, None at the end (a failure of the timeline is raised here)."""
        while True:
            with self._cond:
                if self._ready:
                    frame, extra = self._ready.popleft()
                    if frame is None:
                        self._ready.appendleft((None, extra))
                        if extra is not None:
                            raise extra
                        return None
                    self._bytes -= extra
                    self._cond.notify_all()
                    return frame
                self._arrived.clear()
            await self._arrived.wait()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class CaptureReplay:
    """Drives a device from a capture; `prepare()` before serving, then `run()`."""

    def __init__(self, device: QxlDevice, capture: str, speed: float = 1.0, loop: bool = False,
                 session: int | None = None, start: float = 0.0, stop: float | None = None,
                 pause_at: float | None = None, prepare: Callable[[Command], None] | None = None,
                 display: int = 0, keylog: str | None = None, mode: str = "pictures"):
        """`start`/`stop`/`pause_at` are seconds from the capture's first record (as render's
        --start/--end): the replay starts on the picture at `start` (inf: the final picture),
        ends at `stop`, and holds at `pause_at` until `resume()`. `prepare` is called on each
        new command on the frames' thread (the worker encodes ahead with it). `display`: the
        display channel of the capture this device shows; `keylog` decrypts its TLS."""
        if stop is not None and stop < start:
            raise ReplayError(f"--to {stop:g} is before --from {start:g}")
        self.device, self.capture, self.speed, self.loop = device, capture, speed, loop
        self.timeline = Timeline(capture, session, start, stop, pause_at, loop, display, keylog, mode)
        self.pause_at = pause_at
        self.prepare_command = prepare
        self.paused = asyncio.Event()     # set while held at pause_at
        self._resume = asyncio.Event()
        self.rounds = 0
        self.position = 0.0  # capture seconds shown so far (from the first picture)
        self.on_frame: Callable[[Frame, float], None] | None = None  # (frame, its due time) when submitted
        self._frames: Iterator[Frame] | None = None
        self._now = 0.0     # capture seconds, the device's clock (video streams are timed by it)
        device.clock = lambda: self._now

    @property
    def _first(self) -> float:
        """Capture time of the first picture shown."""
        return self.timeline.first

    def prepare(self) -> tuple[int, int]:
        """Read up to the capture's first complete picture and show it; returns its size."""
        self._frames = self.timeline.frames()
        for cmd in next(self._frames).commands:
            self.device.submit(cmd)
        primary = self.device.primary
        return primary.shape[1], primary.shape[0]

    async def run(self, done: asyncio.Event | None = None, lead: float = 0.0) -> None:
        """Replay the rest of the capture (and again from the start with `loop`). `lead`:
        capture seconds between the first picture of the replay's clock and this one's (the
        heads of one capture keep their captured order, heads.py)."""
        feed = FrameFeed(self._frames, self.prepare_command)
        feed.start()
        start = time.monotonic() + lead / self.speed
        base = 0.0   # capture clock at the start of this round
        try:
            while (frame := await feed.get()) is not None:
                if frame.first:
                    start = time.monotonic()
                    base = self._now
                if frame.hold:
                    self.paused.set()
                    await self._resume.wait()
                    self.paused.clear()
                    start = time.monotonic() - frame.due / self.speed  # go on from here, not catch up
                    continue
                due = start + frame.due / self.speed
                await asyncio.sleep(max(0.0, due - time.monotonic()))  # a late frame still lets clients send
                self._now = base + frame.due
                self.device.tick()
                for cmd in frame.commands:
                    self.device.submit(cmd)
                if self.on_frame is not None:
                    self.on_frame(frame, due)
                self.position = frame.due
                if frame.end:
                    self.device.tick(float("inf"))   # streams end with the round (exact last picture)
                    self._now += 10.0
                    self.rounds += 1
        finally:
            feed.close()
        if done is not None:
            done.set()

    def resume(self) -> None:
        """Go on after `pause_at` (from the server's event loop)."""
        self._resume.set()
