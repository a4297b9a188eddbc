"""NSS key log files (what SSLKEYLOGFILE and Python's SSLContext.keylog_filename write).

One line per secret: `LABEL <client random, 64 hex digits> <secret in hex>`, `#` comments.
TLS 1.2 gives CLIENT_RANDOM (the master secret); TLS 1.3 the handshake and first application
traffic secrets of each side. Secrets are looked up by the ClientHello's random. The file is
read again when a connection's keys are missing and the file has grown (a live capture while
the peer is still writing it).

A pcapng can carry the same lines itself, in Decryption Secrets blocks (what `editcap
--inject-secrets tls,keys.log` writes): `blocks` is the reader's list of them, looked at again
as it grows, so that a capture with its own secrets needs no key log file. When a connection's
keys are missing and the capture is a file (`capture`), its later blocks are looked for once,
ahead of the reader (a block written after the packets it decrypts).

A KeyLog serves one capture: it remembers where each connection's secrets came from
(`source_of`), the lines it skipped per source (`malformed`), and the client randoms it was
asked for and had nothing for (`unmatched`: a key log of another session is said once).
"""

from __future__ import annotations

import os
from typing import Iterable

from spicetool.capture.errors import CaptureFailure
from spicetool.capture.pcapng import SECRETS_TLS_KEY_LOG

LABELS = ("CLIENT_RANDOM", "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
          "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "CLIENT_EARLY_TRAFFIC_SECRET", "EXPORTER_SECRET")
MAX_LINE = 1024  # a line longer than this is not a key log line
CAPTURE_BLOCKS = "the capture's Decryption Secrets block"  # where injected keys come from, as told


class KeyLogError(CaptureFailure):
    """The key log cannot be read (one line, for the user; exit 3)."""


class KeyLog:
    """The secrets of a key log file (`path`), of a capture's Decryption Secrets blocks
    (`blocks`, the reader's list; `capture`, the file they are read from), or of both."""

    def __init__(self, path: str | None = None, blocks: list[tuple[int, bytes]] | None = None,
                 capture: str | None = None) -> None:
        self.path = path
        self.blocks = blocks
        self.secrets: dict[bytes, dict[str, bytes]] = {}  # client random -> label -> secret
        self.origin: dict[bytes, str] = {}  # client random -> where its secrets came from
        self.bad_lines: dict[str, int] = {}  # source -> lines that are not key log lines
        self.missed: set[bytes] = set()  # client randoms asked for and not found
        self.found: set[bytes] = set()  # client randoms asked for and found
        self._size = -1
        self._blocks_taken = 0
        self._capture = capture  # a pcapng whose blocks are looked for ahead of the reader, once
        if path is None:
            return
        try:
            self._load()
        except OSError as exc:
            raise KeyLogError(f"{path}: {exc.strerror or exc}") from None
        # (an empty file is fine: a live peer may not have written yet)
        if not self.secrets and self.bad_lines.get(path):
            raise KeyLogError(f"{path}: not a TLS key log (no CLIENT_RANDOM or *_TRAFFIC_SECRET lines)")

    @property
    def name(self) -> str:
        """Where the secrets were looked for, as messages say it."""
        if self.path is None:
            return "the capture's own key log (Decryption Secrets)"
        return f"the key log {self.path}" + (" (with the capture's own)" if self.blocks else "")

    def given(self) -> bool:
        """Whether there is a key log at all: a file, or secrets inside the capture."""
        self._take_blocks()
        return self.path is not None or bool(self.secrets) or bool(self.bad_lines)

    # -- reading ---------------------------------------------------------------------------------
    def _load(self) -> None:
        if self.path is None:
            return
        size = os.stat(self.path).st_size
        if size == self._size:
            return
        self._size = size
        with open(self.path, "rb") as f:  # a line at a time: a key log is small, but it is still not read whole
            self._lines(f, self.path)

    def _take_blocks(self) -> None:
        """The TLS key log lines of Decryption Secrets blocks read since the last look."""
        if self.blocks is None:
            return
        self._take(self.blocks)

    def _take(self, blocks: list[tuple[int, bytes]]) -> None:
        for kind, data in blocks[self._blocks_taken:]:
            if kind == SECRETS_TLS_KEY_LOG:
                # (a block whose length overclaims is kept to its end: its padding is no line)
                self._lines(data.rstrip(b"\0").splitlines(), CAPTURE_BLOCKS)
        self._blocks_taken = max(self._blocks_taken, len(blocks))

    def _lines(self, lines: Iterable[bytes], source: str) -> None:
        for raw in lines:
            if raw.startswith(b"#") or not raw.strip():
                continue
            parts = raw.split() if len(raw) <= MAX_LINE else []
            label = parts[0].decode("ascii", "replace") if len(parts) == 3 else ""
            try:
                random, secret = bytes.fromhex(parts[1].decode()), bytes.fromhex(parts[2].decode())
            except (IndexError, ValueError, UnicodeDecodeError):
                random = secret = b""
            if label in LABELS and len(random) == 32 and secret:
                self.secrets.setdefault(random, {})[label] = secret
                self.origin.setdefault(random, source)
            else:
                self.bad_lines[source] = self.bad_lines.get(source, 0) + 1

    def _more(self) -> None:
        """Secrets not read yet: the file grown, the capture's blocks ahead of the reader (once;
        those the reader meets later are not taken twice: they are the same blocks in the same order)."""
        try:
            self._load()
        except OSError:
            pass
        if self._capture is not None and self.blocks is not None:
            from spicetool.capture.files import capture_secrets

            path, self._capture = self._capture, None
            self._take(capture_secrets(path))

    # -- lookup ----------------------------------------------------------------------------------
    def lookup(self, client_random: bytes) -> dict[str, bytes]:
        """The secrets logged for a connection ({} when none)."""
        self._take_blocks()
        found = self.secrets.get(client_random)
        if found is None:
            self._more()
            found = self.secrets.get(client_random)
        (self.found if found else self.missed).add(client_random)
        return found or {}

    def source_of(self, client_random: bytes) -> str:
        """Where a connection's secrets came from: its key log's path, or the capture's blocks."""
        return self.origin.get(client_random) or self.name

    # -- what to tell ----------------------------------------------------------------------------
    def malformed(self) -> list[str]:
        """One warning per source with lines that are not key log lines (they were skipped)."""
        return [f"{source}: {n} malformed key log line{'s' * (n > 1)} skipped "
                "(not LABEL <client random, 64 hex digits> <secret in hex>)" for source, n in self.bad_lines.items()]

    def unmatched(self) -> int:
        """Client randoms asked for that no source has secrets for."""
        return len(self.missed - self.found)


def load_keylog(path: str | None) -> KeyLog | None:
    return KeyLog(path) if path else None
