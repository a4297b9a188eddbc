"""The figures of `spicetool stats`, gathered in one pass over a capture.

Per-channel message and body-byte counters, capabilities and auth come from
`spicetool.capture.Summary` (the same numbers `dissect --summary` shows); this module adds what a
support engineer asks next: wire bytes over time, round trips, image codecs, video streams,
problems, and what the user typed and clicked.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from spicetool.capture import (
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    CaptureRecords,
    Channel,
    ChannelStats,
    KeyLog,
    Record,
    Segment,
    Summary,
    open_records,
)
from spicetool.render.damaged import UnknownArea
from spicetool.stack.enums import LinkErr, MouseMode, SurfaceFlags
from spicetool.stack.flow import AckWindow
from spicetool.triage.agent_events import AgentEvents
from spicetool.triage.audio import Playback
from spicetool.triage.scancodes import TextDecoder, code_bytes

MOUSE_MODES = {MouseMode.SERVER: "server", MouseMode.CLIENT: "client"}
BYTES_PER_PIXEL = 4  # the brief's yardstick for compression ratios: 32-bit pixels
QUIET_SECONDS = 2.0  # a display channel without a server message this long is a quiet period (xclock ticks each 1 s)
IN_FLIGHT = 4  # the last messages of each channel kept, to say what was in flight when it closed
TCP_EVENTS = 200  # retransmissions and zero windows listed per direction (all are counted)
_SEQ = 0xFFFFFFFF
# what changes the screen: the first of them after an input ends its input-to-screen latency
_SCREEN = ("copy_bits", "stream_data", "stream_data_sized")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation: it is always one of the measured values)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _images(value: Any) -> Iterator[dict[str, Any]]:
    """Every image (a dict holding a `descriptor`) anywhere in a message's field tree."""
    if isinstance(value, dict):
        if isinstance(value.get("descriptor"), dict):
            yield value
        for v in value.values():
            if isinstance(v, (dict, list)):
                yield from _images(v)
    elif isinstance(value, list):
        for v in value:
            yield from _images(v)


def _image_bytes(image: dict[str, Any]) -> int:
    """Bytes the image body takes on the wire (0 for cache and surface references)."""
    for key, body in image.items():
        if key == "descriptor" or not isinstance(body, dict):
            continue
        if isinstance(body.get("data_size"), int):
            return body["data_size"]
        if key == "bitmap" and isinstance(body.get("stride"), int) and isinstance(body.get("y"), int):
            return body["stride"] * body["y"]
    return 0


@dataclass
class Wire:
    """TCP payload bytes of one connection direction, in total and per one-second bin."""

    bytes: int = 0
    segments: int = 0
    bins: Counter = field(default_factory=Counter)


@dataclass
class Stream:
    channel: int
    id: int
    codec: str
    width: int
    height: int
    created: float
    frames: int = 0
    bytes: int = 0
    first_frame: float | None = None
    last_frame: float | None = None
    destroyed: float | None = None
    reported_frames: int = 0
    reported_drops: int = 0
    reports: int = 0
    drop_reports: list[float] = field(default_factory=list)  # times of the reports that counted drops
    label: str = "display"  # its channel's ("display:1")

    def as_json(self, t0: float) -> dict[str, Any]:
        span = (self.last_frame or 0) - (self.first_frame or 0)
        return {
            "id": self.id, "channel": self.label, "codec": self.codec, "width": self.width, "height": self.height,
            "created": round(self.created - t0, 6),
            "destroyed": None if self.destroyed is None else round(self.destroyed - t0, 6),
            "frames": self.frames, "bytes": self.bytes,
            "fps": round((self.frames - 1) / span, 2) if self.frames > 1 and span > 0 else None,
            "reports": self.reports, "reported_frames": self.reported_frames, "dropped": self.reported_drops,
            "drops_reported": [round(self.drop_reports[0] - t0, 6), round(self.drop_reports[-1] - t0, 6)]
            if self.drop_reports else None,
        }


@dataclass
class SessionFigures:
    number: int | None
    session_id: int | None = None
    channels: list[ChannelStats] = field(default_factory=list)
    mouse_modes: list[tuple[float, str]] = field(default_factory=list)
    agent: list[tuple[float, bool]] = field(default_factory=list)
    screens: list[tuple[float, int, int, str]] = field(default_factory=list)  # time, w, h, what announced it
    name: str | None = None
    uuid: str | None = None
    pings: dict[int, dict[tuple[int, int], list[float]]] = field(default_factory=lambda: defaultdict(dict))
    pongs: list[tuple[float, int, str, tuple[int, int]]] = field(default_factory=list)
    rtts: list[tuple[float, str, float]] = field(default_factory=list)  # time, channel, ms
    unanswered_pongs: int = 0
    images: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    streams: list[Stream] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    keyboard: TextDecoder = field(default_factory=TextDecoder)
    pointer: tuple[int, int] | None = None
    unknown: UnknownArea = field(default_factory=UnknownArea)  # display 0's pixels lost in capture gaps
    pending_inputs: list[float] = field(default_factory=list)  # key presses and clicks no draw has followed yet
    input_latency: list[tuple[float, float]] = field(default_factory=list)  # (input time, ms to the first draw)
    playback: dict[str, Playback] = field(default_factory=dict)  # by channel label
    agent_events: AgentEvents = field(default_factory=AgentEvents)
    migration: list[dict[str, Any]] = field(default_factory=list)  # main's MIGRATE_* both ways, in order
    image_first: dict[str, tuple[float, int, str]] = field(default_factory=dict)  # by type: time, frame, channel


@dataclass
class Tcp:
    """One TCP direction's retransmissions and zero windows (for stalls and the network's share)."""

    base: int | None = None  # first sequence number seen; offsets below are relative to it
    high: int = 0  # highest sequence offset sent so far
    retransmitted: int = 0
    retransmitted_bytes: int = 0
    retransmissions: list[tuple[float, int]] = field(default_factory=list)  # (time, frame), the first TCP_EVENTS
    retransmit_bins: Counter = field(default_factory=Counter)  # all of them, per capture second
    segments: int = 0  # with payload
    zero_windows: int = 0  # segments advertising a zero window
    zero_since: tuple[float, int] | None = None  # the open zero-window period: its first segment's time, frame
    zero_periods: list[tuple[float, float, int, int]] = field(default_factory=list)  # start, end, frames
    close: tuple[float, str, int] | None = None  # the first FIN or RST: time, "closed"/"reset", frame


@dataclass
class Display:
    """A display channel's server-message pace and ACK window, for stalls."""

    ack: AckWindow = field(default_factory=lambda: AckWindow(0))
    last: tuple[float, int] | None = None  # the last server message: time, frame
    quiet: list[dict[str, Any]] = field(default_factory=list)


class Figures:
    """Feed it segments (`count`) and records (`add`), then read the sessions."""

    def __init__(self) -> None:
        self.summary = Summary()
        self.sessions: dict[int | None, SessionFigures] = {}
        self.wire: dict[tuple[str, str], Wire] = defaultdict(Wire)
        self.closes: dict[tuple[str, str], tuple[float, str]] = {}  # first FIN/RST per direction
        self.message_bins: dict[tuple[int, str], Counter] = defaultdict(Counter)  # (channel, direction)
        self.t0: float | None = None
        self.t_end: float | None = None
        self.frames = 0
        self.legs: dict[int, dict[str, Any]] = {}  # session -> its proxy legs (`legs_of`)
        self.tcp: dict[tuple[str, str], Tcp] = defaultdict(Tcp)
        self.recent: dict[int, deque] = defaultdict(lambda: deque(maxlen=IN_FLIGHT))  # channel -> last messages
        self.displays: dict[int, Display] = defaultdict(Display)
        self.channels: dict[int, Channel] = {}

    # -- input ---------------------------------------------------------------------------
    def count(self, seg: Segment) -> None:
        """Count a segment's TCP payload bytes per direction and per second."""
        if self.t0 is None:
            self.t0 = seg.time
        self.t_end = seg.time
        self.frames = seg.frame
        w = self.wire[(seg.src, seg.dst)]
        if seg.payload:
            w.bytes += len(seg.payload)
            w.segments += 1
            w.bins[int(seg.time - self.t0)] += len(seg.payload)
        if seg.flags & (TCP_FIN | TCP_RST) and (seg.src, seg.dst) not in self.closes:
            self.closes[(seg.src, seg.dst)] = (seg.time, "reset" if seg.flags & TCP_RST else "closed")
        self._tcp(seg)

    def _tcp(self, seg: Segment) -> None:
        """Retransmissions (payload at or below what this direction already sent) and zero windows."""
        tcp = self.tcp[(seg.src, seg.dst)]
        if seg.flags & (TCP_FIN | TCP_RST) and tcp.close is None:
            tcp.close = (seg.time, "reset" if seg.flags & TCP_RST else "closed", seg.frame)
        if seg.window == 0 and not seg.flags & (TCP_RST | TCP_SYN):
            tcp.zero_windows += 1
            if tcp.zero_since is None:
                tcp.zero_since = (seg.time, seg.frame)
        elif seg.window > 0 and tcp.zero_since is not None:  # the window opens again
            if len(tcp.zero_periods) < TCP_EVENTS:
                tcp.zero_periods.append((tcp.zero_since[0], seg.time, tcp.zero_since[1], seg.frame))
            tcp.zero_since = None
        if not seg.payload:
            return
        tcp.segments += 1
        if tcp.base is None:
            tcp.base = seg.seq
        start = (seg.seq - tcp.base) & _SEQ
        if start > 1 << 31:  # before the first segment seen (reordered at a mid-session start)
            return
        end = start + len(seg.payload)
        if end <= tcp.high:
            tcp.retransmitted += 1
            tcp.retransmitted_bytes += len(seg.payload)
            if len(tcp.retransmissions) < TCP_EVENTS:
                tcp.retransmissions.append((seg.time, seg.frame))
            tcp.retransmit_bins[int(seg.time - (self.t0 or seg.time))] += 1
        tcp.high = max(tcp.high, end)

    def _session(self, ch: Channel) -> SessionFigures:
        fig = self.sessions.get(ch.session)
        if fig is None:
            fig = self.sessions[ch.session] = SessionFigures(ch.session)
        if ch.session_id and not fig.session_id:
            fig.session_id = ch.session_id
        return fig

    def add(self, rec: Record) -> None:
        self.summary.add(rec)
        fig = self._session(rec.channel)
        ch, f, t = rec.channel, rec.fields, rec.time
        label = ch.label
        if rec.layer == "gap":
            fig.problems.append({"time": t, "frame": rec.frame, "channel": label, "kind": "tcp_gap", "direction": rec.direction.value,
                                 "detail": f"{rec.size} bytes missing from the capture"})
            if ch.channel == "display" and (ch.channel_id or 0) == 0 and rec.direction.value == "server" \
                    and f.get("framing") != "kept":
                fig.unknown.lost_framing(t)
            return
        if rec.layer == "error":  # protocol_error, tls_error, tls_encrypted (no keys for the connection)
            fig.problems.append({"time": t, "frame": rec.frame, "channel": label, "kind": rec.type,
                                 "direction": rec.direction.value, "detail": str(f.get("reason"))})
            return
        if rec.layer == "link":
            err = f.get("error")
            if rec.type in ("link_reply", "link_result") and err not in (LinkErr.OK, "OK", None):
                name = LinkErr(err).name if isinstance(err, int) and err in LinkErr._value2member_map_ else str(err)
                fig.problems.append({"time": t, "frame": rec.frame, "channel": label, "kind": "link_error",
                                     "direction": "server", "detail": f"{rec.type}: {name}", "error": name})
            return
        if rec.layer == "agent":
            fig.agent_events.add(rec.type, f, t, rec.frame, rec.direction.value == "client")
            return
        if rec.layer != "message":
            return
        self.message_bins[(ch.index, rec.direction.value)][int(t - (self.t0 or t))] += 1
        name, server = rec.type, rec.direction.value == "server"
        self.channels[ch.index] = ch
        self.recent[ch.index].append((t, rec.frame, rec.direction.value, name))
        if ch.channel == "display":
            self._pace(fig, self.displays[ch.index], rec)
        if name == "ping" and server:
            fig.pings[ch.index].setdefault((f.get("id"), f.get("timestamp")), []).append(t)
        elif name == "pong" and not server:
            # matched at the end: records held behind a TCP hole come out late, a PONG before its PING
            fig.pongs.append((t, ch.index, label, (f.get("id"), f.get("timestamp"))))
        elif name in ("notify", "disconnecting"):
            detail = f"reason {f.get('reason')}" if name == "disconnecting" else _notify_text(f)
            fig.problems.append({"time": t, "frame": rec.frame, "channel": label, "kind": name, "direction": rec.direction.value,
                                 "detail": detail})
        elif ch.channel == "main" and name.startswith("migrate"):
            fig.migration.append(_migration_event(rec, label))
        elif ch.channel == "main" and server:
            self._main(fig, name, f, t)
        elif ch.channel == "display":
            self._display(fig, rec, label)
        elif ch.channel == "inputs" and not server:
            self._inputs(fig, name, f, t)
        elif ch.channel == "playback" and server:
            pb = fig.playback.get(label)
            if pb is None:
                pb = fig.playback[label] = Playback(label)
            pb.add(name, f, t, rec.frame)

    def _main(self, fig: SessionFigures, name: str, f: dict[str, Any], t: float) -> None:
        if name == "init":
            fig.mouse_modes.append((t, MOUSE_MODES.get(f.get("current_mouse_mode"), str(f.get("current_mouse_mode")))))
            fig.agent.append((t, bool(f.get("agent_connected"))))
        elif name == "mouse_mode":
            fig.mouse_modes.append((t, MOUSE_MODES.get(f.get("current_mode"), str(f.get("current_mode")))))
        elif name in ("agent_connected", "agent_connected_tokens"):
            fig.agent.append((t, True))
        elif name == "agent_disconnected":
            fig.agent.append((t, False))
            fig.problems.append({"time": t, "channel": "main:0", "kind": "agent_disconnected", "direction": "server",
                                 "detail": f"error {f.get('error_code')}"})
        elif name == "name":
            fig.name = _raw(f.get("name")).rstrip(b"\0").decode(errors="replace")
        elif name == "uuid":
            raw = _raw(f.get("uuid"))
            # the canonical form; QEMU without -uuid sends 16 zero bytes: no uuid
            fig.uuid = (str(uuid.UUID(bytes=raw)) if len(raw) == 16 else raw.hex()) if raw.strip(b"\0") else None

    def _pace(self, fig: SessionFigures, disp: Display, rec: Record) -> None:
        """A display channel's quiet periods (no server message for QUIET_SECONDS), with the ACK window's
        state when each began; and input-to-screen latency (the first draw after a key press or click)."""
        f, t = rec.fields, rec.time
        if rec.direction.value == "client":
            if rec.type == "ack_sync":
                disp.ack.ack_sync(f.get("generation"))
            elif rec.type == "ack":
                disp.ack.ack()
            return
        if disp.last is not None and t - disp.last[0] >= QUIET_SECONDS:
            disp.quiet.append({"start": disp.last[0], "end": t, "frame_before": disp.last[1], "frame_after": rec.frame,
                               "unacked": disp.ack.unacked, "ack_window": disp.ack.window,
                               "ack_window_full": disp.ack.window > 0 and disp.ack.full,
                               # the quiet ended with something to show (not a PING after an idle screen)
                               "screen_after": rec.type.startswith("draw_") or rec.type in _SCREEN})
        disp.last = (t, rec.frame)
        if rec.type == "set_ack":
            disp.ack.window, disp.ack.generation, disp.ack.unacked = f.get("window") or 0, f.get("generation"), 0
        disp.ack.sent()
        if fig.pending_inputs and (rec.type.startswith("draw_") or rec.type in _SCREEN):
            fig.input_latency += [(ti, (t - ti) * 1000.0) for ti in fig.pending_inputs if ti <= t]
            fig.pending_inputs = [ti for ti in fig.pending_inputs if ti > t]

    def _display(self, fig: SessionFigures, rec: Record, label: str) -> None:
        name, f, t = rec.type, rec.fields, rec.time
        if rec.direction.value == "client":
            if name == "stream_report":
                for st in reversed(fig.streams):
                    if st.channel == rec.channel.index and st.id == f.get("stream_id"):
                        st.reports += 1
                        st.reported_frames += f.get("num_frames") or 0
                        st.reported_drops += f.get("num_drops") or 0
                        if f.get("num_drops"):
                            st.drop_reports.append(t)
                        break
            return
        if (rec.channel.channel_id or 0) == 0 and (name.startswith("draw_") or name in ("copy_bits", "surface_create")):
            fig.unknown.feed(name, f, rec.event, t)
        if name == "surface_create" and (f.get("flags") or 0) & SurfaceFlags.PRIMARY:
            fig.screens.append((t, f.get("width"), f.get("height"), "surface_create"))
        elif name == "stream_create":
            fig.streams.append(Stream(rec.channel.index, f.get("id"), str(f.get("codec_type")),
                                      f.get("stream_width") or 0, f.get("stream_height") or 0, t, label=label))
        elif name in ("stream_data", "stream_data_sized"):
            sid = (f.get("base") or {}).get("id", f.get("id"))
            for st in reversed(fig.streams):
                if st.channel == rec.channel.index and st.id == sid and st.destroyed is None:
                    st.frames += 1
                    st.bytes += f.get("data_size") or 0
                    st.first_frame = st.first_frame if st.first_frame is not None else t
                    st.last_frame = t
                    break
        elif name in ("stream_destroy", "stream_destroy_all"):
            for st in fig.streams:
                if st.channel == rec.channel.index and st.destroyed is None and (
                        name == "stream_destroy_all" or st.id == f.get("id")):
                    st.destroyed = t
        if name.startswith("draw_"):
            for image in _images(f):
                d = image["descriptor"]
                kind = str(d.get("type"))
                counts = fig.images[kind]
                fig.image_first.setdefault(kind, (t, rec.frame, label))
                counts["count"] += 1
                counts["bytes"] += _image_bytes(image)
                counts["raw"] += (d.get("width") or 0) * (d.get("height") or 0) * BYTES_PER_PIXEL

    def _inputs(self, fig: SessionFigures, name: str, f: dict[str, Any], t: float) -> None:
        kb = fig.keyboard
        if name == "key_scancode":
            data = f.get("data")
            before = len(kb.keys)
            kb.feed(t, _raw(data))
            fig.inputs += [{"time": k.time, "kind": "key", "key": k.name, "code": k.code} for k in kb.keys[before:]]
            fig.pending_inputs += [k.time for k in kb.keys[before:]]
        elif name in ("key_down", "key_up") and isinstance(f.get("code"), int):
            before = len(kb.keys)
            kb.feed(t, code_bytes(f["code"]))
            fig.inputs += [{"time": k.time, "kind": "key", "key": k.name, "code": k.code} for k in kb.keys[before:]]
            fig.pending_inputs += [k.time for k in kb.keys[before:]]
        elif name == "key_modifiers" and isinstance(f.get("modifiers"), int):
            kb.modifiers(f["modifiers"])
        elif name == "mouse_position":
            fig.pointer = (f.get("x"), f.get("y"))
        elif name == "mouse_press":
            fig.inputs.append({"time": t, "kind": "click", "button": str(f.get("button")),
                               "x": fig.pointer[0] if fig.pointer else None,
                               "y": fig.pointer[1] if fig.pointer else None})
            fig.pending_inputs.append(t)

    # -- output --------------------------------------------------------------------------
    def finish(self) -> None:
        for st in self.summary.ordered():
            self._session(st.channel).channels.append(st)
        for fig in self.sessions.values():
            _match_pongs(fig)

    def legs_of(self, records: CaptureRecords) -> None:
        """The legs of each session a proxy's capture holds twice (records.legs), after the pass:
        both legs of each connection, the one the figures are of, and the proxy's added delay."""
        for client, server in records.legs:
            session = client.session or 0
            legs = self.legs.setdefault(session, {
                "shown": records.leg, "proxy": client.server, "pairs": [],
                "proxy_delay": records.delays.figures(session), "proxy_delay_how": DELAY_HOW})
            legs["pairs"].append({"name": client.label,
                                  "client_leg": _leg_json(client), "server_leg": _leg_json(server)})

    def as_json(self) -> dict[str, Any]:
        t0 = self.t0 or 0.0
        self.bin_s = _bin_width([w.bins for w in self.wire.values()] + list(self.message_bins.values()))
        return {
            "start": t0,
            "duration": round((self.t_end or t0) - t0, 6),
            "seconds_per_bin": self.bin_s,   # of the per-second series: more than 1 only if the clock jumped
            "frames": self.frames,
            "sessions": [self._session_json(fig, t0) for _, fig in sorted(self.sessions.items(),
                                                                             key=lambda kv: kv[0] or 0)],
        }

    def _channel_json(self, st: ChannelStats, t0: float) -> dict[str, Any]:
        ch = st.channel
        up, down = self.wire.get((ch.client, ch.server), Wire()), self.wire.get((ch.server, ch.client), Wire())
        end = max(self.closes.get((ch.client, ch.server), (None,))[0] or 0,
                  self.closes.get((ch.server, ch.client), (None,))[0] or 0) or None
        how = {v[1] for k, v in self.closes.items() if k in ((ch.client, ch.server), (ch.server, ch.client))}
        base = st.as_json(t0)
        msgs = {d: self.message_bins.get((ch.index, d), Counter()) for d in ("client", "server")}
        # the series start at the channel's first second, not the capture's: a capture of thousands
        # of sessions over hours would otherwise give every channel hours of zeros
        first = min((min(b) for b in (up.bins, down.bins, *msgs.values()) if b), default=0)
        base.update({
            "name": ch.label,
            "tls": ch.tls,
            "tls_keys": ch.tls_keys,
            "wire_bytes": {"client": up.bytes, "server": down.bytes},
            "per_second_from": first,
            "seconds_per_bin": self.bin_s,
            "bytes_per_second": {"client": _series(up.bins, first, self.bin_s),
                                 "server": _series(down.bins, first, self.bin_s)},
            "messages_per_second": {d: _series(b, first, self.bin_s) for d, b in msgs.items()},
            "closed": None if end is None else {"time": round(end - t0, 6), "how": "reset" if "reset" in how
                                                 else "closed"},
            "closes": {d: _close_json(self.tcp.get(k), t0) for d, k in (("client", (ch.client, ch.server)),
                                                                         ("server", (ch.server, ch.client)))},
            "tcp": {d: _tcp_json(self.tcp.get(k), t0, first, self.bin_s) for d, k in (("client", (ch.client, ch.server)),
                                                                    ("server", (ch.server, ch.client)))},
            "last_messages": [{"time": round(t - t0, 6), "frame": fr, "direction": d, "type": n}
                              for t, fr, d, n in self.recent.get(ch.index, ())],
        })
        if ch.index in self.displays:
            base["quiet"] = [{**q, "start": round(q["start"] - t0, 6), "end": round(q["end"] - t0, 6)}
                             for q in self.displays[ch.index].quiet]
        return base

    def _session_json(self, fig: SessionFigures, t0: float) -> dict[str, Any]:
        firsts = [st.first for st in fig.channels if st.first is not None]
        lasts = [st.last for st in fig.channels if st.last is not None]
        rtt = [ms for _, _, ms in fig.rtts]
        per_channel: dict[str, list[float]] = defaultdict(list)
        for _, label, ms in fig.rtts:
            per_channel[label].append(ms)
        main = next((st for st in fig.channels if st.channel.channel == "main"), None)
        screens, last = [], None
        for t, w, h, how in fig.screens:
            if (w, h) != last:
                screens.append({"time": round(t - t0, 6), "width": w, "height": h, "by": how})
                last = (w, h)
        return {
            "session": fig.number,
            "session_id": fig.session_id,
            "server": fig.channels[0].channel.server if fig.channels else None,
            "clients": sorted({st.channel.client.rsplit(":", 1)[0] for st in fig.channels}),
            "start": round(min(firsts) - t0, 6) if firsts else None,
            "duration": round(max(lasts) - min(firsts), 6) if firsts else None,
            "name": fig.name,
            "uuid": fig.uuid,
            "auth": main.auth if main else next((st.auth for st in fig.channels if st.auth), None),
            "mouse_mode": [{"time": round(t - t0, 6), "mode": m} for t, m in fig.mouse_modes],
            "agent_connected": [{"time": round(t - t0, 6), "connected": c} for t, c in _changes(fig.agent)],
            "screen_sizes": screens,
            "channels": [self._channel_json(st, t0) for st in fig.channels],
            "latency": {
                "round_trips": len(rtt),
                **(_spread(rtt) if rtt else {}),
                "per_channel": {label: {"round_trips": len(v), **_spread(v)} for label, v in per_channel.items()},
                "unanswered_pings": sum(len(times) for p in fig.pings.values() for times in p.values()),
                "unmatched_pongs": fig.unanswered_pongs,
                "series": [{"time": round(t - t0, 6), "channel": label, "ms": round(ms, 3)}
                           for t, label, ms in fig.rtts],
            },
            "images": {codec: {"count": c["count"], "bytes": c["bytes"], "raw_bytes": c["raw"],
                               "ratio": round(c["raw"] / c["bytes"], 2) if c["bytes"] else None,
                               "percent_of_raw": round(100 * c["bytes"] / c["raw"], 2) if c["raw"] else None,
                               "first": {"time": round(fig.image_first[codec][0] - t0, 6),
                                         "frame": fig.image_first[codec][1], "channel": fig.image_first[codec][2]}}
                       for codec, c in sorted(fig.images.items(), key=lambda kv: -kv[1]["count"])},
            "streams": [st.as_json(t0) for st in fig.streams],
            "problems": [{**p, "time": round(p["time"] - t0, 6)} for p in fig.problems],
            "inputs": [{**i, "time": round(i["time"] - t0, 6)} for i in fig.inputs],
            "typed_text": fig.keyboard.typed,
            "input_latency": _input_latency_json(fig, t0),
            "audio": [pb.as_json(t0) for pb in fig.playback.values()],
            "agent": fig.agent_events.as_json(t0, self.t_end),   # (the capture went on: nothing came)
            "migration": [{**e, "time": round(e["time"] - t0, 6)} for e in fig.migration],
            "unknown": _unknown_json(fig, t0),
            "transport": sorted({st.channel.transport for st in fig.channels if st.channel.transport}),
            "failure": next((st.failure for st in fig.channels if st.failure), None),
            **({"legs": self.legs[fig.number or 0]} if (fig.number or 0) in self.legs else {}),  # through a proxy
        }


DELAY_HOW = ("per direction, the nth SPICE message of a channel on one leg is the nth on the other (the legs "
             "carry the same bytes); its delay is its time on the leg it passes second minus its time on the "
             "first (each the capture time of the TCP segment that completes the message)")


def _close_json(tcp: Tcp | None, t0: float) -> dict[str, Any] | None:
    """The first FIN or RST one side sent: when, how, in which frame."""
    if tcp is None or tcp.close is None:
        return None
    return {"time": round(tcp.close[0] - t0, 6), "how": tcp.close[1], "frame": tcp.close[2]}


def _tcp_json(tcp: Tcp | None, t0: float, first: int = 0, width: int = 1) -> dict[str, Any]:
    """One direction's retransmitted segments and zero-window advertisements (the first TCP_EVENTS listed,
    and every retransmission counted per second, as the channel's other series)."""
    tcp = tcp or Tcp()
    periods = list(tcp.zero_periods)
    if tcp.zero_since is not None:  # still zero when the capture (or connection) ends
        periods.append((tcp.zero_since[0], None, tcp.zero_since[1], None))
    return {"segments": tcp.segments,
            "retransmitted_segments": tcp.retransmitted, "retransmitted_bytes": tcp.retransmitted_bytes,
            "retransmissions": [{"time": round(t - t0, 6), "frame": f} for t, f in tcp.retransmissions],
            "retransmissions_per_second": _series(tcp.retransmit_bins, first, width),
            "zero_windows": tcp.zero_windows,
            "zero_window_periods": [{"start": round(a - t0, 6), "end": None if b is None else round(b - t0, 6),
                                     "frame": fa, "frame_open": fb} for a, b, fa, fb in periods]}


INPUT_LATENCY_HOW = ("from each key press or click to the first draw on a display channel of the session after it "
                     "(whatever caused that draw)")


def _input_latency_json(fig: SessionFigures, t0: float) -> dict[str, Any]:
    ms = [v for _, v in fig.input_latency]
    out: dict[str, Any] = {"inputs": len(ms), "how": INPUT_LATENCY_HOW}
    if ms:
        out.update({"p50_ms": round(percentile(ms, 50), 3), "p95_ms": round(percentile(ms, 95), 3),
                    "max_ms": round(max(ms), 3),
                    "worst": [{"time": round(t - t0, 6), "ms": round(v, 3)}
                              for t, v in sorted(fig.input_latency, key=lambda x: -x[1])[:5]]})
    return out


def _leg_json(ch: Channel) -> dict[str, Any]:
    return {"client": ch.client, "server": ch.server, "transport": ch.transport, "transport_chain": ch.layers}


def _unknown_json(fig: SessionFigures, t0: float) -> dict[str, Any]:
    """How much of the screen is unknown at the end (draws that lost bytes in capture gaps), since when."""
    share, since = fig.unknown.result()
    return {"share": round(share, 6), "since": None if since is None else round(since - t0, 6)}


def _match_pongs(fig: SessionFigures) -> None:
    """Pair each PONG with the PING it echoes (same id and timestamp, same channel, sent before it).

    spice-server can send two PINGs with one id (its latency monitor), so the timestamp is part of the key."""
    for t, index, label, key in sorted(fig.pongs):
        sent = fig.pings[index].get(key, [])
        earlier = [x for x in sent if x <= t]
        if not earlier:
            fig.unanswered_pongs += 1
            continue
        sent.remove(earlier[0])
        fig.rtts.append((t, label, (t - earlier[0]) * 1000.0))
    fig.rtts.sort()
    fig.pongs.clear()


MAX_BINS = 2 * 86400  # series entries per channel: a capture whose clock jumps (a corrupt timestamp) stays bounded


def _series(bins: Counter, first: int, width: int = 1) -> list[int]:
    """Per second (per `width` seconds, averaged, where the capture spans more than MAX_BINS seconds)
    from second `first` of the capture to the last one counted."""
    if not bins:
        return []
    if width == 1:
        return [bins.get(i, 0) for i in range(first, max(bins) + 1)]
    out = [0] * ((max(bins) - first) // width + 1)
    for i, v in bins.items():
        if i >= first:
            out[(i - first) // width] += v
    return [v // width for v in out]


def _bin_width(counters: list[Counter]) -> int:
    """Seconds per entry of every series of a capture: 1, unless its seconds span more than MAX_BINS."""
    keys = [k for c in counters if c for k in (min(c), max(c))]
    span = max(keys) - min(keys) + 1 if keys else 0
    return max(1, -(-span // MAX_BINS))


def _spread(values: list[float]) -> dict[str, float]:
    return {"min_ms": round(min(values), 3), "avg_ms": round(sum(values) / len(values), 3),
            "max_ms": round(max(values), 3), "p95_ms": round(percentile(values, 95), 3)}


def _changes(states: list[tuple[float, bool]]) -> list[tuple[float, bool]]:
    out: list[tuple[float, bool]] = []
    for t, s in states:
        if not out or out[-1][1] != s:
            out.append((t, s))
    return out


def _raw(value: Any) -> bytes:
    """Bytes of a field the stack gives as bytes (or, from JSON, as hex)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return bytes.fromhex(value)
        except ValueError:
            return value.encode()
    return b""


def _migration_event(rec: Record, label: str) -> dict[str, Any]:
    """One MIGRATE_* message: who sent it, on which server's main channel, and the target it names
    (MIGRATE_BEGIN's dst_info, MIGRATE_SWITCH_HOST's own fields)."""
    f = rec.fields
    dst = f.get("dst_info") if isinstance(f.get("dst_info"), dict) else f if "port" in f else None
    target = tls_port = None
    if dst is not None:
        host = _raw(dst.get("host_data")).rstrip(b"\0").decode(errors="replace")
        port, sport = (p if p not in (None, 0, 0xFFFF) else None for p in (dst.get("port"), dst.get("sport")))
        target = f"{host}:{port}" if port is not None else host
        tls_port = sport
    return {"time": rec.time, "frame": rec.frame, "event": rec.type, "by": rec.direction.value, "channel": label,
            "server": rec.channel.server, "target": target, "tls_port": tls_port}


def _notify_text(f: dict[str, Any]) -> str:
    text = _raw(f.get("message")).rstrip(b"\0").decode(errors="replace")
    return f"{f.get('severity')}: {text}"


def gather(capture: str, keylog: KeyLog | str | None = None,
           also: Callable[[Record, float | None], None] | None = None,
           leg: str = "server") -> tuple[Figures, CaptureRecords]:
    """All figures of a capture, and its records once read (their `failure` says whether it breaks off);
    `keylog` decrypts TLS connections, `also` sees every record too, with the first packet's time
    (the report's thumbnails, in the same pass); `leg` the leg ("server" or "client") of each connection
    a capture taken at a proxy holds twice that the figures count. CaptureFailure when the capture cannot
    be read."""
    figures = Figures()
    records = open_records(capture, keylog=keylog, tap=figures.count, leg=leg)
    for rec in records:
        figures.add(rec)
        if also is not None:
            also(rec, figures.t0)
    figures.finish()
    figures.legs_of(records)
    return figures, records
