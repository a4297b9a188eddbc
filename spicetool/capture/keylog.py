"""NSS key log files (what SSLKEYLOGFILE and Python's SSLContext.keylog_filename write).

One line per secret: `LABEL <client random, 64 hex digits> <secret in hex>`, `#` comments.
TLS 1.2 gives CLIENT_RANDOM (the master secret); TLS 1.3 the handshake and first application
traffic secrets of each side. Secrets are looked up by the ClientHello's random. The file is
read again when a connection's keys are missing and the file has grown (a live capture while
the peer is still writing it).

A pcapng can carry the same lines itself, in Decryption Secrets blocks (what `editcap
--inject-secrets tls,keys.log` writes): `blocks` is the reader's list of them, looked at again
as it grows, so that a capture with its own secrets needs no key log file.
"""

from __future__ import annotations

import os

from spicetool.capture.errors import CaptureFailure
from spicetool.capture.pcapng import SECRETS_TLS_KEY_LOG

LABELS = ("CLIENT_RANDOM", "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
          "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "CLIENT_EARLY_TRAFFIC_SECRET", "EXPORTER_SECRET")
MAX_LINE = 1024  # a line longer than this is not a key log line


class KeyLogError(CaptureFailure):
    """The key log cannot be read (one line, for the user; exit 3)."""


class KeyLog:
    """The secrets of a key log file (`path`), of a capture's Decryption Secrets blocks
    (`blocks`, the reader's list), or of both."""

    def __init__(self, path: str | None = None, blocks: list[tuple[int, bytes]] | None = None) -> None:
        self.path = path
        self.blocks = blocks
        self.secrets: dict[bytes, dict[str, bytes]] = {}  # client random -> label -> secret
        self.bad_lines = 0
        self._size = -1
        self._blocks_taken = 0
        if path is None:
            return
        try:
            self._load()
        except OSError as exc:
            raise KeyLogError(f"{path}: {exc.strerror or exc}") from None
        if not self.secrets and self.bad_lines:  # (an empty file is fine: a live peer may not have written yet)
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
        return self.path is not None or bool(self.secrets) or self.bad_lines > 0

    def _load(self) -> None:
        if self.path is None:
            return
        size = os.stat(self.path).st_size
        if size == self._size:
            return
        self._size = size
        with open(self.path, "rb") as f:
            for raw in f:  # a line at a time: a key log is small, but it is still not read whole
                self._add(raw)

    def _take_blocks(self) -> None:
        """The TLS key log lines of Decryption Secrets blocks read since the last look."""
        if self.blocks is None:
            return
        for kind, data in self.blocks[self._blocks_taken:]:
            if kind == SECRETS_TLS_KEY_LOG:
                for raw in data.splitlines():
                    self._add(raw)
        self._blocks_taken = len(self.blocks)

    def _add(self, raw: bytes) -> None:
        if len(raw) > MAX_LINE or raw.startswith(b"#"):
            return
        parts = raw.split()
        if len(parts) != 3:
            self.bad_lines += bool(parts)
            return
        label = parts[0].decode("ascii", "replace")
        try:
            random, secret = bytes.fromhex(parts[1].decode()), bytes.fromhex(parts[2].decode())
        except (ValueError, UnicodeDecodeError):
            self.bad_lines += 1
            return
        if label in LABELS and len(random) == 32 and secret:
            self.secrets.setdefault(random, {})[label] = secret
        else:
            self.bad_lines += 1

    def lookup(self, client_random: bytes) -> dict[str, bytes]:
        """The secrets logged for a connection ({} when none)."""
        self._take_blocks()
        found = self.secrets.get(client_random)
        if found is None:
            try:
                self._load()
            except OSError:
                return {}
            found = self.secrets.get(client_random)
        return found or {}


def load_keylog(path: str | None) -> KeyLog | None:
    return KeyLog(path) if path else None
