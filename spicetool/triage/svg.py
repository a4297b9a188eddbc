"""Small inline SVG charts for the HTML report (no scripts, no fonts to fetch: prints and mails as is)."""

from __future__ import annotations

import math
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
W, H, LEFT, BOTTOM, TOP, RIGHT = 760, 220, 64, 28, 12, 150


def _nice(top: float) -> float:
    """A round axis maximum (1, 2, 2.5 or 5 times a power of ten) at or above `top`."""
    if top <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(top))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= top)


def _axis(x_max: float) -> float:
    """A time axis end with five round steps (0, 2.5, 5, ... rather than 0, 2.26, 4.52, ...)."""
    return 5 * _nice(max(x_max, 1e-3) / 5)


def _frame(x_max: float, y_max: float, x_label: str, y_label: str, y_fmt, x0: float = 0) -> list[str]:  # type: ignore[no-untyped-def]
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    out = [f'<line x1="{LEFT}" y1="{TOP + ph}" x2="{LEFT + pw}" y2="{TOP + ph}" stroke="#555"/>',
           f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + ph}" stroke="#555"/>']
    for i in range(5):
        y = TOP + ph - ph * i / 4
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{escape(y_fmt(y_max * i / 4))}</text>')
    for i in range(6):
        x = LEFT + pw * i / 5
        out.append(f'<text x="{x:.1f}" y="{TOP + ph + 16}" text-anchor="middle">{x0 + x_max * i / 5:g}</text>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{H - 2}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text x="12" y="{TOP + ph / 2}" transform="rotate(-90 12 {TOP + ph / 2})" '
               f'text-anchor="middle">{escape(y_label)}</text>')
    return out


def _svg(body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
            f'font-family="sans-serif" font-size="11" role="img"><title>{escape(title)}</title>'
            + "".join(body) + "</svg>")


def _legend(names: list[str]) -> list[str]:
    out = []
    for i, name in enumerate(names):
        y = TOP + 14 * i + 8
        color = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{W - RIGHT + 12}" y="{y - 8}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{W - RIGHT + 26}" y="{y + 1}">{escape(name)}</text>')
    return out


def line_chart(series: dict[str, list[float]], title: str, y_label: str, y_fmt=lambda v: f"{v:.0f}",  # type: ignore[no-untyped-def]
               x0: float = 0) -> str:
    """One line per series; values are per one-second bin starting at second `x0` of the capture."""
    length = max((len(v) for v in series.values()), default=0)
    if length == 0:
        return ""
    y_max = _nice(max((max(v) for v in series.values() if v), default=0))
    x_max = _axis(length)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    body = _frame(x_max, y_max, "seconds", y_label, y_fmt, x0)
    for i, (name, values) in enumerate(series.items()):
        pts = " ".join(f"{LEFT + pw * (j + 0.5) / x_max:.1f},{TOP + ph - ph * v / y_max:.1f}"
                       for j, v in enumerate(values))
        color = PALETTE[i % len(PALETTE)]
        body.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{pts}"/>')
        if len(values) < 3:  # too short for a visible line
            body += [f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="3" fill="{color}"/>'
                     for p in pts.split()]
    body += _legend(list(series))
    return _svg(body, title)


def scatter_chart(points: dict[str, list[tuple[float, float]]], x_max: float, title: str, y_label: str) -> str:
    """Dots per series at (seconds, value)."""
    values = [y for pts in points.values() for _, y in pts]
    if not values:
        return ""
    y_max = _nice(max(values))
    x_max = _axis(x_max)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    body = _frame(x_max, y_max, "seconds", y_label, lambda v: f"{v:g}")
    for i, (name, pts) in enumerate(points.items()):
        color = PALETTE[i % len(PALETTE)]
        for x, y in pts:
            body.append(f'<g><title>{escape(name)}: {y:.3f} ms at {x:.3f} s</title><circle cx="{LEFT + pw * x / x_max:.1f}" '
                        f'cy="{TOP + ph - ph * y / y_max:.1f}" r="3" fill="{color}"/></g>')
    body += _legend(list(points))
    return _svg(body, title)


def bar_chart(bars: dict[str, float], title: str, unit: str) -> str:
    """Horizontal bars, one per label."""
    if not bars:
        return ""
    top = max(bars.values()) or 1
    height = 22 * len(bars) + 10
    body = []
    for i, (label, value) in enumerate(bars.items()):
        y = 6 + 22 * i
        width = (W - 260) * value / top
        body.append(f'<text x="150" y="{y + 13}" text-anchor="end">{escape(label)}</text>')
        body.append(f'<rect x="156" y="{y}" width="{width:.1f}" height="16" fill="{PALETTE[i % len(PALETTE)]}"/>')
        body.append(f'<text x="{160 + width:.1f}" y="{y + 13}">{escape(f"{value:,.{1 if value < 10 else 0}f} {unit}")}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif" '
            f'font-size="11" role="img"><title>{escape(title)}</title>' + "".join(body) + "</svg>")
