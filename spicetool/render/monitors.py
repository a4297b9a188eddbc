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
    """``--display``: a display channel id, and optionally one monitor (head) of it."""

    channel: int = 0
    monitor: int | None = None  # a MONITORS_CONFIG monitor_id; None: every head

    @classmethod
    def parse(cls, text: str | int) -> "DisplayChoice":
        if isinstance(text, int):
            return cls(text)
        chan, sep, mon = str(text).strip().partition(":")
        try:
            channel = int(chan)
            monitor = int(mon) if sep else None
        except ValueError:
            raise DisplayChoiceError(f"--display {text!r}: give a channel id (0) or channel:monitor (0:1)") from None
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
