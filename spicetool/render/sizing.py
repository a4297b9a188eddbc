"""The size of a video: the largest picture the render will show, found before it starts.

A video has one size for all its pictures. Taking the first picture's would shrink a session
whose primary surface grows later (a guest switching to 1920x1080); so a pre-pass reads the
display channel's surface and monitor messages (streaming, record by record, nothing kept but
the current size) and takes the largest width and height shown within the time range.
With ``--display all`` it follows every display channel and takes the size of their layout.
"""
from __future__ import annotations

from typing import Any, Iterable

from spicetool.render.monitors import ClientMonitors, DisplayChoice, layout, shown_area
from spicetool.render.session import DRAWS, Route, common_size
from spicetool.render.surfaces import MAX_SURFACE_PIXELS
from spicetool.stack.geometry import Rect
from spicetool.stack.enums import PRIMARY_SURFACE_ID, ChannelType, SurfaceFlags

_DISPLAY = int(ChannelType.DISPLAY)  # bound as an int: every record is looked at
_MAIN = int(ChannelType.MAIN)

SIZE_MESSAGES = frozenset({"surface_create", "surface_destroy", "monitors_config"})


class AreaTracker:
    """The size of the shown area as surface and monitor messages change it (as SessionScreen does)."""

    def __init__(self, monitor: int | None) -> None:
        self.monitor = monitor
        self.midstream = False  # the capture starts mid-session: the screen size is guessed from the draws
        self.primary: tuple[int, int, int] | None = None  # surface id, width, height
        self.heads: list[dict[str, Any]] = []

    def handle(self, name: str, f: dict[str, Any]) -> None:
        try:
            if name == "surface_create" and int(f["flags"]) & SurfaceFlags.PRIMARY:
                w, h = int(f["width"]), int(f["height"])
                if w <= 0 or h <= 0 or w * h > MAX_SURFACE_PIXELS:
                    return  # the canvas refuses it too (surfaces.Surface)
                self.primary = (int(f["surface_id"]), w, h)
                self.heads = []
            elif name == "surface_destroy" and self.primary and int(f["surface_id"]) == self.primary[0]:
                self.primary = None
            elif name == "monitors_config":
                self.heads = list(f.get("heads", []))
            elif self.midstream and int(f["base"]["surface_id"]) == PRIMARY_SURFACE_ID:  # a draw: the guess grows as it does
                box = f["base"]["box"]  # in SessionScreen._ensure_surface
                have = self.primary if self.primary and self.primary[0] == PRIMARY_SURFACE_ID else (0, 0, 0)
                if int(box["right"]) > have[1] or int(box["bottom"]) > have[2]:
                    size = common_size(max(int(box["right"]), have[1]), max(int(box["bottom"]), have[2]))
                    if size is not None:
                        self.primary = (0, *size)
        except (KeyError, TypeError, ValueError):
            pass  # a damaged message: the render warns about it, the size stays

    def box(self) -> Rect | None:
        if self.primary is None:
            return None
        sid, w, h = self.primary
        return shown_area(self.heads, sid, w, h, self.monitor)

    def size(self) -> tuple[int, int] | None:
        box = self.box()
        return None if box is None else (box.width, box.height)


class Areas:
    """One AreaTracker per display channel shown: their layout's size (see monitors.layout)."""

    def __init__(self, monitor: int | None) -> None:
        self.monitor = monitor
        self.channels: dict[int, AreaTracker] = {}
        self.client = ClientMonitors()
        self.session: int | None = None

    def tracker(self, channel: int) -> AreaTracker:
        if channel not in self.channels:
            self.channels[channel] = AreaTracker(self.monitor)
        return self.channels[channel]

    def size(self) -> tuple[int, int] | None:
        shown = [(c, b) for c, t in sorted(self.channels.items()) if (b := t.box()) is not None]
        if not shown:
            return None
        positions = self.client.positions(self.session, [c for c, _ in shown])
        _, width, height = layout([b for _, b in shown], positions)
        return width, height


def largest_picture(records: Iterable[Any], session: int | None = None, display: DisplayChoice | None = None,
                    start: float | None = None, end: float | None = None) -> tuple[int, int] | None:
    """Largest (width, height) shown between ``start`` and ``end`` (seconds from the capture's first
    record), or None when the capture never says (it starts mid-session)."""
    display = display or DisplayChoice()
    route = Route(session, display.channel, display.every)
    areas = Areas(display.monitor)
    best: tuple[int, int] | None = None
    t0: float | None = None

    def consider(size: tuple[int, int] | None) -> None:
        nonlocal best
        if size is not None:
            best = size if best is None else (max(best[0], size[0]), max(best[1], size[1]))

    for rec in records:
        if t0 is None:
            t0 = rec.time
        t = rec.time - t0
        if end is not None and t > end:
            break
        if display.every and rec.channel.channel_type == _MAIN and rec.layer == "agent":
            if areas.client.note(rec) and (start is None or t >= start):
                consider(areas.size())  # the client moved its monitors
            continue
        if not route.wants(rec):  # every record, in order: the session is chosen as the render chooses it
            continue
        if rec.channel.channel_type != _DISPLAY or rec.direction.name != "SERVER":
            continue
        areas.session = route.session
        area = areas.tracker(rec.channel.channel_id or 0)
        area.midstream |= rec.channel.midstream
        if rec.type not in SIZE_MESSAGES and not (area.midstream and (rec.type in DRAWS or rec.type == "copy_bits")):
            continue
        if start is not None and t < start:
            area.handle(rec.type, rec.fields)  # the state at `start` counts, not what came before it
            continue
        consider(areas.size())
        area.handle(rec.type, rec.fields)
        consider(areas.size())
    consider(areas.size())  # what stood at `start` when nothing changed after it
    return best
