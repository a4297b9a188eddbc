"""The input log: every input event a client sent, one JSON object per line."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import IO, Callable


class InputLog:
    """Appends events to a file (line-buffered, so a reader sees them at once) and/or a callback."""

    def __init__(self, path: str | Path | None = None, echo: Callable[[dict], None] | None = None):
        self._file: IO[str] | None = open(path, "a", buffering=1) if path else None
        self._echo = echo
        self._start = time.monotonic()
        self._lock = threading.Lock()
        self.count = 0

    def write(self, session: int, client: str, event: str, **fields) -> None:
        record = {"time": round(time.monotonic() - self._start, 6), "wall": round(time.time(), 6),
                  "session": session, "client": client, "event": event, **fields}
        with self._lock:
            self.count += 1
            if self._file is not None:
                self._file.write(json.dumps(record) + "\n")
        if self._echo is not None:
            self._echo(record)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
