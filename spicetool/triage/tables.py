"""Rich tables for `spicetool stats`, drawn from the JSON figures (one source for both outputs)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from spicetool.capture.plain_table import write_table
from spicetool.capture.summary import MANY_SESSIONS

SPARK = " ▁▂▃▄▅▆▇█"


def sparkline(values: list[int], width: int = 60) -> str:
    """Bytes per second as block characters; long series are merged into `width` columns (sums)."""
    if not values:
        return ""
    if len(values) > width:
        step = -(-len(values) // width)
        values = [sum(values[i : i + step]) for i in range(0, len(values), step)]
    top = max(values) or 1
    return "".join(SPARK[0 if v == 0 else max(1, round(v / top * (len(SPARK) - 1)))] for v in values)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _table(title: str, *columns: str, right: tuple[str, ...] = ()) -> Table:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, justify="right" if col in right else "left")
    return table


SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


def render_findings(findings: list[dict[str, Any]], console: Console, evidence: bool = False) -> None:
    """The findings, worst first: severity, time, session and channel, kind, title (and, for `diagnose`,
    the evidence as one compact JSON line each)."""
    import json

    table = _table(f"findings ({_counts(findings)})", "severity", "time", "where", "kind", "title", right=("time",))
    for f in findings:
        t = "" if f["time"] is None else f"{f['time']:.3f}" + ("" if f["until"] is None else f"–{f['until']:.3f}")
        where = " ".join(x for x in (f"s{f['session']}" if f["session"] is not None else "", f["channel"] or "") if x)
        table.add_row(f"[{SEVERITY_STYLE[f['severity']]}]{f['severity']}[/]", t, where, f["kind"], f["title"])
        if evidence and f["evidence"]:
            text = json.dumps(f["evidence"], default=str, separators=(",", ":"))
            table.add_row("", "", "", "", f"[dim]{text if len(text) <= 300 else text[:297] + '...'}[/]")
    console.print(table)


def _counts(findings: list[dict[str, Any]]) -> str:
    if not findings:
        return "none"
    n = {sev: sum(1 for f in findings if f["severity"] == sev) for sev in ("error", "warning", "info")}
    return ", ".join(f"{v} {k}" for k, v in n.items() if v)


def render(figs: dict[str, Any], console: Console, input_limit: int = 200) -> None:
    if "findings" in figs:
        render_findings(figs["findings"], console)
    if len(figs["sessions"]) > MANY_SESSIONS:
        _compact(figs["sessions"], console.file)
        return
    for s in figs["sessions"]:
        _session(s, console, input_limit)


def _compact(sessions: list[dict[str, Any]], out: Any) -> None:
    """A capture of many sessions: one line per session (plain text: rich's tables cost seconds
    per thousand rows), its problems counted; --json holds every figure."""
    rows = []
    for s in sessions:
        chans = s["channels"]
        lat = s["latency"]
        notes = [s["failure"]] if s.get("failure") else []
        if s.get("legs"):
            notes.append(f"two legs through proxy {s['legs']['proxy']}")
        resets = sum(1 for c in chans if c["closed"] and c["closed"]["how"] == "reset")
        if resets:
            notes.append(f"{resets} reset")
        rows.append((
            str(s["session"]), str(s["server"]), ",".join(s["clients"]), str(s["auth"] or ""),
            ",".join(c["name"] for c in chans),
            str(sum(c["messages"].get("client", 0) for c in chans)), str(sum(c["messages"].get("server", 0) for c in chans)),
            human_bytes(sum(c["wire_bytes"]["client"] for c in chans)),
            human_bytes(sum(c["wire_bytes"]["server"] for c in chans)),
            f"{s['start']:.3f}" if s["start"] is not None else "", f"{s['duration']:.3f}" if s["start"] is not None else "",
            f"{lat['p95_ms']:.3f}" if lat["round_trips"] else "", str(sum(v["count"] for v in s["images"].values())),
            str(len(s["streams"])), str(len(s["problems"])), "; ".join(notes)))
    numbers = ("msgs c→s", "msgs s→c", "wire c→s", "wire s→c", "start", "duration", "ping p95 ms", "images",
               "streams", "problems")
    write_table(out, f"{len(sessions)} sessions, one line each (--json: every figure of every session)",
                ("session", "server", "client", "auth", "channels", *numbers, "notes"), rows, right=numbers)


def _session(s: dict[str, Any], console: Console, input_limit: int) -> None:
    title = f"session {s['session']}" + (f" (id {s['session_id']:#x})" if s["session_id"] else "")
    over = _table(f"{title}: overview", "what", "value")
    over.add_row("server", str(s["server"]))
    over.add_row("client address", ", ".join(s["clients"]))
    if s["start"] is not None:
        over.add_row("start / duration", f"{s['start']:.3f} s / {s['duration']:.3f} s")
    if s["name"] or s["uuid"]:
        over.add_row("guest", " ".join(x for x in (s["name"], s["uuid"]) if x))
    over.add_row("auth", str(s["auth"] or "not seen"))
    over.add_row("channels", ", ".join(c["name"] for c in s["channels"]))
    tls = sorted({c["tls"] + (f", keys from {c['tls_keys']}" if c.get("tls_keys") else "")
                  for c in s["channels"] if c.get("tls")})
    if tls:
        over.add_row("TLS", "; ".join(tls))
    for what, value in transport_rows(s):
        over.add_row(what, value)
    if s.get("failure"):
        over.add_row("failed", s["failure"], style="bold red")
    over.add_row("mouse mode", " → ".join(f"{m['mode']} @{m['time']:.2f}s" for m in s["mouse_mode"]) or "not seen")
    over.add_row("agent", " → ".join(("connected" if a["connected"] else "not connected") + f" @{a['time']:.2f}s"
                                      for a in s["agent_connected"]) or "not seen")
    over.add_row("screen", " → ".join(f"{x['width']}x{x['height']} @{x['time']:.2f}s" for x in s["screen_sizes"])
                  or "not seen")
    unknown = s.get("unknown") or {}
    if unknown.get("share"):
        over.add_row("screen unknown", f"{unknown['share']:.1%} at the end (lost in capture gaps), "
                                       f"since {unknown['since']:.2f}s")
    console.print(over)
    if s.get("legs"):
        _legs(title, s["legs"], console)

    chains = any(c.get("transport") for c in s["channels"])
    bw = _table(f"{title}: bandwidth per channel (c→s client to server, s→c server to client)", "channel",
                "client", "msgs c→s", "msgs s→c", "wire c→s", "wire s→c", "s→c per second", "closed",
                *(("transport",) if chains else ()), right=("msgs c→s", "msgs s→c", "wire c→s", "wire s→c"))
    for c in s["channels"]:
        closed = f"{c['closed']['how']} @{c['closed']['time']:.2f}s" if c["closed"] else "open at end"
        bw.add_row(c["name"], c["client"], str(c["messages"].get("client", 0)), str(c["messages"].get("server", 0)),
                   human_bytes(c["wire_bytes"]["client"]), human_bytes(c["wire_bytes"]["server"]),
                   sparkline(c["bytes_per_second"]["server"]), closed,
                   *((c.get("transport") or "plain TCP",) if chains else ()))
    console.print(bw)

    caps = _table(f"{title}: capabilities", "channel", "offered by", "common", "channel caps")
    for c in s["channels"]:
        for side in ("client", "server"):
            common, chan = c["caps"].get(f"{side}_common_caps"), c["caps"].get(f"{side}_channel_caps")
            if common is not None or chan is not None:
                caps.add_row(c["name"], side, ", ".join(map(str, common or [])), ", ".join(map(str, chan or [])))
    console.print(caps)

    lat = s["latency"]
    lt = _table(f"{title}: latency (PING → PONG round trips, as seen where captured)", "channel", "round trips",
                "min ms", "avg ms", "p95 ms", "max ms", right=("round trips", "min ms", "avg ms", "p95 ms", "max ms"))
    for label, v in lat["per_channel"].items():
        lt.add_row(label, str(v["round_trips"]), f"{v['min_ms']:.3f}", f"{v['avg_ms']:.3f}", f"{v['p95_ms']:.3f}",
                   f"{v['max_ms']:.3f}")
    if lat["round_trips"]:
        lt.add_row("all", str(lat["round_trips"]), f"{lat['min_ms']:.3f}", f"{lat['avg_ms']:.3f}",
                   f"{lat['p95_ms']:.3f}", f"{lat['max_ms']:.3f}", style="bold")
    if lat["unanswered_pings"] or lat["unmatched_pongs"]:
        lt.caption = f"{lat['unanswered_pings']} pings without a pong, {lat['unmatched_pongs']} pongs without a ping"
    console.print(lt)

    if s["images"]:
        im = _table(f"{title}: images drawn", "codec", "count", "bytes", "raw (w×h×4)", "size of raw", "ratio",
                    right=("count", "bytes", "raw (w×h×4)", "size of raw", "ratio"))
        for codec, v in s["images"].items():
            im.add_row(codec, str(v["count"]), human_bytes(v["bytes"]), human_bytes(v["raw_bytes"]),
                       f"{v['percent_of_raw']:.1f}%" if v["percent_of_raw"] is not None else "",
                       f"{v['ratio']:.1f}:1" if v["ratio"] else "")
        console.print(im)
    if s["streams"]:
        vs = _table(f"{title}: video streams", "id", "codec", "size", "created", "destroyed", "frames", "fps",
                    "bytes", "client reports", "dropped", right=("frames", "fps", "bytes", "dropped"))
        for v in s["streams"]:
            vs.add_row(str(v["id"]), v["codec"], f"{v['width']}x{v['height']}", f"{v['created']:.2f}s",
                       f"{v['destroyed']:.2f}s" if v["destroyed"] is not None else "", str(v["frames"]),
                       f"{v['fps']:.1f}" if v["fps"] else "", human_bytes(v["bytes"]),
                       f"{v['reports']} ({v['reported_frames']} frames)", str(v["dropped"]))
        console.print(vs)
    pr = _table(f"{title}: problems and notices", "time", "channel", "kind", "detail", right=("time",))
    for p in s["problems"]:
        pr.add_row(f"{p['time']:.3f}", p["channel"], p["kind"], p["detail"],
                   style="red" if p["kind"] in ("tcp_gap", "protocol_error", "link_error", "tls_error", "tls_encrypted") else None)
    for c in s["channels"]:
        if c["closed"] and c["closed"]["how"] == "reset":
            pr.add_row(f"{c['closed']['time']:.3f}", c["name"], "reset", "the connection was reset", style="red")
    if not pr.rows:
        pr.caption = "none"
    console.print(pr)

    if s["inputs"]:
        it = _table(f"{title}: input timeline", "time", "what", right=("time",))
        for line_time, what in _input_lines(s["inputs"])[:input_limit]:
            it.add_row(f"{line_time:.3f}", what)
        lines = _input_lines(s["inputs"])
        if len(lines) > input_limit:
            it.caption = f"{len(lines) - input_limit} more lines (--json has them all)"
        console.print(it)
        console.print(f"[bold]{title}: typed text[/bold] (US layout):")
        console.print(repr(s["typed_text"]), markup=False, highlight=False)


def _input_lines(inputs: list[dict[str, Any]]) -> list[tuple[float, str]]:
    """Runs of plain keys become one 'typed ...' line; clicks and special keys get their own."""
    lines: list[tuple[float, str]] = []
    run: list[str] = []
    run_start = 0.0
    for i in inputs:
        plain = i["kind"] == "key" and (len(i["key"]) == 1 or i["key"] == "Space")
        if plain:
            if not run:
                run_start = i["time"]
            run.append(" " if i["key"] == "Space" else i["key"])
            continue
        if run:
            lines.append((run_start, f"typed {''.join(run)!r}"))
            run = []
        if i["kind"] == "click":
            where = f" at {i['x']},{i['y']}" if i.get("x") is not None else ""
            lines.append((i["time"], f"click {i['button']}{where}"))
        else:
            lines.append((i["time"], f"key {i['key']}"))
    if run:
        lines.append((run_start, f"typed {''.join(run)!r}"))
    return lines


def _legs(title: str, legs: dict[str, Any], console: Console) -> None:
    """A session a capture taken at a proxy holds twice: both legs of each connection, and the delay."""
    table = _table(f"{title}: legs through proxy {legs['proxy']} (figures of the {legs['shown']} leg)",
                   "channel", "client leg", "server leg")
    for p in legs["pairs"]:
        table.add_row(p["name"], *(leg_text(p[k]) for k in ("client_leg", "server_leg")))
    console.print(table)
    delay = _table(f"{title}: the proxy's added delay", "direction", "messages", "p50 ms", "p95 ms", "max ms",
                   right=("messages", "p50 ms", "p95 ms", "max ms"))
    for key, name in (("client_to_server", "client → server"), ("server_to_client", "server → client")):
        f = legs["proxy_delay"].get(key)
        delay.add_row(name, *((str(f["count"]), f"{f['p50_ms']:.3f}", f"{f['p95_ms']:.3f}", f"{f['max_ms']:.3f}")
                              if f else ("0", "", "", "")))
    delay.caption = f"measured {legs['proxy_delay_how']}"
    console.print(delay)


def leg_text(leg: dict[str, Any]) -> str:
    return f"{leg['client']} → {leg['server']}, {leg.get('transport') or 'plain TCP'}"


def transport_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The overview's transport rows: the chains of the channels shown, and of both legs through a proxy."""
    legs = s.get("legs")
    if legs:
        rows = []
        for k in ("client_leg", "server_leg"):
            chains = sorted({p[k].get("transport") or "plain TCP" for p in legs["pairs"]})
            rows.append((f"transport, {k.replace('_', ' ')}", "; ".join(chains)))
        return rows
    return [("transport", "; ".join(s["transport"]))] if s.get("transport") else []
