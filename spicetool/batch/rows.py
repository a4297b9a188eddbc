"""One row per session and channel from a capture's `stats --json` figures (findings first), flattened
under stable column names with one type each (COLUMNS), whatever the capture holds: a figure a capture
lacks is null, never a missing column or another type. Plain Python values: the Parquet schema is made
from COLUMNS where the rows are written (dataset.py)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from spicetool.triage.figures import percentile
from spicetool.triage.findings import SEVERITIES

# name -> type: "string", "int64", "float64", "bool", "list<string>", "map<string,int64>"
COLUMNS: dict[str, str] = {
    # the capture
    "capture": "string", "sha256": "string", "capture_bytes": "int64",
    "status": "string",  # "ok", or "damaged": the figures stop where the capture breaks off (`error`)
    "error": "string", "capture_duration": "float64", "capture_frames": "int64",
    **{f"capture_findings_{s}": "int64" for s in SEVERITIES},
    # the session (the same on each of its channels' rows)
    "session": "int64", "session_id": "int64", "session_server": "string", "session_clients": "list<string>",
    "session_start": "float64", "session_duration": "float64", "session_name": "string", "session_uuid": "string",
    "session_auth": "string", "session_channels": "int64", "session_transport": "list<string>",
    "session_failure": "string",
    "session_round_trips": "int64", "session_ping_min_ms": "float64", "session_ping_avg_ms": "float64",
    "session_ping_p50_ms": "float64", "session_ping_p95_ms": "float64", "session_ping_max_ms": "float64",
    "session_unanswered_pings": "int64", "session_unmatched_pongs": "int64",
    "session_images": "int64", "session_image_bytes": "int64", "session_image_raw_bytes": "int64",
    "session_images_by_codec": "map<string,int64>",
    "session_streams": "int64", "session_stream_frames": "int64", "session_stream_bytes": "int64",
    "session_stream_drops": "int64", "session_stream_codecs": "list<string>",
    "session_problems": "int64", "session_inputs": "int64", "session_typed_chars": "int64",
    "session_input_latency_p50_ms": "float64", "session_input_latency_p95_ms": "float64",
    "session_input_latency_max_ms": "float64",
    "session_screen_width": "int64", "session_screen_height": "int64", "session_screen_changes": "int64",
    "session_unknown_share": "float64", "session_agent_connected": "bool",
    **{f"session_findings_{s}": "int64" for s in SEVERITIES},
    "session_finding_kinds": "list<string>",
    # the channel
    "channel": "string", "channel_id": "int64", "channel_name": "string", "client": "string", "server": "string",
    "leg": "string", "midstream": "bool", "tls": "string", "transport": "string", "auth": "string",
    "link_error": "string", "failure": "string",
    "start": "float64", "duration": "float64",
    "messages_client": "int64", "messages_server": "int64", "bytes_client": "int64", "bytes_server": "int64",
    "wire_bytes_client": "int64", "wire_bytes_server": "int64",
    "segments_client": "int64", "segments_server": "int64",
    "retransmitted_segments_client": "int64", "retransmitted_segments_server": "int64",
    "retransmitted_bytes_client": "int64", "retransmitted_bytes_server": "int64",
    "zero_windows_client": "int64", "zero_windows_server": "int64",
    "gaps": "int64", "errors": "int64",
    "ping_round_trips": "int64", "ping_min_ms": "float64", "ping_avg_ms": "float64", "ping_p50_ms": "float64",
    "ping_p95_ms": "float64", "ping_max_ms": "float64",
    "closed_time": "float64", "closed_how": "string", "closed_first_by": "string",
    "quiet_periods": "int64",
    **{f"findings_{s}": "int64" for s in SEVERITIES},
    "finding_kinds": "list<string>",
}


def _by_severity(findings: list[dict[str, Any]], prefix: str) -> dict[str, int]:
    n = Counter(f["severity"] for f in findings)
    return {f"{prefix}{s}": n.get(s, 0) for s in SEVERITIES}


def _p50(series: list[dict[str, Any]], label: str | None) -> float | None:
    ms = [x["ms"] for x in series if label is None or x["channel"] == label]
    return round(percentile(ms, 50), 3) if ms else None


def _session(s: dict[str, Any], findings: list[dict[str, Any]]) -> dict[str, Any]:
    lat = s["latency"]
    images = s["images"]
    streams = s["streams"]
    sizes = s["screen_sizes"]
    il = s["input_latency"]
    agent = s["agent_connected"]
    mine = [f for f in findings if f.get("session") == s["session"]]
    return {
        "session": s["session"], "session_id": s["session_id"], "session_server": s["server"],
        "session_clients": list(s["clients"]), "session_start": s["start"], "session_duration": s["duration"],
        "session_name": s["name"], "session_uuid": s["uuid"], "session_auth": s["auth"],
        "session_channels": len(s["channels"]), "session_transport": list(s["transport"]),
        "session_failure": s["failure"],
        "session_round_trips": lat["round_trips"], "session_ping_min_ms": lat.get("min_ms"),
        "session_ping_avg_ms": lat.get("avg_ms"), "session_ping_p50_ms": _p50(lat["series"], None),
        "session_ping_p95_ms": lat.get("p95_ms"), "session_ping_max_ms": lat.get("max_ms"),
        "session_unanswered_pings": lat["unanswered_pings"], "session_unmatched_pongs": lat["unmatched_pongs"],
        "session_images": sum(v["count"] for v in images.values()),
        "session_image_bytes": sum(v["bytes"] for v in images.values()),
        "session_image_raw_bytes": sum(v["raw_bytes"] for v in images.values()),
        "session_images_by_codec": sorted((codec, v["count"]) for codec, v in images.items()),
        "session_streams": len(streams), "session_stream_frames": sum(x["frames"] for x in streams),
        "session_stream_bytes": sum(x["bytes"] for x in streams),
        "session_stream_drops": sum(x["dropped"] for x in streams),
        "session_stream_codecs": sorted({x["codec"] for x in streams}),
        "session_problems": len(s["problems"]), "session_inputs": len(s["inputs"]),
        "session_typed_chars": len(s["typed_text"] or ""),  # how much, not what: the archive may be shared
        "session_input_latency_p50_ms": il.get("p50_ms"), "session_input_latency_p95_ms": il.get("p95_ms"),
        "session_input_latency_max_ms": il.get("max_ms"),
        "session_screen_width": sizes[-1]["width"] if sizes else None,
        "session_screen_height": sizes[-1]["height"] if sizes else None,
        "session_screen_changes": max(0, len(sizes) - 1),
        "session_unknown_share": s["unknown"]["share"],
        "session_agent_connected": agent[-1]["connected"] if agent else None,
        **_by_severity(mine, "session_findings_"),
        "session_finding_kinds": sorted({f["kind"] for f in mine}),
    }


def _channel(c: dict[str, Any], lat: dict[str, Any], findings: list[dict[str, Any]]) -> dict[str, Any]:
    name = c["name"]
    ping = lat["per_channel"].get(name, {})
    tcp = c["tcp"]
    closes = [(v["time"], v["how"], side) for side, v in c["closes"].items() if v]
    first = min(closes) if closes else None
    mine = [f for f in findings if f.get("channel") == name]
    return {
        "channel": c["channel"], "channel_id": c["channel_id"], "channel_name": name, "client": c["client"],
        "server": c["server"], "leg": c.get("leg"), "midstream": c["midstream"], "tls": c["tls"],
        "transport": c["transport"], "auth": c["auth"], "link_error": c["link_error"], "failure": c["failure"],
        "start": c["start"], "duration": c["duration"],
        **{f"messages_{d}": c["messages"].get(d, 0) for d in ("client", "server")},
        **{f"bytes_{d}": c["bytes"].get(d, 0) for d in ("client", "server")},
        **{f"wire_bytes_{d}": c["wire_bytes"][d] for d in ("client", "server")},
        **{f"segments_{d}": tcp[d]["segments"] for d in ("client", "server")},
        **{f"retransmitted_segments_{d}": tcp[d]["retransmitted_segments"] for d in ("client", "server")},
        **{f"retransmitted_bytes_{d}": tcp[d]["retransmitted_bytes"] for d in ("client", "server")},
        **{f"zero_windows_{d}": tcp[d]["zero_windows"] for d in ("client", "server")},
        "gaps": c["gaps"], "errors": c["errors"],
        "ping_round_trips": ping.get("round_trips", 0), "ping_min_ms": ping.get("min_ms"),
        "ping_avg_ms": ping.get("avg_ms"), "ping_p50_ms": _p50(lat["series"], name) if ping else None,
        "ping_p95_ms": ping.get("p95_ms"), "ping_max_ms": ping.get("max_ms"),
        "closed_time": first[0] if first else None, "closed_how": first[1] if first else None,
        "closed_first_by": first[2] if first else None,
        "quiet_periods": len(c["quiet"]) if "quiet" in c else None,
        **_by_severity(mine, "findings_"),
        "finding_kinds": sorted({f["kind"] for f in mine}),
    }


def rows_of(figs: dict[str, Any], capture: str, sha256: str, size: int, damage: str | None) -> list[dict[str, Any]]:
    """The rows of one capture (figs: `stats --json`, findings first), in the figures' order."""
    findings = figs.get("findings", [])
    head = {"capture": capture, "sha256": sha256, "capture_bytes": size,
            "status": "damaged" if damage else "ok", "error": damage,
            "capture_duration": figs["duration"], "capture_frames": figs["frames"],
            **_by_severity(findings, "capture_findings_")}
    out = []
    for s in figs["sessions"]:
        session = {**head, **_session(s, findings)}
        session_findings = [f for f in findings if f.get("session") == s["session"]]
        for c in s["channels"] or [None]:
            row = dict(session)
            if c is not None:
                row.update(_channel(c, s["latency"], session_findings))
            out.append({k: row.get(k) for k in COLUMNS})
    return out
