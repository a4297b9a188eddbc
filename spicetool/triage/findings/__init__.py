"""Findings: rules over the figures of `stats` that each name one kind of trouble, with a severity,
a one-line title and the evidence (times, channel, frame numbers, the figures that tripped it).

One module per family; each has `rules(session) -> Finding...` over one session of
`Figures.as_json()` (the capture is not read again). `find(figures, damage)` runs them all.
"""

from __future__ import annotations

from typing import Any

from spicetool.triage.findings import (agent, audio, bandwidth, capture, disconnect, display, latency, link, media,
                                      migration)
from spicetool.triage.findings.base import ERROR, INFO, RANK, SEVERITIES, WARNING, Finding

FAMILIES = (link, disconnect, migration, display, latency, bandwidth, media, audio, agent, capture)

__all__ = ["ERROR", "FAMILIES", "INFO", "SEVERITIES", "WARNING", "Finding", "find", "above_info", "as_json"]


def find(figs: dict[str, Any], damage: str | None = None) -> list[Finding]:
    """Every finding of a capture's figures, worst first, then by time."""
    out: list[Finding] = []
    for s in figs.get("sessions", []):
        s = {**s, "capture_end": figs.get("duration")}  # where a trouble still going on at the end ends
        for family in FAMILIES:
            out.extend(family.rules(s))
    out.extend(capture.damage(damage, figs.get("duration")))
    return sorted(out, key=lambda f: (RANK[f.severity], f.time if f.time is not None else float("inf")))


def above_info(findings: list[Finding]) -> bool:
    return any(f.severity != INFO for f in findings)


def as_json(findings: list[Finding]) -> list[dict[str, Any]]:
    return [f.as_json() for f in findings]
