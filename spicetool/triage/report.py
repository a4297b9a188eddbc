"""`spicetool report`: the figures of `stats` as one self-contained HTML page with inline SVG charts."""

from __future__ import annotations

import json
from html import escape
from typing import Any, Optional, Union

from spicetool.triage.svg import bar_chart, line_chart, scatter_chart
from spicetool.triage.tables import _input_lines, human_bytes, leg_text, transport_rows
from spicetool.triage import timeline as timeline_section
from spicetool.triage.thumbs import THUMB_WIDTH, Thumb

Screens = Union[tuple[Optional[int], list[Thumb], list[str]], str]

STYLE = """
body{font-family:sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:2em}h3{font-size:1em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fde8e8}pre{background:#f6f6f6;padding:.6em;white-space:pre-wrap}
.muted{color:#777}
body.wide{max-width:none}.index td{white-space:nowrap}.index td.status{white-space:normal;min-width:14em;max-width:30em}
.damage{background:#fde8e8;border:1px solid #d62728;padding:.6em;font-weight:bold}
.thumbs{display:flex;flex-wrap:wrap;gap:10px}.thumbs figure{margin:0;width:242px}
.thumbs img{display:block;border:1px solid #999}
.thumbs figcaption{font-size:.85em;margin-top:3px}
.findings tr.error td{background:#fde8e8}.findings tr.warning td{background:#fff4d6}
.findings tr.info td{color:#555}
.thumbs .none{width:240px;height:180px;border:1px dashed #999;display:flex;align-items:center;justify-content:center}
""" + timeline_section.STYLE


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] = frozenset(),  # type: ignore[assignment]
           bad: list[bool] | None = None) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(f'<td{" class=n" if j in numeric else ""}>{escape(str(v))}</td>' for j, v in enumerate(row))
        body.append(f'<tr{" class=bad" if bad and bad[i] else ""}>{cells}</tr>')
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def render_html(figs: dict[str, Any], source: str, damage: str | None = None,
                screens: Screens | None = None, timeline: timeline_section.Timeline | None = None) -> str:
    """The page. `damage`: why the capture ends early (shown at the top); `screens`: the
    thumbnails of `spicetool.triage.thumbs.thumbnails` (session, pictures, warnings) or an error text;
    `timeline`: the slider's pictures (`spicetool.triage.timeline.build`), None for none."""
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>SPICE session report: "
             f"{escape(source)}</title><style>{STYLE}</style></head><body>",
             f"<h1>SPICE session report</h1><p>{escape(source)}: {figs['frames']} frames, "
             f"{figs['duration']:.3f} s, {len(figs['sessions'])} session(s).</p>"]
    if damage:
        parts.append(f'<p class="damage" id="damage">Damaged capture: {escape(damage)}. '
                     f"The figures below stop where the damage starts.</p>")
    if "findings" in figs:
        parts.append(_findings(figs["findings"], screens, timeline is not None))
    if timeline is not None:
        parts.append(timeline_section.html(figs, timeline))
    for s in figs["sessions"]:
        parts.append(_session(s, screens))
        if isinstance(screens, tuple) and screens[0] is None:
            screens = None  # said once
    # the figures themselves, for whoever wants to script against the page
    data = json.dumps(figs, default=str).replace("</", "<\\/")
    parts.append(f'<script type="application/json" id="figures">{data}</script></body></html>')
    return "".join(parts)


def _findings(findings: list[dict[str, Any]], screens: Screens | None, timeline: bool = False) -> str:
    """The findings of `diagnose`, worst first; each one's time moves the timeline's slider there, or
    without a timeline links to the screen picture shown nearest before it, or is plain text."""
    out = ['<h2 id="findings">Findings</h2>']
    if not findings:
        return out[0] + '<p class="muted">none</p>'
    thumbs = screens[1] if isinstance(screens, tuple) and screens[0] is not None else []
    session = screens[0] if isinstance(screens, tuple) else None
    rows = []
    for k, f in enumerate(findings):
        when = "" if f["time"] is None else f"{f['time']:.3f} s" + ("" if f["until"] is None else
                                                                   f" – {f['until']:.3f} s")
        cell = escape(when)
        if f["time"] is not None and timeline:
            cell = f'<a href="#timeline" class="seek" data-seek="{f["time"]!r}">{cell}</a>'
        elif f["time"] is not None and thumbs and f["session"] in (session, None):
            before = [i for i, t in enumerate(thumbs) if t.at <= f["time"]]
            if before:
                cell = f'<a href="#screen-{session}-{before[-1]}">{cell}</a>'
        where = " ".join(x for x in (f"session {f['session']}" if f["session"] is not None else "",
                                     f["channel"] or "") if x)
        evidence = escape(json.dumps(f["evidence"], default=str, separators=(", ", ": ")))
        rows.append(f'<tr class="{escape(f["severity"])}" id="finding-{k}" data-kind="{escape(f["kind"])}"'
                    f' data-time="{"" if f["time"] is None else f["time"]!r}"><td>{escape(f["severity"])}</td>'
                    f"<td class=n>{cell}</td><td>{escape(where)}</td><td>{escape(f['kind'])}</td>"
                    f"<td>{escape(f['title'])}<details><summary class=muted>evidence</summary><pre>{evidence}</pre>"
                    "</details></td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("severity", "time", "where", "kind", "finding"))
    return "".join(out) + f'<table class="findings"><tr>{head}</tr>{"".join(rows)}</table>'


def _screens(s: dict[str, Any], screens: Screens | None) -> str:
    if screens is None:
        return ""
    if isinstance(screens, str):
        return f'<h3>Screen</h3><p class="damage">The screen could not be rendered: {escape(screens)}</p>'
    session, thumbs, warnings = screens
    if session is None:
        return '<h3>Screen</h3><p class="muted">No picture: the capture holds no display channel.</p>'
    if session != s["session"]:
        return ""
    out = ['<h3>Screen</h3><div class="thumbs">']
    for i, t in enumerate(thumbs):
        caption = f"{t.at:.2f} s: {t.label}" + (f" ({t.width}x{t.height})" if t.png else "")
        if t.png is None:
            pic = '<div class="none muted">nothing on the screen yet</div>'
        else:
            w = min(t.width, THUMB_WIDTH)
            pic = (f'<img src="{t.data_uri()}" width="{w}" height="{round(t.height * w / t.width)}" '
                   f'alt="{escape(t.label)}">')
        out.append(f'<figure class="thumb" id="screen-{s["session"]}-{i}" data-at="{t.at!r}">{pic}<figcaption>{escape(caption)}</figcaption>'
                   f"</figure>")
    out.append("</div>")
    if warnings:
        out.append('<p class="muted">Rendering: ' + escape("; ".join(warnings)) + "</p>")
    return "".join(out)


def _session(s: dict[str, Any], screens: Screens | None = None) -> str:
    title = f"Session {s['session']}" + (f" (id {s['session_id']:#x})" if s["session_id"] else "")
    out = [f"<h2>{escape(title)}</h2>"]
    rows = [["server", s["server"]], ["client address", ", ".join(s["clients"])],
            ["start / duration", f"{s['start'] or 0:.3f} s / {s['duration'] or 0:.3f} s"],
            ["auth", s["auth"] or "not seen"], ["channels", ", ".join(c["name"] for c in s["channels"])],
            ["mouse mode", " → ".join(f"{m['mode']} at {m['time']:.2f} s" for m in s["mouse_mode"]) or "not seen"],
            ["agent", " → ".join(("connected" if a["connected"] else "not connected") + f" at {a['time']:.2f} s"
                                 for a in s["agent_connected"]) or "not seen"],
            ["screen", " → ".join(f"{x['width']}x{x['height']} at {x['time']:.2f} s" for x in s["screen_sizes"])
             or "not seen"]]
    unknown = s.get("unknown") or {}
    if unknown.get("share"):  # draws lost in capture gaps: what the picture cannot say
        rows.append(["screen unknown", f"{unknown['share']:.1%} of the screen at the end (draws lost in capture"
                                       f" gaps), since {unknown['since']:.2f} s"])
    if s["name"] or s["uuid"]:
        rows.append(["guest", " ".join(x for x in (s["name"], s["uuid"]) if x)])
    tls = sorted({c["tls"] for c in s["channels"] if c.get("tls")})
    if tls:
        rows.append(["TLS", "; ".join(tls)])
    rows.extend([what, value] for what, value in transport_rows(s))
    if s.get("failure"):
        rows.append(["failed", s["failure"]])
    out.append("<h3>Overview</h3>" + _table(["what", "value"], rows))
    if s.get("legs"):
        out.append(_legs(s["legs"]))
    out.append(_screens(s, screens))

    out.append("<h3>Channels and bandwidth</h3>")
    rows, bad = [], []
    for c in s["channels"]:
        rows.append([c["name"], c["client"], c["auth"] or "", c["messages"].get("client", 0),
                     c["messages"].get("server", 0), human_bytes(c["wire_bytes"]["client"]),
                     human_bytes(c["wire_bytes"]["server"]), f"{c['start']:.3f}", f"{c['duration']:.3f}",
                     f"{c['closed']['how']} at {c['closed']['time']:.2f} s" if c["closed"] else "open at end",
                     c["link_error"] or ""])
        bad.append(bool(c["link_error"] or c["gaps"] or c["errors"] or (c["closed"] or {}).get("how") == "reset"))
    out.append(_table(["channel", "client", "auth", "msgs c→s", "msgs s→c", "wire c→s", "wire s→c", "start s",
                       "duration s", "closed", "link error"], rows, {3, 4, 5, 6, 7, 8}, bad))
    x0 = min((c["per_second_from"] for c in s["channels"]), default=0)  # the session's first second

    def kib(c: dict[str, Any], d: str) -> list[float]:
        return [0.0] * (c["per_second_from"] - x0) + [v / 1024 for v in c["bytes_per_second"][d]]

    series = {f"{c['name']} s→c": kib(c, "server") for c in s["channels"] if any(c["bytes_per_second"]["server"])}
    series.update({f"{c['name']} c→s": kib(c, "client") for c in s["channels"]
                   if sum(c["bytes_per_second"]["client"]) > 4096})
    out.append(line_chart(series, "bytes per second per channel", "KiB per second", x0=x0))

    lat = s["latency"]
    out.append("<h3>Latency (PING → PONG)</h3>")
    rows = [[label, v["round_trips"], v["min_ms"], v["avg_ms"], v["p95_ms"], v["max_ms"]]
            for label, v in lat["per_channel"].items()]
    if lat["round_trips"]:
        rows.append(["all", lat["round_trips"], lat["min_ms"], lat["avg_ms"], lat["p95_ms"], lat["max_ms"]])
    out.append(_table(["channel", "round trips", "min ms", "avg ms", "p95 ms", "max ms"], rows, {1, 2, 3, 4, 5}))
    points: dict[str, list[tuple[float, float]]] = {}
    for p in lat["series"]:
        points.setdefault(p["channel"], []).append((p["time"], p["ms"]))
    out.append(scatter_chart(points, (s["start"] or 0) + (s["duration"] or 0), "round trips", "ms"))

    out.append("<h3>Images drawn</h3>")
    out.append(_table(["codec", "count", "bytes", "raw (w×h×4)", "size of raw", "ratio"],
                      [[k, v["count"], human_bytes(v["bytes"]), human_bytes(v["raw_bytes"]),
                        f"{v['percent_of_raw']:.1f}%" if v["percent_of_raw"] is not None else "",
                        f"{v['ratio']:.1f}:1" if v["ratio"] else ""] for k, v in s["images"].items()],
                      {1, 2, 3, 4, 5}))
    out.append(bar_chart({k: v["bytes"] / 1024 for k, v in s["images"].items()}, "image bytes per codec", "KiB"))

    out.append("<h3>Video streams</h3>")
    out.append(_table(["id", "codec", "size", "created s", "destroyed s", "frames", "fps", "bytes", "reports",
                       "dropped"],
                      [[v["id"], v["codec"], f"{v['width']}x{v['height']}", f"{v['created']:.2f}",
                        "" if v["destroyed"] is None else f"{v['destroyed']:.2f}", v["frames"], v["fps"] or "",
                        human_bytes(v["bytes"]), v["reports"], v["dropped"]] for v in s["streams"]],
                      {5, 6, 7, 8, 9}, [v["dropped"] > 0 for v in s["streams"]]))

    out.append("<h3>Problems and notices</h3>")
    probs = [[f"{p['time']:.3f}", p["channel"], p["kind"], p["detail"]] for p in s["problems"]]
    probs += [[f"{c['closed']['time']:.3f}", c["name"], "reset", "the connection was reset"]
              for c in s["channels"] if c["closed"] and c["closed"]["how"] == "reset"]
    out.append(_table(["time s", "channel", "kind", "detail"], probs, {0},
                      [p[2] in ("tcp_gap", "protocol_error", "link_error", "reset", "tls_error", "tls_encrypted") for p in probs]))

    out.append("<h3>Inputs</h3>")
    out.append(_table(["time s", "what"], [[f"{t:.3f}", what] for t, what in _input_lines(s["inputs"])], {0}))
    if s["typed_text"]:
        out.append("<p>Typed text (US layout assumed):</p><pre>" + escape(s["typed_text"]) + "</pre>")
    return "".join(out)


def _legs(legs: dict[str, Any]) -> str:
    """Both legs of each connection a capture taken at a proxy holds twice, and the proxy's added delay."""
    out = [f"<h3>Legs through proxy {escape(legs['proxy'])}</h3>",
           f"<p>Each connection is in the capture twice; the figures are those of the {escape(legs['shown'])} leg.</p>"]
    out.append(_table(["channel", "client leg", "server leg"],
                      [[p["name"], leg_text(p["client_leg"]), leg_text(p["server_leg"])] for p in legs["pairs"]]))
    rows = []
    for key, name in (("client_to_server", "client → server"), ("server_to_client", "server → client")):
        f = legs["proxy_delay"].get(key)
        rows.append([name, *((f["count"], f["p50_ms"], f["p95_ms"], f["max_ms"]) if f else (0, "", "", ""))])
    out.append(_table(["the proxy's added delay", "messages", "p50 ms", "p95 ms", "max ms"], rows, {1, 2, 3, 4}))
    out.append(f"<p>The delay is measured {escape(legs['proxy_delay_how'])}.</p>")
    return "".join(out)


def key_figures(figs: dict[str, Any]) -> dict[str, Any]:
    """The index line of one capture, from its `stats --json` figures."""
    ss = figs["sessions"]
    lat = [s["latency"] for s in ss if s["latency"]["round_trips"]]
    return {
        "sessions": len(ss),
        "duration": figs["duration"],
        "channels": sum(len(s["channels"]) for s in ss),
        "wire_bytes": sum(c["wire_bytes"]["client"] + c["wire_bytes"]["server"] for s in ss for c in s["channels"]),
        "round_trips": sum(x["round_trips"] for x in lat),
        "max_ms": max((x["max_ms"] for x in lat), default=None),
        "images": sum(v["count"] for s in ss for v in s["images"].values()),
        "streams": sum(len(s["streams"]) for s in ss),
        "problems": sum(len(s["problems"]) for s in ss),
        "screen": ", ".join(" → ".join(f"{x['width']}x{x['height']}" for x in s["screen_sizes"]) for s in ss
                            if s["screen_sizes"]),
    }


def index_html(results: list[dict[str, Any]], folder: str) -> str:
    """The page linking every capture's page, a line of key figures each (results of `write_report`)."""
    import os

    head = ["capture", "status", "sessions", "duration s", "channels", "wire bytes", "round trips",
            "max RTT ms", "images", "streams", "problems", "screen"]
    rows = []
    for r in results:
        name = escape(os.path.basename(r["capture"]))
        link = f'<a href="{escape(os.path.basename(r["page"]))}">{name}</a>' if r["page"] else name
        if not r["error"]:
            status = "ok"
        elif r["damage"]:
            status = "damaged: " + r["damage"]
        elif r["figures"] and not r["figures"]["sessions"]:
            status = "no SPICE traffic"
        else:
            status = "unreadable: " + r["error"].removeprefix(r["capture"] + ": ")
        f = r["figures"]
        if f:
            nums = [f["sessions"], f"{f['duration']:.3f}", f["channels"], human_bytes(f["wire_bytes"]),
                    f["round_trips"], "" if f["max_ms"] is None else f"{f['max_ms']:.1f}", f["images"],
                    f["streams"], f["problems"]]
            cells = "".join(f"<td class=n>{escape(str(v))}</td>" for v in nums) + f"<td>{escape(f['screen'])}</td>"
        else:
            cells = f'<td colspan="{len(head) - 2}" class="muted">no figures</td>'
        bad = " class=bad" if r["error"] else ""
        rows.append(f'<tr{bad} data-capture="{name}"><td>{link}</td><td class="status">{escape(status)}</td>{cells}'
                    "</tr>")
    damaged = sum(1 for r in results if r["error"])
    summary = f"{len(results)} capture(s)" + (f", {damaged} with problems (red)" if damaged else ", all complete")
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>SPICE reports: {escape(folder)}</title>"
            f"<style>{STYLE}</style></head><body class=wide><h1>SPICE reports</h1><p>{escape(folder)}: {summary}.</p>"
            f"<table class=index><tr>{''.join(f'<th>{escape(h)}</th>' for h in head)}</tr>{''.join(rows)}</table></body></html>")
