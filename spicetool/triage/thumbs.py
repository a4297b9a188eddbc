"""Thumbnails of the screen at a session's key moments, for the HTML report.

`Thumbnailer` rides along the figures' pass over the capture (`figures.gather(also=...)`): it feeds
each record to `spicetool.render`'s `SessionScreen` (the machine `picture_at` and `frames` drive)
and copies the screen as the clock passes each moment, so the report reads the capture once.
Moments known only at the end (the largest round trip) are kept as candidates while the pass
runs: each new largest round trip so far replaces the last. Should the final figures pick a moment
no candidate covers, `thumbnails` reads the capture again for it. Each picture is the one
`picture_at(capture, at)` gives.
"""

from __future__ import annotations

import base64
import bisect
import io
from dataclasses import dataclass
from collections.abc import Iterable
from typing import Any

import numpy as np
from PIL import Image

from spicetool.stack.enums import SurfaceFlags

THUMB_WIDTH = 240  # CSS pixels (four side by side on the page); downscaled to at most this wide, never enlarged
# the records of the pass kept for the timeline's pictures (whose moments, the findings', are known only at
# the end); above this many bytes of SPICE messages the capture is read again instead
KEEP_BYTES = 64 << 20


@dataclass
class Thumb:
    label: str
    at: float  # seconds from the capture's first record (the clock of `spicetool.render`)
    width: int  # of the screen, before downscaling (0: no screen yet)
    height: int
    png: bytes | None  # None: nothing on the screen yet at that moment (the encoded picture: PNG unless `mime`)
    mime: str = "image/png"

    def data_uri(self) -> str:
        assert self.png is not None
        return f"data:{self.mime};base64," + base64.b64encode(self.png).decode("ascii")


def downscale(rgb: np.ndarray, width: int = THUMB_WIDTH) -> Image.Image:
    """The thumbnail of an HxWx3 RGB picture (Lanczos, aspect kept)."""
    img = Image.fromarray(rgb, "RGB")
    if img.width > width:
        img = img.resize((width, max(1, round(img.height * width / img.width))), Image.Resampling.LANCZOS)
    return img


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    downscale(rgb).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def jpeg(rgb: np.ndarray, width: int, quality: int = 75) -> bytes:
    """A picture of the timeline: downscaled as the thumbnails are, JPEG (a tenth of the time and half
    the size of an optimised PNG: a page may hold a hundred of them)."""
    buf = io.BytesIO()
    downscale(rgb, width).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def key_moments(session: dict[str, Any], offset: float, end: float) -> list[tuple[float, str]]:
    """(time on the render clock, label) of the moments known from the figures: each resolution
    change after the first size (1 s later, once the new surface has been drawn on), the largest
    round trip, the end. `offset` turns figure times (from the first packet) into render times."""
    out: list[tuple[float, str]] = []
    for x in session["screen_sizes"][1:]:
        out.append((min(x["time"] - offset + 1.0, end), f"after the change to {x['width']}x{x['height']} "
                                                       f"at {x['time']:.2f} s"))
    series = session["latency"]["series"]
    if series:
        worst = max(series, key=lambda p: p["ms"])
        out.append((min(max(worst["time"] - offset, 0.0), end),
                    f"largest round trip: {worst['ms']:.1f} ms ({worst['channel']})"))
    return out


Screens = tuple[int | None, list[Thumb], list[str]]  # the session shown, its thumbnails, render warnings


def _figure_time(t: float, t0_packets: float) -> float:
    """A record time as the figures give it (seconds from the first packet, rounded as there)."""
    return round(t - t0_packets, 6)


class Thumbnailer:
    """Fed every record of the pass (with the capture's first packet time); `result(figs)` at the end."""

    def __init__(self) -> None:
        from spicetool.render.session import SessionScreen

        self.screen = SessionScreen()
        self.t0: float | None = None  # the render clock's zero: the first record
        self.t0_packets = 0.0
        self.last = 0.0
        self.first_seen = False
        self.wanted: list[tuple[float, str]] = []  # (render time, key) to copy the screen at
        self.shots: dict[str, Thumb] = {}  # key -> picture taken
        self.sizes: dict[int | None, tuple[int, int]] = {}  # session -> last primary size
        self.pings: dict[tuple[int, Any, Any], list[float]] = {}
        self.worst = -1.0
        self.error: str | None = None
        self.kept: list[Any] | None = []  # every record fed, for `pictures_at` (None: more than KEEP_BYTES)
        self.kept_bytes = 0

    def feed(self, rec: Any, t0_packets: float | None) -> None:
        if self.error is not None:
            return
        try:
            self._feed(rec, t0_packets)
        except Exception as exc:  # noqa: BLE001 - the figures are worth a page even when the screen is not
            self.error = f"{type(exc).__name__}: {exc}"

    def _at(self, t: float, plus: float = 0.0) -> float:
        """Render time of a figure moment, computed as `key_moments` does."""
        assert self.t0 is not None
        return _figure_time(t, self.t0_packets) - (self.t0 - self.t0_packets) + plus

    def _feed(self, rec: Any, t0_packets: float | None) -> None:
        if self.t0 is None:
            self.t0 = rec.time
            self.t0_packets = t0_packets if t0_packets is not None else rec.time
        rel = rec.time - self.t0
        if self.kept is not None:
            self.kept_bytes += rec.size
            self.kept = self.kept if self.kept_bytes <= KEEP_BYTES else None
            if self.kept is not None:
                self.kept.append(rec)
        # picture_at(at) is the screen after every record up to the first one later than `at`
        while self.wanted and rel > self.wanted[0][0]:
            self._snap(*self.wanted.pop(0))
        self.screen.feed(rec)
        self.last = max(self.last, rel)
        if not self.first_seen and self.screen.ready:
            self.first_seen = True
            bisect.insort(self.wanted, (rel, "first"))
        self._moments(rec)

    def _moments(self, rec: Any) -> None:
        """Moments the figures will name: resolution changes (1 s later), round trips larger than any before."""
        if rec.layer != "message":
            return
        ch, f, server = rec.channel, rec.fields, rec.direction.value == "server"
        if rec.type == "surface_create" and server and ch.channel == "display" and (f.get("flags") or 0) & SurfaceFlags.PRIMARY:
            size = (f.get("width"), f.get("height"))
            before = self.sizes.get(ch.session)
            self.sizes[ch.session] = size
            if before is not None and before != size:
                at = self._at(rec.time, 1.0)
                bisect.insort(self.wanted, (at, f"size@{at!r}"))
        elif rec.type == "ping" and server:
            self.pings.setdefault((ch.index, f.get("id"), f.get("timestamp")), []).append(rec.time)
        elif rec.type == "pong" and not server:
            sent = [x for x in self.pings.get((ch.index, f.get("id"), f.get("timestamp")), []) if x <= rec.time]
            if sent and rec.time - sent[0] > self.worst:
                self.worst = rec.time - sent[0]
                at = max(self._at(rec.time), 0.0)
                self.wanted = [w for w in self.wanted if not w[1].startswith("rtt@")]  # the older candidate
                bisect.insort(self.wanted, (at, f"rtt@{at!r}"))

    def _snap(self, at: float, key: str) -> None:
        img = self.screen.picture(force=True)
        self.shots[key] = (Thumb(key, at, 0, 0, None) if img is None else
                           Thumb(key, at, img.shape[1], img.shape[0], _png(img)))

    def result(self, capture: str, figs: dict[str, Any], keylog: Any = None, leg: str = "server") -> Screens | str:
        """The thumbnails the figures call for (or why there are none)."""
        if self.error is not None:
            return self.error
        for at, key in self.wanted:  # moments at or after the last record: the final screen
            self._snap(min(at, self.last), key)
        self.wanted = []
        session = _shown_session(figs)
        taken: list[Thumb] = []
        missing: list[tuple[float, str]] = []
        if "first" in self.shots:
            first = self.shots["first"]
            taken.append(Thumb("first complete picture", first.at, first.width, first.height, first.png))
        if session is not None and self.t0 is not None:
            for at, label in key_moments(session, self.t0 - figs["start"], float("inf")):
                kind = "rtt" if label.startswith("largest") else "size"
                shot = self.shots.get(f"{kind}@{at!r}")
                if shot is None:
                    missing.append((at, label))
                else:
                    taken.append(Thumb(label, min(at, self.last), shot.width, shot.height, shot.png))
        if missing:  # the streaming guess missed a moment the final figures chose: read the capture again
            _session, again, _w = thumbnails(capture, figs, keylog, only=missing, leg=leg)
            taken += again
        taken.sort(key=lambda th: (th.at, th.label))  # as a pass of its own orders them
        if self.t0 is not None:
            img = self.screen.picture(force=True)
            taken.append(Thumb("end of the capture", self.last, 0, 0, None) if img is None else
                         Thumb("end of the capture", self.last, img.shape[1], img.shape[0], _png(img)))
        warnings = [f"{w} ({n}x)" if n > 1 else w for w, n in self.screen.warnings.most_common()]
        return self.screen.session, taken, warnings


def _shown_session(figs: dict[str, Any]) -> dict[str, Any] | None:
    """The session SessionScreen will show: the first one with a display channel."""
    return next((s for s in figs["sessions"] if any(c["name"].startswith("display") for c in s["channels"])), None)


def thumbnails(capture: str, figs: dict[str, Any], keylog: Any = None,
               only: list[tuple[float, str]] | None = None, leg: str = "server") -> Screens:
    """The session shown, its thumbnails in time order, and render warnings, in a pass of its own
    over the capture (`only`: just these moments, no first picture and no end)."""
    from spicetool.capture import open_records
    from spicetool.render.session import SessionScreen

    screen = SessionScreen()
    session = _shown_session(figs)
    wanted: list[tuple[float, str]] = []
    taken: list[Thumb] = []
    t0: float | None = None
    last = 0.0  # the latest record time seen (captures are not always in time order)
    first_seen = False

    def snap(at: float, label: str) -> None:
        img = screen.picture(force=True)
        taken.append(Thumb(label, at, 0, 0, None) if img is None else
                     Thumb(label, at, img.shape[1], img.shape[0], _png(img)))

    records = open_records(capture, keylog=keylog, leg=leg)
    try:
        for rec in records:
            if t0 is None:
                t0 = rec.time
                if only is not None:
                    wanted = sorted(only)
                elif session is not None:
                    wanted = sorted(key_moments(session, t0 - figs["start"], float("inf")))
            rel = rec.time - t0
            # picture_at(at) is the screen after every record up to the first one later than `at`
            while wanted and rel > wanted[0][0]:
                snap(*wanted.pop(0))
            screen.feed(rec)
            last = max(last, rel)
            if not first_seen and screen.ready and only is None:
                first_seen = True
                bisect.insort(wanted, (rel, "first complete picture"))
    finally:
        records.close()
    for at, label in wanted:  # moments at or after the last record: the final screen
        snap(min(at, last), label)
    if t0 is not None and only is None:
        snap(last, "end of the capture")
    warnings = [f"{w} ({n}x)" if n > 1 else w for w, n in screen.warnings.most_common()]
    return screen.session, taken, warnings


def pictures_at(records: Iterable[Any], moments: list[float], width: int) -> list[Thumb]:
    """The screen at each moment (render clock, seconds from the first record), as `picture_at` gives
    it, for the timeline: JPEG, at most `width` wide, in the order of `moments`. `records`: the
    pass's kept records (`Thumbnailer.kept`) or a capture read again."""
    from spicetool.render.session import SessionScreen

    screen = SessionScreen()
    wanted = sorted(set(moments))
    shots: dict[float, Thumb] = {}
    t0: float | None = None
    last = 0.0
    before: list[Any] = [None, None]  # the last picture and its Thumb: an unchanged screen is not encoded again

    def snap(at: float) -> None:
        img = screen.picture(force=True)
        if img is None:
            shots[at] = Thumb("", at, 0, 0, None)
            return
        if img is not before[0]:
            before[:] = [img, jpeg(img, width)]
        shots[at] = Thumb("", at, img.shape[1], img.shape[0], before[1], "image/jpeg")

    for rec in records:
        if t0 is None:
            t0 = rec.time
        rel = rec.time - t0
        while wanted and rel > wanted[0]:
            snap(wanted.pop(0))
        screen.feed(rec)
        last = max(last, rel)
    for at in wanted:  # at or after the last record: the final screen
        snap(at)
    return [shots[at] for at in moments]
