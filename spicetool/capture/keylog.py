"""NSS key logs (what SSLKEYLOGFILE and Python's SSLContext.keylog_filename write), from a file
or from the Decryption Secrets blocks of a pcapng (`editcap --inject-secrets tls,keys.log`).

One line per secret: `LABEL <client random, 64 hex digits> <secret in hex>`, `#` comments.
TLS 1.2 gives CLIENT_RANDOM (the master secret); TLS 1.3 the handshake and first application
traffic secrets of each side. Secrets are looked up by the ClientHello's random. A file is read
again when a connection's keys are missing and it has grown (a live capture while the peer is
still writing it); a capture's blocks are added as the reader meets them, and the whole file is
searched for them once when a connection's keys are missing (blocks after the packets).

A capture is read with its own KeyLog (`for_capture`): the secrets of its blocks, then those of
the key log the user gave, merged; it remembers which client randoms it was asked for and had no
secrets for, so that a key log of another session is said once, in one line.
"""

from __future__ import annotations

import os
from typing import Iterable

from spicetool.capture.errors import CaptureFailure

LABELS = ("CLIENT_RANDOM", "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
          "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "CLIENT_EARLY_TRAFFIC_SECRET", "EXPORTER_SECRET")
MAX_LINE = 1024  # a line longer than this is not a key log line
CAPTURE_BLOCKS = "the capture's Decryption Secrets block"  # where injected keys come from, as told


class KeyLogError(CaptureFailure):
    """The key log cannot be read (one line, for the user; exit 3)."""


class KeyLog:
    """Secrets by client random, from a key log file (`path`), text added (`add_text`), and a
    base KeyLog asked when these have none."""

    def __init__(self, path: str | None = None, *, base: KeyLog | None = None) -> None:
        self.path = path
        self.base = base
        self.secrets: dict[bytes, dict[str, bytes]] = {}  # client random -> label -> secret
        self.origin: dict[bytes, str] = {}  # client random -> where its secrets came from
        self.bad_lines: dict[str, int] = {}  # source -> lines that are not key log lines
        self.sources: list[str] = []  # where secrets were read from, in order
        self.missed: set[bytes] = set()  # client randoms asked for and not found
        self.found: set[bytes] = set()  # client randoms asked for and found
        self._size = -1
        self._scan: str | None = None  # a pcapng whose blocks are searched once, on a miss
        if path is not None:
            self.sources.append(path)
            try:
                self._load()
            except OSError as exc:
                raise KeyLogError(f"{path}: {exc.strerror or exc}") from None
            # (an empty file is fine: a live peer may not have written yet)
            if not self.secrets and self.bad_lines.get(path):
                raise KeyLogError(f"{path}: not a TLS key log (no CLIENT_RANDOM or *_TRAFFIC_SECRET lines)")

    @classmethod
    def for_capture(cls, given: KeyLog | None, scan: str | None = None) -> KeyLog:
        """The keys one capture is read with: its own blocks' (added as they come, and searched
        in the file `scan` on a miss), then those of the key log the user gave."""
        log = cls(base=given)
        log._scan = scan
        return log

    # -- reading ---------------------------------------------------------------------------------
    def _load(self) -> None:
        assert self.path is not None
        size = os.stat(self.path).st_size
        if size == self._size:
            return
        self._size = size
        with open(self.path, "rb") as f:  # a line at a time: a key log is small, but it is still not read whole
            self._lines(f, self.path)

    def add_text(self, data: bytes, source: str = CAPTURE_BLOCKS) -> int:
        """Add the secrets of key log text (a Decryption Secrets block's); how many lines it held."""
        if source not in self.sources:
            self.sources.append(source)
        return self._lines(data.splitlines(), source)

    def _lines(self, lines: Iterable[bytes], source: str) -> int:
        good = 0
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
                good += 1
            else:
                self.bad_lines[source] = self.bad_lines.get(source, 0) + 1
        return good

    def _more(self) -> None:
        """Look for secrets not read yet: the file grown, the capture's later blocks (once)."""
        if self.path is not None:
            try:
                self._load()
            except OSError:
                pass
        if self._scan is not None:
            from spicetool.capture.pcapng import capture_secrets

            path, self._scan = self._scan, None
            for data in capture_secrets(path):
                self.add_text(data)

    # -- lookup ----------------------------------------------------------------------------------
    def lookup(self, client_random: bytes) -> dict[str, bytes]:
        """The secrets logged for a connection ({} when none)."""
        found = self._get(client_random)
        (self.found if found else self.missed).add(client_random)
        return found

    def _get(self, client_random: bytes) -> dict[str, bytes]:
        found = self.secrets.get(client_random)
        if found is None:
            self._more()
            found = self.secrets.get(client_random)
        if found is None and self.base is not None:
            found = self.base._get(client_random)
            if found:
                self.origin.setdefault(client_random, self.base.origin.get(client_random, self.base.name))
        return found or {}

    def source_of(self, client_random: bytes) -> str:
        """Where a connection's secrets came from (its key log's path, or the capture's blocks)."""
        return self.origin.get(client_random) or self.name

    # -- what to tell --------------------------------------------------------------------------
    @property
    def all_sources(self) -> list[str]:
        base = self.base.all_sources if self.base is not None else []
        return [*self.sources, *(s for s in base if s not in self.sources)]

    @property
    def given(self) -> bool:
        """Any secrets to decrypt with: a key log file, or blocks in the capture."""
        return bool(self.all_sources)

    @property
    def name(self) -> str:
        """The key log as told to the user: "keys.log", "the capture's ... block", or both."""
        return " and ".join(self.all_sources) or "no key log"

    def malformed(self) -> list[str]:
        """One warning per source with lines that are not key log lines (they were skipped)."""
        counts = dict(self.base.bad_lines) if self.base is not None else {}
        for source, n in self.bad_lines.items():
            counts[source] = counts.get(source, 0) + n
        return [f"{source}: {n} malformed key log line{'s' * (n > 1)} skipped "
                "(not LABEL <client random, 64 hex digits> <secret in hex>)" for source, n in counts.items() if n]

    def unmatched(self) -> int:
        """Client randoms asked for that no source has secrets for."""
        return len(self.missed - self.found)


def load_keylog(path: str | None) -> KeyLog | None:
    return KeyLog(path) if path else None
