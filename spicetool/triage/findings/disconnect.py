"""Disconnects: which channel closed or reset first, by which side, what was in flight; a channel
that ended long before the rest of its session; a capture that stops with the session still open."""

from __future__ import annotations

from typing import Any, Iterator

from spicetool.triage.findings.base import ERROR, INFO, WARNING, Finding, secs

EARLY_SECONDS = 2.0  # a channel closed this long before its session's other channels is a lost channel


def first_close(ch: dict[str, Any]) -> tuple[float, str, str, int | None] | None:
    """(time, side, how, frame) of the first FIN or RST of a channel connection."""
    closes = [(c["time"], side, c["how"], c["frame"]) for side, c in (ch.get("closes") or {}).items() if c]
    return min(closes) if closes else None


def _last(ch: dict[str, Any]) -> float:
    return (ch.get("start") or 0) + (ch.get("duration") or 0)


def rules(s: dict[str, Any]) -> Iterator[Finding]:
    n = s["session"]
    chans = [c for c in s["channels"] if c.get("messages")]
    firsts = [(fc, c) for c in chans if (fc := first_close(c)) is not None]
    if not chans:
        return
    still_open = [c["name"] for c in chans if first_close(c) is None]
    if still_open:
        end = max(_last(c) for c in chans)
        yield Finding(INFO, "capture_ended_open",
                      f"the capture ends with {', '.join(still_open)} still open (stopped before the session ended)",
                      end, session=n, evidence={"open_channels": still_open})
    if not firsts:
        return
    # a channel that went away while the session went on
    last_close = max(fc[0] for fc, _ in firsts)
    ends = {c["name"]: (fc[0] if (fc := first_close(c)) else _last(c)) for c in chans}
    session_end = max([last_close] + [_last(c) for c in chans])
    lost: set[str] = set()
    for fc, c in firsts:
        if session_end - fc[0] >= EARLY_SECONDS and len(chans) > 1:
            others = [e for name, e in ends.items() if name != c["name"]]
            if others and min(others) - fc[0] >= EARLY_SECONDS:
                lost.add(c["name"])
                yield Finding(WARNING, "channel_lost",
                              f"{c['name']} was {('reset' if fc[2] == 'reset' else 'closed')} by the {fc[1]} at "
                              f"{secs(fc[0])}, {min(others) - fc[0]:.1f} s before the session's other channels",
                              fc[0], session=n, channel=c["name"],
                              evidence={"side": fc[1], "how": fc[2], "frame": fc[3],
                                        "last_messages": c.get("last_messages", [])})
    # who ended the session: the first close among the channels that went at its end (a channel lost earlier
    # did not end it)
    ending = [x for x in firsts if x[1]["name"] not in lost] or firsts
    (t, side, how, frame), ch = min(ending, key=lambda x: x[0])
    in_flight = ch.get("last_messages", [])
    unanswered = s["latency"].get("unanswered_pings", 0)
    disconnecting = [p for p in s["problems"] if p["kind"] == "disconnecting"]
    ev = {"side": side, "how": how, "frame": frame, "last_messages": in_flight,
          "unanswered_pings": unanswered, "closed": {c["name"]: c.get("closes") for _, c in firsts}}
    word = "reset (RST)" if how == "reset" else "closed (FIN)"
    if side == "server":
        said = f" after DISCONNECTING ({disconnecting[0]['detail']})" if disconnecting else ""
        kind = "server_reset" if how == "reset" else "server_gone"
        yield Finding(ERROR, kind, f"the server {word} {ch['name']} first, at {secs(t)}{said}: "
                      "the session ended from the server's side", t, session=n, channel=ch["name"],
                      evidence={**ev, "disconnecting": disconnecting[:1]})
    else:
        yield Finding(INFO, "client_reset" if how == "reset" else "client_closed",
                      f"the client {word} {ch['name']} first, at {secs(t)}: the session ended from the client's side",
                      t, session=n, channel=ch["name"], evidence=ev)
