"""The guest agent's answers: a file transfer that failed (with the agent's status), a monitors
configuration the agent refused, a clipboard request the other side never answered."""

from __future__ import annotations

from typing import Any, Iterator

from spicetool.triage.agent_events import ANSWER_S
from spicetool.triage.findings.base import WARNING, Finding


def rules(s: dict[str, Any]) -> Iterator[Finding]:
    n = s["session"]
    agent = s.get("agent")
    if not agent:
        return
    main = next((c["name"] for c in s["channels"] if c["channel"] == "main"), "main:0")
    for x in agent["file_transfers"]:
        if x["failed"]:
            cause = next(r for r in x["results"] if r["frame"] == x["result_frame"])
            yield Finding(WARNING, "file_transfer_failed",
                          f"file transfer {x['id']} from the {x['sender'] or '?'} failed: {x['result']} "
                          f"(by the {cause['by']}) after {x['bytes']} bytes", x["time"], cause["time"], session=n,
                          channel=main, evidence={"id": x["id"], "result": x["result"], "by": cause["by"],
                                                  "bytes": x["bytes"], "frame": cause["frame"],
                                                  "results": x["results"]})
    for m in agent["monitors_config"]:
        if m["reply"] and m["reply"]["error"] != "SUCCESS":
            yield Finding(WARNING, "monitors_config_failed",
                          f"the agent did not apply the client's monitors configuration ({m['reply']['error']})",
                          m["time"], m["reply"]["time"], session=n, channel=main,
                          evidence={"monitors": m["monitors"], "frame": m["frame"], "reply_frame": m["reply"]["frame"]})
    for r in agent["clipboard_requests"]:
        if r["unanswered"]:
            other = "guest" if r["by"] == "client" else "client"
            yield Finding(WARNING, "clipboard_unanswered",
                          f"the {r['by']} asked for the {r['selection']} clipboard ({r['type']}); the {other} sent "
                          f"nothing within {ANSWER_S:.0f} s", r["time"], session=n, channel=main,
                          evidence={k: r[k] for k in ("frame", "by", "selection", "type")})
