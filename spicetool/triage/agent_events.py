"""What the guest agent was asked and answered, read from the agent messages inside the main
channel: file transfers and their results, monitors configurations and the agent's replies,
clipboard requests and whether the other side sent the data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spicetool.stack.vdagent import TYPES

FAILED_TRANSFER = {"CANCELLED", "ERROR", "NOT_ENOUGH_SPACE", "SESSION_LOCKED", "VDAGENT_NOT_CONNECTED", "DISABLED"}
REPLY_MONITORS_CONFIG = next(k for k, (name, _) in TYPES.items() if name == "monitors_config")  # what a reply answers
ANSWER_S = 5.0              # a clipboard request not answered within this is unanswered


@dataclass
class AgentEvents:
    transfers: dict[int, dict[str, Any]] = field(default_factory=dict)   # by transfer id
    monitors: list[dict[str, Any]] = field(default_factory=list)         # each configuration the client sent
    clipboard: list[dict[str, Any]] = field(default_factory=list)        # each request
    last: float = 0.0

    def add(self, name: str, f: dict[str, Any], t: float, frame: int, from_client: bool) -> None:
        self.last = max(self.last, t)
        who = "client" if from_client else "guest"
        if name == "vd_agent_file_xfer_start":
            self.transfers[f.get("id")] = {"id": f.get("id"), "time": t, "frame": frame, "sender": who,
                                           "bytes": 0, "results": []}
        elif name == "vd_agent_file_xfer_data":
            x = self.transfers.get(f.get("id"))
            if x is not None:
                x["bytes"] += len(f.get("data") or b"")
        elif name == "vd_agent_file_xfer_status":
            x = self.transfers.setdefault(f.get("id"), {"id": f.get("id"), "time": t, "frame": frame,
                                                        "sender": None, "bytes": 0, "results": []})
            x["results"].append({"time": t, "frame": frame, "result": str(f.get("result")), "by": who})
        elif name == "vd_agent_monitors_config" and from_client:
            self.monitors.append({"time": t, "frame": frame, "monitors": [
                {k: m.get(k) for k in ("width", "height", "x", "y")} for m in f.get("monitors") or []],
                "reply": None})
        elif name == "vd_agent_reply" and not from_client and f.get("type") == REPLY_MONITORS_CONFIG:
            open_ = [m for m in self.monitors if m["reply"] is None]
            if open_:
                open_[0]["reply"] = {"time": t, "frame": frame, "error": str(f.get("error"))}
        elif name == "vd_agent_clipboard_request":
            self.clipboard.append({"time": t, "frame": frame, "by": who, "selection": str(f.get("selection")),
                                   "type": str(f.get("type")), "answered": None})
        elif name == "vd_agent_clipboard":
            sel = str(f.get("selection"))
            for r in self.clipboard:
                if r["answered"] is None and r["by"] != who and r["selection"] == sel:
                    r["answered"] = t
                    break

    def as_json(self, t0: float, end: float | None = None) -> dict[str, Any]:
        """`end`: the capture's last packet (a request is unanswered if the capture went on ANSWER_S after it)."""
        def rel(t: float | None) -> float | None:
            return None if t is None else round(t - t0, 6)

        transfers = []
        for x in self.transfers.values():
            # the receiver's refusal names the cause; the sender's answer to it (ERROR, a cancel) follows
            receiver = {"client": "guest", "guest": "client"}.get(x["sender"])
            failed = [r for r in x["results"] if r["result"] in FAILED_TRANSFER]
            cause = next((r for r in failed if r["by"] == receiver), failed[0] if failed else None)
            final = cause["result"] if cause else (x["results"][-1]["result"] if x["results"] else None)
            transfers.append({"id": x["id"], "time": rel(x["time"]), "frame": x["frame"], "sender": x["sender"],
                              "bytes": x["bytes"], "result": final, "failed": final in FAILED_TRANSFER,
                              "result_frame": cause["frame"] if cause else None,
                              "results": [{**r, "time": rel(r["time"])} for r in x["results"]]})
        clip = []
        for r in self.clipboard:
            waited = (r["answered"] if r["answered"] is not None else max(self.last, end or 0.0)) - r["time"]
            clip.append({**r, "time": rel(r["time"]), "answered": rel(r["answered"]),
                         "unanswered": r["answered"] is None and waited >= ANSWER_S})
        return {"file_transfers": transfers,
                "monitors_config": [{**m, "time": rel(m["time"]),
                                     "reply": m["reply"] and {**m["reply"], "time": rel(m["reply"]["time"])}}
                                    for m in self.monitors],
                "clipboard_requests": clip}
