"""Bandwidth: throughput flat at a ceiling, the largest consumers (channels, image types, streams),
images sent uncompressed."""

from __future__ import annotations

from typing import Any, Iterator

from spicetool.triage.findings.base import INFO, Finding

CEILING_SECONDS = 3  # consecutive seconds within CEILING_BAND of the busiest second
CEILING_BAND = 0.1
CEILING_MIN = 64 * 1024  # bytes/s: below this a flat line is an idle session, not a cap
UNCOMPRESSED = ("BITMAP",)
UNCOMPRESSED_SHARE = 0.5  # of the image bytes


def _downstream(s: dict[str, Any]) -> list[int]:
    """Server-to-client TCP payload bytes per second, all channels of the session together."""
    total: list[int] = []
    for ch in s["channels"]:
        for i, b in enumerate(ch.get("bytes_per_second", {}).get("server", [])):
            if i >= len(total):
                total.extend([0] * (i + 1 - len(total)))
            total[i] += b
    return total


def rules(s: dict[str, Any]) -> Iterator[Finding]:
    n = s["session"]
    per_s = _downstream(s)
    one_second = all(c.get("seconds_per_bin", 1) == 1 for c in s["channels"])  # (averages can hide a ceiling)
    if one_second and per_s and max(per_s) >= CEILING_MIN:
        top = max(per_s)
        run, best = 0, (0, 0)
        for i, b in enumerate(per_s):
            run = run + 1 if b >= (1 - CEILING_BAND) * top else 0
            if run > best[0]:
                best = (run, i)
        if best[0] >= CEILING_SECONDS:
            first = best[1] - best[0] + 1
            yield Finding(INFO, "bandwidth_ceiling",
                          f"server-to-client throughput flat at {top * 8 / 1e6:.2f} Mbit/s for {best[0]} s "
                          "(a capped link, or a steady stream that fills it)",
                          float(first), float(best[1] + 1), session=n,
                          evidence={"ceiling_bytes_per_second": top, "seconds": best[0],
                                    "series": per_s[first:best[1] + 1]})
    chans = sorted(s["channels"], key=lambda c: -sum(c["wire_bytes"].values()))
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
            yield Finding(INFO, "uncompressed_images",
                          f"{100 * raw / image_bytes:.0f} % of the image bytes were sent uncompressed (BITMAP): "
                          "image compression is off on the server, or the client asked for none",
                          None, session=n, evidence={"uncompressed_bytes": raw, "image_bytes": image_bytes})
