"""What transport layers between TCP and SPICE share: the notices they raise and HTTP message heads.

A transport layer (HTTP CONNECT, WebSocket, TLS) is sans-I/O: `feed(from_client, item)` takes a
direction's reassembled Data or Gap and returns `(from_client, item)` pairs, where an item is the
layer's payload as Data/Gap (what the next layer up sees) or a `Notice` (something to report once:
a proxy's answer, a WebSocket close, an error). `finish(time, frame)` is the end of the capture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from spicetool.capture.tcp import Data, Gap

MAX_HEAD = 16 * 1024  # bytes of an HTTP request or response head before it is refused as absurd
CONNECT = b"CONNECT "  # how an HTTP CONNECT request (http_connect.py) starts


@dataclass
class Notice:
    """Something to tell about a transport layer of a connection, as one line."""

    kind: str  # e.g. "encrypted", "error", "proxy_connect", "proxy_refused", "websocket_close"
    from_client: bool
    time: float
    frame: int
    reason: str
    fields: dict[str, Any] = field(default_factory=dict)


Item = Data | Gap | Notice
Output = tuple[bool, Item]  # (from the client?, item)


class Layer(Protocol):
    def feed(self, from_client: bool, item: Data | Gap) -> list[Output]: ...

    def finish(self, time: float, frame: int) -> list[Output]: ...


class HeadError(ValueError):
    """Bytes that are not an HTTP message head."""


@dataclass
class HttpHead:
    """The start line and headers of an HTTP/1.x request or response (RFC 9112 section 2-5)."""

    start: str  # the start line as sent
    parts: tuple[str, ...]  # the start line's three parts: method/target/version or version/status/reason
    headers: list[tuple[str, str]]  # in order, names as sent
    size: int  # bytes of the head, blank line included

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def has_token(self, name: str, token: str) -> bool:
        """Whether a comma-separated header (Connection, Upgrade) lists `token`, case-insensitively."""
        value = self.header(name) or ""
        return token.lower() in (t.strip().lower() for t in value.split(","))


def head_end(buf: bytes | bytearray) -> int | None:
    """The size of the head at the start of `buf` (through its blank line), None when incomplete."""
    at = buf.find(b"\r\n\r\n")
    if at >= 0:
        return at + 4
    at = buf.find(b"\n\n")  # bare LF line ends, which RFC 9112 lets a recipient accept
    return at + 2 if at >= 0 else None


def parse_head(buf: bytes | bytearray, size: int) -> HttpHead:
    text = bytes(buf[:size]).decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    start, headers = lines[0], []
    parts = tuple(start.split(" ", 2))
    if len(parts) < 2:
        raise HeadError(f"not an HTTP start line: {start[:80]!r}")
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HeadError(f"not an HTTP header line: {line[:80]!r}")
        headers.append((name, value.strip()))
    return HttpHead(start, parts, headers, size)


def is_http_version(word: str) -> bool:
    return word.startswith("HTTP/1.") and len(word) == 8
