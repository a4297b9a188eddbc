"""Video streams and the agent: drops the client reported in STREAM_REPORT, many stream restarts,
codec changes; an agent that never connected (no resize, clipboard or file transfer) or went away."""

from __future__ import annotations

from typing import Any, Iterator

from spicetool.triage.findings.base import INFO, WARNING, Finding

DROP_SHARE = 0.05  # of the frames the client reported on


def rules(s: dict[str, Any]) -> Iterator[Finding]:
    n = s["session"]
    for st in s["streams"]:
        shown = st["reported_frames"] + st["dropped"]
        if st["dropped"] and st["dropped"] >= DROP_SHARE * max(shown, 1):
            # when the client's reports counted the drops (the stream's life when they say nothing of it)
            start, end = st.get("drops_reported") or (st["created"], st["destroyed"])
            yield Finding(WARNING, "stream_drops",
                          f"video stream {st['id']} ({st['codec']}, {st['width']}x{st['height']}): the client "
                          f"dropped {st['dropped']} of {shown} frames", start, end, session=n,
                          channel=st["channel"], evidence={k: st[k] for k in (
                              "id", "codec", "created", "destroyed", "frames", "fps", "reports", "reported_frames",
                              "dropped", "drops_reported")})
    codecs = sorted({st["codec"] for st in s["streams"]})
    if len(codecs) > 1:
        yield Finding(INFO, "stream_codec_change", f"video streams used {', '.join(codecs)}",
                      s["streams"][0]["created"], session=n, evidence={"codecs": codecs})
    main = next((c for c in s["channels"] if c["channel"] == "main"), None)
    states = s.get("agent_connected", [])
    if main is not None and not main.get("midstream") and states and not any(x["connected"] for x in states):
        yield Finding(INFO, "agent_never_connected",
                      "the guest agent never connected: no resize to the window, clipboard or file transfer",
                      states[0]["time"], session=n, channel=main["name"], evidence={"agent_connected": states})
    for p in s["problems"]:
        if p["kind"] == "agent_disconnected":
            yield Finding(WARNING, "agent_disconnected", f"the guest agent went away ({p['detail']})", p["time"],
                          session=n, channel=p["channel"], evidence={"detail": p["detail"]})
