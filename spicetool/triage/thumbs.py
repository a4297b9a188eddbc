"""Thumbnails of the screen at a session's key moments, for the HTML report.

One streaming pass over the capture through `spicetool.render` (its `SessionScreen`, the same
machine `picture_at` and `frames` drive): the screen is copied as the clock passes each moment,
so N thumbnails cost one render, not N. Each picture is the one `picture_at(capture, at)` gives.
"""

from __future__ import annotations

import base64
import bisect
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

THUMB_WIDTH = 240  # CSS pixels (four side by side on the page); downscaled to at most this wide, never enlarged


@dataclass
class Thumb:
    label: str
    at: float  # seconds from the capture's first record (the clock of `spicetool.render`)
    width: int  # of the screen, before downscaling (0: no screen yet)
    height: int
    png: bytes | None  # None: nothing on the screen yet at that moment

    def data_uri(self) -> str:
        assert self.png is not None
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


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


def thumbnails(capture: str, figs: dict[str, Any]) -> tuple[int | None, list[Thumb], list[str]]:
    """The session shown, its thumbnails in time order, and render warnings. Reads the capture once."""
    from spicetool.render.frames import records_of
    from spicetool.render.session import SessionScreen

    screen = SessionScreen()
    # the session SessionScreen will show: the first one with a display channel
    session = next((s for s in figs["sessions"] if any(c["name"].startswith("display") for c in s["channels"])),
                   None)
    wanted: list[tuple[float, str]] = []
    taken: list[Thumb] = []
    t0: float | None = None
    last = 0.0  # the latest record time seen (captures are not always in time order)
    first_seen = False

    def snap(at: float, label: str) -> None:
        img = screen.picture(force=True)
        taken.append(Thumb(label, at, 0, 0, None) if img is None else
                     Thumb(label, at, img.shape[1], img.shape[0], _png(img)))

    records = records_of(capture)
    try:
        for rec in records:
            if t0 is None:
                t0 = rec.time
                if session is not None:
                    wanted = sorted(key_moments(session, t0 - figs["start"], float("inf")))
            rel = rec.time - t0
            # picture_at(at) is the screen after every record up to the first one later than `at`
            while wanted and rel > wanted[0][0]:
                snap(*wanted.pop(0))
            screen.feed(rec)
            last = max(last, rel)
            if not first_seen and screen.ready:
                first_seen = True
                bisect.insort(wanted, (rel, "first complete picture"))
    finally:
        close = getattr(records, "close", None)
        if close:
            close()
    for at, label in wanted:  # moments at or after the last record: the final screen
        snap(min(at, last), label)
    if t0 is not None:
        snap(last, "end of the capture")
    warnings = [f"{w} ({n}x)" if n > 1 else w for w, n in screen.warnings.most_common()]
    return screen.session, taken, warnings
