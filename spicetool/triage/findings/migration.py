"""Migration: the guest moved to another host and the server told the client to follow (MIGRATE_BEGIN, or
MIGRATE_BEGIN_SEAMLESS, with the target; MIGRATE_SWITCH_HOST when the client must reconnect itself).
A migration the client followed is information; one it could not follow (it could not reach the target,
or the target refused the seamless hand-over) is where a session that "just died" went."""

from __future__ import annotations

from typing import Any, Iterator

from spicetool.triage.findings.base import ERROR, INFO, WARNING, Finding, secs
from spicetool.triage.findings.disconnect import first_close

BEGIN = ("migrate_begin", "migrate_begin_seamless")
ENDED_S = 5.0  # the source's channels all closed within this after the last MIGRATE_*: the session went with it


def _closed_after(s: dict[str, Any], server: str, after: float) -> float | None:
    """When the last channel to `server` closed, if they all closed within ENDED_S after `after`."""
    times = []
    for ch in s["channels"]:
        if ch.get("server") != server:
            continue
        close = first_close(ch)
        if close is None:
            return None
        times.append(close[0])
    return max(times) if times and after <= max(times) <= after + ENDED_S else None


def rules(s: dict[str, Any]) -> Iterator[Finding]:
    events = s.get("migration") or []
    if not events:
        return
    n = s["session"]
    named = [e for e in events if e["target"]]
    first, last = events[0], events[-1]
    target = named[0]["target"] if named else "?"
    seen = {e["event"] for e in events}
    ev = {"target": target, "tls_port": named[0]["tls_port"] if named else None, "source": first["server"],
          "events": [{k: e[k] for k in ("time", "frame", "event", "by")} for e in events[:20]]}
    failed = next((e for e in events if e["event"] in ("migrate_connect_error", "migrate_dst_seamless_nack")), None)
    if failed is not None:
        why = ("the client could not connect to the target (MIGRATE_CONNECT_ERROR)"
               if failed["event"] == "migrate_connect_error"
               else "the target refused the seamless hand-over (MIGRATE_DST_SEAMLESS_NACK)")
        ended = _closed_after(s, first["server"], last["time"])
        then = ""
        if "migrate_switch_host" in seen:
            then = f"; the server then told it to switch host to {target}"
        if ended is not None:
            then += f", and the session on the source ended at {secs(ended)}"
        yield Finding(ERROR if ended is not None else WARNING, "migration_failed",
                      f"migration to {target}: {why} at {secs(failed['time'])}{then}", first["time"],
                      ended if ended is not None else last["time"], session=n, channel=first["channel"],
                      evidence={**ev, "failed": failed["event"], "source_closed": ended})
        return
    if seen & set(BEGIN) and seen <= set(BEGIN) | {"migrate_cancel"}:
        how = "cancelled by the source (MIGRATE_CANCEL): the session stayed" if "migrate_cancel" in seen \
            else "begun, not finished within the capture"
    elif "migrate_switch_host" in seen:
        how = "the client told to reconnect there (MIGRATE_SWITCH_HOST)"
    elif "migrate_begin_seamless" in seen:
        how = "seamless"
    else:
        how = "semi-seamless (the client connected to the target before the switch)"
    yield Finding(INFO, "migration", f"migration to {target} at {secs(first['time'])}: {how}", first["time"],
                  last["time"], session=n, channel=first["channel"], evidence=ev)
