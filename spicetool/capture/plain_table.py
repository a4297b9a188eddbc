"""Aligned plain-text tables for captures with thousands of sessions.

rich lays a table out cell by cell (about 16 s for 20,000 rows of 11 columns here), which is
fine for one session's tables and not for a hypervisor's capture: these are written line by
line, in time linear in the rows.
"""

from __future__ import annotations

from typing import Iterable, Sequence, TextIO


def write_table(out: TextIO, title: str, columns: Sequence[str], rows: Iterable[Sequence[str]],
                right: Iterable[str] = (), caption: str | None = None) -> None:
    """The title, a header line, a rule, then one line per row (columns padded to their widest)."""
    rows = [tuple(map(str, r)) for r in rows]
    widths = [len(c) for c in columns]
    for r in rows:
        for i, cell in enumerate(r):
            if len(cell) > widths[i]:
                widths[i] = len(cell)
    aligned = {i for i, c in enumerate(columns) if c in set(right)}
    last = len(columns) - 1

    def line(cells: Sequence[str]) -> str:
        parts = [cell.rjust(widths[i]) if i in aligned else (cell if i == last else cell.ljust(widths[i]))
                 for i, cell in enumerate(cells)]
        return "  ".join(parts).rstrip()

    out.write(title + "\n")
    out.write(line(columns) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for r in rows:
        out.write(line(r) + "\n")
    if caption:
        out.write(caption + "\n")
    out.write("\n")
