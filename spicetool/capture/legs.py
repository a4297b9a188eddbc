"""The two legs of one connection in a capture taken at a proxy.

A proxy (tinyproxy's HTTP CONNECT, websockify, a TCP relay) between a client and a server
makes each SPICE channel connection twice: the client leg (client <-> proxy, often inside a
CONNECT tunnel or WebSocket) and the server leg (proxy <-> server, plain TCP). A capture taken
at the proxy holds both, and each carries the same SPICE bytes.

Recognising them. Two channel connections are the legs of one when
- their link messages are equal (version, connection id, channel type and id, caps), and
- their link replies are equal. The reply carries the server's 162-byte RSA public key, which
  spice-server makes afresh for every connection, so two connections with the same reply are
  one connection seen twice (equal link messages alone are common: every client's main
  channel sends connection id 0 with the same caps).
The client leg sees the link message first and the reply last (the proxy relays each way);
when the two orders disagree (clocks of merged captures), the leg with more transport layers is
the client's (a proxy takes CONNECT or WebSocket off; a TLS it relays stays on both legs), then
the leg whose link round trip is the longer one (it encloses the other's), then the one that
appeared first.

When a link message equals that of an earlier connection still waiting for its reply, the
later one is a candidate server leg: the session decoder gives it the earlier one's session
at once (so the main channels' legs never make two sessions), and takes it back if the
replies turn out to differ.

A channel stays undecided (its leg not known) from its creation until it is paired or
nothing can pair it any more: its reply came and no connection that could be its twin still
waits for one, or WINDOW seconds of capture time passed since its link message, or it
closed. Readers that select one leg hold records while a channel is undecided (records.py,
bounded by the window and by a number of records).

The proxy's added delay: the nth message of each direction on one leg is the nth on the
other; client to server it is the server leg's time minus the client leg's, server to
client the reverse. Figures per session and direction: p50, p95 and max in ms.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from spicetool.stack import Direction

# sessions.py's Channel and Record (it imports this module: named loosely here, no import cycle)
Channel = Any
Record = Any

WINDOW = 3.0  # seconds of capture time a channel waits for its twin after its link message
LEGS = ("server", "client", "both")
MAX_AHEAD = 100_000  # message times one leg may be ahead of the other before the delay pairing gives up
_MESS_FIELDS = ("major_version", "minor_version", "connection_id", "channel_type", "channel_id", "common_caps",
                "channel_caps")
_REPLY_FIELDS = ("error", "pub_key", "common_caps", "channel_caps")


def _key(fields: dict[str, Any], names: tuple[str, ...]) -> tuple:
    return tuple(tuple(v) if isinstance(v, list) else v for v in (fields.get(n) for n in names))


@dataclass
class _Leg:
    channel: Channel
    opened: float  # capture time of its creation
    mess: tuple | None = None
    mess_time: float = 0.0
    reply: tuple | None = None
    reply_time: float = 0.0
    candidate: Channel | None = None  # the earlier leg whose session it was given


class LegMatcher:
    """Pairs the legs of channel connections, as the session decoder sees their link stage."""

    def __init__(self, window: float = WINDOW, on_alone: Callable[[Channel, Channel | None], None] | None = None) -> None:
        self.window = window
        self.on_alone = on_alone  # told of each channel decided to have no twin, with the leg it was a candidate of
        self.open: dict[int, _Leg] = {}  # channel index -> undecided leg (read on every record: no call)
        self.pairs: list[tuple[Channel, Channel]] = []  # (client leg, server leg), in order of pairing
        self.now = 0.0

    # -- what the session decoder tells ------------------------------------------------
    def opened(self, ch: Channel, time: float) -> None:
        """A channel connection that may have a link stage (not a mid-session one)."""
        if ch.leg is None and ch.index not in self.open:
            self.open[ch.index] = _Leg(ch, time)

    def link_mess(self, ch: Channel, fields: dict[str, Any], time: float) -> Channel | None:
        """Its link message; returns the earlier leg it may be the server leg of (to share its session)."""
        leg = self.open.get(ch.index)
        if leg is None:
            if ch.leg is not None:
                return None
            leg = self.open[ch.index] = _Leg(ch, time)
        leg.mess, leg.mess_time = _key(fields, _MESS_FIELDS), time
        for other in self.open.values():  # the earliest leg with the same link message, still unanswered
            if other is not leg and other.mess == leg.mess and other.reply is None \
                    and time - other.mess_time <= self.window and not self._claimed(other):
                leg.candidate = other.channel
                return other.channel
        return None

    def link_reply(self, ch: Channel, fields: dict[str, Any], time: float) -> tuple[Channel, Channel] | None:
        """Its link reply; returns (client leg, server leg) when it pairs two channels."""
        leg = self.open.get(ch.index)
        if leg is None or leg.mess is None or leg.reply is not None:
            return None
        leg.reply, leg.reply_time = _key(fields, _REPLY_FIELDS), time
        for other in list(self.open.values()):
            if other is not leg and other.reply == leg.reply and other.mess == leg.mess:
                return self._pair(leg, other)
        self.settle(time)
        return None

    def closed(self, ch: Channel) -> None:
        """Its TCP connection ended: what has not paired it by now will not."""
        leg = self.open.get(ch.index)
        if leg is not None and (leg.reply is None or not self._may_pair(leg)):
            self._alone(leg)

    def settle(self, now: float) -> list[Channel]:
        """Decide every channel that can no longer pair (the window passed, or no twin can come)."""
        self.now = max(self.now, now)
        decided = []
        for leg in list(self.open.values()):
            start = leg.mess_time if leg.mess is not None else leg.opened
            if self.now - start > self.window or (leg.reply is not None and not self._may_pair(leg)):
                self._alone(leg)
                decided.append(leg.channel)
        return decided

    def give_up(self, ch: Channel) -> None:
        """Decide it alone now (a reader cannot hold its records any longer)."""
        leg = self.open.get(ch.index)
        if leg is not None:
            self._alone(leg)

    def finish(self) -> None:
        for leg in list(self.open.values()):
            self._alone(leg)

    def undecided(self, ch: Channel) -> bool:
        return ch.index in self.open

    # -- inside ----------------------------------------------------------------------------
    def _claimed(self, leg: _Leg) -> bool:
        return any(o.candidate is leg.channel for o in self.open.values())

    def _may_pair(self, leg: _Leg) -> bool:
        """Whether a channel still waiting for its reply could be this one's twin."""
        return any(o is not leg and o.mess == leg.mess and o.reply is None
                   and abs(o.mess_time - leg.mess_time) <= self.window for o in self.open.values())

    def _alone(self, leg: _Leg) -> None:
        del self.open[leg.channel.index]
        leg.channel.leg = "single"
        if self.on_alone is not None:
            self.on_alone(leg.channel, leg.candidate)

    def _pair(self, a: _Leg, b: _Leg) -> tuple[Channel, Channel]:
        client, server = (a, b) if _client_first(a, b) else (b, a)
        for leg, name, twin in ((client, "client", server), (server, "server", client)):
            del self.open[leg.channel.index]
            leg.channel.leg, leg.channel.twin = name, twin.channel.index
        pair = (client.channel, server.channel)
        self.pairs.append(pair)
        return pair


def _client_first(a: _Leg, b: _Leg) -> bool:
    """Whether a is the client leg of the pair (a, b)."""
    mess = (a.mess_time > b.mess_time) - (a.mess_time < b.mess_time)  # -1: a's link message came first
    reply = (a.reply_time > b.reply_time) - (a.reply_time < b.reply_time)
    if mess and reply and mess != reply:  # a saw the message first and the reply last, or the reverse
        return mess < 0
    if mess and not reply:
        return mess < 0
    if reply and not mess:
        return reply > 0
    la, lb = len(a.channel.layers), len(b.channel.layers)  # a proxy peels CONNECT or WebSocket off
    if la != lb:
        return la > lb
    span_a, span_b = a.reply_time - a.mess_time, b.reply_time - b.mess_time
    if span_a != span_b:
        return span_a > span_b
    return a.channel.index < b.channel.index


# -- the proxy's added delay -------------------------------------------------------------------

def spread_ms(values: array | list[float]) -> dict[str, float] | None:
    """p50, p95 and max (nearest rank) of delays in seconds, in ms; None when there are none."""
    if not len(values):
        return None
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    return {"count": len(ordered), "p50_ms": round(rank(50) * 1000, 3), "p95_ms": round(rank(95) * 1000, 3),
            "max_ms": round(ordered[-1] * 1000, 3)}


@dataclass
class _PairTimes:
    client: Channel
    server: Channel
    ahead: dict[Direction, tuple[str, deque]] = field(default_factory=dict)  # direction -> (leg ahead, times)


class LegDelays:
    """The proxy's added delay per session and direction, from the records of both legs."""

    def __init__(self) -> None:
        self._pairs: dict[int, _PairTimes] = {}  # channel index (either leg) -> its pair
        self.delays: dict[tuple[int, Direction], array] = {}  # (session, direction) -> seconds

    def add(self, rec: Record) -> None:
        ch = rec.channel
        if rec.layer != "message" or ch.twin is None or ch.leg not in ("client", "server"):
            return
        pt = self._pairs.get(ch.index)
        if pt is None:
            return
        d = rec.direction
        leg, times = pt.ahead.get(d, (ch.leg, deque()))
        if leg == ch.leg or not times:
            if len(times) < MAX_AHEAD:
                times.append(rec.time)
            pt.ahead[d] = (ch.leg, times)
            return
        other = times.popleft()  # the same message on the other leg
        first_leg = "client" if d == Direction.CLIENT else "server"  # the leg it passes first
        delay = rec.time - other if ch.leg != first_leg else other - rec.time
        self.delays.setdefault((pt.client.session or 0, d), array("d")).append(delay)

    def track(self, client: Channel, server: Channel) -> None:
        pt = _PairTimes(client, server)
        self._pairs[client.index] = self._pairs[server.index] = pt

    def figures(self, session: int) -> dict[str, dict[str, float] | None]:
        """{"client_to_server": {count, p50_ms, p95_ms, max_ms} | None, "server_to_client": ...}"""
        return {"client_to_server": spread_ms(self.delays.get((session, Direction.CLIENT), [])),
                "server_to_client": spread_ms(self.delays.get((session, Direction.SERVER), []))}
