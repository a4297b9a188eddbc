"""`--replay CAPTURE`: a captured session's display and cursor, fed through the QXL model to
every client, paced by the capture's timestamps.

The capture is decoded by spicetool.dissect (TCP, SPICE records) and spicetool.render (the
display canvas: every draw, image codec, cache and stream, and the cursor channel). What
changed on the captured screen goes into our device as DRAW_COPY commands of the changed
bands, and cursor shape/position changes as cursor commands; the worker turns them into
messages for each client as usual. So a client that joins at any moment gets the picture of
that moment, and no client ever depends on caches or GLZ windows from the original session.
"""
from __future__ import annotations

import asyncio
import itertools
import time
from typing import Iterator

import numpy as np

from .qxl import (PRIMARY_SURFACE, CursorHide, CursorMove, CursorSet, CursorShape, DrawCopy, QxlDevice,
                  Rect, SurfaceCreate, SurfaceDestroy)

MERGE_ROWS = 16  # changed row runs closer than this are sent as one band
BATCH_SECONDS = 1 / 60  # records this close in capture time are shown together


class ReplayError(Exception):
    """The capture cannot be replayed (one line, for the user)."""


def _bgrx(rgb: np.ndarray) -> np.ndarray:
    out = np.zeros(rgb.shape[:2] + (4,), dtype=np.uint8)
    out[:, :, 0], out[:, :, 1], out[:, :, 2] = rgb[:, :, 2], rgb[:, :, 1], rgb[:, :, 0]
    return out


def changed_bands(old_rgb: np.ndarray, new_rgb: np.ndarray) -> list[Rect]:
    """Rectangles covering every changed pixel: one per run of changed rows."""
    changed = np.any(old_rgb != new_rgb, axis=2)
    rows = np.flatnonzero(changed.any(axis=1))
    if rows.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) > MERGE_ROWS)
    out = []
    for run in np.split(rows, breaks + 1):
        top, bottom = int(run[0]), int(run[-1]) + 1
        cols = np.flatnonzero(changed[top:bottom].any(axis=0))
        out.append(Rect(int(cols[0]), top, int(cols[-1]) + 1, bottom))
    return out


class CaptureReplay:
    """Drives a device from a capture; `prepare()` before serving, then `run()`."""

    def __init__(self, device: QxlDevice, capture: str, speed: float = 1.0, loop: bool = False,
                 session: int | None = None, start: float = 0.0, stop: float | None = None,
                 pause_at: float | None = None):
        """`start`/`stop`/`pause_at` are seconds from the capture's first record (as render's
        --start/--end): the replay starts on the picture at `start` (inf: the final picture),
        ends at `stop`, and holds at `pause_at` until `resume()`."""
        self.device, self.capture, self.speed, self.loop = device, capture, speed, loop
        self.session = session
        if stop is not None and stop < start:
            raise ReplayError(f"--to {stop:g} is before --from {start:g}")
        self.start, self.stop, self.pause_at = start, stop, pause_at
        self.paused = asyncio.Event()     # set while held at pause_at
        self._resume = asyncio.Event()
        self.cursor_ids = itertools.count(1)
        self._shape_of: dict[int, CursorShape] = {}
        self._cursor_seen: tuple | None = None
        self.rounds = 0
        self.position = 0.0  # capture seconds shown so far

    def _records(self) -> Iterator:
        from spicetool.dissect.capture import CaptureDamaged, CaptureError
        from spicetool.render.frames import records_of
        try:
            yield from records_of(self.capture)
        except CaptureError as e:
            raise ReplayError(str(e)) from None
        except CaptureDamaged:
            return  # everything before the damage was replayed

    def _screen(self):
        from spicetool.render.session import SessionScreen
        return SessionScreen(self.session, 0, cursor=False)

    def prepare(self) -> tuple[int, int]:
        """Read up to the capture's first complete picture and show it; returns its size."""
        self._screen_now = self._screen()
        self._iter = self._records()
        self._t0 = None
        for rec in self._iter:
            if self._t0 is None:
                self._t0 = rec.time
            screen = self._screen_now
            screen.feed(rec)
            # a capture that starts mid-session never gets a complete picture: start at its
            # first draw (pixels never drawn show render's placeholder pattern)
            if (screen.ready and screen.picture() is not None or
                    screen.midstream and screen.primary() is not None) and \
                    rec.time - self._t0 >= self.start:
                self._first = rec.time
                break
        else:
            pic = self._screen_now.picture(force=True)
            if pic is None:
                raise ReplayError(f"{self.capture}: no display picture in this capture")
            self._first = self._t0 or 0.0
        self.show(self._screen_now)
        self._cursor(self._screen_now)
        primary = self.device.primary
        return primary.shape[1], primary.shape[0]

    def show(self, screen) -> bool:
        """Put what changed on the captured screen into the device."""
        pic = screen.picture(force=not screen.ready)
        if pic is None:
            return False
        d = self.device
        primary = d.primary
        h, w = pic.shape[:2]
        if primary is None or primary.shape[:2] != (h, w):
            if primary is not None:
                d.submit(SurfaceDestroy(PRIMARY_SURFACE))
            d.submit(SurfaceCreate(PRIMARY_SURFACE, w, h))
            d.submit(DrawCopy(PRIMARY_SURFACE, Rect(0, 0, w, h), _bgrx(pic)))
            return True
        bands = changed_bands(primary[:, :, 2::-1], pic)
        for r in bands:
            d.submit(DrawCopy(PRIMARY_SURFACE, r, _bgrx(pic[r.top:r.bottom, r.left:r.right])))
        return bool(bands)

    def _cursor(self, screen) -> None:
        c = screen.cursor
        state = (id(c.shape), c.x, c.y, c.visible)
        if state == self._cursor_seen:
            return
        before = self._cursor_seen
        self._cursor_seen = state
        if not c.visible or c.shape is None:
            if before is not None and before[3]:
                self.device.submit(CursorHide())
            return
        if before is None or before[0] != id(c.shape) or not before[3]:
            rgba = c.shape.rgba
            bgra = rgba[:, :, [2, 1, 0, 3]].copy()
            shape = CursorShape(next(self.cursor_ids), bgra, int(c.shape.hot_x), int(c.shape.hot_y))
            self.device.submit(CursorSet(int(c.x), int(c.y), shape))
        else:
            self.device.submit(CursorMove(int(c.x), int(c.y)))

    async def run(self, done: asyncio.Event | None = None) -> None:
        """Replay the rest of the capture (and again from the start with `loop`)."""
        screen, records = self._screen_now, self._iter
        first = self._first
        t0 = self._t0 if self._t0 is not None else first
        held = self.pause_at is None
        while True:
            start = time.monotonic()
            dirty = False
            last_shown = first
            for rec in records:
                t = max(0.0, rec.time - first)
                at = rec.time - t0  # seconds from the capture's first record
                if self.stop is not None and at > self.stop:
                    break
                if not held and at > self.pause_at:
                    held = True
                    if dirty:
                        self.show(screen)
                        dirty = False
                    self.paused.set()
                    await self._resume.wait()
                    self.paused.clear()
                    start = time.monotonic() - t / self.speed  # go on from here, not catch up
                if dirty and rec.time - last_shown > BATCH_SECONDS:
                    self.show(screen)
                    dirty = False
                due = start + t / self.speed
                wait = due - time.monotonic()
                if wait > 0:
                    if dirty:
                        self.show(screen)
                        dirty = False
                    await asyncio.sleep(wait)
                elif dirty is False:
                    await asyncio.sleep(0)
                if screen.feed(rec):
                    if not dirty:
                        last_shown = rec.time
                    dirty = True
                if rec.channel.channel_type == 4:
                    self._cursor(screen)
                self.position = t
            if dirty:
                self.show(screen)
            self.rounds += 1
            if not self.loop:
                break
            screen, records = self._screen(), self._records()
            first = None
            for rec in records:  # the next round starts at its first picture
                screen.feed(rec)
                if screen.ready and screen.picture() is not None or \
                        screen.midstream and screen.primary() is not None:
                    first = rec.time
                    break
            if first is None:
                break
            self.show(screen)
        if done is not None:
            done.set()

    def resume(self) -> None:
        """Go on after `pause_at` (from the server's event loop)."""
        self._resume.set()
