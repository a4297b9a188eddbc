"""The frame-by-frame API: a capture in, (time, RGB picture) out, streaming.

>>> from spicetool.render import frames
>>> for t, img in frames("session.pcapng", fps=5):   # img: HxWx3 uint8 RGB numpy array
...     print(f"{t:.2f}s", img.shape)

``fps=None`` gives one picture per displayed change instead. Times are seconds from the
start of the capture. The capture is read once, packet by packet, never whole. Video stream
frames appear when the client showed them, at their multimedia time (see streams.py), which
can fall between records; pictures take the size of what is shown (see sizing.py for a video's).
"""
from __future__ import annotations

from typing import Iterable, Iterator, NamedTuple

import numpy as np

from spicetool.capture import KeyLog, Record, open_records
from spicetool.render.monitors import DisplayChoice
from spicetool.render.session import AudioSink, RenderStats, SessionScreen


class Frame(NamedTuple):
    time: float  # seconds from the start of the capture
    image: np.ndarray  # HxWx3 uint8, RGB


def records_of(capture: str, keylog: KeyLog | str | None = None, leg: str = "server") -> Iterator[Record]:
    """The records of a capture file, its TLS connections decrypted with ``keylog`` if given; of the
    ``leg`` ("server" or "client") of each connection a proxy's capture holds twice."""
    return open_records(capture, keylog=keylog, leg=leg)


def frames(capture: str | Iterable[Record], fps: float | None = None, *, session: int | None = None,
           display: int | str | DisplayChoice = 0, cursor: bool = False, start: float | None = None,
           end: float | None = None,
           stats: RenderStats | None = None, on_audio: AudioSink | None = None,
           screen: SessionScreen | None = None, partial: bool = False,
           keylog: KeyLog | str | None = None, leg: str = "server") -> Iterator[Frame]:
    """Pictures of one session's display.

    With ``fps`` the pictures are sampled on a regular clock (the screen as it was at each
    tick, from the first complete picture, or ``start``, to the end of the capture or ``end``);
    without, one picture per change of the screen. ``stats`` is filled in as it goes.
    A capture that starts mid-session has pictures only once every pixel has been drawn;
    ``partial=True`` shows them from the first draw, the unknown pixels as a placeholder.
    ``keylog`` (a KeyLog or the path of an NSS key log) decrypts a capture's TLS connections;
    ``leg`` picks the leg drawn from a capture taken at a proxy ("server", the default, or "client").
    """
    if fps is not None and not (0 < fps <= 1000):
        raise ValueError(f"fps must be in (0, 1000], got {fps}")
    stats = stats if stats is not None else RenderStats()
    screen = screen or SessionScreen(session, display, cursor, on_audio, partial)
    records = records_of(capture, keylog, leg) if isinstance(capture, str) else capture
    t0: float | None = None
    pending_time: float | None = None  # time of changes not yet shown (per-change mode)
    next_tick: float | None = None  # fps mode: capture time of the next picture
    tick_base, tick_n = 0.0, 0  # next_tick = tick_base + tick_n / fps, without summing rounding errors
    last_t = 0.0
    last_img: np.ndarray | None = None  # the picture of the last frame given

    def emit(t: float, img: np.ndarray) -> Frame:
        nonlocal last_img
        last_img = img
        stats.frames += 1
        if stats.first_time is None:
            stats.first_time = t
        stats.last_time = t
        return Frame(t, img)

    def flush() -> Iterator[Frame]:
        # per-change mode: the picture of the changes made at pending_time
        nonlocal pending_time
        img = screen.picture()
        if img is not None and pending_time is not None and (start is None or pending_time >= start) \
                and (end is None or pending_time <= end):
            yield emit(pending_time, img)
        pending_time = None

    def ticks_until(t: float) -> Iterator[Frame]:
        # pictures for every tick before time t (the screen before the record at t)
        nonlocal next_tick, tick_base, tick_n
        if not screen.ready:
            return
        if next_tick is None:
            next_tick = tick_base = max(start, last_t) if start is not None else last_t
            if start is not None and start > last_t:
                return
        while next_tick < t and (end is None or next_tick <= end):
            screen.advance(next_tick)  # video frames due by this tick
            img = screen.picture()
            if img is None:
                return
            yield emit(next_tick, img)
            tick_n += 1
            next_tick = tick_base + tick_n / fps  # type: ignore[operator]

    try:
        for rec in records:
            if t0 is None:
                t0 = screen.t0 = rec.time
            t = max(rec.time - t0, last_t)  # capture time never runs backwards for us
            if fps is not None:
                yield from ticks_until(t)
                if end is not None and next_tick is not None and next_tick > end:
                    break
                screen.advance(t)  # video frames due before this record
            else:
                # video frames change the screen at their own times, between records
                limit = t if end is None else min(t, end)
                while (due := screen.next_due()) is not None and due <= limit:
                    due = max(due, last_t)
                    if pending_time is not None and due != pending_time:
                        yield from flush()
                    if screen.advance(due) and screen.ready:
                        pending_time = due
                if end is not None and t > end:
                    break
                if pending_time is not None and t != pending_time:
                    yield from flush()
            last_t = t
            if screen.feed(rec) and fps is None and screen.ready:
                pending_time = t
        if fps is None and pending_time is not None:
            yield from flush()
        elif fps is not None:
            stop = end if end is not None else last_t
            yield from ticks_until(stop + 1e-9)
            if end is None and last_img is not None and next_tick is not None:
                # draws after the last tick are in no frame yet: one more, at the next tick, when
                # the screen at the capture's end is not the last frame's (what render --last shows)
                screen.advance(last_t)
                img = screen.picture()
                if img is not None and img is not last_img and not np.array_equal(img, last_img):
                    yield emit(next_tick, img)
    finally:
        screen.stats_into(stats)


def picture_at(capture: str | Iterable[Record], at: float | None = None, *, session: int | None = None,
               display: int | str | DisplayChoice = 0, cursor: bool = False,
               stats: RenderStats | None = None, keylog: KeyLog | str | None = None,
               screen: SessionScreen | None = None) -> Frame | None:
    """The screen as it was at ``at`` seconds from the capture start (None: at the end).

    A capture that never gets a complete picture (it starts mid-session) gives its last
    state, with the pixels never drawn shown as a placeholder pattern. ``screen`` (a fresh
    SessionScreen) is used when given: its ``unknown()`` then tells which pixels are unknown.
    """
    stats = stats if stats is not None else RenderStats()
    screen = screen or SessionScreen(session, display, cursor)
    records = records_of(capture, keylog) if isinstance(capture, str) else capture
    t0: float | None = None
    t = 0.0
    try:
        for rec in records:
            if t0 is None:
                t0 = screen.t0 = rec.time
            if at is not None and rec.time - t0 > at:
                break
            t = max(t, rec.time - t0)
            screen.advance(t)  # video frames due before this record
            screen.feed(rec)
        screen.advance(t if at is None else at)
    finally:
        screen.stats_into(stats)
    img = screen.picture(force=True)
    if img is None:
        return None
    stats.frames += 1
    stats.first_time = stats.last_time = t if at is None else at
    return Frame(stats.last_time, img)
