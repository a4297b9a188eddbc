"""From TCP streams to SPICE records: finds SPICE connections, feeds the stack, groups sessions.

A connection is SPICE when its client opens with the link magic "REDQ" (any port), or,
for captures that start mid-session, when a run of plausible data headers is found in
it. Channel connections are grouped into sessions by the connection id of their link
message, which is the session id the main channel's INIT announced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from spicetool.dissect.capture import Segment
from spicetool.dissect.tcp import Data, Gap, TcpConnection, TcpTracker
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

LINK_MAGIC = b"REDQ"
RESYNC_WINDOW = 64 * 1024  # bytes of an unknown stream searched for data headers
MAIN_CHANNEL = 1


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
    probe_time: dict[Direction, tuple[float, int]] = field(default_factory=dict)


class SessionDecoder:
    """Feed it TCP segments in capture order; it yields records in the same order."""

    def __init__(self) -> None:
        self.tcp = TcpTracker()
        self.channels: list[Channel] = []
        self.sessions: dict[int, int] = {}  # SPICE session id -> our session number
        self.session_count = 0
        self._midstream_sessions: dict[str, int] = {}  # server endpoint -> session number
        self.last_time = 0.0
        self.last_frame = 0

    # -- sessions ---------------------------------------------------------------------
    def _new_session(self, session_id: int | None) -> int:
        self.session_count += 1
        if session_id:
            self.sessions[session_id] = self.session_count
        return self.session_count

    def _on_link_mess(self, ch: Channel, parser: ChannelConnection) -> None:
        ch.channel_type = parser.channel_type
        ch.channel_id = parser.channel_id
        conn_id = parser.connection_id or 0
        if ch.channel_type == MAIN_CHANNEL and not conn_id:
            ch.session = self._new_session(None)  # its id comes with MAIN_INIT
        elif conn_id in self.sessions:
            ch.session, ch.session_id = self.sessions[conn_id], conn_id
        else:
            ch.session, ch.session_id = self._new_session(conn_id), conn_id

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
                    self._on_link_mess(ch, parser)
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
        for conn, from_client, item in self.tcp.feed(seg):
            yield from self._item(conn, from_client, item)
        conn = self.tcp.connections.get(self.tcp._key(seg.src, seg.dst))
        if conn is not None and conn.closed:
            yield from self._close(conn)

    def finish(self) -> Iterator[Record]:
        """End of capture: flush what waits behind holes and undecided connections."""
        for conn in list(self.tcp.connections.values()):
            yield from self._close(conn)

    def _close(self, conn: TcpConnection) -> Iterator[Record]:
        for c, from_client, item in self.tcp.finish(conn, self.last_time, self.last_frame):
            yield from self._item(c, from_client, item)
        st: _Tracked | None = conn.user  # type: ignore[assignment]
        if st is not None and st.state == "unknown":
            yield from self._decide(conn, st, final=True)
        self.tcp.drop(conn)

    def _item(self, conn: TcpConnection, from_client: bool, item: Data | Gap) -> Iterator[Record]:
        st: _Tracked | None = conn.user  # type: ignore[assignment]
        if st is None:
            st = conn.user = _Tracked()
        if st.state == "ignored":
            return
        direction = Direction.CLIENT if from_client else Direction.SERVER
        if st.state == "unknown":
            if isinstance(item, Gap):
                st.probe.pop(direction, None)  # what came before the hole is no use
                return
            if from_client and not st.probe and item.data[:4] == LINK_MAGIC:
                st.state = "spice"
                st.channel = self._channel(conn, midstream=False)
                parser = ChannelConnection()
                st.parsers = {Direction.CLIENT: parser, Direction.SERVER: parser}
            else:
                buf = st.probe.setdefault(direction, bytearray())
                st.probe_time.setdefault(direction, (item.time, item.frame))
                if len(buf) < RESYNC_WINDOW:
                    buf += item.data[: RESYNC_WINDOW - len(buf)]
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
        found: dict[Direction, tuple[int, int | None]] = {}
        for direction, buf in st.probe.items():
            hit = find_resync_point(bytes(buf), direction, None, True)
            if hit is not None:
                found[direction] = hit
        full = any(len(b) >= RESYNC_WINDOW for b in st.probe.values())
        if not found:
            if final or full:
                st.state = "ignored"
                st.probe.clear()
            return
        types = {t for _, t in found.values() if t is not None}
        if len(types) > 1 and not (final or full):
            return  # the two directions disagree on the channel: wait for more data
        if not final and not full and len(found) < 2 and sum(len(b) for b in st.probe.values()) < 4096:
            return  # one direction, little data: wait before trusting a guess
        channel_type = next(iter(types)) if len(types) == 1 else found.get(Direction.SERVER, (0, None))[1]
        st.state = "spice"
        ch = st.channel = self._channel(conn, midstream=True)
        ch.channel_type = channel_type
        ch.channel_id = 0
        ch.session = self._midstream_sessions.get(conn.server) or self._new_session(None)
        self._midstream_sessions[conn.server] = ch.session
        parser = ChannelConnection.resume(channel_type, 0, True)
        st.parsers = {Direction.CLIENT: parser, Direction.SERVER: parser}
        for direction, buf in list(st.probe.items()):
            time, frame = st.probe_time[direction]
            if direction in found:
                yield from self._data(st, direction, bytes(buf[found[direction][0]:]), time, frame)
            else:
                st.pending[direction] = bytearray()
                yield from self._data(st, direction, bytes(buf), time, frame)
        st.probe.clear()

    def _channel(self, conn: TcpConnection, midstream: bool) -> Channel:
        ch = Channel(len(self.channels), conn.client, conn.server, midstream=midstream)
        ch.first_time = ch.last_time = conn.start
        self.channels.append(ch)
        return ch


def _mini(st: _Tracked) -> bool:
    for parser in st.parsers.values():
        if parser.mini_header is not None:
            return bool(parser.mini_header)
    return True


def decode_segments(segments: Iterable[Segment], decoder: SessionDecoder | None = None) -> Iterator[Record]:
    """All records of a stream of segments, in capture order."""
    decoder = decoder or SessionDecoder()
    for seg in segments:
        yield from decoder.feed(seg)
    yield from decoder.finish()
