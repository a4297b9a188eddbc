"""What every rule makes: a Finding, with its stable JSON keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES = (ERROR, WARNING, INFO)  # worst first
RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass
class Finding:
    """One kind of trouble (or a fact worth knowing, at info) a rule found in a session."""

    severity: str  # "error", "warning", "info"
    kind: str  # stable snake_case name: auth_refused, display_stall, ...
    title: str  # one line
    time: float | None  # capture seconds (from the first packet) where it begins
    until: float | None = None  # where it ends, when it lasts
    session: int | None = None
    channel: str | None = None  # "display:0"
    evidence: dict[str, Any] = field(default_factory=dict)  # the figures that tripped it, frame numbers

    def as_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "kind": self.kind, "title": self.title,
                "time": None if self.time is None else round(self.time, 6),
                "until": None if self.until is None else round(self.until, 6),
                "session": self.session, "channel": self.channel, "evidence": self.evidence}


def secs(t: float | None) -> str:
    """A capture time as the titles write it."""
    return "?" if t is None else f"{t:.3f} s"
