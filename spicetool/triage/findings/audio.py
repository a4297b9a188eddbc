"""Audio: playback gaps (the server sent no audio for a while inside one playing period: the
client's buffer runs dry) and late data (packets arriving later than their media times allow)."""

from __future__ import annotations

from typing import Any, Iterator

from spicetool.triage.audio import GAP_MS
from spicetool.triage.findings.base import WARNING, Finding

LATE_PACKETS = 3  # a single late packet is jitter the client's buffer absorbs


def rules(s: dict[str, Any]) -> Iterator[Finding]:
    n = s["session"]
    for pb in s.get("audio", []):
        for g in pb["gaps"]:
            yield Finding(WARNING, "audio_gap",
                          f"{pb['channel']}: no audio for {g['missing_ms']} ms of media time while playing "
                          f"(until frame {g['frame']})", g["time"], g["until"], session=n, channel=pb["channel"],
                          evidence={"missing_ms": g["missing_ms"], "frame": g["frame"], "packets": pb["packets"],
                                    "mode": pb["mode"]})
        late = pb["late"]
        if late["packets_over_200_ms"] >= LATE_PACKETS:
            yield Finding(WARNING, "audio_late",
                          f"{pb['channel']}: {late['packets_over_200_ms']} audio packets came more than {GAP_MS} ms "
                          f"later than their media times (worst {late['max_ms']:.0f} ms)",
                          late["worst"]["time"], session=n, channel=pb["channel"],
                          evidence={**late, "packets": pb["packets"], "latency_ms": pb["latency_ms"]})
