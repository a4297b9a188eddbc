"""Capture files down to TCP segments: pcap or pcapng, told apart by their first bytes.

Hand-written because it is the hot loop of every command and small: a record at a time,
never the whole file in memory. The formats' own layouts are in pcap.py and pcapng.py, the
link layers, IP and TCP in frames.py.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Iterator

from spicetool.capture.errors import CaptureDamaged, CaptureError
from spicetool.capture.frames import Segment, strip_link, tcp_from_ip
from spicetool.capture.pcap import PCAP_MAGICS, pcap_records
from spicetool.capture.pcapng import PCAPNG_SHB, pcapng_records


class CaptureReader:
    """Iterate the TCP segments of a pcap or pcapng file, a record at a time.

    `damage` is set (and iteration ends) when the file breaks off or is corrupt; `problems` holds
    the damage it read past. `secrets` holds the (type, bytes) of the pcapng Decryption Secrets
    blocks read so far.
    """

    def __init__(self, stream: BinaryIO, name: str = "capture", path: str | None = None) -> None:
        self.stream = stream
        self.name = name
        self.path = path  # the file's, when it is one (its secrets blocks can be searched apart)
        self.damage: str | None = None
        self.frames = 0
        self.bytes_read = 0
        self.secrets: list[tuple[int, bytes]] = []
        self.dsb_count = 0
        self.problems: list[str] = []  # damage the reading went past (a corrupt secrets block)
        head = stream.read(4)
        if len(head) < 4:
            raise CaptureError(f"{name}: empty or too short to be a capture")
        self.magic = head
        if head in PCAP_MAGICS:
            self.format = "pcap"
        elif head == PCAPNG_SHB:
            self.format = "pcapng"
        else:
            raise CaptureError(f"{name}: not a pcap or pcapng capture (starts with {head.hex()})")

    def __iter__(self) -> Iterator[Segment]:
        records = pcap_records(self) if self.format == "pcap" else pcapng_records(self)
        try:
            for linktype, time, data in records:
                self.frames += 1
                ip = strip_link(linktype, data)
                if ip is None:
                    continue
                seg = tcp_from_ip(ip, time, self.frames)
                if seg is not None:
                    yield seg
        except CaptureDamaged as exc:
            self.damage = str(exc)
        except OSError as exc:  # the disk or the network file system, part-way
            self.damage = f"read error after frame {self.frames}: {exc.strerror or exc}"

    def read(self, n: int, what: str) -> bytes:
        """Exactly n bytes of the file, or CaptureDamaged saying it is truncated in `what`."""
        data = self.stream.read(n)
        self.bytes_read += len(data)
        if len(data) < n:
            raise CaptureDamaged(
                f"capture truncated in {what} after frame {self.frames} "
                f"(byte {self.bytes_read + 4} of the file)"
            )
        return data

    def skip(self, n: int) -> None:
        """Pass over n bytes unread (a look for the secrets alone: the reader proper finds any truncation)."""
        self.stream.seek(n, 1)
        self.bytes_read += n

    def read_next(self, n: int, what: str) -> bytes:
        """The first n bytes of the next record: b"" at a clean end of the file, CaptureDamaged
        when only part of them is there."""
        data = self.stream.read(n)
        self.bytes_read += len(data)
        if data and len(data) < n:
            raise CaptureDamaged(f"capture truncated in {what} after frame {self.frames}")
        return data

    def close(self) -> None:
        self.stream.close()


def capture_secrets(path: str) -> list[tuple[int, bytes]]:
    """The (type, bytes) of a pcapng file's Decryption Secrets blocks, read ahead of its reader by
    the same walk with the packets passed over, up to where the file breaks off; [] for a pcap or
    a file that cannot be read (its reader says why), or is no regular file (a pipe is read once)."""
    if not os.path.isfile(path):
        return []
    try:
        reader = open_capture(path)
    except CaptureError:
        return []
    try:
        if reader.format == "pcapng":
            for _ in pcapng_records(reader, packets=False):
                pass
    except (CaptureDamaged, OSError):
        pass
    finally:
        reader.close()
    return reader.secrets


def open_capture(path: str) -> CaptureReader:
    """Open a capture file; CaptureError (one line) when it cannot be."""
    try:
        stream = open(path, "rb", buffering=1024 * 1024)
    except OSError as exc:
        raise CaptureError(f"{path}: {exc.strerror or exc}") from None
    try:
        return CaptureReader(stream, path, path)
    except CaptureError:
        stream.close()
        raise
    except OSError as exc:  # a directory opens on some systems, then fails to read
        stream.close()
        raise CaptureError(f"{path}: {exc.strerror or exc}") from None
