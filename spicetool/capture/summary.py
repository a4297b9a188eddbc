"""Per session and channel figures: messages, bytes, message types, capabilities, auth, duration."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from spicetool.capture.sessions import Channel, Record
from spicetool.stack.enums import CommonCap, LinkErr

AUTH_NAMES = {CommonCap.AUTH_SPICE: "spice", CommonCap.AUTH_SASL: "sasl"}  # the mechanism is a common cap bit


@dataclass
class ChannelStats:
    channel: Channel
    messages: Counter = field(default_factory=Counter)  # per direction
    bytes: Counter = field(default_factory=Counter)  # body bytes per direction
    types: Counter = field(default_factory=Counter)  # "direction:type" -> count
    caps: dict[str, Any] = field(default_factory=dict)
    auth: str | None = None
    link_error: str | None = None
    gaps: int = 0
    errors: int = 0
    first: float | None = None
    last: float | None = None

    def add(self, rec: Record) -> None:
        if self.first is None:
            self.first = rec.time
        self.last = rec.time
        d = rec.direction.value
        if rec.layer == "message":
            self.messages[d] += 1
            self.bytes[d] += rec.size
            self.types[f"{d}:{rec.type}"] += 1
        elif rec.layer == "agent":
            self.types[f"{d}:{rec.type}"] += 1
        elif rec.layer == "gap":
            self.gaps += 1
        elif rec.layer == "error":
            self.errors += 1
        elif rec.layer == "link":
            f = rec.fields
            for key in ("common_caps", "channel_caps"):
                if key in f:
                    self.caps[f"{d}_{key}"] = f[key]
            if rec.type == "auth_mechanism":
                mech = f.get("auth_mechanism")
                self.auth = AUTH_NAMES.get(mech, str(mech)) if isinstance(mech, int) else str(mech)
            elif rec.type == "ticket" and self.auth is None:
                self.auth = "spice"
            elif rec.type.startswith("sasl"):
                self.auth = "sasl"
            if rec.type in ("link_reply", "link_result"):
                err = f.get("error")
                if err not in (LinkErr.OK, "OK", None):
                    self.link_error = str(err)

    def as_json(self, t0: float) -> dict[str, Any]:
        ch = self.channel
        return {
            "session": ch.session,
            "session_id": ch.session_id,
            "channel": ch.channel,
            "channel_id": ch.channel_id,
            "client": ch.client,
            "server": ch.server,
            "midstream": ch.midstream,
            "tls": ch.tls,  # version, cipher, SNI
            "tls_keys": ch.tls_keys,  # where the secrets came from
            "transport": ch.transport,
            "messages": dict(self.messages),
            "bytes": dict(self.bytes),
            "types": dict(sorted(self.types.items())),
            "caps": self.caps,
            "auth": self.auth,
            "link_error": self.link_error,
            "gaps": self.gaps,
            "errors": self.errors,
            "start": round((self.first or t0) - t0, 6),
            "duration": round((self.last or 0) - (self.first or 0), 6),
        }


class Summary:
    def __init__(self) -> None:
        self.channels: dict[int, ChannelStats] = {}

    def add(self, rec: Record) -> None:
        st = self.channels.get(rec.channel.index)
        if st is None:
            st = self.channels[rec.channel.index] = ChannelStats(rec.channel)
        st.add(rec)

    def ordered(self) -> list[ChannelStats]:
        return sorted(self.channels.values(), key=lambda s: (s.channel.session or 0, s.channel.channel_type or 0,
                                                              s.channel.channel_id or 0, s.channel.index))

    def render(self, console: Any, t0: float) -> None:
        from rich.table import Table

        sessions: dict[Any, list[ChannelStats]] = {}
        for st in self.ordered():
            sessions.setdefault(st.channel.session, []).append(st)
        for session, stats in sessions.items():
            sid = next((s.channel.session_id for s in stats if s.channel.session_id), None)
            title = f"session {session}" + (f" (id {sid:#x})" if sid else "")
            server = stats[0].channel.server
            table = Table(title=f"{title}  server {server}", title_justify="left")
            for col in ("channel", "client", "msgs c→s", "msgs s→c", "bytes c→s", "bytes s→c", "start", "duration",
                        "auth", "notes"):
                table.add_column(col, justify="right" if col.startswith(("msgs", "bytes", "start", "dur")) else "left")
            for st in stats:
                ch = st.channel
                notes = []
                if ch.midstream:
                    notes.append("mid-session")
                if st.link_error:
                    notes.append(f"link error {st.link_error}")
                if st.gaps:
                    notes.append(f"{st.gaps} gaps")
                if st.errors:
                    notes.append(f"{st.errors} errors")
                table.add_row(
                    f"{ch.channel}:{ch.channel_id}", ch.client,
                    str(st.messages["client"]), str(st.messages["server"]),
                    str(st.bytes["client"]), str(st.bytes["server"]),
                    f"{(st.first or t0) - t0:.3f}", f"{(st.last or 0) - (st.first or 0):.3f}",
                    st.auth or "", ", ".join(notes),
                )
            console.print(table)
            told = [(st.channel.tls, st.channel.tls_keys) for st in stats if st.channel.tls]
            for tls, keys in sorted(set(told), key=str):
                n = told.count((tls, keys))
                console.print(f"{title}: TLS: {tls}, " + (f"keys from {keys}" if keys else "not decrypted")
                              + f" ({n} connection{'s' * (n > 1)})")
            types = Table(title=f"{title}: message types", title_justify="left")
            for col in ("channel", "direction", "type", "count"):
                types.add_column(col, justify="right" if col == "count" else "left")
            for st in stats:
                for key, count in sorted(st.types.items()):
                    d, name = key.split(":", 1)
                    types.add_row(f"{st.channel.channel}:{st.channel.channel_id}", d, name, str(count))
            console.print(types)
            caps = Table(title=f"{title}: capabilities", title_justify="left")
            for col in ("channel", "offered by", "common", "channel caps"):
                caps.add_column(col)
            for st in stats:
                for d in ("client", "server"):
                    common = st.caps.get(f"{d}_common_caps")
                    chan = st.caps.get(f"{d}_channel_caps")
                    if common is not None or chan is not None:
                        caps.add_row(f"{st.channel.channel}:{st.channel.channel_id}", d,
                                     ", ".join(map(str, common or [])), ", ".join(map(str, chan or [])))
            console.print(caps)
