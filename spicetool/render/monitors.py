"""What part of the primary surface is on screen: the heads of MONITORS_CONFIG.

A display channel has one primary surface; MONITORS_CONFIG cuts it into heads (monitors), each
a rectangle of it. spice-gtk shows each head in a window of its own; we show either one head
(``--display N:M``) or all of them at once: the part of the surface that holds them, laid out as
the guest placed them (what spice-gtk's own primary-surface picture, spicy-screenshot, shows).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from spicetool.stack.geometry import Rect


class DisplayChoiceError(ValueError):
    pass


@dataclass(frozen=True)
class DisplayChoice:
    """``--display``: a display channel id, and optionally one monitor (head) of it; or every
    display channel of the session (``all``), composed into one picture (see layout)."""

    channel: int = 0
    monitor: int | None = None  # a MONITORS_CONFIG monitor_id; None: every head
    every: bool = False  # every display channel; `channel` is then the first of them

    @classmethod
    def parse(cls, text: str | int) -> "DisplayChoice":
        if isinstance(text, int):
            return cls(text)
        if str(text).strip().lower() == "all":
            return cls(0, None, True)
        chan, sep, mon = str(text).strip().partition(":")
        try:
            channel = int(chan)
            monitor = int(mon) if sep else None
        except ValueError:
            raise DisplayChoiceError(f"--display {text!r}: give a channel id (0), channel:monitor (0:1) or all") from None
        if not 0 <= channel <= 255 or (monitor is not None and not 0 <= monitor <= 255):
            raise DisplayChoiceError(f"--display {text!r}: channel and monitor are 0 to 255")
        return cls(channel, monitor)


def head_rects(heads: Sequence[dict[str, Any]], surface_id: int, width: int, height: int,
               monitor: int | None = None) -> list[Rect]:
    """The heads on this surface as rectangles clipped to it (empty ones left out)."""
    rects = []
    for h in heads:
        try:
            if int(h.get("surface_id", 0)) != surface_id or (monitor is not None and int(h["monitor_id"]) != monitor):
                continue
            x0, y0 = max(0, int(h["x"])), max(0, int(h["y"]))
            x1, y1 = min(width, int(h["x"]) + int(h["width"])), min(height, int(h["y"]) + int(h["height"]))
        except (KeyError, TypeError, ValueError):
            continue  # a damaged head: as if absent
        if x1 > x0 and y1 > y0:
            rects.append(Rect(x0, y0, x1, y1))
    return rects


def shown_area(heads: Sequence[dict[str, Any]], surface_id: int, width: int, height: int,
               monitor: int | None = None) -> Rect:
    """The rectangle of the surface a picture shows: the bounding box of its heads.

    Without heads (before MONITORS_CONFIG, a server that sends none, or a chosen monitor that is
    not among them) the whole surface.
    """
    rects = head_rects(heads, surface_id, width, height, monitor)
    if not rects:
        return Rect(0, 0, width, height)
    return Rect(min(r.left for r in rects), min(r.top for r in rects), max(r.right for r in rects),
                max(r.bottom for r in rects))


def layout(areas: Sequence[Rect], positions: Sequence[tuple[int, int] | None] | None = None
           ) -> tuple[list[tuple[int, int]], int, int]:
    """Where the pictures of several display channels go in one picture, and its size.

    ``areas``: each channel's shown area (its heads' bounding box on its surface), in channel
    order; ``positions``: where the client put each channel's monitor (ClientMonitors), or None.
    Where the areas do not overlap they stand where MONITORS_CONFIG put them (their x, y). A
    guest with one QXL device per monitor puts every head at 0,0 of its own surface: then they
    stand where the client's monitors are when it said so for each of them (and those do not
    overlap), side by side in channel order, top-aligned, otherwise.
    """
    boxes = list(areas)
    if _apart(boxes):
        return _placed(boxes, [(a.left, a.top) for a in boxes])
    if positions is not None and len(positions) == len(boxes) and all(p is not None for p in positions):
        moved = [Rect(x, y, x + a.width, y + a.height) for (x, y), a in zip(positions, boxes)]  # type: ignore[misc]
        if _apart(moved):
            return _placed(boxes, [(r.left, r.top) for r in moved])
    placed, x = [], 0
    for a in boxes:
        placed.append((x, 0))
        x += a.width
    return _placed(boxes, placed)


def _placed(areas: Sequence[Rect], where: Sequence[tuple[int, int]]) -> tuple[list[tuple[int, int]], int, int]:
    """``where`` moved so that the lot starts at 0,0, and the size of the lot."""
    x0, y0 = min((x for x, _ in where), default=0), min((y for _, y in where), default=0)
    placed = [(x - x0, y - y0) for x, y in where]
    width = max((x + a.width for (x, _), a in zip(placed, areas)), default=0)
    height = max((y + a.height for (_, y), a in zip(placed, areas)), default=0)
    return placed, width, height


def _apart(areas: Sequence[Rect]) -> bool:
    return not any(_overlap(a, b) for i, a in enumerate(areas) for b in areas[i + 1:])


def _overlap(a: Rect, b: Rect) -> bool:
    return a.left < b.right and b.left < a.right and a.top < b.bottom and b.top < a.bottom


class ClientMonitors:
    """Where each session's client put its monitors: the last VD_AGENT_MONITORS_CONFIG it sent
    the guest's agent. spice-gtk numbers them by display: monitor M of display channel 0 is
    entry M, display channel N (N > 0, one monitor each) is entry N."""

    def __init__(self) -> None:
        self.sessions: dict[int | None, list[tuple[int, int] | None]] = {}

    def note(self, rec: Any) -> bool:
        """Look at one record (the main channel's agent messages from the client count); True
        when the positions changed."""
        if rec.layer != "agent" or rec.type != "vd_agent_monitors_config" or rec.direction.name == "SERVER":
            return False
        try:
            mons = [(int(m["x"]), int(m["y"])) if int(m["width"]) > 0 and int(m["height"]) > 0 else None
                    for m in rec.fields["monitors"]]
        except (KeyError, TypeError, ValueError):
            return False  # a damaged message: the layout stays as it was
        old = self.sessions.get(rec.channel.session)
        self.sessions[rec.channel.session] = mons
        return mons != old

    def positions(self, session: int | None, channels: Sequence[int]) -> list[tuple[int, int] | None] | None:
        """The client's position of each display channel's monitor, or None when it never said."""
        mons = self.sessions.get(session)
        if mons is None:
            return None
        return [mons[c] if 0 <= c < len(mons) else None for c in channels]
