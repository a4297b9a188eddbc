"""Latency: PING round trips per channel, high or spiking; input-to-screen latency (from a key press or
click to the first draw after it), the figure users feel."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterator

from spicetool.triage.findings.base import INFO, WARNING, Finding, secs

HIGH_MS = 150.0  # PING p95 above this: a session users feel as sluggish
SPIKE_MS = 100.0  # a round trip at least this long ...
SPIKE_FACTOR = 5.0  # ... and this many times the channel's median is a spike
RISE_POINTS = 3  # the last this many round trips all spikes: latency rose and stayed (high, not a spike)
INPUT_SLOW_MS = 300.0  # input-to-screen p95 above this
# spice-server's first PINGs of a channel time the first screen's transfer and main's network test
# (a PING carrying 250 KB), not the network: round trips this soon after the channel began are left out
STARTUP_SECONDS = 2.0


def _median(v: list[float]) -> float:
    """The lower median: of two round trips, one normal and one spiking, the normal one is typical."""
    o = sorted(v)
    return o[(len(o) - 1) // 2]


def rules(s: dict[str, Any]) -> Iterator[Finding]:
    n = s["session"]
    lat = s["latency"]
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for x in lat.get("series", []):
        series[x["channel"]].append(x)
    starts = {c["name"]: c.get("start") or 0 for c in s["channels"]}
    for label, fig in lat.get("per_channel", {}).items():
        every = series.get(label, [])
        points = [p for p in every if p["time"] - starts.get(label, 0) >= STARTUP_SECONDS]
        if not every:
            continue
        ms = sorted(p["ms"] for p in points)
        p95 = ms[max(0, -(-95 * len(ms) // 100) - 1)] if ms else None
        ev = {"round_trips": len(points), "left_out_at_start": len(every) - len(points),
              "p95_ms": p95, "max_ms": ms[-1] if ms else None, "min_ms": fig["min_ms"], "all": fig}
        med = _median([p["ms"] for p in points]) if points else None
        # spikes: round trips far above a low median, with low ones after them (latency that rose and
        # stayed to the end is high latency from where it rose, not a spike)
        spikes = [p for p in points if p["ms"] >= SPIKE_MS and p["ms"] >= SPIKE_FACTOR * med] \
            if med is not None and med < HIGH_MS else []
        stayed = len(spikes) >= RISE_POINTS and spikes[-RISE_POINTS:] == points[-RISE_POINTS:]
        if spikes and not stayed:
            worst = max(spikes, key=lambda p: p["ms"])
            yield Finding(WARNING, "latency_spike",
                          f"{label}: a PING round trip of {worst['ms']:.0f} ms at {secs(worst['time'])} "
                          f"(median {med:.1f} ms)", spikes[0]["time"], spikes[-1]["time"], session=n,
                          channel=label, evidence={**ev, "median_ms": round(med, 3), "spikes": spikes[:20]})
        elif (p95 is not None and p95 >= HIGH_MS) or fig["min_ms"] >= HIGH_MS:
            what = f"p95 {p95:.0f} ms" if p95 is not None and p95 >= HIGH_MS else f"never under {fig['min_ms']:.0f} ms"
            # from the first high round trip to the last (latency that rose mid-session rose there)
            high = [p for p in (points or every) if p["ms"] >= HIGH_MS]
            yield Finding(WARNING, "high_latency", f"{label}: PING round trips high, {what}",
                          high[0]["time"], high[-1]["time"], session=n, channel=label, evidence=ev)
    il = s.get("input_latency") or {}
    if il.get("inputs"):
        slow = il["p95_ms"] >= INPUT_SLOW_MS
        yield Finding(WARNING if slow else INFO, "input_latency",
                      f"input to screen: p50 {il['p50_ms']:.0f} ms, p95 {il['p95_ms']:.0f} ms over {il['inputs']} "
                      "key presses and clicks" + (" (slow)" if slow else ""),
                      il["worst"][0]["time"] if slow else None, session=n,
                      evidence={k: il[k] for k in ("inputs", "p50_ms", "p95_ms", "max_ms", "worst", "how")})
