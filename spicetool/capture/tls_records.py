"""TLS record framing and the few cleartext handshake fields a passive decryptor needs
(RFC 5246 6.2 and 7.4, RFC 8446 4.1 and 5.1): randoms, cipher suite, version, SNI."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, HEARTBEAT = 20, 21, 22, 23, 24
RECORD_TYPES = (CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, HEARTBEAT)
HEADER = 5
MAX_FRAGMENT = (1 << 14) + 2048  # RFC 5246 6.2.3: the largest ciphertext fragment allowed
CLIENT_HELLO, SERVER_HELLO, NEW_SESSION_TICKET, FINISHED, KEY_UPDATE = 1, 2, 4, 20, 24
EXT_SERVER_NAME, EXT_ALPN, EXT_SUPPORTED_VERSIONS = 0, 16, 43
# RFC 8446 4.1.3: a ServerHello with this random is a HelloRetryRequest
HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
VERSIONS = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}
ALERTS = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 40: "handshake_failure",
          42: "bad_certificate", 43: "unsupported_certificate", 44: "certificate_revoked",
          45: "certificate_expired", 46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
          50: "decode_error", 51: "decrypt_error", 70: "protocol_version", 71: "insufficient_security",
          80: "internal_error", 86: "inappropriate_fallback", 90: "user_canceled", 109: "missing_extension",
          110: "unsupported_extension", 112: "unrecognized_name", 116: "certificate_required",
          120: "no_application_protocol"}


class Malformed(Exception):
    pass


def plausible_header(buf: bytes | bytearray, at: int = 0) -> bool | None:
    """Could a record header start at `at`? None: not enough bytes to tell."""
    if len(buf) - at < HEADER:
        return None
    rtype, major, minor, length = buf[at], buf[at + 1], buf[at + 2], (buf[at + 3] << 8) | buf[at + 4]
    return rtype in RECORD_TYPES and major == 3 and minor <= 4 and 0 < length <= MAX_FRAGMENT


def record_chain(buf: bytes | bytearray, min_records: int = 3) -> bool:
    """Does the data run as TLS records from some offset (a connection caught after its handshake)?
    At least `min_records` headers in a row, each where the one before ends, or to the end of buf."""
    for start in range(min(len(buf), HEADER + MAX_FRAGMENT)):
        at, count = start, 0
        while plausible_header(buf, at) and buf[at] == APPLICATION_DATA:
            count += 1
            at += HEADER + ((buf[at + 3] << 8) | buf[at + 4])
        if count >= min_records or (count >= 1 and at == len(buf) and start == 0):
            return True
    return False


def looks_like_client_hello(data: bytes) -> bool:
    """The first bytes a TLS client sends: a handshake record holding a ClientHello."""
    return len(data) >= 6 and data[0] == HANDSHAKE and data[1] == 3 and data[2] <= 4 and data[5] == CLIENT_HELLO


def version_name(v: int | None) -> str:
    return VERSIONS.get(v, f"version 0x{v:04X}") if v is not None else "TLS"


def alert_name(body: bytes) -> str | None:
    """The alert's description by its RFC name (None: malformed)."""
    return str(ALERTS.get(body[1], body[1])) if len(body) == 2 else None


def alert_text(body: bytes) -> str:
    if len(body) < 2:
        return "a malformed alert"
    level = {1: "warning", 2: "fatal"}.get(body[0], f"level {body[0]}")
    return f"{level} alert {ALERTS.get(body[1], body[1])}"


def handshake_messages(buf: bytearray, limit: int) -> list[tuple[int, bytes]]:
    """Cut whole handshake messages (type, body) off the front of buf; what is partial stays.
    A message larger than `limit` is dropped whole (certificates we never need)."""
    out: list[tuple[int, bytes]] = []
    while len(buf) >= 4:
        mtype, length = buf[0], int.from_bytes(buf[1:4], "big")
        if length > limit:
            raise Malformed(f"handshake message of {length} bytes")
        if len(buf) < 4 + length:
            break
        out.append((mtype, bytes(buf[4:4 + length])))
        del buf[:4 + length]
    return out


@dataclass
class Hello:
    random: bytes
    version: int  # legacy_version, or the supported_versions choice (ServerHello)
    suite: int | None = None  # ServerHello's choice
    sni: str | None = None
    versions: list[int] = field(default_factory=list)  # ClientHello's supported_versions
    alpn: list[str] = field(default_factory=list)  # ClientHello's application protocols (SPICE clients send none)


def _extensions(body: bytes, at: int) -> dict[int, bytes]:
    if at + 2 > len(body):
        return {}
    end = at + 2 + int.from_bytes(body[at:at + 2], "big")
    at += 2
    exts: dict[int, bytes] = {}
    while at + 4 <= min(end, len(body)):
        etype, elen = struct.unpack_from("!HH", body, at)
        exts[etype] = body[at + 4:at + 4 + elen]
        at += 4 + elen
    return exts


def parse_hello(mtype: int, body: bytes) -> Hello:
    """ClientHello or ServerHello fields; Malformed when they do not fit."""
    try:
        version = int.from_bytes(body[0:2], "big")
        random = body[2:34]
        if len(random) != 32:
            raise Malformed("hello too short")
        at = 34
        at += 1 + body[at]  # session id
        hello = Hello(random, version)
        if mtype == CLIENT_HELLO:
            at += 2 + int.from_bytes(body[at:at + 2], "big")  # cipher suites
            at += 1 + body[at]  # compression methods
            exts = _extensions(body, at)
            sv = exts.get(EXT_SUPPORTED_VERSIONS, b"")
            hello.versions = [int.from_bytes(sv[i:i + 2], "big") for i in range(1, 1 + (sv[:1] or b"\0")[0], 2)]
            alpn, at = exts.get(EXT_ALPN, b"")[2:], 0
            while at < len(alpn):
                hello.alpn.append(alpn[at + 1:at + 1 + alpn[at]].decode("ascii", "replace"))
                at += 1 + alpn[at]
            sni = exts.get(EXT_SERVER_NAME, b"")
            if len(sni) >= 5 and sni[2] == 0:  # server_name_list, first entry a host_name
                n = int.from_bytes(sni[3:5], "big")
                hello.sni = sni[5:5 + n].decode("ascii", "replace")
        else:
            hello.suite = int.from_bytes(body[at:at + 2], "big")
            exts = _extensions(body, at + 3)
            sv = exts.get(EXT_SUPPORTED_VERSIONS, b"")
            if len(sv) == 2:
                hello.version = int.from_bytes(sv, "big")
        return hello
    except IndexError:
        raise Malformed("hello cut short") from None
