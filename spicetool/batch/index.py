"""OUT/index.html: one line per capture done, linking its report (relative links, no network)."""

from __future__ import annotations

import os
from html import escape
from typing import Any

from spicetool.triage.report import STYLE
from spicetool.triage.tables import human_bytes

HEAD = ["capture", "status", "sessions", "duration s", "channels", "wire bytes", "round trips", "max RTT ms",
        "images", "streams", "problems", "screen", "files"]


def _row(m: dict[str, Any]) -> str:
    folder = f"captures/{m['sha256']}"
    name = escape(m["capture"])
    files = m.get("files") or []
    link = f'<a href="{folder}/report.html">{name}</a>' if "report.html" in files else name
    status = m["status"] if not m.get("error") else f"{m['status']}: {m['error']}"
    f = m.get("figures")
    if f:
        nums = [f["sessions"], f"{f['duration']:.3f}", f["channels"], human_bytes(f["wire_bytes"]),
                f["round_trips"], "" if f["max_ms"] is None else f"{f['max_ms']:.1f}", f["images"], f["streams"],
                f["problems"]]
        cells = "".join(f"<td class=n>{escape(str(v))}</td>" for v in nums) + f"<td>{escape(f['screen'])}</td>"
    else:
        cells = f'<td colspan="{len(HEAD) - 3}" class="muted">no figures</td>'
    extra = " ".join(f'<a href="{folder}/{escape(n)}">{escape(n)}</a>' for n in files if n != "report.html")
    bad = " class=bad" if m["status"] != "ok" else ""
    return (f'<tr{bad} data-sha256="{m["sha256"]}"><td>{link}</td><td class="status">{escape(status)}</td>{cells}'
            f"<td>{extra}</td></tr>")


def index_html(markers: list[dict[str, Any]], lost: list[dict[str, Any]], out: str) -> str:
    """markers: the done markers (by capture path); lost: captures this run gave up, without a marker."""
    rows = [_row(m) for m in sorted(markers, key=lambda m: m["capture"])]
    rows += [f'<tr class=bad data-sha256="{x["sha256"]}"><td>{escape(x["capture"])}</td><td class="status">'
             f'not done: {escape(x["error"])}</td><td colspan="{len(HEAD) - 2}" class="muted">tried again on the '
             "next run</td></tr>" for x in lost]
    bad = sum(1 for m in markers if m["status"] != "ok") + len(lost)
    summary = f"{len(markers)} capture(s) done" + (f", {bad} with problems (red)" if bad else ", all complete")
    data = ('<a href="channels.parquet">channels.parquet</a> (one row per session and channel), '
            '<a href="failures.json">failures.json</a>')
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>SPICE batch: "
            f"{escape(os.path.basename(os.path.abspath(out)))}</title><style>{STYLE}</style></head><body class=wide>"
            f"<h1>SPICE batch</h1><p>{summary}. {data}.</p><table class=index><tr>"
            f"{''.join(f'<th>{escape(h)}</th>' for h in HEAD)}</tr>{''.join(rows)}</table></body></html>")
