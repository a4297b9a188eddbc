"""TCP reassembly for captures: retransmissions, reordering, lost segments, mid-stream starts.

Each direction of a connection is a `HalfStream` that turns segments into an ordered
stream of data chunks and gaps. A hole is declared lost (a gap) when the peer has
acknowledged data past it (the capture missed it, the receiver did not), when too much
data waits behind it, or when the capture ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spicetool.capture.frames import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Segment

MOD = 1 << 32
MAX_PENDING = 8 * 1024 * 1024  # bytes held behind a hole before it is declared lost
# frames to wait after the peer acknowledged past a hole: a capture may show the ACK before
# a segment that was only reordered on its way to the capture point
ACK_GRACE_FRAMES = 64


def seq_diff(a: int, b: int) -> int:
    """a - b in 32-bit sequence space, as a signed number."""
    d = (a - b) % MOD
    return d - MOD if d >= MOD // 2 else d


@dataclass(slots=True)
class Data:
    data: bytes
    time: float
    frame: int


@dataclass(slots=True)
class Gap:
    lost: int  # bytes missing from the stream
    time: float
    frame: int
    # the length is exact (TCP sequence numbers): a layer above may count through the hole; gaps
    # that a TLS or WebSocket layer found again by resynchronising only say roughly how much
    exact: bool = False


class HalfStream:
    """One direction of a TCP connection."""

    __slots__ = ("next_seq", "pending", "pending_bytes", "fin", "hole_acked_at")

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.pending: dict[int, tuple[bytes, float, int]] = {}
        self.pending_bytes = 0
        self.fin = False
        self.hole_acked_at: int | None = None  # frame at which the peer acknowledged past the hole

    def syn(self, seq: int) -> None:
        self.next_seq = (seq + 1) % MOD
        self.pending.clear()
        self.pending_bytes = 0

    def add(self, seq: int, payload: bytes, time: float, frame: int) -> list[Data | Gap]:
        if not payload:
            return []
        if self.next_seq is None:  # stream starts mid-way: take it from here
            self.next_seq = seq
        d = seq_diff(seq, self.next_seq)
        if d < 0:  # retransmission, maybe with new data at its tail
            if -d >= len(payload):
                return []
            payload, seq = payload[-d:], self.next_seq
        elif d > 0:  # a hole before it: hold it
            old = self.pending.get(seq)
            if old is None or len(old[0]) < len(payload):
                self.pending_bytes += len(payload) - (len(old[0]) if old else 0)
                self.pending[seq] = (payload, time, frame)
            if self.pending_bytes > MAX_PENDING:
                return self.skip_hole(time, frame)
            return []
        out: list[Data | Gap] = [Data(payload, time, frame)]
        self.next_seq = (seq + len(payload)) % MOD
        self._drain(out)
        return out

    def _drain(self, out: list[Data | Gap]) -> None:
        """Move held segments that now fit onto the stream."""
        self.hole_acked_at = None  # whatever hole there was is filled or skipped
        while self.pending:
            progressed = False
            for seq in list(self.pending):
                d = seq_diff(seq, self.next_seq)  # type: ignore[arg-type]
                if d > 0:
                    continue
                payload, time, frame = self.pending.pop(seq)
                self.pending_bytes -= len(payload)
                if -d < len(payload):
                    out.append(Data(payload[-d:], time, frame))
                    self.next_seq = (seq + len(payload)) % MOD
                progressed = True
            if not progressed:
                return

    def acked(self, ack: int, time: float, frame: int) -> list[Data | Gap]:
        """The peer acknowledged up to `ack`: a hole below it that stays open was lost from the capture."""
        if self.next_seq is None or not self.pending:
            return []
        if self.hole_acked_at is not None:
            return self.skip_hole(time, frame) if frame - self.hole_acked_at > ACK_GRACE_FRAMES else []
        if seq_diff(ack, self.next_seq) <= 0:
            return []
        first = min(self.pending, key=lambda s: seq_diff(s, self.next_seq))  # type: ignore[arg-type]
        if seq_diff(ack, first) >= 0:  # the receiver has what lies past the hole
            self.hole_acked_at = frame
        return []

    def skip_hole(self, time: float, frame: int) -> list[Data | Gap]:
        if not self.pending or self.next_seq is None:
            return []
        first = min(self.pending, key=lambda s: seq_diff(s, self.next_seq))  # type: ignore[arg-type]
        # the gap is dated by the segment after it (when the capture shows the loss), not by when
        # the hole was given up on, which can be much later
        _, after_time, after_frame = self.pending[first]
        out: list[Data | Gap] = [Gap(seq_diff(first, self.next_seq), after_time, after_frame, True)]
        self.next_seq = first
        self._drain(out)
        return out

    def flush(self, time: float, frame: int) -> list[Data | Gap]:
        """End of capture: whatever waits behind holes comes out, with its gaps."""
        out: list[Data | Gap] = []
        while self.pending:
            out.extend(self.skip_hole(time, frame))
        return out


@dataclass
class TcpConnection:
    """Both directions of one TCP connection. `client` and `server` are "ip:port"."""

    client: str
    server: str
    start: float
    first_frame: int
    saw_syn: bool
    index: int  # order of appearance in the capture
    to_server: HalfStream = field(default_factory=HalfStream)
    to_client: HalfStream = field(default_factory=HalfStream)
    closed: bool = False
    user: object = None  # whatever the layer above keeps per connection

    def half(self, src: str) -> HalfStream:
        return self.to_server if src == self.client else self.to_client


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


class TcpTracker:
    """Routes segments to connections; yields (connection, from_client, Data|Gap) items."""

    def __init__(self) -> None:
        self.connections: dict[tuple[str, str], TcpConnection] = {}
        self.count = 0

    def _key(self, a: str, b: str) -> tuple[str, str]:
        return (a, b) if a < b else (b, a)

    def _new(self, seg: Segment, client: str, server: str, syn: bool) -> TcpConnection:
        conn = TcpConnection(client, server, seg.time, seg.frame, syn, self.count)
        self.count += 1
        self.connections[self._key(client, server)] = conn
        return conn

    def feed(self, seg: Segment) -> list[tuple[TcpConnection, bool, Data | Gap]]:
        key = self._key(seg.src, seg.dst)
        conn = self.connections.get(key)
        flags = seg.flags
        if flags & TCP_SYN and not flags & TCP_ACK:
            # a SYN on a known pair is a retransmitted SYN, unless the pair is being reused
            if conn is None or conn.closed or conn.client != seg.src or not conn.saw_syn:
                conn = self._new(seg, seg.src, seg.dst, True)
            conn.to_server.syn(seg.seq)
            return []
        if conn is None:
            if not seg.payload and not flags & TCP_SYN:
                return []  # a bare ACK or FIN of a connection we do not know: nothing to follow
            if flags & TCP_SYN:  # SYN-ACK of a connection whose SYN we missed
                conn = self._new(seg, seg.dst, seg.src, True)
            else:
                # no handshake seen: the lower port is most likely the server's listening port
                client, server = (seg.src, seg.dst) if _port(seg.src) > _port(seg.dst) else (seg.dst, seg.src)
                conn = self._new(seg, client, server, False)
        from_client = seg.src == conn.client
        half = conn.to_server if from_client else conn.to_client
        if flags & TCP_SYN:  # SYN-ACK
            half.syn(seg.seq)
            return []
        out: list[tuple[TcpConnection, bool, Data | Gap]] = []
        if flags & TCP_ACK:
            other = conn.to_client if from_client else conn.to_server
            for item in other.acked(seg.ack, seg.time, seg.frame):
                out.append((conn, not from_client, item))
        for item in half.add(seg.seq, seg.payload, seg.time, seg.frame):
            out.append((conn, from_client, item))
        if half.hole_acked_at is not None and seg.frame - half.hole_acked_at > ACK_GRACE_FRAMES:
            for item in half.skip_hole(seg.time, seg.frame):
                out.append((conn, from_client, item))
        if flags & (TCP_FIN | TCP_RST):
            half.fin = True
            if flags & TCP_RST or (conn.to_server.fin and conn.to_client.fin):
                conn.closed = True
        return out

    def finish(self, conn: TcpConnection, time: float, frame: int) -> list[tuple[TcpConnection, bool, Data | Gap]]:
        out = [(conn, True, item) for item in conn.to_server.flush(time, frame)]
        out += [(conn, False, item) for item in conn.to_client.flush(time, frame)]
        return out

    def drop(self, conn: TcpConnection) -> None:
        self.connections.pop(self._key(conn.client, conn.server), None)
