"""One SPICE session's screen, rebuilt from its records: the chosen display channel's canvas,
its streams, the cursor channel, and the playback audio handed on to whoever wants it.

The other display channels of the session that share an image cache or GLZ dictionary with
the chosen one (display INIT, caches.py) are rebuilt beside it, record by record in capture
order, as companions: their images fill the shared caches as they did in the client. With
``--display all`` every display channel is a companion and the picture shows them all.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from spicetool.render.caches import SessionCaches
from spicetool.render.canvas import Canvas
from spicetool.render.damaged import damaged_draw
from spicetool.render.cursor import draw_cursor
from spicetool.render.monitors import ClientMonitors, DisplayChoice, layout, shown_area
from spicetool.render.streams import StreamError, Streams
from spicetool.render.surfaces import Region, Surface, SurfaceError
from spicetool.stack.cursor import CursorState
from spicetool.stack.geometry import Rect
from spicetool.stack.enums import PRIMARY_SURFACE_ID, ChannelType, ResType, SurfaceFlags

# channel types, bound as ints: every record is routed
_MAIN, _DISPLAY, _CURSOR, _PLAYBACK = (int(t) for t in (ChannelType.MAIN, ChannelType.DISPLAY,
                                                        ChannelType.CURSOR, ChannelType.PLAYBACK))
_ROUTED = (_DISPLAY, _CURSOR, _PLAYBACK)
# when a capture starts mid-session nobody told us the screen size: the smallest of these
# that holds every draw seen so far
COMMON_SIZES = [(640, 480), (800, 600), (1024, 768), (1280, 720), (1280, 800), (1280, 1024),
                (1366, 768), (1440, 900), (1600, 900), (1600, 1200), (1680, 1050), (1920, 1080),
                (1920, 1200), (2560, 1440), (2560, 1600), (3840, 2160), (4096, 4096)]
DRAWS = {"draw_fill", "draw_opaque", "draw_copy", "draw_blend", "draw_blackness", "draw_whiteness",
         "draw_invers", "draw_rop3", "draw_stroke", "draw_text", "draw_transparent",
         "draw_alpha_blend", "draw_composite"}

AudioSink = Callable[[float, str, dict[str, Any]], None]  # (time, message name, fields)


def common_size(width: int, height: int) -> tuple[int, int] | None:
    """The screen size guessed for a capture that starts mid-session: the smallest common one that holds
    (width, height)."""
    return next(((cw, ch) for cw, ch in COMMON_SIZES if cw >= width and ch >= height), None)


@dataclass
class RenderStats:
    """What a render did, for the summary and for scripts."""

    frames: int = 0
    first_time: float | None = None
    last_time: float | None = None
    sessions: set[int] = field(default_factory=set)
    commands: Counter[str] = field(default_factory=Counter)
    images: Counter[str] = field(default_factory=Counter)
    stream_codecs: set[str] = field(default_factory=set)
    stream_frames: int = 0
    warnings: Counter[str] = field(default_factory=Counter)
    details: dict[str, str] = field(default_factory=dict)
    audio: str | None = None
    unknown_share: float = 0.0  # share of the primary surface whose pixels are unknown at the end
    unknown_since: float | None = None  # seconds from the capture start: when the first of them became unknown

    @property
    def placeholders(self) -> int:
        return sum(n for w, n in self.warnings.items() if " image " in w)


class Route:
    """Which records a render uses: one session's display channel, its cursor and playback."""

    def __init__(self, session: int | None = None, display: int = 0, every: bool = False) -> None:
        self.session = session
        self.display = display
        self.every = every  # every display channel of the session

    def wants(self, rec: Any) -> bool:
        ch = rec.channel
        if rec.layer not in ("message", "gap", "error") or ch.channel_type not in _ROUTED:
            return False
        if self.session is None:
            if ch.channel_type != _DISPLAY or rec.layer != "message":
                # before the display speaks: pointer and sound of the capture's first session
                return ch.session == 1 and rec.layer == "message" and (
                    ch.channel_type != _CURSOR or (ch.channel_id or 0) == self.display)
            self.session = ch.session  # the first session that shows something
        if ch.session != self.session:
            return False
        if ch.channel_type in (_DISPLAY, _CURSOR):
            # each QXL device has a display and a cursor channel of the same id: the pointer of
            # cursor channel N is on display channel N's surface
            return (self.every and ch.channel_type == _DISPLAY) or (ch.channel_id or 0) == self.display
        return True


class SessionScreen:
    """Feed it the records of one session; it keeps the picture of one display channel."""

    def __init__(self, session: int | None = None, display: int | str | DisplayChoice = 0, cursor: bool = False,
                 on_audio: AudioSink | None = None, partial: bool = False,
                 caches: SessionCaches | None = None) -> None:
        self.choice = display if isinstance(display, DisplayChoice) else DisplayChoice.parse(display)
        self.route = Route(session, self.choice.channel)
        self.caches = caches if caches is not None else SessionCaches()
        self.companions: dict[int, SessionScreen] = {}  # display channel id -> its screen
        self.client_monitors = ClientMonitors()  # where the client put them (--display all)
        self._is_companion = False
        self.partial = partial  # mid-session: show pictures before every pixel is known
        self.display = self.choice.channel
        self.with_cursor = cursor
        self.on_audio = on_audio
        self.canvas = Canvas()
        self.streams = Streams()
        self.cursor = CursorState()
        self.heads: list[dict[str, Any]] = []
        self._ready = False  # a complete picture exists (see ready)
        self.midstream = False
        # pixels whose content we know: mid-session captures (drawn at least once), and any capture
        # once a draw lost bytes in a capture gap or drew an image that could not be decoded
        self.coverage: np.ndarray | None = None
        self.unknown_at: np.ndarray | None = None  # with coverage: capture time each unknown pixel became so
        self._time = 0.0  # capture time of the record being fed
        self.warnings: Counter[str] = Counter()
        self.playback_expected = False
        self._clocks: dict[int | None, tuple[int, float]] = {}  # session -> last (mm time, capture time)
        self._streaming_surfaces: set[int] = set()
        self._monitor_seen = False  # the chosen monitor (--display N:M) was in a MONITORS_CONFIG
        self.t0 = 0.0  # capture time of the capture's first record: times are counted from it
        self._dirty = True  # something shown changed since the last picture()
        self._own_last: tuple[Any, Any] | None = None  # (key, pictures) of this channel's last picture
        self._own_keep: Any = None
        self._last: tuple[Any, Any] | None = None  # the same for --display all's composed picture
        self._keep: Any = None

    # -- routing ------------------------------------------------------------------------
    @property
    def session(self) -> int | None:
        return self.route.session

    @property
    def ready(self) -> bool:
        """A complete picture exists (with --display all: of any display channel)."""
        return self._ready or (self.choice.every and any(c.ready for c in self.companions.values()))

    @ready.setter
    def ready(self, value: bool) -> None:
        self._ready = value

    def wants(self, rec: Any) -> bool:
        return self.route.wants(rec)

    def feed(self, rec: Any) -> bool:
        """One record; True when the picture (or the pointer on it) changed.

        Video frames due before the record are shown first (callers that also want them between
        records, at a time of their own, call advance)."""
        if self.streams.waiting:
            self.advance(rec.time - self.t0)
        changed = self._feed(rec)
        if changed:
            self._dirty = True
        return changed

    def _feed(self, rec: Any) -> bool:
        if rec.channel.channel_type == _MAIN and rec.type in ("init", "multi_media_time") and rec.layer == "message":
            self._mm_time(rec)
            return self._forward(rec)
        if rec.channel.channel_type == _MAIN and rec.layer == "agent":
            return self.client_monitors.note(rec) and self.choice.every and rec.channel.session == self.session
        if rec.channel.channel_type == _PLAYBACK or (rec.type == "channels_list" and rec.channel.channel_type == _MAIN):
            self._note_playback(rec)
        wanted = self.wants(rec)  # chooses the session on its first display record
        shown = self._forward(rec)
        if not wanted:
            return shown
        return self._routed(rec) or shown

    def _routed(self, rec: Any) -> bool:
        if rec.layer == "gap":
            self.warnings[f"{rec.channel.channel} channel: bytes missing from the capture"] += 1
            if rec.channel.channel_type == _DISPLAY and rec.direction.name == "SERVER" \
                    and rec.fields.get("framing") != "kept":
                return self._lost_framing(rec)
            return False
        if rec.layer == "error":
            self.warnings[f"{rec.channel.channel} channel: undecodable data skipped"] += 1
            return False
        kind = rec.channel.channel_type
        if rec.direction.name != "SERVER":
            if kind == _DISPLAY and rec.type == "init" and rec.layer == "message":
                self._display_init(rec)
            return False
        try:
            if kind == _DISPLAY:
                return self._display(rec)
            if kind == _CURSOR:
                return self.cursor.handle(rec.type, rec.fields) and self.with_cursor
            if rec.type in ("start", "stop"):  # spice-gtk's video timing asks whether sound plays
                self.streams.playback_active = rec.type == "start"
            if self.on_audio is not None:
                self.on_audio(rec.time - self.t0, rec.type, rec.fields)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            self.warnings[f"{rec.type}: malformed ({type(exc).__name__})"] += 1
        return False

    def _display_init(self, rec: Any) -> None:
        """The client names the pixmap cache and GLZ dictionary of this channel: the session's ones."""
        try:
            pixmaps, glz = self.caches.for_init(rec.fields, self.canvas.images.before_init())
        except (KeyError, TypeError, ValueError) as exc:
            self.warnings[f"display init: malformed ({type(exc).__name__})"] += 1
            return
        self.canvas.images.share(pixmaps, glz)

    def _forward(self, rec: Any) -> bool:
        """The session's other display channels, in capture order: True when one shown changed.

        A channel becomes a companion when its INIT names caches (they may be this one's), or,
        with --display all, when it first speaks."""
        ch = rec.channel
        if self._is_companion or self.session is None or ch.session != self.session:
            return False
        if ch.channel_type == _DISPLAY and rec.layer == "message":
            cid = ch.channel_id or 0
            if cid != self.display and cid not in self.companions and (
                    self.choice.every or (self.caches.sharing and rec.type == "init"
                                          and rec.direction.name != "SERVER")):
                self.companions[cid] = self._companion(cid)
        changed = False
        for c in self.companions.values():
            changed |= c.feed(rec)
        return changed and self.choice.every

    def _companion(self, channel: int) -> "SessionScreen":
        # shown (with --display all) with its own pointer; otherwise only its images matter
        c = SessionScreen(self.session, channel, cursor=self.with_cursor and self.choice.every,
                          partial=self.partial, caches=self.caches)
        c._is_companion = True
        c.t0 = self.t0
        # the session's multimedia clock so far (main INIT came before this channel spoke)
        c._clocks = dict(self._clocks)
        if self.streams.clock.mm is not None:
            c.streams.clock.set(self.streams.clock.mm, self.streams.clock.at)
        return c

    def _note_playback(self, rec: Any) -> None:
        """Will this session have sound? Known from CHANNELS_LIST before the first picture."""
        if self.session is not None and rec.channel.session != self.session:
            return
        if rec.channel.channel_type == _PLAYBACK:
            self.playback_expected = True
        elif any(int(c.get("type", 0)) == _PLAYBACK for c in rec.fields.get("channels", []) if isinstance(c, dict)):
            self.playback_expected = True

    def _mm_time(self, rec: Any) -> None:
        """The main channel sets the client's multimedia clock (INIT, MULTI_MEDIA_TIME)."""
        if rec.direction.name != "SERVER":
            return
        try:
            mm = int(rec.fields["multi_media_time" if rec.type == "init" else "time"])
        except (KeyError, TypeError, ValueError):
            self.warnings[f"{rec.type}: malformed"] += 1
            return
        if self.session is None:  # the session is chosen when its display speaks
            self._clocks[rec.channel.session] = (mm, rec.time)
        elif rec.channel.session == self.session:
            self.streams.clock_set(mm, rec.time)

    # -- stream frames at their time ---------------------------------------------------------
    def next_due(self) -> float | None:
        """When (seconds from the capture start) the next queued video frame is shown, or None."""
        due = self.streams.next_due()
        own = None if due is None else due - self.t0
        if not self.choice.every:
            return own
        dues = [d for d in [own, *(c.next_due() for c in self.companions.values())] if d is not None]
        return min(dues, default=None)

    def advance(self, t: float) -> bool:
        """Show the video frames due by ``t`` (seconds from the capture start); True when the picture changed."""
        changed = False
        while (item := self.streams.pop_due(t + self.t0)) is not None:
            st, frame = item
            reg = self._stream_frame(lambda: self.streams.show(st, frame.data, frame.dest, self.canvas.surfaces))
            changed |= self._changed(st.surface_id, reg)
        for c in self.companions.values():
            changed |= c.advance(t) and self.choice.every
        if changed:
            self._dirty = True
        return changed

    def _stream_frame(self, show: Callable[[], Region | None]) -> Region | None:
        try:
            return show()
        except (StreamError, OSError) as exc:  # OSError: Pillow on a damaged JPEG
            self.warnings[f"video frame undecodable ({str(exc)[:60]})"] += 1
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            self.warnings[f"stream_data: malformed ({type(exc).__name__})"] += 1
        except Exception as exc:  # PyAV raises its own error family
            if not type(exc).__module__.startswith("av"):
                raise
            self.warnings[f"video frame undecodable ({type(exc).__name__})"] += 1
        return None

    # -- display channel ------------------------------------------------------------------
    def _display(self, rec: Any) -> bool:
        name, f = rec.type, rec.fields
        canvas = self.canvas
        if self.streams.clock.mm is None and self.session in self._clocks:
            self.streams.clock.set(*self._clocks.pop(self.session))
        if rec.channel.midstream and not self.midstream:
            self.midstream = True
        self._time = rec.time - self.t0
        if name in DRAWS and getattr(rec.event, "lost", ()):
            return self._damaged(rec)
        if name in DRAWS or name == "copy_bits":
            self._ensure_surface(f["base"])
            if name == "copy_bits":
                reg = canvas.copy_bits(f)
                self._cover_copy(f, reg)
            else:
                placeholders = canvas.images.placeholders
                reg = canvas.draw(name, f)
                self._cover(f["base"], reg, known=canvas.images.placeholders == placeholders)
            return self._changed(f["base"]["surface_id"], reg)
        if name == "surface_create":
            try:
                s = canvas.create_surface(int(f["surface_id"]), int(f["width"]), int(f["height"]),
                                          f["format"], bool(int(f["flags"]) & SurfaceFlags.PRIMARY))
            except SurfaceError as exc:
                self.warnings[str(exc)] += 1
                return False
            if int(f["flags"]) & SurfaceFlags.STREAMING_MODE:  # spice-gtk shows video on it at once
                self._streaming_surfaces.add(s.id)
            else:
                self._streaming_surfaces.discard(s.id)
            if s.primary and not self.midstream:
                self.ready = True
                self.heads = []
                self.coverage = self.unknown_at = None  # a new screen: all of it known (black)
            return s.primary
        if name == "surface_destroy":
            canvas.destroy_surface(int(f["surface_id"]))
        elif name == "monitors_config":
            self.heads = list(f.get("heads", []))
            if self.choice.monitor is not None and any(
                    h.get("monitor_id") == self.choice.monitor for h in self.heads if isinstance(h, dict)):
                self._monitor_seen = True
            return True
        elif name == "mark":
            if self.primary() is not None:
                self.ready = True
            return self.ready
        elif name == "reset":
            primary = self.primary()
            if primary is not None:
                primary.pixels[...] = 0
            canvas.images.inval_all_palettes()
            return True
        elif name == "inval_list":
            for res in f.get("resources", []):
                if int(res["type"]) == ResType.PIXMAP:
                    canvas.images.inval_pixmap(int(res["id"]))
        elif name == "inval_all_pixmaps":
            canvas.images.inval_all_pixmaps()
        elif name == "inval_palette":
            canvas.images.inval_palette(int(f["id"]))
        elif name == "inval_all_palettes":
            canvas.images.inval_all_palettes()
        elif name == "stream_create":
            self.streams.create(f, int(f["surface_id"]) in self._streaming_surfaces)
        elif name == "stream_clip":
            self.streams.clip(f)
        elif name == "stream_destroy":
            self.streams.destroy(int(f["id"]))
        elif name == "stream_destroy_all":
            self.streams.destroy(None)
        elif name in ("stream_data", "stream_data_sized"):
            st = self.streams.streams.get(int(f["base"]["id"]))
            reg = self._stream_frame(lambda: self.streams.data(f, canvas.surfaces, name == "stream_data_sized",
                                                               rec.time))
            return st is not None and self._changed(st.surface_id, reg)
        return False

    def _changed(self, surface_id: Any, reg: Region | None) -> bool:
        if reg is None:
            return False
        s = self.canvas.surfaces.get(int(surface_id))
        return s is not None and s is self.primary()

    # -- mid-session captures -----------------------------------------------------------------
    def _ensure_surface(self, base: dict[str, Any]) -> None:
        """A capture that starts mid-session never saw SURFACE_CREATE: make a surface that holds the draws."""
        if not self.midstream:
            return
        sid = int(base["surface_id"])
        box = base["box"]
        need_w, need_h = int(box["right"]), int(box["bottom"])
        s = self.canvas.surfaces.get(sid)
        if s is not None and (s.width >= need_w and s.height >= need_h):
            return
        if s is not None and sid != PRIMARY_SURFACE_ID:
            return
        old = s
        size = common_size(max(need_w, old.width if old else 0), max(need_h, old.height if old else 0))
        if size is None:
            return
        new = self.canvas.create_surface(sid, size[0], size[1], "32_xRGB", primary=sid == PRIMARY_SURFACE_ID)
        coverage = np.zeros((size[1], size[0]), bool)
        if old is not None:
            new.pixels[:old.height, :old.width] = old.pixels
            if self.coverage is not None:
                coverage[:old.height, :old.width] = self.coverage
        if sid == PRIMARY_SURFACE_ID:
            self.coverage = coverage
            for note in [w for w in self.warnings if w.startswith("capture starts mid-session: screen size")]:
                del self.warnings[note]  # the guess grew: only the last one stands
            self.warnings[f"capture starts mid-session: screen size taken as {size[0]}x{size[1]}"] = 1

    def _cover(self, base: dict[str, Any], reg: Region | None, known: bool = True) -> None:
        """A draw reached `reg`: its pixels are known now, unless one of its images was a
        placeholder (it referred to a cache entry or dictionary image from before the capture,
        or could not be decoded)."""
        if reg is None or int(base["surface_id"]) != PRIMARY_SURFACE_ID:
            return
        if self.coverage is None and not known:
            self._start_coverage()
        if self.coverage is None:
            return
        view = self.coverage[reg.y0:reg.y1, reg.x0:reg.x1]
        if not known:
            self._note_unknown(reg)
        if reg.mask is None:
            view[...] = known
        elif known:
            view |= reg.mask
        else:
            view &= ~reg.mask
        self._check_complete()

    def _start_coverage(self) -> None:
        """A complete session's first unknown pixels: everything drawn so far is known."""
        primary = self.canvas.surfaces.get(PRIMARY_SURFACE_ID)
        if primary is not None:
            self.coverage = np.ones((primary.height, primary.width), bool)

    def _note_unknown(self, reg: Region) -> None:
        """When the pixels of `reg` that were known became unknown: now."""
        if self.coverage is None:
            return
        if self.unknown_at is None or self.unknown_at.shape != self.coverage.shape:
            self.unknown_at = np.where(self.coverage, np.inf, 0.0)  # never drawn: since the start
        was = self.coverage[reg.y0:reg.y1, reg.x0:reg.x1]
        hit = was if reg.mask is None else was & reg.mask
        self.unknown_at[reg.y0:reg.y1, reg.x0:reg.x1][hit] = self._time

    def _lost_framing(self, rec: Any) -> bool:
        """A gap swallowed a message header: the draws in the hole are lost with where they drew,
        so all of the screen is unknown from now until draws make it known again."""
        self._time = rec.time - self.t0
        primary = self.canvas.surfaces.get(PRIMARY_SURFACE_ID)
        if primary is None:
            return False
        self.warnings["display messages lost with their headers in a capture gap: the whole screen unknown"] += 1
        whole = Region(0, primary.height, 0, primary.width, None)
        self._cover({"surface_id": PRIMARY_SURFACE_ID}, whole, known=False)
        return self._changed(PRIMARY_SURFACE_ID, whole)

    def _damaged(self, rec: Any) -> bool:
        """A draw that lost bytes in a capture gap: what of it arrived is drawn, the rest is unknown."""
        f = rec.fields
        self._ensure_surface(f["base"])
        out = damaged_draw(self.canvas, rec.type, f, rec.event)
        self.warnings[out.warning] += 1
        if out.drawn is not None:
            self._cover(f["base"], out.drawn)
        if out.unknown is not None:
            self._cover(f["base"], out.unknown, known=False)
        reg = out.drawn or out.unknown
        return reg is not None and self._changed(f["base"]["surface_id"], reg)

    def unknown(self) -> np.ndarray | None:
        """Which pixels of the shown picture are unknown (HxW bool), or None when all are known."""
        s = self.primary()
        if s is None or self.coverage is None or self.coverage.all() or self.coverage.shape != s.pixels.shape[:2]:
            return None
        box = shown_area(self.heads, s.id, s.width, s.height, self.choice.monitor)
        return ~self.coverage[box.top:box.bottom, box.left:box.right]

    def unknown_share(self) -> tuple[float, float | None]:
        """(share of the primary surface unknown, seconds from the capture start since when)."""
        if self.coverage is None or self.coverage.all():
            return 0.0, None
        share = float(1.0 - self.coverage.mean())
        since = None
        if self.unknown_at is not None and self.unknown_at.shape == self.coverage.shape:
            since = float(self.unknown_at[~self.coverage].min())
        return share, (0.0 if since is None or not np.isfinite(since) else since)

    def _cover_copy(self, f: dict[str, Any], reg: Region | None) -> None:
        if self.coverage is None or reg is None or int(f["base"]["surface_id"]) != PRIMARY_SURFACE_ID:
            return
        dy = int(f["src_pos"]["y"]) - int(f["base"]["box"]["top"])
        dx = int(f["src_pos"]["x"]) - int(f["base"]["box"]["left"])
        h, w = self.coverage.shape
        ys = np.clip(np.arange(reg.y0, reg.y1) + dy, 0, h - 1)
        xs = np.clip(np.arange(reg.x0, reg.x1) + dx, 0, w - 1)
        known = self.coverage[ys[:, None], xs[None, :]]
        if self.unknown_at is not None and self.unknown_at.shape == self.coverage.shape:  # when moves along
            when = self.unknown_at[ys[:, None], xs[None, :]]
            at = self.unknown_at[reg.y0:reg.y1, reg.x0:reg.x1]
            at[...] = when if reg.mask is None else np.where(reg.mask, when, at)
        view = self.coverage[reg.y0:reg.y1, reg.x0:reg.x1]
        view[...] = known if reg.mask is None else np.where(reg.mask, known, view)
        self._check_complete()

    def _check_complete(self) -> None:
        if not self.ready and self.coverage is not None and (self.partial or self.coverage.all()):
            self.ready = True

    def never_drawn(self) -> float:
        """Share of the screen a mid-session capture never drew (0 for a complete picture)."""
        if self.coverage is None or self.coverage.size == 0:
            return 0.0
        return float(1.0 - self.coverage.mean())

    # -- the picture ----------------------------------------------------------------------------
    def primary(self) -> Surface | None:
        return self.canvas.primary()

    def picture(self, force: bool = False) -> np.ndarray | None:
        """The screen as HxWx3 RGB, or None before there is a complete picture.

        Read-only: while nothing shown changes, the same array comes back again (callers can
        tell an unchanged screen by identity, ``a is b``, without comparing pixels).
        """
        shown = self._shown(force)
        return None if shown is None else shown[0]

    def picture_bgrx(self, force: bool = False) -> np.ndarray | None:
        """The same picture as its HxWx4 BGRX rows (B, G, R and the surface's X byte per pixel,
        C-contiguous): the array ``picture()`` is a view of, so no copy, and read-only too.
        This is the surface format, what a QXL device or a video encoder takes as it is."""
        shown = self._shown(force)
        return None if shown is None else shown[1]

    def _shown(self, force: bool) -> tuple[np.ndarray, np.ndarray] | None:
        """(RGB view, BGRX rows) of the picture, made again only when something shown changed."""
        if self.choice.every and self.companions:
            return self._composed(force)
        return self._own(force)

    def _composed(self, force: bool) -> tuple[np.ndarray, np.ndarray] | None:
        """--display all: every display channel's picture where layout puts it (black between)."""
        screens = sorted([(self.display, self), *self.companions.items()], key=lambda kv: kv[0])
        parts = []
        for cid, scr in screens:
            shown = scr._own(force)
            if shown is not None:
                parts.append((cid, scr.shown_box(), shown[1]))
        if not parts:
            return None
        positions = self.client_monitors.positions(self.session, [cid for cid, _, _ in parts])
        key = ("all", force, str(positions), *(id(bgrx) for _, _, bgrx in parts))
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        places, width, height = layout([box for _, box, _ in parts], positions)
        bgrx = np.zeros((height, width, 4), np.uint8)
        for (x, y), (_, _, part) in zip(places, parts):
            bgrx[y:y + part.shape[0], x:x + part.shape[1]] = part
        rgb = bgrx[..., 2::-1]
        rgb.flags.writeable = False
        bgrx.flags.writeable = False
        self._last = (key, (rgb, bgrx))
        self._keep = [part for _, _, part in parts]  # the ids in the key stay theirs while it is kept
        return rgb, bgrx

    def shown_box(self) -> Rect | None:
        """The part of this channel's primary surface its picture shows (None: no primary surface)."""
        s = self.primary()
        return None if s is None else shown_area(self.heads, s.id, s.width, s.height, self.choice.monitor)

    def _own(self, force: bool) -> tuple[np.ndarray, np.ndarray] | None:
        """This display channel's own picture."""
        s = self.primary()
        if s is None or not (self.ready or force):
            return None
        box = shown_area(self.heads, s.id, s.width, s.height, self.choice.monitor)
        key = (id(s), id(s.pixels), box, force)
        if not self._dirty and self._own_last is not None and self._own_last[0] == key:
            return self._own_last[1]
        bgrx = self._render(s, box, force)
        rgb = bgrx[..., 2::-1]
        rgb.flags.writeable = False
        bgrx.flags.writeable = False
        self._own_last, self._dirty = (key, (rgb, bgrx)), False
        self._own_keep = (s, s.pixels)  # the ids in the key stay theirs while it is kept
        return rgb, bgrx

    def _render(self, s: Surface, box: Rect, force: bool) -> np.ndarray:
        # one contiguous copy of the BGRX rows (a memcpy), seen as RGB through a view: the
        # channel-reversing copy costs ~10x more, and the video writer takes the BGRX rows as
        # they are (see video.bgrx_of)
        x0, y0, x1, y1 = box.left, box.top, box.right, box.bottom
        bgrx = np.array(s.pixels[y0:y1, x0:x1], order="C")
        rgb = bgrx[..., 2::-1]
        if self.coverage is not None and (force or self.partial or not self.midstream) and not self.coverage.all() \
                and self.coverage.shape == s.pixels.shape[:2]:
            unknown = ~self.coverage[y0:y1, x0:x1]
            yy, xx = np.nonzero(unknown)
            rgb[yy, xx] = np.where((((xx // 8) + (yy // 8)) & 1)[:, None] == 1, [255, 0, 255], [0, 0, 0])
        if self.with_cursor:
            draw_cursor(rgb, self.cursor, x0, y0)
        return bgrx

    def stream_areas(self) -> list[Rect]:
        """Where the live video streams on the primary surface put their frames (their
        destinations, in surface coordinates), oldest stream first."""
        primary = self.primary()
        if primary is None:
            return []
        return [Rect.from_fields(st.dest) for st in self.streams.streams.values() if st.surface_id == primary.id]

    def stats_into(self, stats: RenderStats) -> None:
        if self.choice.every:  # every channel is shown: what each did counts
            for c in self.companions.values():
                c.stats_into(stats)
        stats.commands.update(self.canvas.commands)
        stats.images.update(self.canvas.images.codecs)
        stats.warnings.update(self.canvas.warnings)
        stats.warnings.update(self.warnings)
        stats.warnings.update(self.cursor.warnings)
        stats.details.update(self.canvas.images.details)
        stats.stream_codecs |= self.streams.codecs
        stats.stream_frames += self.streams.frames
        if self.session is not None:
            stats.sessions.add(self.session)
        if self.choice.monitor is not None and not self._monitor_seen and self.canvas.surfaces:
            stats.warnings[f"display {self.choice.channel} never had monitor {self.choice.monitor}"
                           " (MONITORS_CONFIG): its whole surface is shown"] = 1
        if self.streams.late:
            stats.warnings["video frames the client drops (too late for their time)"] += self.streams.late
        if self.streams.overflow:
            stats.warnings["video frames dropped: too many waiting for their time"] += self.streams.overflow
        stats.unknown_share, stats.unknown_since = self.unknown_share()
        if self.midstream and self.coverage is not None and not self.coverage.all():
            stats.warnings[f"picture never complete: {self.never_drawn():.0%} of the screen never drawn"
                           " (capture starts mid-session)"] += 1
