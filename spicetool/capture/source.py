"""What the pcap and pcapng record readers need of the file they read (files.CaptureReader).

A Protocol, so the format modules do not import the reader that imports them."""
from __future__ import annotations

from typing import Protocol


class RecordSource(Protocol):
    magic: bytes          # the file's first four bytes, already read
    frames: int           # records delivered so far (for error messages)
    secrets: list[tuple[int, bytes]]   # pcapng Decryption Secrets blocks, as they come
    bytes_read: int       # bytes of the file after its first four, read so far
    dsb_count: int        # Decryption Secrets blocks met so far (to name one in a message)
    problems: list[str]   # damage that did not stop the reading, one line each

    def read(self, n: int, what: str) -> bytes:
        """Exactly n bytes, or CaptureDamaged naming `what` was truncated."""
        ...

    def skip(self, n: int) -> None:
        """Pass over n bytes unread (a truncation there is left for the next read to meet)."""
        ...

    def read_next(self, n: int, what: str) -> bytes:
        """The first n bytes of the next record, or b"" at a clean end of the file."""
        ...
