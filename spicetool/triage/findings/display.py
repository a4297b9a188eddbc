"""Display stalls told apart by their cause, and the network under them: a display channel quiet for
a while (no server message for QUIET_SECONDS, figures.py) because the client stopped acknowledging
(ACK window full), because its TCP window was zero (a slow client), because of retransmissions (the
network), or because the server had nothing to send while the user was waiting for it (the guest)."""

from __future__ import annotations

from typing import Any, Iterator

from spicetool.triage.findings.bandwidth import Ceiling, ceiling, explains
from spicetool.triage.figures import QUIET_SECONDS
from spicetool.triage.findings.base import INFO, WARNING, Finding, secs

ZERO_WINDOW_SECONDS = 0.5  # a zero window shorter than this is TCP's ordinary flow control
RETRANSMIT_SHARE = 0.01  # of a direction's segments
RETRANSMIT_MIN = 5  # a handful on loopback are the kernel's own (an early retransmit of a large first write)
RETRANSMIT_BYTES = 16 * 1024  # and at least this much data sent again (a busy host's late ACKs re-send tiny messages)
OVERFLOW_SECONDS = 1.5  # a stopped receiver's buffer fills (and overflows) within this before its window is zero
NEAR = 0.5  # seconds before a quiet period in which a retransmission still counts as its cause


def _within(times: list[dict[str, Any]], start: float, end: float) -> list[dict[str, Any]]:
    return [x for x in times if start - NEAR <= x["time"] <= end]


def _before_zero(times: list[float], periods: list[dict[str, Any]]) -> bool:
    """Whether every retransmission falls in the OVERFLOW_SECONDS before one of the receiver's zero-window
    periods (of at least ZERO_WINDOW_SECONDS) or inside it."""
    long = [p for p in periods if p["end"] is None or p["end"] - p["start"] >= ZERO_WINDOW_SECONDS]
    return bool(times and long) and all(
        any(p["start"] - OVERFLOW_SECONDS <= t <= (p["end"] if p["end"] is not None else float("inf")) for p in long)
        for t in times)


def _zero_overlap(periods: list[dict[str, Any]], start: float, end: float) -> list[dict[str, Any]]:
    return [p for p in periods if p["start"] <= end and (p["end"] is None or p["end"] >= start)]


def rules(s: dict[str, Any]) -> Iterator[Finding]:
    n = s["session"]
    inputs = s.get("inputs", [])
    gaps = [p for p in s["problems"] if p["kind"] == "tcp_gap"]
    cap = ceiling(s)
    for ch in s["channels"]:
        yield from _network(n, ch, cap)
        for q in ch.get("quiet", []):
            start, end = q["start"], q["end"]
            retrans = _within(ch["tcp"]["server"]["retransmissions"], start, end)
            zero = _zero_overlap(ch["tcp"]["client"]["zero_window_periods"], start, end)
            waiting = [i for i in inputs if start < i["time"] < end]
            lost = [g for g in gaps if g["channel"] == ch["name"] and start - NEAR <= g["time"] <= end + NEAR]
            if q["ack_window_full"]:
                cause, why = "ack_window_full", (f"the client stopped acknowledging: {q['unacked']} messages unacked, "
                                                 f"window {q['ack_window']}")
            elif zero:
                cause, why = "zero_window", "the client's TCP receive window was zero (a slow or stopped client)"
            elif retrans and q["screen_after"]:
                # (retransmissions on an idle screen, the quiet ending with a PING, held nothing back)
                cause, why = "retransmissions", f"{len(retrans)} retransmitted segments (the network lost data)"
            elif lost:
                cause, why = "capture_gap", "segments are missing from the capture here (not a stall on the wire)"
            elif waiting:
                cause, why = "server_quiet", (f"the server sent nothing while {len(waiting)} inputs waited "
                                              "(the guest did not draw)")
            else:
                continue  # an idle screen: nothing to draw is no trouble
            ev = {"cause": cause, "seconds": round(end - start, 3), "frame_before": q["frame_before"],
                  "frame_after": q["frame_after"], "unacked": q["unacked"], "ack_window": q["ack_window"],
                  "retransmissions": retrans[:20], "zero_window_periods": zero[:20],
                  "inputs_waiting": len(waiting), "capture_gaps": len(lost)}
            yield Finding(INFO if cause == "capture_gap" else WARNING, "display_stall",
                          f"{ch['name']}: no screen update for {end - start:.1f} s from {secs(start)}: {why}",
                          start, end, session=n, channel=ch["name"], evidence=ev)
        if ch["channel"] == "display":
            yield from _stalled_at_end(n, ch, s.get("capture_end"))


def _stalled_at_end(n: int | None, ch: dict[str, Any], capture_end: float | None) -> Iterator[Finding]:
    """A display channel still stalled when it closed or the capture ended (a quiet period only ends with the
    server's next message, so figures.py lists none for it): the client's window zero, or retransmissions."""
    server = [m for m in ch.get("last_messages", []) if m["direction"] == "server"]
    closes = [c["time"] for c in (ch.get("closes") or {}).values() if c]
    end = min(closes) if closes else capture_end
    if not server or end is None:
        return  # (the last messages all the client's: when the server last spoke is not known)
    start = max(m["time"] for m in server)
    if end - start < QUIET_SECONDS:
        return
    zero = _zero_overlap(ch["tcp"]["client"]["zero_window_periods"], start, end)
    zero = [p for p in zero if (p["end"] if p["end"] is not None else end) - max(p["start"], start) >= QUIET_SECONDS]
    # strictly after the last message: a loss just before it was repaired by the time it was read
    retrans = [r for r in ch["tcp"]["server"]["retransmissions"] if start < r["time"] <= end]
    if zero:
        cause, why = "zero_window", "the client's TCP receive window was zero (a slow or stopped client)"
    elif retrans:
        cause, why = "retransmissions", f"{len(retrans)} retransmitted segments (the network lost data)"
    else:
        return  # an idle screen at the end
    last = "the channel closed" if closes else "the capture ended"
    ev = {"cause": cause, "seconds": round(end - start, 3), "frame_before": max(server, key=lambda m: m["time"])["frame"],
          "frame_after": None, "until": last, "retransmissions": retrans[:20], "zero_window_periods": zero[:20]}
    yield Finding(WARNING, "display_stall",
                  f"{ch['name']}: no screen update for the last {end - start:.1f} s, from {secs(start)} until {last}: "
                  f"{why}", start, end, session=n, channel=ch["name"], evidence=ev)


def _network(n: int | None, ch: dict[str, Any], cap: Ceiling | None) -> Iterator[Finding]:
    for side, tcp in ch.get("tcp", {}).items():
        r, rb, sent = tcp["retransmitted_segments"], tcp["retransmitted_bytes"], ch["wire_bytes"][side]
        if r >= RETRANSMIT_MIN and r >= RETRANSMIT_SHARE * max(tcp["segments"], 1):
            first = tcp["retransmissions"][0]
            heavy = rb >= RETRANSMIT_BYTES and rb >= RETRANSMIT_SHARE * max(sent, 1)
            # a capped link drops what the sender sends above its rate: that is the cap's finding
            times = [x["time"] for x in tcp["retransmissions"]]
            at_cap = side == "server" and explains(cap, times)
            other = "client" if side == "server" else "server"
            # a receiver that stops reading drops what its full buffer cannot hold before its window closes
            overflow = _before_zero(times, ch.get("tcp", {}).get(other, {}).get("zero_window_periods", []))
            if at_cap:
                why = "sent above the link's ceiling before it held at it (see bandwidth_ceiling)"
            elif overflow:
                why = f"dropped by the {other} as its receive buffer filled (it stopped reading: see zero_window)"
            else:
                why = "the network loses data"
            yield Finding(WARNING if heavy and not (at_cap or overflow) else INFO, "retransmissions",
                          f"{ch['name']}: {r} of {tcp['segments']} segments from the {side} retransmitted "
                          f"({100 * r / max(tcp['segments'], 1):.1f} %): {why}",
                          first["time"], tcp["retransmissions"][-1]["time"], session=n, channel=ch["name"],
                          evidence={"side": side, "retransmitted_segments": r, "segments": tcp["segments"],
                                    "retransmitted_bytes": rb, "bytes": sent, "at_ceiling": at_cap,
                                    "receiver_overflow": overflow,
                                    "first_frames": [x["frame"] for x in tcp["retransmissions"][:10]]})
        long = [p for p in tcp["zero_window_periods"]
                if p["end"] is None or p["end"] - p["start"] >= ZERO_WINDOW_SECONDS]
        if long:
            worst = max(long, key=lambda p: (p["end"] if p["end"] is not None else float("inf")) - p["start"])
            span = "until the end" if worst["end"] is None else f"for {worst['end'] - worst['start']:.1f} s"
            yield Finding(WARNING, "zero_window",
                          f"{ch['name']}: the {side}'s TCP receive window was zero {span} from {secs(worst['start'])} "
                          f"(it stopped reading: a slow, busy or stopped {side})",
                          worst["start"], worst["end"], session=n, channel=ch["name"],
                          evidence={"side": side, "periods": long[:20], "zero_window_segments": tcp["zero_windows"]})
