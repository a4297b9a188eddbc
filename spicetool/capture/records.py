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
from typing import BinaryIO, Callable, Collection, Generator, Iterable, Iterator

from spicetool.capture.errors import EXIT_DAMAGED, CaptureFailure
from spicetool.capture.files import CaptureReader, open_capture
from spicetool.capture.frames import Segment
from spicetool.capture.keylog import KeyLog
from spicetool.capture.pcapng import SECRETS_TLS_KEY_LOG
from spicetool.capture.sessions import Channel, Record, SessionDecoder

Source = str | os.PathLike[str] | BinaryIO


class CaptureRecords:
    """A capture's records, read once, a record at a time, as they are iterated.

    `first_time` is the time of the first packet (the commands' time 0) once one was read;
    `damage` says where the file breaks off, once iteration got there (None when it does not);
    `failure` is that damage as the commands' one-line error.
    """

    def __init__(self, segments: Iterable[Segment], name: str, *, reader: CaptureReader | None = None,
                 keylog: KeyLog | None = None, sessions: Collection[int] | None = None,
                 channels: Collection[str] | None = None, tap: Callable[[Segment], object] | None = None,
                 size: int = 0) -> None:
        self.name = name
        self.reader = reader
        self.given_keylog = keylog  # the user's (--tls-keylog), None when none was given
        # the keys this capture is read with: its own Decryption Secrets blocks, then the user's
        scan = getattr(reader, "path", None) if reader is not None and reader.format == "pcapng" else None
        self.keylog = KeyLog.for_capture(keylog, scan)
        self._secrets_merged = 0
        self.size = size  # bytes of the file (0 when not a file)
        self.decoder = SessionDecoder(self.keylog)
        self.first_time: float | None = None
        self._tap = tap
        records = self._decode(segments)
        if sessions or channels:
            records = _select(records, set(sessions or ()), set(channels or ()))
        self._records = records

    def _decode(self, segments: Iterable[Segment]) -> Generator[Record, None, None]:
        decoder, tap, reader = self.decoder, self._tap, self.reader
        for seg in segments:
            if self.first_time is None:
                self.first_time = seg.time
            if reader is not None and len(reader.secrets) > self._secrets_merged:
                self._merge_secrets()  # a block read before this packet: its keys are there for it
            if tap is not None:
                tap(seg)
            yield from decoder.feed(seg)
        yield from decoder.finish()

    def _merge_secrets(self) -> None:
        assert self.reader is not None
        for kind, data in self.reader.secrets[self._secrets_merged:]:
            if kind == SECRETS_TLS_KEY_LOG:
                self.keylog.add_text(data)
        self._secrets_merged = len(self.reader.secrets)

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
        return self.keylog.malformed()

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
        if not log.given:
            return (f"{conns} not decoded: no key log; pass it with --tls-keylog FILE "
                    "(or inject it into the capture: editcap --inject-secrets tls,FILE)")
        missing = log.unmatched()
        if missing and not log.found:
            return (f"the key log ({log.name}) has no secrets for this capture's TLS connections "
                    f"({missing} connection{'s' * (missing > 1)}, client randoms not in the key log: "
                    "a key log of another session?)")
        parts = [f"{missing} with client randoms not in the key log ({log.name})"] if missing else []
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
                 name: str | None = None) -> CaptureRecords:
    """The records of a pcap/pcapng file (a path, or a binary stream named `name`).

    `keylog`: a KeyLog or the path of an NSS key log, whose secrets decrypt TLS connections; the
    key logs a pcapng carries in Decryption Secrets blocks are used as well (merged with it).
    `sessions`, `channels`: only the records of these session numbers and channel names
    ("main", "display", ...). `tap` sees every TCP segment before it is decoded.
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
    return CaptureRecords(reader, name, reader=reader, keylog=log, sessions=sessions, channels=channels, tap=tap,
                          size=size)


def open_live(iface: str | None, bpf: str | None, count: int | None = None, duration: float | None = None, *,
              keylog: KeyLog | str | None = None, sessions: Collection[int] | None = None,
              channels: Collection[str] | None = None) -> CaptureRecords:
    """The records of traffic sniffed live (see live.py), bounded by `count` packets and/or
    `duration` seconds; CaptureFailure when the key log cannot be read or the capture cannot start."""
    from spicetool.capture.live import live_segments

    log = _keylog(keylog)
    return CaptureRecords(live_segments(iface, bpf, count, duration), "the live capture", keylog=log,
                          sessions=sessions, channels=channels)

