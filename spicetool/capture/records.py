"""The one way in: a capture file (or live traffic) to its SPICE records, and its damage as one line.

    records = open_records("session.pcapng", keylog="keys.log")   # CaptureFailure: cannot be read
    for rec in records:                                            # a Record at a time, in capture order
        ...
    if records.failure:                                            # it broke off: "path: where", exit 4
        ...

Every command reads captures through here, so that each says the same thing about the same
damage: CaptureFailure's text is the line printed after "error: ", its `exit_code` the code
the commands document (3 cannot be read, 4 damaged part-way).
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any, BinaryIO, Callable, Collection, Generator, Iterable, Iterator

from spicetool.capture.errors import EXIT_DAMAGED, CaptureFailure
from spicetool.capture.files import CaptureReader, open_capture
from spicetool.capture.frames import Segment
from spicetool.capture.keylog import KeyLog
from spicetool.capture.legs import LEGS, LegDelays
from spicetool.capture.sessions import Channel, PayloadTap, Record, SessionDecoder

Source = str | os.PathLike[str] | BinaryIO
MAX_HELD = 50_000  # records held back while a channel's leg is undecided, before it is decided alone


class CaptureRecords:
    """A capture's records, read once, a record at a time, as they are iterated.

    `first_time` is the time of the first packet (the commands' time 0) once one was read;
    `damage` says where the file breaks off, once iteration got there (None when it does not);
    `failure` is that damage as the commands' one-line error.

    `leg`: in a capture taken at a proxy (each connection seen twice, legs.py), the records of
    "server" legs (the default), of "client" legs, or of "both"; a connection seen once is always
    given. `legs` are the (client leg, server leg) channel pairs found so far, `delays` the
    proxy's added delay (LegDelays) measured on them.
    """

    def __init__(self, segments: Iterable[Segment], name: str, *, reader: CaptureReader | None = None,
                 keylog: KeyLog | None = None, sessions: Collection[int] | None = None,
                 channels: Collection[str] | None = None, tap: Callable[[Segment], object] | None = None,
                 size: int = 0, leg: str = "server", payload_tap: PayloadTap | None = None) -> None:
        if leg not in LEGS:
            raise ValueError(f"leg must be one of {', '.join(LEGS)}, not {leg!r}")
        self.name = name
        self.leg = leg
        self.delays = LegDelays()
        self.reader = reader
        self.keylog = keylog
        self.size = size  # bytes of the file (0 when not a file)
        self.decoder = SessionDecoder(keylog, payload_tap)
        self.first_time: float | None = None
        self._tap = tap
        records = self._by_leg(segments)
        if sessions or channels:
            records = _select(records, set(sessions or ()), set(channels or ()))
        self._records = records

    def _by_leg(self, segments: Iterable[Segment]) -> Generator[Record, None, None]:
        """The segments' records in capture order, each once its channel's leg is known (held back
        until then). One generator for both: it runs once per record of the capture."""
        decoder, tap = self.decoder, self._tap
        legs, delays, leg, channels = decoder.legs, self.delays, self.leg, decoder.channels
        undecided = legs.open
        tracked: set[int] = set()
        held: deque[Record] = deque()

        def given(r: Record) -> bool:
            """Whether a record of a leg goes out (its delay measured on the way)."""
            ch = r.channel
            if ch.index not in tracked:
                twin = channels[ch.twin]  # type: ignore[index]
                tracked.update((ch.index, twin.index))
                delays.track(*((ch, twin) if ch.leg == "client" else (twin, ch)))
            delays.add(r)
            return leg == "both" or ch.leg == leg

        for seg in segments:
            if self.first_time is None:
                self.first_time = seg.time
            if tap is not None:
                tap(seg)
            for rec in decoder.feed(seg):
                if not held and rec.channel.index not in undecided:  # the usual case: nothing waits
                    if rec.channel.twin is None or given(rec):
                        yield rec
                    continue
                held.append(rec)
                for r in _release(held, legs):
                    if r.channel.twin is None or given(r):
                        yield r
        for rec in decoder.finish():
            held.append(rec)
        legs.finish()  # the end: every channel is decided
        for r in _release(held, legs):
            if r.channel.twin is None or given(r):
                yield r

    @property
    def legs(self) -> list[tuple[Channel, Channel]]:
        """(client leg, server leg) of each connection seen twice, as found so far."""
        return list(self.decoder.legs.pairs)

    def __iter__(self) -> Iterator[Record]:
        return self._records  # one pass: a second loop goes on where the first stopped

    def __next__(self) -> Record:
        return next(self._records)

    def close(self) -> None:
        """Stop reading (the file is closed)."""
        self._records.close()
        if self.reader is not None:
            self.reader.close()

    @property
    def damage(self) -> str | None:
        return self.reader.damage if self.reader is not None else None

    @property
    def failure(self) -> CaptureFailure | None:
        """The damage as the commands' one-line error (exit 4): where the file breaks off, else the
        first damage the reading went past (a corrupt Decryption Secrets block)."""
        damage = self.damage or (self.reader.problems[0] if self.reader is not None and self.reader.problems else None)
        return CaptureFailure(f"{self.name}: {damage}", EXIT_DAMAGED) if damage else None

    @property
    def warnings(self) -> list[str]:
        """One-line warnings about the key logs read (malformed lines skipped), for the commands to print."""
        return self.keylog.malformed() if self.keylog is not None else []

    def transport_problem(self) -> str | None:
        """Connections whose transport under SPICE broke (a CONNECT refused or never answered, a
        WebSocket refused or its framing broken), in one line: the first, and how many more."""
        broken = self.decoder.broken
        if not broken:
            return None
        more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
        return f"{len(broken)} connection{'s' * (len(broken) > 1)} broken under SPICE: {broken[0]}{more}"

    def tls_problem(self) -> str | None:
        """TLS connections left encrypted, in one line: no key log, a key log for another session
        (none of their client randoms in it), or some of them lacking; None when all decrypted."""
        n = self.decoder.encrypted
        if not n:
            return None
        log = self.keylog
        conns = f"{n} TLS-encrypted connection{'s' * (n > 1)}"
        if log is None or not log.given():
            return (f"{conns} not decoded: no key log; pass it with --tls-keylog FILE "
                    "(or inject it into the capture: editcap --inject-secrets tls,FILE)")
        missing = log.unmatched()
        if missing and not log.found:
            return (f"{log.name} has no secrets for this capture's TLS connections "
                    f"({missing} connection{'s' * (missing > 1)}, client randoms not in the key log: "
                    "a key log of another session?)")
        parts = [f"{missing} with client randoms not in {log.name}"] if missing else []
        if n > missing:
            parts.append(f"{n - missing} whose handshake is not in the capture or that cannot be decrypted")
        return f"{conns} not decoded: " + ", ".join(parts)

    @property
    def bytes_read(self) -> int:
        return self.reader.bytes_read if self.reader is not None else 0

    @property
    def secrets(self) -> list[tuple[int, bytes]]:
        """(type, bytes) of the pcapng Decryption Secrets blocks read so far."""
        return self.reader.secrets if self.reader is not None else []

    @property
    def channels(self) -> list[Channel]:
        """Every SPICE channel connection seen so far, in order of appearance."""
        return self.decoder.channels


def _release(held: deque[Record], legs: Any) -> Iterator[Record]:
    """The held records from the front whose channels' legs are known; a channel that held too
    many back is decided alone (bounded memory, at worst both legs are given)."""
    while held:
        ch = held[0].channel
        if legs.undecided(ch):
            if len(held) <= MAX_HELD:
                return
            legs.give_up(ch)
        yield held.popleft()


def _select(records: Iterator[Record], sessions: set[int], channels: set[str]) -> Generator[Record, None, None]:
    for rec in records:
        if sessions and rec.channel.session not in sessions:
            continue
        if channels and rec.channel.channel not in channels:
            continue
        yield rec


def _keylog(keylog: KeyLog | str | None) -> KeyLog | None:
    return KeyLog(keylog) if isinstance(keylog, str) else keylog


def open_records(source: Source, *, keylog: KeyLog | str | None = None, sessions: Collection[int] | None = None,
                 channels: Collection[str] | None = None, tap: Callable[[Segment], object] | None = None,
                 name: str | None = None, leg: str = "server",
                 payload_tap: PayloadTap | None = None) -> CaptureRecords:
    """The records of a pcap/pcapng file (a path, or a binary stream named `name`).

    `keylog`: a KeyLog or the path of an NSS key log, whose secrets decrypt TLS connections, as
    do those a pcapng carries itself (Decryption Secrets blocks, as editcap --inject-secrets writes,
    also after the packets they decrypt): merged, one KeyLog per capture.
    `sessions`, `channels`: only the records of these session numbers and channel names
    ("main", "display", ...). `tap` sees every TCP segment before it is decoded; `payload_tap`
    every connection's bytes as the transport layers hand them to SPICE (see SessionDecoder).
    `leg`: "server" (the default), "client" or "both": which leg of each connection a proxy's
    capture holds twice.
    CaptureFailure (one line, exit code 3) when the key log or the capture cannot be read.
    """
    log = _keylog(keylog)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        reader = open_capture(path)
        try:
            size = os.fstat(reader.stream.fileno()).st_size
        except (OSError, AttributeError, ValueError):
            size = 0
        name = name or path
    else:
        name = name or str(getattr(source, "name", None) or "capture")
        reader = CaptureReader(source, name)
        size = 0
    # a pcapng's own secrets (Decryption Secrets blocks) decrypt TLS with or without a key log file
    # (a fresh KeyLog per capture: one given may serve several captures, each with its own blocks)
    if log is None or log.blocks is None:
        log = KeyLog(log.path if log is not None else None, blocks=reader.secrets,
                     capture=reader.path if reader.format == "pcapng" else None)
    return CaptureRecords(reader, name, reader=reader, keylog=log, sessions=sessions, channels=channels, tap=tap,
                          size=size, leg=leg, payload_tap=payload_tap)


def open_live(iface: str | None, bpf: str | None, count: int | None = None, duration: float | None = None, *,
              keylog: KeyLog | str | None = None, sessions: Collection[int] | None = None,
              channels: Collection[str] | None = None, leg: str = "server") -> CaptureRecords:
    """The records of traffic sniffed live (see live.py), bounded by `count` packets and/or
    `duration` seconds; CaptureFailure when the key log cannot be read or the capture cannot start."""
    from spicetool.capture.live import live_segments

    log = _keylog(keylog)
    return CaptureRecords(live_segments(iface, bpf, count, duration), "the live capture", keylog=log,
                          sessions=sessions, channels=channels, leg=leg)

