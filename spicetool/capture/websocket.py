"""WebSocket (RFC 6455) as a transport under SPICE: spice-html5 through websockify (OpenStack's and many
web consoles) or straight to spice-server 0.15's own port, which accepts WebSocket clients.

The client's HTTP Upgrade request and the server's 101 answer are reported as notices; then each
direction is a stream of frames (section 5.2): a 2-byte header, a 16- or 64-bit extended length, the
client's 4-byte masking key, the payload. Data frames (binary, text, continuation) carry the SPICE
bytes; websockify's "base64" subprotocol carries them base64-encoded in text frames. Control frames
(close with its code and reason, ping, pong) are not SPICE's and never reach the SPICE layer. A
frame's payload is passed on as it arrives (a frame may span many TCP segments, and spice-server
often sends a frame's header in a segment of its own), so memory stays bounded whatever a frame
claims. A gap inside a payload keeps the framing (the payload's length is known); a gap that
swallows a frame header is resynchronised on the next plausible header.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from spicetool.capture.tcp import Data, Gap
from spicetool.capture.transport import (
    MAX_HEAD, HeadError, HttpHead, Notice, Output, head_end, is_http_version, parse_head,
)

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
OPCODES = {CONTINUATION: "continuation", TEXT: "text", BINARY: "binary", CLOSE: "close", PING: "ping", PONG: "pong"}
MAX_CONTROL = 125  # a control frame's payload (section 5.5)
MAX_FRAME = 1 << 40  # larger claims are refused as absurd (the RFC's limit is 2**63 - 1)
RESYNC_WINDOW = 64 * 1024  # bytes searched for a frame header after a gap
# Close codes by name (section 7.4.1 and IANA's registry).
CLOSE_CODES = {1000: "normal closure", 1001: "going away", 1002: "protocol error", 1003: "unsupported data",
               1005: "no status received", 1006: "abnormal closure", 1007: "invalid frame payload data",
               1008: "policy violation", 1009: "message too big", 1010: "mandatory extension",
               1011: "internal error", 1012: "service restart", 1013: "try again later", 1015: "TLS handshake"}


def looks_like_upgrade(data: bytes) -> bool:
    """Whether a connection's first client bytes are an HTTP GET, as a WebSocket Upgrade starts."""
    return data[:4] == b"GET "


def unmask(data: bytes, key: bytes, offset: int) -> bytes:
    """`data` XOR the masking key, the key's byte `offset % 4` first (section 5.3)."""
    n = len(data)
    if not n:
        return b""
    o = offset % 4
    k = (key[o:] + key[:o]) * (n // 4 + 1)
    return (int.from_bytes(data, "little") ^ int.from_bytes(k[:n], "little")).to_bytes(n, "little")


def _frame_header(buf: bytes | bytearray, at: int, masked: bool) -> tuple[int, int, int, bytes] | str | None:
    """(header size, opcode with FIN in bit 7, payload length, masking key) of the frame at `at`;
    None when more bytes are needed; a string when the bytes are not a frame header of this side."""
    if len(buf) - at < 2:
        return None
    b0, b1 = buf[at], buf[at + 1]
    if b0 & 0x70:
        return f"reserved bits set in frame header 0x{b0:02x}"
    op = b0 & 0x0F
    if op not in OPCODES:
        return f"unknown opcode 0x{op:x}"
    if bool(b1 & 0x80) != masked:
        return "a client frame without a mask" if masked else "a server frame with a mask"
    n = b1 & 0x7F
    size = 2
    if n == 126:
        if len(buf) - at < 4:
            return None
        n, size = int.from_bytes(buf[at + 2:at + 4], "big"), 4
    elif n == 127:
        if len(buf) - at < 10:
            return None
        n, size = int.from_bytes(buf[at + 2:at + 10], "big"), 10
        if n >> 63:
            return f"a frame that claims {n} bytes (the most significant bit of a 64-bit length must be 0)"
    if op >= CLOSE and (n > MAX_CONTROL or not b0 & 0x80):
        return f"a {OPCODES[op]} frame of {n} bytes{'' if b0 & 0x80 else ', fragmented'}"
    if n > MAX_FRAME:
        return f"a frame that claims {n} bytes"
    key = b""
    if masked:
        if len(buf) - at < size + 4:
            return None
        key = bytes(buf[at + size:at + size + 4])
        size += 4
    return size, op | (b0 & 0x80), n, key


@dataclass
class _Half:
    client: bool
    state: str = "head"  # "head" (HTTP), "frames", "closed", "dead"
    buf: bytearray = field(default_factory=bytearray)  # HTTP head, frame header, control payload
    remaining: int = 0  # payload bytes of the current frame still to come
    opcode: int = 0  # of the current frame
    key: bytes = b""
    offset: int = 0  # payload bytes of the current frame seen (the mask's position)
    message: int | None = None  # opcode of the data message being fragmented, if any
    current: int = BINARY  # the opcode of the data message the current frame belongs to
    b64: bytearray = field(default_factory=bytearray)  # base64 characters not yet a whole quantum
    resync: int | None = None  # bytes lost since the framing was lost
    frames: int = 0
    control: int = 0

    @property
    def who(self) -> str:
        return "client" if self.client else "server"


class WebSocket:
    """The Upgrade handshake and frames of one TCP connection, passing on the data frames' payload."""

    def __init__(self) -> None:
        self.halves = {True: _Half(True), False: _Half(False)}
        self.path: str | None = None
        self.subprotocol: str | None = None
        self.status_line: str | None = None
        self.host: str | None = None  # the Upgrade's Host header
        self.server: str | None = None  # who answered: "spice-server", "websockify", or None (cannot tell)
        self.close: dict | None = None  # the first close frame's code and reason
        self.out: list[Output] = []
        self._time, self._frame = 0.0, 0

    @property
    def base64(self) -> bool:
        return (self.subprotocol or "").lower() == "base64"

    def info(self) -> dict[str, Any]:
        """The layer in a connection's transport chain (stable keys)."""
        return {"layer": "websocket", "path": self.path, "host": self.host, "subprotocol": self.subprotocol,
                "status_line": self.status_line, "server": self.server}

    def describe(self) -> str:
        parts = [f"WebSocket {self.path or '?'}"]
        if self.subprotocol:
            parts.append(f"subprotocol {self.subprotocol}")
        return ", ".join(parts)

    def _notice(self, kind: str, client: bool, reason: str, **fields) -> None:
        self.out.append((client, Notice(kind, client, self._time, self._frame, reason,
                                        {"path": self.path, "subprotocol": self.subprotocol, **fields})))

    def _die(self, half: _Half, reason: str) -> None:
        half.state = "dead"
        half.buf.clear()
        self._notice("error", half.client, f"WebSocket from the {half.who}: {reason}")

    def feed(self, from_client: bool, item: Data | Gap) -> list[Output]:
        self.out = []
        self._time, self._frame = item.time, item.frame
        half = self.halves[from_client]
        if half.state in ("closed", "dead"):
            return self.out
        if isinstance(item, Gap):
            self._gap(half, item.lost)
            return self.out
        if half.state == "head":
            half.buf += item.data
            self._head(half)
            if half.state != "frames":
                return self.out
            data, half.buf = bytes(half.buf), bytearray()
        else:
            data = item.data
        self._frames(half, data)
        return self.out

    def finish(self, time: float, frame: int) -> list[Output]:
        self.out = []
        self._time, self._frame = time, frame
        for half in self.halves.values():
            if half.state == "frames" and half.remaining and half.resync is None:
                self._notice("error", half.client, f"WebSocket frame from the {half.who} truncated by the end "
                                                   f"of the capture: {half.remaining} bytes of it missing")
                self._emit_gap(half, half.remaining)
        return self.out

    # -- the HTTP Upgrade -----------------------------------------------------------------------
    def _head(self, half: _Half) -> None:
        size = head_end(half.buf)
        if size is None:
            if len(half.buf) > MAX_HEAD:
                self._die(half, f"HTTP head longer than {MAX_HEAD} bytes")
            return
        try:
            head = parse_head(half.buf, size)
        except HeadError as e:
            self._die(half, str(e))
            return
        del half.buf[:size]
        if half.client:
            if head.parts[0] != "GET" or len(head.parts) < 3 or not head.has_token("Upgrade", "websocket"):
                self._die(half, f"not a WebSocket Upgrade request: {head.start[:80]!r}")
                return
            self.path = head.parts[1]
            self.host = head.header("Host")
            offered = head.header("Sec-WebSocket-Protocol")
            self._notice("websocket_upgrade", True, f"WebSocket Upgrade {self.path}", offered=offered,
                         origin=head.header("Origin"), host=head.header("Host"),
                         user_agent=head.header("User-Agent"))
        else:
            self.status_line = head.start.strip()
            if not is_http_version(head.parts[0]) or head.parts[1] != "101":
                half.state = "dead"
                self.halves[True].state = "dead"
                self._notice("websocket_refused", False, f"the server refused the WebSocket Upgrade: "
                                                         f"{self.status_line}", status_line=self.status_line)
                return
            self.subprotocol = head.header("Sec-WebSocket-Protocol")
            self.server = _answered_by(head)
            self._notice("websocket_established", False, f"WebSocket {self.status_line}",
                         status_line=self.status_line)
        half.state = "frames"

    # -- frames ---------------------------------------------------------------------------------
    def _frames(self, half: _Half, data: bytes) -> None:
        pos = 0
        while half.state == "frames":
            if half.resync is not None:
                half.buf += data[pos:]
                if not self._find_header(half):
                    return
                data, pos = bytes(half.buf), 0
                half.buf.clear()
                continue
            if half.remaining:
                if pos >= len(data):
                    return
                take = min(half.remaining, len(data) - pos)
                self._payload(half, data[pos:pos + take])
                pos += take
                continue
            if pos >= len(data) and not half.buf:
                return
            had = len(half.buf)
            half.buf += data[pos:pos + 14]  # a frame header is at most 14 bytes
            parsed = _frame_header(half.buf, 0, half.client)
            if parsed is None:
                pos += len(half.buf) - had
                if pos >= len(data):
                    return
                continue
            if isinstance(parsed, str):
                self._die(half, parsed)
                return
            size, op, n, key = parsed
            pos += size - had
            half.buf.clear()
            self._start(half, op, n, key)

    def _start(self, half: _Half, op: int, n: int, key: bytes) -> None:
        """A frame header was read: its payload of `n` bytes follows."""
        fin, half.opcode = bool(op & 0x80), op & 0x0F
        half.remaining, half.key, half.offset = n, key, 0
        half.frames += 1
        if half.opcode in (TEXT, BINARY):
            half.message = None if fin else half.opcode
            half.current = half.opcode
        elif half.opcode == CONTINUATION:
            half.current = half.message if half.message is not None else BINARY
            if fin:
                half.message = None
        if n == 0 and half.opcode >= CLOSE:
            self._control(half, b"")

    def _payload(self, half: _Half, chunk: bytes) -> None:
        plain = unmask(chunk, half.key, half.offset) if half.client else chunk
        half.offset += len(chunk)
        half.remaining -= len(chunk)
        if half.opcode >= CLOSE:
            half.buf += plain
            if not half.remaining:
                self._control(half, bytes(half.buf))
                half.buf.clear()
            return
        self._data(half, plain)

    def _data(self, half: _Half, plain: bytes) -> None:
        if not plain:
            return
        if self.base64 and half.current == TEXT:
            half.b64 += plain
            whole = len(half.b64) - len(half.b64) % 4
            if not whole:
                return
            try:
                plain = base64.b64decode(bytes(half.b64[:whole]), validate=True)
            except (binascii.Error, ValueError):
                self._die(half, "a text frame that is not base64 under the base64 subprotocol")
                return
            del half.b64[:whole]
        self.out.append((half.client, Data(plain, self._time, self._frame)))

    def _control(self, half: _Half, payload: bytes) -> None:
        half.control += 1
        if half.opcode != CLOSE:
            return  # ping and pong are the WebSocket's own keep-alive
        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
        reason = payload[2:].decode("utf-8", "replace")
        if self.close is None:
            self.close = {"code": code, "reason": reason, "by": half.who}
        name = CLOSE_CODES.get(code or 0, "")
        said = f"{code} ({name})" if code is not None and name else str(code) if code is not None else "no code"
        self._notice("websocket_close", half.client, f"WebSocket closed by the {half.who}: {said}"
                                                     + (f", {reason!r}" if reason else ""),
                     code=code, code_name=name or None, close_reason=reason, by=half.who)
        half.state = "closed"

    # -- gaps -------------------------------------------------------------------------------------
    def _emit_gap(self, half: _Half, lost: int) -> None:
        if half.opcode < CLOSE:
            self.out.append((half.client, Gap(lost, self._time, self._frame)))

    def _gap(self, half: _Half, lost: int) -> None:
        if half.state == "head":
            self._die(half, "the HTTP Upgrade was lost in a gap of the capture")
            return
        if half.resync is not None:
            half.resync += lost + len(half.buf)
            half.buf.clear()
            return
        if half.remaining >= lost:  # inside a payload: the framing holds
            half.offset += lost
            half.remaining -= lost
            if half.opcode >= CLOSE:
                half.buf.clear()  # a control frame with a hole is not worth reading
            else:
                self._emit_gap(half, lost)
            return
        # the gap ran past the payload into a header: find the framing again
        half.resync = lost - half.remaining + len(half.buf)
        if half.remaining and half.opcode < CLOSE:
            self._emit_gap(half, half.remaining)
        half.remaining = 0
        half.buf.clear()

    def _find_header(self, half: _Half) -> bool:
        """After a gap: drop bytes up to a plausible frame header (one whose successor, when it is in
        the buffer, is plausible too); True once the framing is found again."""
        buf = half.buf
        for at in range(len(buf) - 1):
            parsed = _frame_header(buf, at, half.client)
            if parsed is None:
                return False  # wait for more bytes before judging this position
            if isinstance(parsed, str) or parsed[1] & 0x0F not in (BINARY, TEXT, CONTINUATION):
                continue
            nxt = at + parsed[0] + parsed[2]
            if nxt + 2 <= len(buf) and isinstance(_frame_header(buf, nxt, half.client), str):
                continue
            if nxt + 2 > len(buf) and len(buf) < RESYNC_WINDOW and parsed[2] < RESYNC_WINDOW:
                return False  # its successor is not here yet: look again with more bytes
            lost = (half.resync or 0) + at
            half.resync = None
            del buf[:at]
            self.out.append((half.client, Gap(lost, self._time, self._frame)))
            return True
        if len(buf) > RESYNC_WINDOW:
            half.resync = (half.resync or 0) + len(buf) - 1
            del buf[:-1]
        return False


def _answered_by(answer: HttpHead) -> str | None:
    """Who sent a 101 answer, where its bytes tell: websockify names itself when its HTTP server adds a
    Server header; spice-server's own port (0.15) writes the token as "Upgrade: WebSocket", where
    websockify 0.10 and most servers write "websocket" (both seen in the corpus's real captures)."""
    server = answer.header("Server") or ""
    if "websockify" in server.lower():
        return "websockify"
    if answer.header("Upgrade") == "WebSocket" and not server:
        return "spice-server"
    return None
