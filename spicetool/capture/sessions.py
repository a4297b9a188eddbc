"""From TCP streams to SPICE records: finds SPICE connections, feeds the stack, groups sessions.

A connection is SPICE when its client opens with the link magic "REDQ" (any port), or,
for captures that start mid-session, when a run of plausible data headers is found in
it. Channel connections are grouped into sessions by the connection id of their link
message, which is the session id the main channel's INIT announced.

Under the SPICE bytes a connection may carry transport layers, stacked in any order (see
`spicetool.capture.layers`): an HTTP CONNECT tunnel through a proxy, a WebSocket, TLS. A TLS
connection with its secrets in a key log (or in the capture's Decryption Secrets blocks) is
decoded like any other; without, it is reported once as TLS-encrypted (a "tls_encrypted" error
record) and left there. What the CONNECT and WebSocket layers tell (the proxy's target and answer,
the Upgrade, close codes) becomes "transport" records; a refused or unanswered CONNECT, a refused
Upgrade or broken framing are "error" records, the connection's failure. Each channel keeps its
chain (`layers`, `transport`: chain.py).

A capture taken at a proxy holds each connection twice; the legs are paired on their link stage,
above whatever transports each leg has (legs.py), and share one session.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from spicetool.capture.chain import chain_text
from spicetool.capture.frames import Segment
from spicetool.capture.keylog import KeyLog
from spicetool.capture.layers import MAX_LAYERS, OTHER_HTTP, WAIT, make_layer, pick
from spicetool.capture.legs import LegMatcher
from spicetool.capture.tcp import Data, Gap, TcpConnection, TcpTracker
from spicetool.capture.tls_records import record_chain
from spicetool.capture.transport import MAX_HEAD
from spicetool.stack import (
    AgentMessage,
    ChannelConnection,
    Direction,
    LinkRecord,
    Message,
    ProtocolError,
    channel_name,
    find_resync_point,
)
from spicetool.stack.enums import ChannelType
from spicetool.stack.link import MAGIC

LINK_MAGIC = MAGIC
RESYNC_WINDOW = 64 * 1024  # bytes of an unknown stream searched for data headers
DECIDE_BYTES = 2048  # bytes of an unknown connection seen before guessing its channel
ALL_CHANNEL_TYPES = tuple(int(t) for t in ChannelType)
MAIN_CHANNEL = int(ChannelType.MAIN)


@dataclass(slots=True)
class Channel:
    """What we know of one SPICE channel connection."""

    index: int  # order of appearance among SPICE connections
    client: str
    server: str
    channel_type: int | None = None
    channel_id: int | None = None
    session: int | None = None  # our session number, 1-based, in order of appearance
    session_id: int | None = None  # SPICE's session (connection) id, when seen
    midstream: bool = False  # the link stage was not captured
    tls: str | None = None  # "TLS 1.3, TLS_AES_256_GCM_SHA384, SNI host" when the connection was TLS
    tls_keys: str | None = None  # where its secrets came from: a key log's path, the capture's blocks
    transport: str | None = None  # the transport chain as text (chain.py), None on plain TCP
    layers: list[dict[str, Any]] = field(default_factory=list)  # the chain, bottom first: each layer's info()
    leg: str | None = None  # "client"/"server": a leg of a connection seen twice (legs.py); "single"; None: undecided
    twin: int | None = None  # the other leg's index, when it has one
    first_time: float = 0.0
    last_time: float = 0.0

    @property
    def channel(self) -> str:
        return channel_name(self.channel_type) if self.channel_type is not None else "unknown"

    @property
    def label(self) -> str:
        """"display:1"; "unknown" for a connection that never showed which channel it is."""
        return self.channel if self.channel_id is None else f"{self.channel}:{self.channel_id}"


@dataclass(slots=True)
class Record:
    """One line of output: a link record, a message, an agent message, a gap or an error."""

    time: float
    frame: int
    channel: Channel
    direction: Direction
    layer: str  # "link", "message", "agent", "gap", "error", "transport"
    type: str
    type_id: int | None
    size: int
    fields: dict[str, Any]
    event: Any = None


@dataclass
class _Tracked:
    """Per-TCP-connection state of the SPICE layer."""

    state: str = "unknown"  # "unknown", "spice", "ignored"
    channel: Channel | None = None
    parsers: dict[Direction, ChannelConnection] = field(default_factory=dict)
    pending: dict[Direction, bytearray] = field(default_factory=dict)  # waiting for a resync point
    probe: dict[Direction, bytearray] = field(default_factory=dict)  # undecided connection's first bytes
    probe_chunks: dict[Direction, list[tuple[int, float, int]]] = field(default_factory=dict)  # (size, time, frame)
    layers: list[Any] = field(default_factory=list)  # transports under the SPICE bytes, bottom first
    sniff: bytearray | None = None  # the top's first client bytes, too few yet to say what they open
    sniff_at: tuple[float, int] = (0.0, 0)  # (time, frame) of the first of them
    described: bool = False  # the channel's tls/transport strings were set since its layers last spoke


def _gone(ch, first_leg) -> None:
    """What a matcher tells when its decoder is gone: nobody listens."""


# what a payload tap is handed: the TCP connection, from_client, and the SPICE layer's bytes or hole
PayloadTap = Callable[[TcpConnection, bool, Data | Gap], object]


class SessionDecoder:
    """Feed it TCP segments in capture order; it yields records in the same order.

    `keylog`: a KeyLog (or the path of one) whose secrets decrypt TLS connections.
    `payload_tap` sees the bytes (and holes) each connection hands the SPICE layer, with
    CONNECT, WebSocket and TLS already removed, before they are decoded (`export` writes them
    as plain TCP); `spice_channel(conn)` says afterwards which connections were SPICE."""

    def __init__(self, keylog: KeyLog | str | None = None, payload_tap: PayloadTap | None = None) -> None:
        self.keylog = KeyLog(keylog) if isinstance(keylog, str) else keylog
        self.payload_tap = payload_tap
        self._orphan_sessions: dict[str, int] = {}  # server endpoint -> session of connections that never got to SPICE
        self._deferred: dict[int, list[Record]] = {}  # channel index -> transport records waiting for its session
        self.tcp = TcpTracker()
        self.channels: list[Channel] = []
        self.sessions: dict[int, int] = {}  # SPICE session id -> our session number
        self.session_count = 0
        self._midstream_sessions: dict[str, int] = {}  # server endpoint -> session number
        self.last_time = 0.0
        self.last_frame = 0
        # a weak method: the matcher must not hold its decoder in a reference cycle (a replay
        # looping for hours drops one decoder per round, freed at once only without a cycle)
        on_alone = weakref.WeakMethod(self._on_alone)
        self.legs = LegMatcher(on_alone=lambda ch, first: (on_alone() or _gone)(ch, first))
        self.encrypted = 0  # TLS connections told as encrypted (not decoded)
        self.broken: list[str] = []  # "client → server: reason" of each connection whose transport broke

    # -- sessions ---------------------------------------------------------------------
    def _new_session(self, session_id: int | None) -> int:
        self.session_count += 1
        if session_id:
            self.sessions[session_id] = self.session_count
        return self.session_count

    def _on_link_mess(self, ch: Channel, parser: ChannelConnection, fields: dict[str, Any], time: float) -> None:
        ch.channel_type = parser.channel_type
        ch.channel_id = parser.channel_id
        conn_id = parser.connection_id or 0
        first_leg = self.legs.link_mess(ch, fields, time)
        if ch.channel_type == MAIN_CHANNEL and not conn_id:
            # its id comes with MAIN_INIT; a proxy's second leg of a main channel is the first leg's session
            ch.session = first_leg.session if first_leg is not None and first_leg.session else \
                self._new_session(None)
        elif conn_id in self.sessions:
            ch.session, ch.session_id = self.sessions[conn_id], conn_id
        else:
            ch.session, ch.session_id = self._new_session(conn_id), conn_id

    def _on_link_reply(self, ch: Channel, fields: dict[str, Any], time: float) -> None:
        pair = self.legs.link_reply(ch, fields, time)
        if pair is not None:
            client, server = pair
            self._name_relay(client)
            if server.session != client.session:  # legs that did not share a session at their link message
                server.session = client.session
                if server.session_id:
                    self.sessions[server.session_id] = client.session  # type: ignore[assignment]

    def _on_alone(self, ch: Channel, first_leg: Channel | None) -> None:
        """A channel that took another's session as its possible second leg, and is not: a session of its own."""
        if first_leg is not None and ch.channel_type == MAIN_CHANNEL and ch.session == first_leg.session:
            ch.session = self._new_session(None)
            if ch.session_id:
                self.sessions[ch.session_id] = ch.session

    def _on_main_init(self, ch: Channel, parser: ChannelConnection) -> None:
        sid = parser.session_id
        if sid:
            ch.session_id = sid
            if ch.session is None:
                ch.session = self._new_session(sid)
            self.sessions[sid] = ch.session

    # -- records ------------------------------------------------------------------------
    def _records(
        self, ch: Channel, parser: ChannelConnection, events: Iterable[Any], time: float, frame: int
    ) -> Iterator[Record]:
        if self._deferred and ch.session is not None and ch.index in self._deferred:  # mid-session guesses
            yield from self._deferred.pop(ch.index)
        for ev in events:
            if isinstance(ev, Message):
                if ch.channel_type is None:
                    ch.channel_type = ev.channel_type
                if ev.name == "init" and ch.channel_type == MAIN_CHANNEL and ev.direction == Direction.SERVER:
                    self._on_main_init(ch, parser)
                yield Record(time, frame, ch, ev.direction, "message", ev.name, ev.type_id, ev.size, ev.fields, ev)
            elif isinstance(ev, LinkRecord):
                if ev.name == "link_mess":
                    self._on_link_mess(ch, parser, ev.fields, time)
                    if ch.index in self._deferred:  # the transport's records, now that the session is known
                        yield from self._deferred.pop(ch.index)
                elif ev.name == "link_reply":
                    self._on_link_reply(ch, ev.fields, time)
                yield Record(time, frame, ch, ev.direction, "link", ev.name, None, ev.size, ev.fields, ev)
            elif isinstance(ev, AgentMessage):
                fields = dict(ev.fields)
                yield Record(
                    time, frame, ch, ev.direction, "agent", "vd_agent_" + ev.name, ev.type_id, ev.size, fields, ev
                )
            elif isinstance(ev, ProtocolError):
                yield Record(
                    time, frame, ch, ev.direction, "error", "protocol_error", None, 0,
                    {"reason": ev.reason, "offset": ev.offset, "fatal": ev.fatal}, ev,
                )
        ch.last_time = time

    # -- feeding ------------------------------------------------------------------------
    def feed(self, seg: Segment) -> Iterator[Record]:
        self.last_time, self.last_frame = seg.time, seg.frame
        if self.legs.open:  # a leg waits for its twin
            self.legs.settle(seg.time)
        for conn, from_client, item in self.tcp.feed(seg):
            yield from self._item(conn, from_client, item)
        conn = self.tcp.connections.get(self.tcp._key(seg.src, seg.dst))
        if conn is not None and conn.closed:
            yield from self._close(conn)

    def finish(self) -> Iterator[Record]:
        """End of capture: flush what waits behind holes and undecided connections."""
        for conn in list(self.tcp.connections.values()):
            yield from self._close(conn)
        self.legs.finish()

    def _close(self, conn: TcpConnection) -> Iterator[Record]:
        for c, from_client, item in self.tcp.finish(conn, self.last_time, self.last_frame):
            yield from self._item(c, from_client, item)
        st: _Tracked | None = conn.user  # type: ignore[assignment]
        if st is not None:
            for level, layer in enumerate(st.layers):  # bottom first: what a layer flushes goes up the rest
                for c, out in layer.finish(self.last_time, self.last_frame):
                    yield from self._layer_out(conn, st, level, c, out)
            if st.sniff is not None:  # too few bytes ever came to tell: the SPICE layer has them
                data, (time, frame) = bytes(st.sniff), st.sniff_at
                st.sniff = None
                yield from self._clear(conn, st, True, Data(data, time, frame))
            if st.state == "unknown":
                yield from self._decide(conn, st, final=True)
            if st.channel is not None and st.channel.index in self._deferred:  # never got to SPICE
                ch = st.channel
                if ch.session is None:
                    self._orphan_session(conn, ch)
                yield from self._deferred.pop(ch.index)
            if st.channel is not None:
                self.legs.closed(st.channel)
        self.tcp.drop(conn)

    def _item(self, conn: TcpConnection, from_client: bool, item: Data | Gap) -> Iterator[Record]:
        st: _Tracked | None = conn.user  # type: ignore[assignment]
        if st is None:
            st = conn.user = _Tracked()
        if not st.layers and st.state != "unknown":  # plain SPICE (or ignored): the hot path
            yield from self._clear(conn, st, from_client, item)
        elif st.layers:
            for c, out in st.layers[0].feed(from_client, item):
                yield from self._layer_out(conn, st, 0, c, out)
        else:
            yield from self._top(conn, st, from_client, item)

    def _layer_out(self, conn: TcpConnection, st: _Tracked, level: int, from_client: bool,
                   out: Any) -> Iterator[Record]:
        """What the layer at `level` gives: its payload for the layer above it, or a notice as a record."""
        if isinstance(out, (Data, Gap)):
            up = level + 1
            if up < len(st.layers):
                if isinstance(out, Gap) or out.data:
                    for c, o in st.layers[up].feed(from_client, out):
                        yield from self._layer_out(conn, st, up, c, o)
            else:
                yield from self._top(conn, st, from_client, out)
            return
        yield from self._notice(conn, st, level, from_client, out)

    def _top(self, conn: TcpConnection, st: _Tracked, from_client: bool, item: Data | Gap) -> Iterator[Record]:
        """The bytes above the last layer: the first client bytes may open one more layer."""
        if st.state == "unknown" and from_client and Direction.CLIENT not in st.probe and len(st.layers) < MAX_LAYERS:
            if isinstance(item, Gap):
                st.sniff = None  # what came before the hole is no use
            elif not item.data:
                return
            else:
                if st.sniff is not None:
                    st.sniff += item.data
                    data, (time, frame) = bytes(st.sniff), st.sniff_at
                else:
                    data, time, frame = item.data, item.time, item.frame
                kind = pick(data)
                if kind == WAIT and len(data) < MAX_HEAD:
                    if st.sniff is None:
                        st.sniff, st.sniff_at = bytearray(data), (time, frame)
                    return
                st.sniff = None
                if kind == OTHER_HTTP:  # a web page's own requests in the same capture: not ours
                    st.state = "ignored"
                    st.probe.clear()
                    st.probe_chunks.clear()
                    return
                if kind is not None and kind != WAIT:
                    yield from self._push(conn, st, kind, Data(data, time, frame))
                    return
                item = Data(data, time, frame)
        yield from self._clear(conn, st, from_client, item)
        if not st.described and st.channel is not None and st.layers:
            self._describe(st)

    def _push(self, conn: TcpConnection, st: _Tracked, kind: str, first: Data) -> Iterator[Record]:
        """A new layer on top of the chain, fed the client bytes that opened it (and a server reply
        that the capture showed first)."""
        layer = make_layer(kind, self.keylog)
        st.layers.append(layer)
        level = len(st.layers) - 1
        held = st.probe.pop(Direction.SERVER, None)
        st.probe.clear()
        st.probe_chunks.clear()
        for c, out in layer.feed(True, first):
            yield from self._layer_out(conn, st, level, c, out)
        if held:
            for c, out in layer.feed(False, Data(bytes(held), first.time, first.frame)):
                yield from self._layer_out(conn, st, level, c, out)

    def _describe(self, st: _Tracked) -> None:
        """The channel's `tls` string and transport chain from its layers (TLS named in the chain's order)."""
        ch = st.channel
        assert ch is not None
        from spicetool.capture.tls import TlsConnection
        tls = [x.describe() for x in st.layers if isinstance(x, TlsConnection)]
        if tls:
            ch.tls = "; ".join(tls)
            ch.tls_keys = next((x.keys_from for x in st.layers if isinstance(x, TlsConnection) and x.keys_from
                                and x.state == "decrypting"), None)
        ch.layers = [x.info() for x in st.layers]
        self._name_relay(ch)
        st.described = True

    def _name_relay(self, ch: Channel) -> None:
        """A WebSocket whose answer does not say who sent it, on the client leg of a pair whose server
        leg has no WebSocket: a relay such as websockify answered it. Sets the chain's text."""
        if ch.leg == "client" and ch.twin is not None:
            twin = self.channels[ch.twin]
            if not any(e["layer"] == "websocket" for e in twin.layers):
                for e in ch.layers:
                    if e["layer"] == "websocket" and e["server"] is None:
                        e["server"] = "relay"
        ch.transport = chain_text(ch.layers)

    def _orphan_session(self, conn: TcpConnection, ch: Channel) -> None:
        """A session for a connection that never got to SPICE's link stage: one per server endpoint,
        so that a client's failed tries are told together."""
        ch.session = self._orphan_sessions.get(conn.server) or self._new_session(None)
        self._orphan_sessions[conn.server] = ch.session

    def _notice(self, conn: TcpConnection, st: _Tracked, level: int, from_client: bool, out: Any) -> Iterator[
            Record]:
        """A layer's notice as a record: TLS's as before ("tls_encrypted", "tls_error"), the other
        transports' as "transport" records, or "error" records for what breaks the connection."""
        from spicetool.capture.tls import TlsConnection
        layer = st.layers[level]
        is_tls = isinstance(layer, TlsConnection)
        ch = st.channel
        if ch is None and is_tls and layer.other_protocol and level == 0:  # HTTPS and the like: not ours
            st.state = "ignored"
            return
        direction = Direction.CLIENT if from_client else Direction.SERVER
        if is_tls:
            kind, name = "error", "tls_encrypted" if out.kind == "encrypted" else "tls_error"
        else:
            kind, name = _transport_record(layer, out)
        if ch is None:  # nothing decoded on this connection (yet): a channel of its own to say it on
            ch = st.channel = self._channel(conn, midstream=False)
            if is_tls and out.kind == "encrypted":
                st.state = "ignored"
        if is_tls and out.kind == "encrypted":
            self.encrypted += 1
        self._describe(st)
        st.described = False  # said again once SPICE bytes flow (a CONNECT's answer comes later)
        if kind == "error" and ch.session is None:
            self._orphan_session(conn, ch)
        if kind == "error" and not is_tls and out.kind in _FAILURES:
            st.state = "ignored"  # nothing SPICE's will come on this connection
        if kind == "error" and not is_tls and name != "websocket_close":
            self.broken.append(f"{conn.client} → {conn.server}: {out.reason}")
        rec = Record(out.time, out.frame, ch, direction, kind, name, None, 0, {"reason": out.reason, **out.fields})
        if ch.session is None:  # the link message will say which session: the record waits for it
            self._deferred.setdefault(ch.index, []).append(rec)
            return
        if ch.index in self._deferred:
            yield from self._deferred.pop(ch.index)
        yield rec

    def _opaque_tls(self, conn: TcpConnection, st: _Tracked) -> Iterator[Record]:
        direction = Direction.CLIENT if Direction.CLIENT in st.probe else Direction.SERVER
        _size, time, frame = st.probe_chunks[direction][0]
        ch = st.channel = st.channel or self._channel(conn, midstream=True)
        ch.midstream = True
        if ch.session is None:
            self._orphan_session(conn, ch)
        ch.tls = "TLS"
        ch.layers = [{"layer": "tls", "version": None, "cipher": None, "sni": None, "decrypted": False}]
        ch.transport = chain_text(ch.layers)
        self.encrypted += 1
        if ch.index in self._deferred:
            yield from self._deferred.pop(ch.index)
        yield Record(time, frame, ch, direction, "error", "tls_encrypted", None, 0,
                     {"reason": "TLS-encrypted, and its handshake is not in the capture: it cannot be decrypted "
                                "(a capture from the connection's start and its key log can)",
                      "version": None, "cipher": None, "sni": None})

    def _clear(self, conn: TcpConnection, st: _Tracked, from_client: bool, item: Data | Gap) -> Iterator[Record]:
        """The SPICE layer: a connection's clear bytes (as captured, or decrypted)."""
        if st.state == "ignored":
            return
        if self.payload_tap is not None:
            self.payload_tap(conn, from_client, item)
        direction = Direction.CLIENT if from_client else Direction.SERVER
        if st.state == "unknown":
            if isinstance(item, Gap):
                st.probe.pop(direction, None)  # what came before the hole is no use
                return
            buf = st.probe.get(direction)
            if from_client and buf is None and item.data[:4] == LINK_MAGIC:
                st.state = "spice"
                if st.channel is None:
                    st.channel = self._channel(conn, midstream=False)
                    self.legs.opened(st.channel, item.time)
                parser = ChannelConnection()
                st.parsers = {Direction.CLIENT: parser, Direction.SERVER: parser}
                yield from self._data(st, direction, item.data, item.time, item.frame)
                # a server link reply that the capture showed first waited for this
                held = st.probe.pop(Direction.SERVER, None)
                if held is not None and held[:4] == LINK_MAGIC:
                    yield from self._data(st, Direction.SERVER, bytes(held), item.time, item.frame)
                st.probe.clear()
                return
            if buf is None:
                buf = st.probe[direction] = bytearray()
                st.probe_chunks[direction] = []
            if len(buf) < RESYNC_WINDOW:
                piece = item.data[: RESYNC_WINDOW - len(buf)]
                buf += piece
                st.probe_chunks[direction].append((len(piece), item.time, item.frame))
            if Direction.CLIENT not in st.probe and st.probe[Direction.SERVER][:4] == LINK_MAGIC:
                return  # a link reply seen before the client's link message: wait for it
            yield from self._decide(conn, st, final=False)
            return
        ch = st.channel
        assert ch is not None
        if isinstance(item, Gap):
            # a hole inside a message whose size is known keeps the framing (the stack counts
            # through it); only a hole over a header makes us resynchronise by guessing
            parser = st.parsers[direction]
            # (only a gap of exact length: one a TLS or WebSocket layer resynchronised over is not)
            counted = item.exact and direction not in st.pending
            events, kept = parser.gap(direction, item.lost) if counted else ([], False)
            yield Record(
                item.time, item.frame, ch, direction, "gap", "tcp_gap", None, item.lost,
                {"lost_bytes": item.lost, "framing": "kept" if kept else "lost",
                 "reason": "segments missing from the capture; " + (
                     "the message they were in is damaged, the framing kept" if kept
                     else "a message header was in them, resynchronising" if counted else "resynchronising")},
            )
            yield from self._records(ch, parser, events, item.time, item.frame)
            if not kept:
                st.parsers[direction] = ChannelConnection.resume(ch.channel_type, ch.channel_id or 0, _mini(st))
                st.pending[direction] = bytearray()
            return
        yield from self._data(st, direction, item.data, item.time, item.frame)

    def _data(self, st: _Tracked, direction: Direction, data: bytes, time: float, frame: int) -> Iterator[Record]:
        ch = st.channel
        assert ch is not None
        pending = st.pending.get(direction)
        if pending is not None:  # after a gap: look for the next plausible header
            pending += data
            found = find_resync_point(bytes(pending), direction, ch.channel_type, _mini(st))
            if found is None:
                if len(pending) > RESYNC_WINDOW:
                    del pending[: len(pending) - RESYNC_WINDOW // 2]
                return
            del st.pending[direction]
            data = bytes(pending[found[0]:])
        parser = st.parsers[direction]
        yield from self._records(ch, parser, parser.receive(direction, data), time, frame)

    def _decide(self, conn: TcpConnection, st: _Tracked, final: bool) -> Iterator[Record]:
        """Is an undecided connection (no link stage seen) SPICE? Try to resynchronise on it."""
        full = any(len(b) >= RESYNC_WINDOW for b in st.probe.values())
        if not (final or full or sum(len(b) for b in st.probe.values()) >= DECIDE_BYTES):
            return  # too little data to trust a guess yet
        guess = guess_channel(st.probe)
        if guess is None:
            if final or full:
                st.state = "ignored"
                if any(record_chain(b) for b in st.probe.values()):  # TLS caught after its handshake
                    yield from self._opaque_tls(conn, st)
                st.probe.clear()
                st.probe_chunks.clear()
            return
        channel_type, offsets = guess
        st.state = "spice"
        ch = st.channel = st.channel or self._channel(conn, midstream=True)
        ch.midstream = True
        ch.channel_type = channel_type
        ch.channel_id = 0
        ch.session = self._midstream_sessions.get(conn.server) or self._new_session(None)
        self._midstream_sessions[conn.server] = ch.session
        parser = ChannelConnection.resume(channel_type, 0, True)
        st.parsers = {Direction.CLIENT: parser, Direction.SERVER: parser}
        for direction, buf in list(st.probe.items()):
            skip = offsets.get(direction)
            if skip is None:  # no header found yet in this direction: keep looking as data comes
                st.pending[direction] = bytearray()
                skip = 0
            pos = 0
            for size, time, frame in st.probe_chunks[direction]:  # each piece at its own time
                lo, hi = max(pos, skip), pos + size
                if hi > lo:
                    yield from self._data(st, direction, bytes(buf[lo:hi]), time, frame)
                pos = hi
        st.probe.clear()
        st.probe_chunks.clear()

    @staticmethod
    def spice_channel(conn: TcpConnection) -> Channel | None:
        """The SPICE channel a connection turned out to carry (None: not SPICE, or not decoded)."""
        st: _Tracked | None = conn.user  # type: ignore[assignment]
        return st.channel if st is not None and st.state == "spice" else None

    def _channel(self, conn: TcpConnection, midstream: bool) -> Channel:
        ch = Channel(len(self.channels), conn.client, conn.server, midstream=midstream)
        ch.first_time = ch.last_time = conn.start
        self.channels.append(ch)
        return ch


# Transport notices that break the connection (its failure), the rest are told as "transport" records
_FAILURES = TRANSPORT_FAILURES = frozenset({"proxy_refused", "proxy_no_answer", "websocket_refused"})
_CLEAN_CLOSES = {1000, 1001, 1005, None}  # normal closure, going away, no status


def _transport_record(layer: Any, out: Any) -> tuple[str, str]:
    """(layer, type) of the record for an HTTP CONNECT or WebSocket layer's notice."""
    from spicetool.capture.http_connect import HttpConnect
    if out.kind == "error":
        return "error", "proxy_error" if isinstance(layer, HttpConnect) else "websocket_error"
    if out.kind in _FAILURES:
        return "error", out.kind
    if out.kind == "websocket_close" and out.fields.get("code") not in _CLEAN_CLOSES:
        return "error", out.kind
    return "transport", out.kind


def guess_channel(probe: dict[Direction, bytearray]) -> tuple[int, dict[Direction, int]] | None:
    """The channel type whose messages explain the most of both directions' bytes.

    Several channels share type ids (main's 104 is inputs' 104), so each candidate type is
    tried on both directions and scored by the clean messages it decodes in a row.
    """
    best: tuple[int, int, int, dict[Direction, int]] | None = None  # (score, directions, -type, offsets)
    for ct in ALL_CHANNEL_TYPES:
        score, offsets = 0, {}
        for direction, buf in probe.items():
            hit = find_resync_point(bytes(buf), direction, ct, True)
            if hit is None:
                continue
            offsets[direction] = hit[0]
            score += _clean_messages(ct, direction, bytes(buf[hit[0]:]))
        if score and (best is None or (score, len(offsets), -ct) > best[:3]):
            best = (score, len(offsets), -ct, offsets)
    if best is None:
        return None
    return -best[2], best[3]


def _clean_messages(channel_type: int, direction: Direction, data: bytes) -> int:
    """How many messages decode cleanly, in a row, from the start of data."""
    count = 0
    for ev in ChannelConnection.resume(channel_type, 0, True).receive(direction, data):
        if isinstance(ev, ProtocolError) or (isinstance(ev, Message) and (ev.error or ev.name.startswith("unknown"))):
            break
        if isinstance(ev, Message) and (ev.fields or ev.size == 0):  # a body left undecoded proves nothing
            count += 1
    return count


def _mini(st: _Tracked) -> bool:
    for parser in st.parsers.values():
        if parser.mini_header is not None:
            return bool(parser.mini_header)
    return True


def decode_segments(segments: Iterable[Segment], decoder: SessionDecoder | None = None,
                    keylog: KeyLog | str | None = None) -> Iterator[Record]:
    """All records of a stream of segments, in capture order; `keylog` decrypts TLS connections."""
    decoder = decoder or SessionDecoder(keylog)
    for seg in segments:
        yield from decoder.feed(seg)
    yield from decoder.finish()
