"""Per session and channel figures: messages, bytes, message types, capabilities, auth, duration."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from spicetool.capture.legs import LegDelays
from spicetool.capture.sessions import TRANSPORT_FAILURES, Channel, Record
from spicetool.stack.enums import CommonCap, LinkErr

AUTH_NAMES = {CommonCap.AUTH_SPICE: "spice", CommonCap.AUTH_SASL: "sasl"}  # the mechanism is a common cap bit
# more sessions than this (a hypervisor's capture holds thousands): one line per session instead
# of three tables each, written as plain text (rich's tables cost seconds per thousand rows)
MANY_SESSIONS = 20


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
    failure: str | None = None  # a refused or unanswered CONNECT or Upgrade: the proxy's status line
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
            if rec.type in TRANSPORT_FAILURES and self.failure is None:
                self.failure = str(rec.fields.get("reason"))
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

    def as_json(self, t0: float, delays: LegDelays | None = None) -> dict[str, Any]:
        """Its figures. `leg` ("client"/"server" for a leg of a connection seen at a proxy, else None),
        `transport` (the chain as text, None on plain TCP), `transport_chain` (its layers' info, bottom
        first) and `failure` (a refused or unanswered CONNECT or Upgrade) are always there; a leg also
        has its twin's channel index and the session's `proxy_delay` (from `delays`)."""
        ch = self.channel
        legs: dict[str, Any] = {"leg": ch.leg if ch.twin is not None else None}
        if ch.twin is not None:
            legs["twin"] = ch.twin
            if delays is not None:
                legs["proxy_delay"] = delays.figures(ch.session or 0)
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
            **legs,
            "transport": ch.transport,
            "transport_chain": ch.layers,
            "failure": self.failure,
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

    def render(self, console: Any, t0: float, delays: LegDelays | None = None) -> None:
        from rich.table import Table

        sessions: dict[Any, list[ChannelStats]] = {}
        for st in self.ordered():
            sessions.setdefault(st.channel.session, []).append(st)
        if len(sessions) > MANY_SESSIONS:
            self._render_compact(console.file, t0, sessions)
            return
        for session, stats in sessions.items():
            sid = next((s.channel.session_id for s in stats if s.channel.session_id), None)
            title = f"session {session}" + (f" (id {sid:#x})" if sid else "")
            server = stats[0].channel.server
            proxy = next((s.channel.server for s in stats if s.channel.leg == "client"), None)
            if proxy is not None:  # its legs: the server is the server leg's peer, the client leg's the proxy
                server = next(s.channel.server for s in stats if s.channel.leg == "server")
                server += f" through proxy {proxy}"
            table = Table(title=f"{title}  server {server}", title_justify="left")
            failures = [f"{s.channel.client}: {s.failure}" for s in stats if s.failure]
            if failures:  # nothing of SPICE's came through: the session's failure, with the proxy's answer
                table.caption = "failed: " + "; ".join(failures)
                table.caption_style = "bold red"
            chains = any(s.channel.transport for s in stats)
            for col in ("channel", "client", "msgs c→s", "msgs s→c", "bytes c→s", "bytes s→c", "start", "duration",
                        "auth", "notes") + (("transport",) if chains else ()):
                table.add_column(col, justify="right" if col.startswith(("msgs", "bytes", "start", "dur")) else "left")
            for st in stats:
                ch = st.channel
                notes = []
                if ch.twin is not None:
                    notes.append(f"{ch.leg} leg")
                if ch.midstream:
                    notes.append("mid-session")
                if st.link_error:
                    notes.append(f"link error {st.link_error}")
                if st.gaps:
                    notes.append(f"{st.gaps} gaps")
                if st.failure:
                    notes.append("failed")
                elif st.errors:
                    notes.append(f"{st.errors} errors")
                table.add_row(
                    ch.label, ch.client,
                    str(st.messages["client"]), str(st.messages["server"]),
                    str(st.bytes["client"]), str(st.bytes["server"]),
                    f"{(st.first or t0) - t0:.3f}", f"{(st.last or 0) - (st.first or 0):.3f}",
                    st.auth or "", ", ".join(notes), *((ch.transport or "plain TCP",) if chains else ()),
                )
            console.print(table)
            if proxy is not None and delays is not None:
                console.print(delay_table(f"{title}: the proxy's added delay", delays.figures(session or 0)))
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
                    types.add_row(st.channel.label, d, name, str(count))
            console.print(types)
            caps = Table(title=f"{title}: capabilities", title_justify="left")
            for col in ("channel", "offered by", "common", "channel caps"):
                caps.add_column(col)
            for st in stats:
                for d in ("client", "server"):
                    common = st.caps.get(f"{d}_common_caps")
                    chan = st.caps.get(f"{d}_channel_caps")
                    if common is not None or chan is not None:
                        caps.add_row(st.channel.label, d,
                                     ", ".join(map(str, common or [])), ", ".join(map(str, chan or [])))
            console.print(caps)


    @staticmethod
    def _render_compact(out: Any, t0: float, sessions: dict[Any, list[ChannelStats]]) -> None:
        """One line per session, then the message types of all sessions together."""
        from spicetool.capture.plain_table import write_table

        rows = []
        types: Counter = Counter()
        seen_in: dict[tuple[str, str, str], set] = {}
        for session, stats in sessions.items():
            sid = next((s.channel.session_id for s in stats if s.channel.session_id), None)
            legs = [s for s in stats if s.channel.twin is not None]
            server = next((s.channel.server for s in legs if s.channel.leg == "server"), stats[0].channel.server)
            notes: list[str] = []
            if legs:
                notes.append("two legs through proxy " + next(s.channel.server for s in legs if s.channel.leg == "client"))
            notes += [f"{s.channel.channel}: {s.failure}" for s in stats if s.failure]
            notes += [f"{s.channel.channel}: link error {s.link_error}" for s in stats if s.link_error]
            if any(s.channel.midstream for s in stats):
                notes.append("mid-session")
            gaps, errors = sum(s.gaps for s in stats), sum(s.errors for s in stats if not s.failure)
            if gaps:
                notes.append(f"{gaps} gaps")
            if errors:
                notes.append(f"{errors} errors")
            first = min((s.first for s in stats if s.first is not None), default=t0)
            last = max((s.last for s in stats if s.last is not None), default=first)
            rows.append((str(session), f"{sid:#x}" if sid else "", server,
                         ",".join(sorted({s.channel.client.rsplit(":", 1)[0] for s in stats})),
                         ",".join(s.channel.label for s in stats),
                         str(sum(s.messages["client"] for s in stats)), str(sum(s.messages["server"] for s in stats)),
                         str(sum(s.bytes["client"] for s in stats)), str(sum(s.bytes["server"] for s in stats)),
                         f"{first - t0:.3f}", f"{last - first:.3f}", "; ".join(notes)))
            for st in stats:
                for key, count in st.types.items():
                    d, name = key.split(":", 1)
                    k = (st.channel.channel, d, name)
                    types[k] += count
                    seen_in.setdefault(k, set()).add(session)
        numbers = ("msgs c→s", "msgs s→c", "bytes c→s", "bytes s→c", "start", "duration")
        write_table(out, f"{len(sessions)} sessions, one line each (--session N: that session's tables; "
                         "--json: every channel's figures)",
                    ("session", "id", "server", "client", "channels", *numbers, "notes"), rows, right=numbers)
        write_table(out, f"message types of all {len(sessions)} sessions", ("channel", "direction", "type", "count",
                                                                             "sessions"),
                    ((c, d, t, str(n), str(len(seen_in[(c, d, t)]))) for (c, d, t), n in sorted(types.items())),
                    right=("count", "sessions"))


def delay_table(title: str, figures: dict[str, dict[str, float] | None]) -> Any:
    """The proxy's added delay per direction (LegDelays.figures) as a table."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in ("direction", "messages", "p50 ms", "p95 ms", "max ms"):
        table.add_column(col, justify="left" if col == "direction" else "right")
    for key, name in (("client_to_server", "client → server"), ("server_to_client", "server → client")):
        f = figures.get(key)
        if f:
            table.add_row(name, str(f["count"]), f"{f['p50_ms']:.3f}", f"{f['p95_ms']:.3f}", f"{f['max_ms']:.3f}")
        else:
            table.add_row(name, "0", "", "", "")
    return table
