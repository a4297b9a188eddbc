"""Bandwidth: throughput flat at a ceiling, the largest consumers (channels, image types, streams),
images sent uncompressed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from spicetool.triage.findings.base import INFO, WARNING, Finding

CEILING_SECONDS = 3  # consecutive seconds within CEILING_BAND of the highest rate held that long
CEILING_BAND = 0.1
CEILING_MIN = 64 * 1024  # bytes/s: below this a flat line is an idle session, not a cap
SEGMENT = 1448  # bytes of a full segment: retransmissions per plateau second against what it carried
RETRANSMIT_SHARE = 0.01  # of the segments sent: the losses that cut the sender back are at least this many,
LOSSES_MIN = 5  # and this many (a loopback kernel's odd early retransmit is no capped link),
RECOVERY_SECONDS = 2  # the plateau's first seconds, where the sender still repairs what the cap's queue dropped
# and on the plateau itself fewer than RETRANSMIT_SHARE of its segments: it runs at the cap without losses
UNCOMPRESSED = ("BITMAP",)
UNCOMPRESSED_SHARE = 0.5  # of the image bytes


@dataclass
class Ceiling:
    """The longest run of seconds at the highest rate the session held for CEILING_SECONDS."""

    first: int  # capture second of its first bin
    seconds: int
    level: int  # bytes/s: the highest rate held CEILING_SECONDS long
    series: list[int]
    before: int  # server retransmissions in the CEILING_SECONDS before it and its first RECOVERY_SECONDS
    inside: int  # and in the rest of it
    capped: bool  # losses cut the sender back to this level, and it then ran there without them

    @property
    def end(self) -> int:
        return self.first + self.seconds


def _downstream(s: dict[str, Any]) -> tuple[int, list[int]]:
    """(first capture second, server-to-client TCP payload bytes per second from it), all channels of
    the session together, each channel's series placed at its own first second."""
    chans = [c for c in s["channels"] if c.get("bytes_per_second", {}).get("server")]
    if not chans:
        return 0, []
    first = min(c.get("per_second_from") or 0 for c in chans)
    total: list[int] = []
    for ch in chans:
        at = (ch.get("per_second_from") or 0) - first
        for i, b in enumerate(ch["bytes_per_second"]["server"]):
            if at + i >= len(total):
                total.extend([0] * (at + i + 1 - len(total)))
            total[at + i] += b
    return first, total


def _retransmitted(s: dict[str, Any]) -> dict[int, int]:
    """Server-to-client retransmissions per capture second, all channels of the session together (every one
    counted: the listed ones are only the first of each channel)."""
    out: dict[int, int] = {}
    for ch in s["channels"]:
        at = ch.get("per_second_from") or 0
        for i, n in enumerate(ch.get("tcp", {}).get("server", {}).get("retransmissions_per_second", [])):
            if n:
                out[at + i] = out.get(at + i, 0) + n
    return out


def ceiling(s: dict[str, Any]) -> Ceiling | None:
    """The session's throughput ceiling, if it held one (the display rule asks too: losses at a cap)."""
    if not all(c.get("seconds_per_bin", 1) == 1 for c in s["channels"]):  # averages can hide a ceiling
        return None
    first, per_s = _downstream(s)
    if len(per_s) < CEILING_SECONDS:
        return None
    # the highest rate held for CEILING_SECONDS (a burst above a cap, sent and then dropped, is not it)
    level = max(min(per_s[i:i + CEILING_SECONDS]) for i in range(len(per_s) - CEILING_SECONDS + 1))
    if level < CEILING_MIN:
        return None
    run, best = 0, (0, 0)
    for i, b in enumerate(per_s):
        run = run + 1 if (1 - CEILING_BAND) * level <= b <= (1 + CEILING_BAND) * level else 0
        if run > best[0]:
            best = (run, i)
    if best[0] < CEILING_SECONDS:
        return None
    start = best[1] - best[0] + 1
    t0, t1 = first + start, first + best[1] + 1
    lost = _retransmitted(s)
    before = sum(lost.get(t, 0) for t in range(t0 - CEILING_SECONDS, t0 + RECOVERY_SECONDS))
    inside = sum(lost.get(t, 0) for t in range(t0 + RECOVERY_SECONDS, t1))
    peak = max(per_s[max(0, start - CEILING_SECONDS):start + 1])
    # a capped link: the sender went above the link's rate, lost what its queue could not hold, and then
    # ran at the rate without losses; a steady stream over a lossy link loses all along its plateau
    sent_before = sum(per_s[max(0, start - CEILING_SECONDS):start + 1]) / SEGMENT
    capped = before >= max(LOSSES_MIN, RETRANSMIT_SHARE * sent_before) \
        and peak > (1 + CEILING_BAND) * level and inside <= RETRANSMIT_SHARE * level * max(0, best[0] - RECOVERY_SECONDS) / SEGMENT
    return Ceiling(t0, best[0], level, per_s[start:best[1] + 1], before, inside, capped)


def explains(c: Ceiling | None, retransmission_times: list[float]) -> bool:
    """Whether a channel's retransmissions are a capped link's: all at or before its ceiling's first second,
    where the sender went faster than the link (its queue dropped the rest), none once it ran at the rate."""
    return bool(c and c.capped and retransmission_times and max(retransmission_times) < c.first + RECOVERY_SECONDS)


def rules(s: dict[str, Any]) -> Iterator[Finding]:
    n = s["session"]
    c = ceiling(s)
    if c is not None:
        rate = f"{c.level * 8 / 1e6:.2f} Mbit/s"
        ev = {"ceiling_bytes_per_second": c.level, "seconds": c.seconds, "series": c.series,
              "retransmissions_before": c.before, "retransmissions_inside": c.inside, "capped": c.capped}
        if c.capped:
            yield Finding(WARNING, "bandwidth_ceiling",
                          f"server-to-client throughput held at {rate} for {c.seconds} s after the sender lost "
                          f"{c.before} segments going faster: a capped link", float(c.first), float(c.end),
                          session=n, evidence=ev)
        else:
            yield Finding(INFO, "bandwidth_ceiling",
                          f"server-to-client throughput flat at {rate} for {c.seconds} s "
                          "(a capped link, or a steady stream that fills it)",
                          float(c.first), float(c.end), session=n, evidence=ev)
    # (a connection that never carried SPICE, a failed transport's, consumes nothing worth naming)
    chans = sorted((c for c in s["channels"] if c.get("channel") not in (None, "unknown")),
                   key=lambda c: -sum(c["wire_bytes"].values()))
    total = sum(sum(c["wire_bytes"].values()) for c in chans)
    if total:
        images = sorted(s["images"].items(), key=lambda kv: -kv[1]["bytes"])
        top = chans[0]
        yield Finding(INFO, "largest_consumers",
                      f"{top['name']} carried {100 * sum(top['wire_bytes'].values()) / total:.0f} % of "
                      f"{total / 1e6:.2f} MB" + (f"; images mostly {images[0][0]}" if images else ""),
                      None, session=n, evidence={
                          "channels": [{"channel": c["name"], "bytes": sum(c["wire_bytes"].values())} for c in chans[:5]],
                          "images": [{"type": k, "bytes": v["bytes"], "count": v["count"]} for k, v in images[:5]],
                          "streams": [{"id": st["id"], "codec": st["codec"], "bytes": st["bytes"]}
                                      for st in sorted(s["streams"], key=lambda st: -st["bytes"])[:5]]})
        image_bytes = sum(v["bytes"] for _, v in images)
        raw = sum(v["bytes"] for k, v in images if k in UNCOMPRESSED)
        if image_bytes and raw >= UNCOMPRESSED_SHARE * image_bytes:
            first = min((v["first"] for k, v in images if k in UNCOMPRESSED), key=lambda x: x["time"])
            yield Finding(INFO, "uncompressed_images",
                          f"{100 * raw / image_bytes:.0f} % of the image bytes were sent uncompressed (BITMAP): "
                          "image compression is off on the server, or the client asked for none",
                          first["time"], session=n, channel=first["channel"],
                          evidence={"uncompressed_bytes": raw, "image_bytes": image_bytes,
                                    "first_frame": first["frame"]})
