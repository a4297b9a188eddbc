"""SpiceRect, the one rectangle type of the project: parsed rect fields, QXL commands, the
renderer's boxes and clips, the replay's changed bands.

The fields are SpiceRect's (spice.proto: top, left, bottom, right; right and bottom exclusive);
the constructor takes them as x0, y0, x1, y1: ``Rect(left, top, right, bottom)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True, slots=True)
class Rect:
    left: int
    top: int
    right: int
    bottom: int

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any], prefix: str | None = None) -> "Rect":
        """The rect of parsed fields: a Rect field as the stack parses it (``{"top": ..}``), or,
        with ``prefix``, the flat ``prefix.top`` ... fields of a guest-memory layout."""
        if prefix is None:
            return cls(int(fields["left"]), int(fields["top"]), int(fields["right"]), int(fields["bottom"]))
        return cls(int(fields[f"{prefix}.left"]), int(fields[f"{prefix}.top"]),
                   int(fields[f"{prefix}.right"]), int(fields[f"{prefix}.bottom"]))

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def fields(self) -> dict[str, int]:
        """The wire form (spice.proto order: top, left, bottom, right)."""
        return {"top": self.top, "left": self.left, "bottom": self.bottom, "right": self.right}

    def empty(self) -> bool:
        return self.right <= self.left or self.bottom <= self.top

    def overlaps(self, other: "Rect") -> bool:
        """Whether the two share a pixel."""
        return (self.left < other.right and other.left < self.right
                and self.top < other.bottom and other.top < self.bottom)

    def intersection(self, other: "Rect") -> "Rect":
        """The common part (empty, possibly with right < left, when there is none)."""
        return Rect(max(self.left, other.left), max(self.top, other.top),
                    min(self.right, other.right), min(self.bottom, other.bottom))

    def clipped(self, width: int, height: int) -> "Rect":
        """The part inside a width x height surface."""
        return self.intersection(Rect(0, 0, width, height))
