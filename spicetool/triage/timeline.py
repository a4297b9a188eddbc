"""The report's timeline: a slider over the session that shows the screen at that moment, above one
time axis (SVG) with the channels' activity, the inputs and the findings.

The pictures are `spicetool.render`'s (`thumbs.pictures_at`, the screen `picture_at` gives): one every
`interval` seconds and one at every finding's time. The interval is 1 s, doubled (2, 5, 10, ... s)
until a session has at most MAX_TICKS of them, so a long capture stays a page of a few MB; a
picture that does not change is embedded once. Times on the page are capture seconds from the first
packet, as in `stats --json`; each shot also carries `at`, the render clock (from the first record).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from typing import Any

from spicetool.triage.svg import PALETTE

TIMELINE_WIDTH = 480  # CSS pixels of the picture (and at most its width in pixels: never enlarged)
MAX_TICKS = 120  # pictures at a fixed interval, at most (the findings' own come on top)
INTERVALS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)  # seconds
MAX_ROWS = 24  # channel rows on the axis (a hypervisor's capture: the first ones, said so)
W, LEFT, RIGHT, ROW = 1000, 150, 10, 14  # the axis: width, label column, right margin, row height
SEVERITY_COLOUR = {"error": "#d62728", "warning": "#ff7f0e", "info": "#7f7f7f"}


@dataclass
class Shot:
    t: float  # capture seconds from the first packet (the slider's value)
    at: float  # render clock (`picture_at`'s `at`)
    picture: int | None  # index into Timeline.pictures; None: nothing on the screen yet
    label: str
    width: int = 0
    height: int = 0


@dataclass
class Timeline:
    session: int | None  # the session whose screen is shown
    duration: float
    interval: float
    shots: list[Shot] = field(default_factory=list)
    pictures: list[str] = field(default_factory=list)  # data: URIs, each distinct picture once

    def as_json(self) -> dict[str, Any]:
        return {"session": self.session, "duration": self.duration, "interval": self.interval,
                "max_ticks": MAX_TICKS, "width": TIMELINE_WIDTH,
                "shots": [vars(s) for s in self.shots], "pictures": self.pictures}


def interval_for(duration: float) -> float:
    """The first of INTERVALS that gives at most MAX_TICKS pictures over `duration` seconds."""
    return float(next((i for i in INTERVALS if duration / i < MAX_TICKS), duration / (MAX_TICKS - 1) or 1))


def moments(figs: dict[str, Any]) -> tuple[float, list[tuple[float, str]]]:
    """The interval and (capture time, label) of every picture: the ticks, each finding, the end."""
    duration = figs["duration"]
    interval = interval_for(duration)
    out = [(round(k * interval, 6), f"{k * interval:g} s") for k in range(int(duration // interval) + 1)]
    for f in figs.get("findings", ()):
        if f["time"] is not None:
            out.append((f["time"], f"{f['severity']}: {f['kind']}"))
    out.append((duration, "end of the capture"))
    return interval, sorted(set(out))


def build(figs: dict[str, Any], thumbnailer: Any, capture: str, keylog: Any = None,
          leg: str = "server") -> Timeline | None:
    """The timeline of the session the thumbnails show, from the pass's kept records (the capture is
    read again only when there were too many to keep). None: no display, or no records."""
    from spicetool.triage.thumbs import pictures_at

    if thumbnailer is None or thumbnailer.error is not None or thumbnailer.t0 is None:
        return None
    if thumbnailer.screen.session is None:
        return None
    offset = thumbnailer.t0 - figs["start"]  # render clock = capture time - offset
    interval, wanted = moments(figs)
    ats = [max(round(t - offset, 6), 0.0) for t, _ in wanted]
    records: Any = thumbnailer.kept
    opened = None
    if records is None:
        from spicetool.capture import open_records

        records = opened = open_records(capture, keylog=keylog, leg=leg)
    try:
        shots = pictures_at(records, ats, TIMELINE_WIDTH)
    finally:
        if opened is not None:
            opened.close()
    tl = Timeline(thumbnailer.screen.session, figs["duration"], interval)
    index: dict[bytes, int] = {}
    for (t, label), at, th in zip(wanted, ats, shots):
        k = None
        if th.png is not None:
            k = index.setdefault(th.png, len(index))
            if k == len(tl.pictures):
                tl.pictures.append(th.data_uri())
        tl.shots.append(Shot(t, at, k, label, th.width, th.height))
    return tl


def _x(t: float, duration: float) -> float:
    return LEFT + (W - LEFT - RIGHT) * (t / duration if duration > 0 else 0)


def _axis(figs: dict[str, Any], duration: float) -> str:
    """The SVG: a row per channel (one cell per second, darker the more bytes), the inputs, the
    findings (each one a link that moves the slider), and the slider's cursor."""
    channels = [(s["session"], c) for s in figs["sessions"] for c in s["channels"]]
    shown, rest = channels[:MAX_ROWS], len(channels) - MAX_ROWS
    several = len(figs["sessions"]) > 1
    rows = len(shown) + 2
    height = 18 + ROW * rows + 16
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline-axis" id="timeline-axis" width="{W}" '
           f'height="{height}" viewBox="0 0 {W} {height}" font-family="sans-serif" font-size="10" role="img">'
           "<title>the session over time: channel activity, inputs, findings</title>"]
    cell = (W - LEFT - RIGHT) / duration if duration > 0 else 0
    for r, (session, c) in enumerate(shown):
        y = 18 + ROW * r
        name = f"{session}/{c['name']}" if several else c["name"]
        out.append(f'<text x="{LEFT - 6}" y="{y + 10}" text-anchor="end">{escape(name)}</text>')
        per = [a + b for a, b in zip(c["bytes_per_second"]["client"], c["bytes_per_second"]["server"])]
        top = max(per, default=0)
        colour = PALETTE[r % len(PALETTE)]
        for k, v in enumerate(per):
            if not v:
                continue
            sec = c["per_second_from"] + k
            opacity = 0.15 + 0.85 * v / top
            out.append(f'<rect class="activity" data-channel="{escape(name)}" data-second="{sec}" data-bytes="{v}" '
                       f'x="{_x(sec, duration):.2f}" y="{y + 1}" width="{max(cell, 1):.2f}" height="{ROW - 2}" '
                       f'fill="{colour}" fill-opacity="{opacity:.2f}"><title>{escape(name)}: {v} bytes in second '
                       f"{sec}</title></rect>")
    y = 18 + ROW * len(shown)
    out.append(f'<text x="{LEFT - 6}" y="{y + 10}" text-anchor="end">inputs</text>')
    for s in figs["sessions"]:
        for i in s["inputs"]:
            what = i.get("kind", "")
            out.append(f'<line class="input" x1="{_x(i["time"], duration):.2f}" x2="{_x(i["time"], duration):.2f}" '
                       f'y1="{y + 1}" y2="{y + ROW - 1}" stroke="#333"><title>{i["time"]:.3f} s: {escape(what)}'
                       "</title></line>")
    y += ROW
    out.append(f'<text x="{LEFT - 6}" y="{y + 10}" text-anchor="end">findings</text>')
    for k, f in enumerate(figs.get("findings", ())):
        if f["time"] is None:
            continue
        x = _x(f["time"], duration)
        out.append(f'<a href="#timeline" class="seek" data-seek="{f["time"]!r}" data-finding="{k}">'
                   f'<circle cx="{x:.2f}" cy="{y + ROW / 2}" r="5" fill="{SEVERITY_COLOUR[f["severity"]]}">'
                   f"<title>{f['time']:.3f} s: {escape(f['title'])}</title></circle></a>")
    bottom = 18 + ROW * rows
    out.append(f'<line x1="{LEFT}" y1="{bottom}" x2="{W - RIGHT}" y2="{bottom}" stroke="#555"/>')
    for i in range(11):
        t = duration * i / 10
        out.append(f'<text x="{_x(t, duration):.1f}" y="{bottom + 12}" text-anchor="middle">{t:.1f}</text>')
    out.append(f'<text x="{LEFT - 24}" y="{bottom + 12}" text-anchor="end">seconds</text>')
    out.append(f'<line id="timeline-cursor" x1="{LEFT}" x2="{LEFT}" y1="14" y2="{bottom}" stroke="#000" '
               'stroke-width="1.5"/>')
    out.append("</svg>")
    if rest > 0:
        out.append(f'<p class="muted">{rest} more channel(s) not shown on the axis (the figures below have them).</p>')
    return "".join(out)


# Small on purpose: the slider shows the last shot at or before its value; a finding's link moves it.
SCRIPT = """(function () {
  var data = JSON.parse(document.getElementById("timeline-data").textContent);
  var slider = document.getElementById("timeline-slider"), img = document.createElement("img");
  img.id = "timeline-picture"; img.alt = "the screen at the slider's time";
  document.getElementById("timeline-view").appendChild(img);
  var none = document.getElementById("timeline-none"), caption = document.getElementById("timeline-caption");
  var cursor = document.getElementById("timeline-cursor"), L = %(left)d, R = %(right)d;
  function show(t) {
    var k = 0;
    for (var i = 0; i < data.shots.length; i++) if (data.shots[i].t <= t) k = i;
    var s = data.shots[k];
    if (s.picture === null) { img.style.display = "none"; none.style.display = ""; }
    else { img.src = data.pictures[s.picture]; img.style.display = ""; none.style.display = "none"; }
    img.setAttribute("data-shot", k);
    caption.textContent = t.toFixed(3) + " s (picture of " + s.t.toFixed(3) + " s: " + s.label + ")";
    var x = L + (%(width)d - L - R) * (data.duration > 0 ? t / data.duration : 0);
    cursor.setAttribute("x1", x); cursor.setAttribute("x2", x);
  }
  function seek(t) { slider.value = t; show(Number(slider.value)); }
  slider.addEventListener("input", function () { show(Number(slider.value)); });
  var links = document.querySelectorAll("[data-seek]");
  for (var i = 0; i < links.length; i++) links[i].addEventListener("click", function (e) {
    seek(Number(this.getAttribute("data-seek")));
    document.getElementById("timeline").scrollIntoView();
    e.preventDefault();
  });
  show(Number(slider.value));
})();""" % {"left": LEFT, "right": RIGHT, "width": W}

STYLE = """
.timeline{width:1000px}.timeline .picture{min-height:120px}
.timeline img{display:block;border:1px solid #999;max-width:480px}
#timeline-none{width:480px;height:120px;border:1px dashed #999;display:flex;align-items:center;justify-content:center}
#timeline-slider{display:block;margin:6px 10px 0 144px;width:852px}
#timeline-caption{font-size:.9em;margin:4px 0}
"""


def html(figs: dict[str, Any], tl: Timeline | None) -> str:
    """The section: picture, slider, axis, its data and its script (or why there is no picture)."""
    out = ['<h2 id="timeline">Timeline</h2>']
    if tl is None or not tl.shots:
        return out[0] + '<p class="muted">No timeline: the capture holds no screen to show.</p>'
    ticks = sum(1 for s in tl.shots if s.label.endswith(" s"))
    out.append(f'<p class="muted">The screen of session {tl.session} at the slider\'s time: a picture every '
               f'{tl.interval:g} s ({ticks} of them; at most {MAX_TICKS}, the interval grows with the capture) and at '
               f"each finding; {len(tl.pictures)} distinct picture(s). Click a finding to go there.</p>")
    # the slider starts at the first picture (before it, the page would open on an empty screen)
    first = next((s for s in tl.shots if s.picture is not None), tl.shots[0])
    # the <img> is made by the script: each picture is in the page once, in its data
    out.append('<div class="timeline"><div class="picture" id="timeline-view"><div id="timeline-none" class="muted">'
               "nothing on the screen yet</div><noscript>The timeline's pictures need JavaScript; the key moments"
               " are in each session's Screen section.</noscript></div>"
               '<div id="timeline-caption"></div>'
               f'<input type="range" id="timeline-slider" min="0" max="{tl.duration!r}" step="any" value="{first.t!r}" '
               'aria-label="time in the capture, seconds">')
    out.append(_axis(figs, tl.duration))
    out.append("</div>")
    data = json.dumps(tl.as_json()).replace("</", "<\\/")
    out.append(f'<script type="application/json" id="timeline-data">{data}</script><script>{SCRIPT}</script>')
    return "".join(out)
