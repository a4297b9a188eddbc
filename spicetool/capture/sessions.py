"""From TCP streams to SPICE records: finds SPICE connections, feeds the stack, groups sessions.

A connection is SPICE when its client opens with the link magic "REDQ" (any port), or,
for captures that start mid-session, when a run of plausible data headers is found in
it. Channel connections are grouped into sessions by the connection id of their link
message, which is the session id the main channel's INIT announced.

A connection that opens with a TLS ClientHello goes through `spicetool.capture.tls` first: with
its secrets in a key log its clear bytes are decoded like any other; without, it is reported
once as TLS-encrypted (a "tls_encrypted" error record) and left there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from spicetool.capture.frames import Segment
from spicetool.capture.keylog import KeyLog
from spicetool.capture.legs import LegMatcher
from spicetool.capture.tcp import Data, Gap, TcpConnection, TcpTracker
from spicetool.capture.tls_records import looks_like_client_hello, record_chain
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

if TYPE_CHECKING:   # the TLS layer (and its cryptography) is imported when a capture has TLS
    from spicetool.capture.tls import Notice, TlsConnection

LINK_MAGIC = b"REDQ"
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
    leg: str | None = None  # "client"/"server": a leg of a connection seen twice (legs.py); "single"; None: undecided
    twin: int | None = None  # the other leg's index, when it has one
    first_time: float = 0.0
    last_time: float = 0.0

    @property
    def channel(self) -> str:
        return channel_name(self.channel_type) if self.channel_type is not None else "unknown"


@dataclass(slots=True)
class Record:
    """One line of output: a link record, a message, an agent message, a gap or an error."""

    time: float
    frame: int
    channel: Channel
    direction: Direction
    layer: str  # "link", "message", "agent", "gap", "error"
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
    tls: TlsConnection | None = None  # the TLS layer under the SPICE bytes, when there is one


class SessionDecoder:
    """Feed it TCP segments in capture order; it yields records in the same order.

    `keylog`: a KeyLog (or the path of one) whose secrets decrypt TLS connections."""

    def __init__(self, keylog: KeyLog | str | None = None) -> None:
        self.keylog = KeyLog(keylog) if isinstance(keylog, str) else keylog
        self._tls_sessions: dict[str, int] = {}  # server endpoint -> session of connections we cannot decrypt
        self.tcp = TcpTracker()
        self.channels: list[Channel] = []
        self.sessions: dict[int, int] = {}  # SPICE session id -> our session number
        self.session_count = 0
        self._midstream_sessions: dict[str, int] = {}  # server endpoint -> session number
        self.last_time = 0.0
        self.last_frame = 0
        self.legs = LegMatcher(on_alone=self._on_alone)

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
        if self.legs.waiting:
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
        if st is not None and st.tls is not None:
            for c, out in st.tls.finish(self.last_time, self.last_frame):
                yield from self._tls_out(conn, st, c, out)
        if st is not None and st.state == "unknown":
            yield from self._decide(conn, st, final=True)
        if st is not None and st.channel is not None:
            self.legs.closed(st.channel)
        self.tcp.drop(conn)

    def _item(self, conn: TcpConnection, from_client: bool, item: Data | Gap) -> Iterator[Record]:
        st: _Tracked | None = conn.user  # type: ignore[assignment]
        if st is None:
            st = conn.user = _Tracked()
        if st.tls is None and st.state == "unknown" and from_client and isinstance(item, Data) \
                and Direction.CLIENT not in st.probe and looks_like_client_hello(item.data):
            from spicetool.capture.tls import TlsConnection
            st.tls = TlsConnection(self.keylog)
            held = st.probe.pop(Direction.SERVER, None)  # a server reply the capture showed first
            st.probe.clear()
            st.probe_chunks.clear()
            for c, out in st.tls.feed(True, item):
                yield from self._tls_out(conn, st, c, out)
            item, from_client = Data(bytes(held or b""), item.time, item.frame), False
        if st.tls is not None:
            if isinstance(item, Gap) or item.data:
                for c, out in st.tls.feed(from_client, item):
                    yield from self._tls_out(conn, st, c, out)
            return
        yield from self._clear(conn, st, from_client, item)

    def _tls_out(self, conn: TcpConnection, st: _Tracked, from_client: bool, out: Data | Gap | Notice) -> Iterator[
            Record]:
        """What the TLS layer gives: clear bytes for the SPICE layer, or a notice as a record."""
        assert st.tls is not None
        from spicetool.capture.tls import Notice
        if not isinstance(out, Notice):
            yield from self._clear(conn, st, from_client, out)
            if st.channel is not None and st.channel.tls is None:
                st.channel.tls = st.tls.describe()
            return
        ch = st.channel
        if ch is None and st.tls.other_protocol:  # HTTPS and the like in the same capture: not ours to report
            st.state = "ignored"
            return
        if ch is None:  # nothing decoded on this connection (yet): a channel of its own to say it on
            ch = st.channel = self._channel(conn, midstream=False)
            ch.session = self._tls_sessions.get(conn.server) or self._new_session(None)
            self._tls_sessions[conn.server] = ch.session
            if out.kind == "encrypted":
                st.state = "ignored"
        ch.tls = st.tls.describe()
        direction = Direction.CLIENT if from_client else Direction.SERVER
        yield Record(out.time, out.frame, ch, direction, "error", "tls_encrypted" if out.kind == "encrypted"
                     else "tls_error", None, 0, {"reason": out.reason, **out.fields})

    def _opaque_tls(self, conn: TcpConnection, st: _Tracked) -> Iterator[Record]:
        direction = Direction.CLIENT if Direction.CLIENT in st.probe else Direction.SERVER
        _size, time, frame = st.probe_chunks[direction][0]
        ch = st.channel = self._channel(conn, midstream=True)
        ch.session = self._tls_sessions.get(conn.server) or self._new_session(None)
        self._tls_sessions[conn.server] = ch.session
        ch.tls = "TLS"
        yield Record(time, frame, ch, direction, "error", "tls_encrypted", None, 0,
                     {"reason": "TLS-encrypted, and its handshake is not in the capture: it cannot be decrypted "
                                "(a capture from the connection's start and its key log can)",
                      "version": None, "cipher": None, "sni": None})

    def _clear(self, conn: TcpConnection, st: _Tracked, from_client: bool, item: Data | Gap) -> Iterator[Record]:
        """The SPICE layer: a connection's clear bytes (as captured, or decrypted)."""
        if st.state == "ignored":
            return
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
            yield Record(
                item.time, item.frame, ch, direction, "gap", "tcp_gap", None, item.lost,
                {"lost_bytes": item.lost, "reason": "segments missing from the capture; resynchronising"},
            )
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

    def _channel(self, conn: TcpConnection, midstream: bool) -> Channel:
        ch = Channel(len(self.channels), conn.client, conn.server, midstream=midstream)
        ch.first_time = ch.last_time = conn.start
        self.channels.append(ch)
        return ch


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
