"""Which transport a connection's next bytes open, so that layers stack in any order.

Each TCP connection carries a chain of transport layers (HTTP CONNECT, WebSocket, TLS) under its
SPICE bytes. The chain grows from the bottom: the first client bytes of the TCP stream, then the
first client bytes each new layer passes on, say what comes next. spice-gtk through a proxy sends
`CONNECT host:port`, spice-html5 a `GET` with `Upgrade: websocket`, a TLS client its ClientHello;
anything else is left to the SPICE layer (the link magic "REDQ", or data headers mid-session).
So CONNECT -> TLS -> SPICE, WebSocket -> SPICE and TLS -> WebSocket -> SPICE all decode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spicetool.capture.tls_records import HANDSHAKE, looks_like_client_hello
from spicetool.capture.transport import CONNECT, MAX_HEAD, HeadError, head_end, parse_head

if TYPE_CHECKING:
    from spicetool.capture.keylog import KeyLog

GET = b"GET "
MAX_LAYERS = 4  # transports stacked on one connection before the rest is left to SPICE (no endless CONNECTs)
WAIT = "wait"  # too few bytes to tell yet
CONNECT_LAYER, WEBSOCKET_LAYER, TLS_LAYER = "connect", "websocket", "tls"
OTHER_HTTP = "http"  # an HTTP request that is not a WebSocket Upgrade: not SPICE's
CLIENT_HELLO_MIN = 6  # bytes that tell a ClientHello record


def pick(data: bytes | bytearray) -> str | None:
    """What a stream's first client bytes open: WAIT, CONNECT_LAYER, WEBSOCKET_LAYER, TLS_LAYER,
    OTHER_HTTP, or None (SPICE, or bytes we do not know: the SPICE layer decides)."""
    for magic in (CONNECT, GET):
        n = min(len(data), len(magic))
        if data[:n] != magic[:n]:
            continue
        if n < len(magic):
            return WAIT
        if magic == CONNECT:
            return CONNECT_LAYER
        size = head_end(data)
        if size is None:  # a browser sends the whole head at once; wait for it, within reason
            return WAIT if len(data) < MAX_HEAD else OTHER_HTTP
        try:
            head = parse_head(data, size)
        except HeadError:
            return OTHER_HTTP
        return WEBSOCKET_LAYER if head.has_token("Upgrade", "websocket") else OTHER_HTTP
    if looks_like_client_hello(bytes(data[:CLIENT_HELLO_MIN])):
        return TLS_LAYER
    if len(data) < CLIENT_HELLO_MIN and data[:1] == bytes([HANDSHAKE]) and data[1:2] in (b"", b"\x03"):
        return WAIT
    return None


def make_layer(kind: str, keylog: KeyLog | None) -> Any:
    """A fresh layer of `kind` (a value of `pick`)."""
    # a layer's module is imported when a capture has one (most have none), not at every start
    if kind == CONNECT_LAYER:
        from spicetool.capture.http_connect import HttpConnect

        return HttpConnect()
    if kind == WEBSOCKET_LAYER:
        from spicetool.capture.websocket import WebSocket

        return WebSocket()
    from spicetool.capture.tls import TlsConnection  # cryptography, only when a capture has TLS

    return TlsConnection(keylog)
