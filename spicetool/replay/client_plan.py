"""What a captured client sent, per channel connection, as a plan a new client can replay.

The capture is decoded by spicetool.dissect; of one session we keep each channel's link message
(its capabilities) and the client's data messages with their times. Messages that answer the
old server (ACK, ACK_SYNC, PONG, AGENT_TOKEN) are left out: the replaying client answers the new
server's messages itself. Migration and stream reports refer to state of the old server only.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from spicetool.stack import Direction, Message
from spicetool.stack.enums import ChannelType

MAIN = int(ChannelType.MAIN)
# (channel type or 0 for every channel, message name) -> why it is not resent
NOT_RESENT: dict[tuple[int, str], str] = {
    (0, "ack"): "answered", (0, "ack_sync"): "answered", (0, "pong"): "answered",
    (MAIN, "agent_token"): "answered",
    (0, "migrate_flush_mark"): "migration", (0, "migrate_data"): "migration",
    (0, "disconnecting"): "closing",
    (MAIN, "migrate_connected"): "migration", (MAIN, "migrate_connect_error"): "migration",
    (MAIN, "migrate_end"): "migration", (MAIN, "migrate_dst_do_seamless"): "migration",
    (MAIN, "migrate_connected_seamless"): "migration",
    (2, "stream_report"): "old server's streams", (2, "gl_draw_done"): "old server's GL scanout",
}


# What spice-gtk sends right after linking, for channels whose link stage the capture lacks
# (the values are those of the corpus's spicy sessions).
LINK_FOLLOW_UP: dict[int, tuple[str, dict]] = {
    MAIN: ("attach_channels", {}),
    2: ("init", {"pixmap_cache_id": 1, "pixmap_cache_size": 20 * 1024 * 1024,
                 "glz_dictionary_id": 1, "glz_dictionary_window_size": 14 * 1024 * 1024}),
}


class PlanError(Exception):
    """The capture has nothing a client could replay (one line, for the user)."""


@dataclass
class ChannelPlan:
    channel_type: int
    channel_id: int
    link: dict | None                 # the captured LinkMess fields; None: the capture began later
    start: float                      # seconds from the session's start: when it linked
    messages: list[tuple[float, Message]] = field(default_factory=list)
    left_out: Counter = field(default_factory=Counter)  # reason -> messages not resent

    @property
    def name(self) -> str:
        from spicetool.stack import channel_name
        return f"{channel_name(self.channel_type)}:{self.channel_id}"


@dataclass
class SessionPlan:
    session: int
    channels: list[ChannelPlan]       # main first, then in the order they linked
    duration: float                   # seconds from the session's start to its last record
    damaged: str | None = None        # the capture breaks off here (what came before is used)


def _resent(ctype: int, name: str) -> str | None:
    """Why a client message is not resent, or None when it is."""
    return NOT_RESENT.get((0, name)) or NOT_RESENT.get((ctype, name))


def build_plan(capture: str, session: int | None = None, leg: str = "server") -> SessionPlan:
    """The replay plan of one session (default: the first with a client side), from the `leg`
    ("server" or "client") of each connection that a capture taken at a proxy holds twice."""
    from spicetool.capture import CaptureFailure, open_records

    chans: dict[int, ChannelPlan] = {}          # Channel.index -> plan
    order: dict[int, list[int]] = {}            # session -> channel indexes in link order
    first: dict[int, float] = {}                # session -> time of its first record
    last: dict[int, float] = {}
    client_seen: set[int] = set()               # sessions with client bytes
    try:
        records = open_records(capture, sessions=None if session is None else {session}, leg=leg)
        for rec in records:
            ch = rec.channel
            s = ch.session
            if s is None:
                continue
            # records of connections picked up mid-stream may come out of time order
            first[s] = min(first.get(s, rec.time), rec.time)
            last[s] = max(last.get(s, rec.time), rec.time)
            if rec.direction is not Direction.CLIENT or rec.layer not in ("link", "message"):
                continue
            client_seen.add(s)
            plan = chans.get(ch.index)
            if plan is None:
                plan = chans[ch.index] = ChannelPlan(ch.channel_type or 0, ch.channel_id or 0, None,
                                                     rec.time)
                order.setdefault(s, []).append(ch.index)
            if rec.layer == "link":
                if rec.type == "link_mess":
                    plan.link = dict(rec.fields)
                    plan.start = rec.time
                continue
            msg = rec.event
            why = _resent(plan.channel_type, msg.name)
            if why:
                plan.left_out[why] += 1
            else:
                plan.messages.append((rec.time, msg))
    except CaptureFailure as e:
        raise PlanError(str(e)) from None
    damaged = records.damage
    if session is not None and session not in first:
        raise PlanError(f"{capture}: no session {session} in this capture")
    candidates = [s for s in sorted(first) if s in client_seen]
    if not candidates:
        raise PlanError(f"{capture}: no client side to replay (no SPICE bytes from a client"
                        + (f" in session {session})" if session is not None else ")"))
    s = candidates[0]
    plans = [chans[i] for i in order[s]]
    t0 = first[s]
    for p in plans:
        p.start -= t0
        p.messages = sorted(((t - t0, m) for t, m in p.messages), key=lambda tm: tm[0])
    # main links first: the others need the session id its INIT gives
    plans.sort(key=lambda p: (p.channel_type != MAIN, p.start))
    if not plans or plans[0].channel_type != MAIN:
        plans.insert(0, ChannelPlan(MAIN, 0, None, 0.0))
    for p in plans:
        _follow_up(p)
    return SessionPlan(s, plans, last[s] - t0, damaged)


def _follow_up(p: ChannelPlan) -> None:
    """A channel picked up mid-stream gets the message spice-gtk sends after its link."""
    follow = LINK_FOLLOW_UP.get(p.channel_type)
    if p.link is not None or follow is None or any(m.name == follow[0] for _, m in p.messages):
        return
    from spicetool.stack import ChannelConnection, build_message
    data = build_message(p.channel_type, Direction.CLIENT, follow[0], follow[1])
    (msg,) = ChannelConnection.resume(p.channel_type).receive(Direction.CLIENT, data)
    p.messages.insert(0, (p.start, msg))
