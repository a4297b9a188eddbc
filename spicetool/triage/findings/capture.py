"""The capture itself: lost segments, a mid-session start, one direction missing, proxy legs and
transports (CONNECT, WebSocket, TLS), a file that breaks off."""

from __future__ import annotations

from typing import Any, Iterator

from spicetool.triage.findings.base import INFO, WARNING, Finding


def rules(s: dict[str, Any]) -> Iterator[Finding]:
    n = s["session"]
    gaps = [p for p in s["problems"] if p["kind"] == "tcp_gap"]
    if gaps:
        missing = sum(int(p["detail"].split()[0]) for p in gaps if p["detail"].split()[0].isdigit())
        yield Finding(WARNING, "lost_segments",
                      f"the capture lost {len(gaps)} pieces of TCP stream ({missing} bytes): what they held is "
                      "unknown (the capture's loss, not the session's)", gaps[0]["time"], gaps[-1]["time"],
                      session=n, channel=gaps[0]["channel"],
                      evidence={"gaps": len(gaps), "bytes": missing, "channels": sorted({p["channel"] for p in gaps}),
                                "frames": [p.get("frame") for p in gaps[:20]]})
    mid = [c["name"] for c in s["channels"] if c.get("midstream")]
    if mid:
        yield Finding(INFO, "mid_session_start",
                      f"the capture starts mid-session: the link stage of {', '.join(mid)} is not in it "
                      "(no capabilities, auth or channel ids from it)", s.get("start"), session=n,
                      evidence={"channels": mid})
    for c in s["channels"]:
        m = c.get("messages") or {}
        w = c["wire_bytes"]
        lone = [d for d in ("client", "server") if w[d] == 0 and w["server" if d == "client" else "client"] > 0]
        if lone and (m or c.get("midstream")):
            yield Finding(WARNING, "one_direction_missing",
                          f"{c['name']}: nothing from the {lone[0]} in the capture (an asymmetric capture point or "
                          "a filter): the figures of that direction are missing", c.get("start"), session=n,
                          channel=c["name"], evidence={"wire_bytes": w, "messages": m})
    legs = s.get("legs")
    if legs:
        delay = legs.get("proxy_delay") or {}
        yield Finding(INFO, "proxy_legs",
                      f"captured at a proxy ({legs.get('proxy')}): both legs of each connection; the figures are the "
                      f"{legs.get('shown')} leg's", s.get("start"), session=n,
                      evidence={"proxy": legs.get("proxy"), "shown": legs.get("shown"), "proxy_delay": delay})
    for chain in s.get("transport", []):
        yield Finding(INFO, "transport", f"channels carried over {chain}", s.get("start"), session=n,
                      evidence={"chain": chain})


def damage(text: str | None, end: float | None) -> Iterator[Finding]:
    """The file breaks off (truncated or corrupt): the figures stop there."""
    if text:
        yield Finding(WARNING, "capture_truncated", f"the capture breaks off: {text}", end,
                      evidence={"damage": text})
