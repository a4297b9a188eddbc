"""A capture's SPICE connections rewritten as plain SPICE over TCP (what `spicetool export` writes).

`PlainStreams` is handed every connection's bytes as the transport layers give them to SPICE
(open_records' payload_tap: HTTP CONNECT, WebSocket and TLS already removed) and every TCP
segment (its tap: only FIN and RST matter), keeps each direction's bytes so that they can be
patched in place (redaction), and writes the SPICE connections as TCP streams of their own:

- the original addresses, ports and capture times; a synthetic handshake at the original
  connection's start (none for a connection caught mid-session), ACKs carried by every segment,
  a FIN (and its ACK) or RST from a side where the original's came, at its time and place;
- one segment per piece the layers delivered, split at the writer's segment size and after each
  link-stage record;
- a hole in the original (lost segments) stays a hole: the sequence numbers skip the lost bytes
  (a hole a TLS or WebSocket layer resynchronised over skips the bytes it guessed, at least 1),
  and the receiver's ACK past it follows, so readers see a lost segment, as in the original.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

from spicetool.capture.frames import TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, Segment, SegmentWriter
from spicetool.capture.sessions import Channel, SessionDecoder
from spicetool.capture.tcp import Data, Gap, TcpConnection

MOD = 1 << 32


@dataclass(slots=True)
class _Piece:
    """One piece a connection's layers delivered: bytes [start, end) of a direction's buffer, or a hole."""

    from_client: bool
    start: int
    end: int
    time: float
    skip: int = 0  # a hole: sequence numbers to skip (its bytes are not written)
    close: int = 0  # not bytes but this side's close: TCP_FIN or TCP_RST


@dataclass
class PlainConnection:
    """One connection's bytes, each direction as one buffer (holes of known size zero-filled, so
    that offsets agree with the stack's, which counts through them)."""

    conn: TcpConnection
    buffers: dict[bool, bytearray] = field(default_factory=lambda: {True: bytearray(), False: bytearray()})
    pieces: list[_Piece] = field(default_factory=list)
    cuts: dict[bool, set[int]] = field(default_factory=lambda: {True: set(), False: set()})
    closed: dict[bool, bool] = field(default_factory=lambda: {True: False, False: False})  # a side's FIN/RST seen

    @property
    def channel(self) -> Channel | None:
        return SessionDecoder.spice_channel(self.conn)


class PlainStreams:
    """Collects the SPICE layer's bytes of every connection, and writes them as plain TCP."""

    def __init__(self) -> None:
        self.connections: list[PlainConnection] = []
        self._order: list[tuple[PlainConnection, _Piece]] = []  # every piece, in capture order
        self._by_conn: dict[int, PlainConnection] = {}  # id(TcpConnection) -> its collector
        self._by_ends: dict[tuple[str, str], PlainConnection] = {}  # (client, server) -> the latest
        self._close: tuple[Segment, PlainConnection] | None = None  # a FIN or RST, placed after its own bytes

    # -- collecting -----------------------------------------------------------------------
    def payload(self, conn: TcpConnection, from_client: bool, item: Data | Gap) -> None:
        """open_records' payload_tap."""
        pc = self._by_conn.get(id(conn))
        if pc is None:
            pc = self._by_conn[id(conn)] = PlainConnection(conn)
            self._by_ends[(conn.client, conn.server)] = pc
            self.connections.append(pc)
        buf = pc.buffers[from_client]
        start = len(buf)
        if isinstance(item, Gap):
            if item.exact:
                buf += bytes(item.lost)
            piece = _Piece(from_client, start, len(buf), item.time, max(item.lost, 1))
        else:
            buf += item.data
            piece = _Piece(from_client, start, len(buf), item.time)
        pc.pieces.append(piece)
        self._order.append((pc, piece))

    def segment(self, seg: Segment) -> None:
        """open_records' tap: where connections close. The tap sees a segment before it is decoded,
        so a FIN or RST takes its place in the order when the next segment comes (after the bytes
        it released): a channel that the reader decides on at its close is decided at the same point."""
        self.flush_close()
        if seg.flags & (TCP_FIN | TCP_RST):
            pc = self._by_ends.get((seg.src, seg.dst)) or self._by_ends.get((seg.dst, seg.src))
            if pc is not None:
                self._close = (seg, pc)

    def flush_close(self) -> None:
        """Place a FIN or RST still waiting (the end of the capture calls it too)."""
        if self._close is None:
            return
        seg, pc = self._close
        self._close = None
        side = seg.src == pc.conn.client
        if pc.closed[side]:
            return  # a retransmitted FIN
        if seg.flags & TCP_RST:
            pc.closed = {True: True, False: True}
        else:
            pc.closed[side] = True
        piece = _Piece(side, 0, 0, seg.time, close=TCP_RST if seg.flags & TCP_RST else TCP_FIN)
        pc.pieces.append(piece)
        self._order.append((pc, piece))

    def cut(self, channel: Channel, from_client: bool, offset: int) -> None:
        """End a segment at this offset of a direction's bytes (after each link-stage record: a
        peer that sent two records in one segment confuses Wireshark's SPICE dissector)."""
        pc = self.of_channel(channel)
        if pc is not None:
            pc.cuts[from_client].add(offset)

    def of_channel(self, channel: Channel) -> PlainConnection | None:
        """The connection a channel's records come from (the latest one between its endpoints)."""
        return self._by_ends.get((channel.client, channel.server))

    # -- writing --------------------------------------------------------------------------
    def write(self, writer: SegmentWriter, keep: Callable[[Channel], bool] = lambda ch: True) -> int:
        """Write the SPICE connections that `keep` accepts; returns how many."""
        self.flush_close()
        chosen: dict[int, PlainConnection] = {}
        for pc in self.connections:
            ch = pc.channel
            if ch is not None and keep(ch) and any(not p.close for p in pc.pieces):
                chosen[id(pc)] = pc
        streams: dict[int, _TcpOut] = {}
        for pc, piece in self._order:
            if id(pc) not in chosen:
                continue
            out = streams.get(id(pc))
            if out is None:
                if piece.close:
                    continue  # closed before it carried anything
                out = streams[id(pc)] = _TcpOut(writer, pc)
            out.piece(piece)
        return len(chosen)

    def __iter__(self) -> Iterator[PlainConnection]:
        return iter(self.connections)


class _TcpOut:
    """The synthetic TCP state of one exported connection."""

    def __init__(self, writer: SegmentWriter, pc: PlainConnection) -> None:
        self.w, self.pc = writer, pc
        conn = pc.conn
        self.ends = {True: (conn.client, conn.server), False: (conn.server, conn.client)}
        # initial sequence numbers from the endpoints: the same capture exports the same bytes
        seed = zlib.crc32(f"{conn.client}>{conn.server}".encode())
        self.next = {True: seed, False: (seed * 2654435761) % MOD}
        ch = pc.channel
        if ch is not None and not ch.midstream:  # a handshake only where the original had one
            client, server = self.ends[True]
            time = min(conn.start, pc.pieces[0].time)
            writer.segment(time, client, server, self.next[True], 0, TCP_SYN)
            self.next[True] = (self.next[True] + 1) % MOD
            writer.segment(time, server, client, self.next[False], self.next[True], TCP_SYN | TCP_ACK)
            self.next[False] = (self.next[False] + 1) % MOD
            writer.segment(time, client, server, self.next[True], self.next[False], TCP_ACK)

    def piece(self, p: _Piece) -> None:
        side = p.from_client
        src, dst = self.ends[side]
        if p.close:
            self.close(p.time, side, p.close)
            return
        if p.skip:  # a hole: its bytes are not written, the receiver acknowledges past them
            self.next[side] = (self.next[side] + p.skip) % MOD
            self.w.segment(p.time, dst, src, self.next[not side], self.next[side], TCP_ACK)
            return
        buf = self.pc.buffers[side]
        bounds = [p.start, *sorted(c for c in self.pc.cuts[side] if p.start < c < p.end), p.end]
        for lo, hi in zip(bounds, bounds[1:]):
            if hi > lo:
                self.next[side] = self.w.segment(p.time, src, dst, self.next[side], self.next[not side],
                                                 TCP_ACK | TCP_PSH, bytes(buf[lo:hi]))

    def close(self, time: float, side: bool, flag: int) -> None:
        """One side's FIN (and the other side's ACK of it), or its RST."""
        src, dst = self.ends[side]
        if flag == TCP_RST:
            self.w.segment(time, src, dst, self.next[side], self.next[not side], TCP_RST | TCP_ACK)
            return
        self.w.segment(time, src, dst, self.next[side], self.next[not side], TCP_FIN | TCP_ACK)
        self.next[side] = (self.next[side] + 1) % MOD
        self.w.segment(time, dst, src, self.next[not side], self.next[side], TCP_ACK)
