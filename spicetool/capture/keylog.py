"""NSS key log files (what SSLKEYLOGFILE and Python's SSLContext.keylog_filename write).

One line per secret: `LABEL <client random, 64 hex digits> <secret in hex>`, `#` comments.
TLS 1.2 gives CLIENT_RANDOM (the master secret); TLS 1.3 the handshake and first application
traffic secrets of each side. Secrets are looked up by the ClientHello's random. The file is
read again when a connection's keys are missing and the file has grown (a live capture while
the peer is still writing it).
"""

from __future__ import annotations

import os

from spicetool.capture.errors import CaptureFailure

LABELS = ("CLIENT_RANDOM", "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
          "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "CLIENT_EARLY_TRAFFIC_SECRET", "EXPORTER_SECRET")
MAX_LINE = 1024  # a line longer than this is not a key log line


class KeyLogError(CaptureFailure):
    """The key log cannot be read (one line, for the user; exit 3)."""


class KeyLog:
    def __init__(self, path: str) -> None:
        self.path = path
        self.secrets: dict[bytes, dict[str, bytes]] = {}  # client random -> label -> secret
        self.bad_lines = 0
        self._size = -1
        try:
            self._load()
        except OSError as exc:
            raise KeyLogError(f"{path}: {exc.strerror or exc}") from None
        if not self.secrets and self.bad_lines:  # (an empty file is fine: a live peer may not have written yet)
            raise KeyLogError(f"{path}: not a TLS key log (no CLIENT_RANDOM or *_TRAFFIC_SECRET lines)")

    def _load(self) -> None:
        size = os.stat(self.path).st_size
        if size == self._size:
            return
        self._size = size
        with open(self.path, "rb") as f:
            for raw in f:  # a line at a time: a key log is small, but it is still not read whole
                if len(raw) > MAX_LINE or raw.startswith(b"#"):
                    continue
                parts = raw.split()
                if len(parts) != 3:
                    self.bad_lines += bool(parts)
                    continue
                label = parts[0].decode("ascii", "replace")
                try:
                    random, secret = bytes.fromhex(parts[1].decode()), bytes.fromhex(parts[2].decode())
                except (ValueError, UnicodeDecodeError):
                    self.bad_lines += 1
                    continue
                if label in LABELS and len(random) == 32 and secret:
                    self.secrets.setdefault(random, {})[label] = secret
                else:
                    self.bad_lines += 1

    def lookup(self, client_random: bytes) -> dict[str, bytes]:
        """The secrets logged for a connection ({} when none)."""
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
