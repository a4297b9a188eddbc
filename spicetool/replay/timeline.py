"""A capture as a timeline of device commands: a pure function of the capture, so every replay
of it submits the same commands at the same capture times (deterministic), however loaded the
server is, and it can be computed ahead on another thread.

The capture is decoded by spicetool.dissect (TCP, SPICE records) and spicetool.render (the
display canvas: every draw, image codec, cache and stream, and the cursor channel). What
changed on the captured screen becomes DRAW_COPY commands of the changed bands, and cursor
shape/position changes become cursor commands.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

import numpy as np

from spicetool.qxl.commands import (
    PRIMARY_SURFACE,
    Command,
    CursorHide,
    CursorMove,
    CursorSet,
    DrawCopy,
    Rect,
    SurfaceCreate,
    SurfaceDestroy,
    content_id,
)
from spicetool.replay import captured_draws
from spicetool.stack.cursor import CursorShape
from spicetool.stack.enums import ChannelType

if TYPE_CHECKING:
    from spicetool.render.session import SessionScreen

MERGE_ROWS = 16  # changed row runs closer than this are sent as one band
BATCH_SECONDS = 1 / 60  # records this close in capture time are shown together
CURSOR_CHANNEL = int(ChannelType.CURSOR)
DISPLAY_CHANNEL = int(ChannelType.DISPLAY)  # bound as an int: every record is looked at


class ReplayError(Exception):
    """The capture cannot be replayed (one line, for the user)."""


@dataclass
class Frame:
    """Commands due together. `due`: seconds after its round's first picture (the pacing
    clock); `at`: seconds from the capture's first record (--from/--to/--pause-at)."""
    due: float
    at: float
    commands: list[Command] = field(default_factory=list)
    first: bool = False     # a round's first picture: the pacing clock starts here
    hold: bool = False      # the first moment past --pause-at: hold here until resumed
    end: bool = False       # the last record of a round


def changed_bands(old: np.ndarray, new: np.ndarray) -> list[Rect]:
    """Rectangles covering every pixel whose colour differs between two (h, w, 4) BGRX
    pictures: one per run of changed rows. Compared as 32-bit words without the X byte."""
    h, w = new.shape[:2]
    a = np.ascontiguousarray(old).view(np.uint32).reshape(h, w)
    b = np.ascontiguousarray(new).view(np.uint32).reshape(h, w)
    diff = np.bitwise_xor(a, b)
    diff &= np.uint32(0x00FFFFFF) if np.little_endian else np.uint32(0xFFFFFF00)
    changed = diff.astype(bool)
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


def image_id_space(display: int) -> int:
    """What display channel `display`'s image ids are XORed with: 0 for display 0; for the
    others a constant of their own, so that two heads never give the client's one pixmap cache
    (shared by its display channels) the same id for their own, separately evicted, copies."""
    return 0 if display == 0 else (display * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF


def _copy(bgrx: np.ndarray, r: Rect, video: bool = False, id_space: int = 0) -> DrawCopy:
    px = bgrx[r.top:r.bottom, r.left:r.right].copy()
    px[:, :, 3] = 0
    if video:  # a video frame: never the same image again, not worth a cache entry
        return DrawCopy(PRIMARY_SURFACE, r, px, video=True)
    return DrawCopy(PRIMARY_SURFACE, r, px, content_id(px) ^ id_space)


def _outside(r: Rect, holes: list[Rect]) -> list[Rect]:
    """The parts of `r` outside every rectangle of `holes` (at most four per hole)."""
    parts = [r]
    for hole in holes:
        nxt = []
        for p in parts:
            if not p.overlaps(hole):
                nxt.append(p)
                continue
            top, bottom = max(p.top, hole.top), min(p.bottom, hole.bottom)
            nxt += [q for q in (Rect(p.left, p.top, p.right, top), Rect(p.left, bottom, p.right, p.bottom),
                                Rect(p.left, top, max(p.left, hole.left), bottom),
                                Rect(min(p.right, hole.right), top, p.right, bottom)) if not q.empty()]
        parts = nxt
    return parts


def _video_rects(screen: SessionScreen, w: int, h: int) -> list[Rect]:
    """Destinations of the capture's live video streams on the shown surface."""
    out: list[Rect] = []
    for area in screen.stream_areas():
        r = area.clipped(w, h)
        if not r.empty() and all(not r.overlaps(o) for o in out):
            out.append(r)
    return out


class Converter:
    """Screen states -> device commands, remembering what the device was last given."""

    def __init__(self, display: int = 0) -> None:
        self.id_space = image_id_space(display)
        self.picture: np.ndarray | None = None   # BGRX of what the device shows
        self.cursor_ids = itertools.count(1)
        self.cursor_seen: tuple | None = None

    def show(self, screen: SessionScreen) -> list[Command]:
        """Commands that turn the last picture into the screen's picture now."""
        new = screen.picture_bgrx(force=not screen.ready)
        if new is None:
            return []
        old, self.picture = self.picture, new
        h, w = new.shape[:2]
        if old is None or old.shape[:2] != (h, w):
            out: list[Command] = [] if old is None else [SurfaceDestroy(PRIMARY_SURFACE)]
            return out + [SurfaceCreate(PRIMARY_SURFACE, w, h), _copy(new, Rect(0, 0, w, h), id_space=self.id_space)]
        bands = changed_bands(old, new)
        videos = _video_rects(screen, w, h)
        if not videos or not bands:
            return [_copy(new, r, id_space=self.id_space) for r in bands]
        # the capture's video streams keep their destination: a changed one is drawn whole
        # (a frame of it), other changes around it (see streams.py: a draw across a stream ends it)
        out = [_copy(new, v, video=True) for v in videos if any(v.overlaps(b) for b in bands)]
        for b in bands:
            out += [_copy(new, piece, id_space=self.id_space) for piece in _outside(b, videos)]
        return out

    def new_primary(self, screen: SessionScreen) -> list[Command]:
        """A captured new primary surface as the device's own (commands mode): destroyed and
        created, and drawn only where the new surface is not the black it starts as."""
        new = screen.picture_bgrx(force=not screen.ready)
        if new is None:
            return []
        old, self.picture = self.picture, new
        h, w = new.shape[:2]
        out: list[Command] = [] if old is None else [SurfaceDestroy(PRIMARY_SURFACE)]
        out.append(SurfaceCreate(PRIMARY_SURFACE, w, h))
        if new[..., :3].any():
            out.append(_copy(new, Rect(0, 0, w, h), id_space=self.id_space))
        return out

    def cursor(self, screen: SessionScreen) -> list[Command]:
        """Commands for what changed on the captured pointer."""
        c = screen.cursor
        state = (id(c.shape), c.x, c.y, c.visible)
        if state == self.cursor_seen:
            return []
        before, self.cursor_seen = self.cursor_seen, state
        if not c.visible or c.shape is None:
            return [CursorHide()] if before is not None and before[3] else []
        if before is None or before[0] != id(c.shape) or not before[3]:
            # our own unique id: the device's pointer is a shape of its own, without a mono one's inversion
            shape = CursorShape(next(self.cursor_ids), c.shape.pixels, int(c.shape.hot_x), int(c.shape.hot_y))
            return [CursorSet(int(c.x), int(c.y), shape)]
        return [CursorMove(int(c.x), int(c.y))]


def _complete(screen: SessionScreen) -> bool:
    # a capture that starts mid-session never gets a complete picture: start at its first
    # draw (pixels never drawn show render's placeholder pattern)
    return screen.ready and screen.picture() is not None or screen.midstream and screen.primary() is not None


class Timeline:
    """The frames of a capture's replay; `frames()` yields them, first the starting picture."""

    def __init__(self, capture: str, session: int | None = None, start: float = 0.0,
                 stop: float | None = None, pause_at: float | None = None, loop: bool = False,
                 display: int = 0, keylog: str | None = None, mode: str = "pictures"):
        """`display`: the display channel whose screen this is (its cursor channel moves the
        pointer); `keylog`: an NSS key log for the capture's TLS connections; `mode`: "commands"
        sends the captured draws this slice can carry as their own commands (captured_draws.py),
        the rest as pictures of what they changed; "pictures" sends only pictures."""
        self.mode = mode
        self.converted = 0       # captured draws sent as their own command (commands mode)
        self.capture, self.session, self.display, self.keylog = capture, session, display, keylog
        self.start, self.stop, self.pause_at, self.loop = start, stop, pause_at, loop
        self.t0: float | None = None      # capture time of the first record
        self.first: float | None = None   # capture time of the first round's first picture
        self.damage: str | None = None    # where the capture breaks off (what came before is replayed)

    def _records(self) -> Iterator:
        from spicetool.capture import CaptureFailure, open_records
        try:
            records = open_records(self.capture, keylog=self.keylog)
        except CaptureFailure as e:
            raise ReplayError(str(e)) from None
        yield from records
        self.damage = records.damage  # everything before the damage was replayed

    def _screen(self) -> SessionScreen:
        from spicetool.render.session import SessionScreen
        return SessionScreen(self.session, self.display, cursor=False)

    def frames(self) -> Iterator[Frame]:
        conv = Converter(self.display)
        screen, records = self._screen(), self._records()
        for rec in records:
            if self.t0 is None:
                self.t0 = rec.time
            screen.feed(rec)
            if _complete(screen) and rec.time - self.t0 >= self.start:
                self.first = rec.time
                break
        else:
            if screen.picture(force=True) is None:
                where = f"before it breaks off ({self.damage})" if self.damage else "in this capture"
                what = "display picture" if self.display == 0 else f"picture of display {self.display}"
                raise ReplayError(f"{self.capture}: no {what} {where}")
            self.first = self.t0 or 0.0
        t0, first = self.t0 or 0.0, self.first
        yield Frame(0.0, first - t0, conv.show(screen) + conv.cursor(screen), first=True)
        held = self.pause_at is None
        while True:
            yield from self._round(screen, records, conv, first, held)
            held = True
            if not self.loop:
                return
            screen, records = self._screen(), self._records()
            for rec in records:  # the next round starts at its first picture
                screen.feed(rec)
                if _complete(screen):
                    first = rec.time
                    break
            else:
                return
            yield Frame(0.0, first - t0, conv.show(screen), first=True)

    def _round(self, screen, records, conv: Converter, first: float, held: bool) -> Iterator[Frame]:
        t0 = self.t0 or 0.0
        self._pending: list[Command] = []   # commands mode: the frame's commands so far, in order
        dirty, cursor = False, []          # what the frame being gathered has
        since = last = first               # capture times: its first change, the last record
        for rec in records:
            at = rec.time - t0
            if self.stop is not None and at > self.stop:
                break
            hold = not held and at > self.pause_at
            if (dirty or cursor or self._pending) and (hold or rec.time - since > BATCH_SECONDS):
                yield Frame(max(0.0, last - first), last - t0,
                            self._take() + (conv.show(screen) if dirty else []) + cursor)
                dirty, cursor = False, []
            if hold:
                held = True
                yield Frame(max(0.0, rec.time - first), at, hold=True)
            if self.mode == "commands" and rec.channel.channel_type == DISPLAY_CHANNEL \
                    and screen.wants(rec) and captured_draws.convertible(rec, screen):
                # its own command, after the pictures of what came before it in this frame
                pending = (conv.show(screen) if dirty else []) + cursor
                screen.feed(rec)
                if rec.type == "surface_create":
                    pending += conv.new_primary(screen)
                else:
                    cmd = captured_draws.command(rec, screen, conv.id_space)
                    conv.picture = screen.picture_bgrx(force=not screen.ready)
                    if cmd is not None:
                        self.converted += 1
                        pending.append(cmd)
                if pending and not (dirty or cursor or self._pending):
                    since = rec.time
                self._pending += pending
                dirty, cursor = False, []
                last = rec.time
                continue
            if screen.feed(rec):
                if not (dirty or cursor or self._pending):
                    since = rec.time
                dirty = True
            if rec.channel.channel_type == CURSOR_CHANNEL:
                moved = conv.cursor(screen)
                if moved and not (dirty or cursor or self._pending):
                    since = rec.time
                cursor += moved
            last = rec.time
        yield Frame(max(0.0, last - first), last - t0,
                    self._take() + (conv.show(screen) if dirty else []) + cursor, end=True)

    def _take(self) -> list[Command]:
        out, self._pending = self._pending, []
        return out
