"""TLS between TCP reassembly and SPICE: decrypts a connection's records with the secrets of a
key log, so the SPICE layer sees the same clear bytes a proxy would have recorded.

A `TlsConnection` takes the reassembled data and gaps of both directions (tcp.Data / tcp.Gap)
and gives back clear Data and Gap items plus `Notice`s: the connection is encrypted and we have
no keys (with version, cipher and SNI), a record that does not decrypt, a truncated record, an
alert. TLS 1.2 (keys from CLIENT_RANDOM, switched on at ChangeCipherSpec) and TLS 1.3 (handshake
then application traffic secrets, switched at each side's Finished, KeyUpdate followed) with
AES-GCM, AES-CCM and ChaCha20-Poly1305. After a TCP gap the record stream is found again by
header shape and by trying the sequence numbers the lost bytes could have held.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spicetool.capture.keylog import KeyLog
from spicetool.capture.tcp import Data, Gap
from spicetool.capture.tls_keys import (
    SUITES,
    TAG,
    BadRecord,
    RecordCipher,
    Suite,
    keys12,
    keys13,
    next_secret13,
    suite_name,
)
from spicetool.capture.tls_records import (
    ALERT,
    APPLICATION_DATA,
    CHANGE_CIPHER_SPEC,
    CLIENT_HELLO,
    FINISHED,
    HANDSHAKE,
    HEADER,
    HRR_RANDOM,
    KEY_UPDATE,
    MAX_FRAGMENT,
    SERVER_HELLO,
    Hello,
    Malformed,
    alert_name,
    alert_text,
    handshake_messages,
    parse_hello,
    plausible_header,
    version_name,
)

TLS13 = 0x0304
MAX_HANDSHAKE = 256 * 1024  # handshake bytes buffered per direction (certificate chains fit)
MAX_FAILURES = 3  # records in a row that do not decrypt before a direction is given up
HINT = "pass the key log with --tls-keylog FILE (as SSLKEYLOGFILE writes it)"


@dataclass
class Notice:
    """Something to tell about the TLS layer of a connection, as one line."""

    kind: str  # "encrypted" (no keys: not decoded), "error"
    from_client: bool
    time: float
    frame: int
    reason: str
    fields: dict[str, Any] = field(default_factory=dict)


Item = Data | Gap | Notice
Output = tuple[bool, Item]  # (from the client?, item)


@dataclass
class _Half:
    """One direction's record layer."""

    client: bool
    buf: bytearray = field(default_factory=bytearray)
    hs: bytearray = field(default_factory=bytearray)  # handshake bytes not yet a whole message
    encrypted: bool = False  # records are protected from here on
    cipher: RecordCipher | None = None
    pending: RecordCipher | None = None  # TLS 1.2: the cipher ChangeCipherSpec switches on
    secret: bytes | None = None  # TLS 1.3: the current traffic secret (for KeyUpdate)
    app_secret: bytes | None = None  # TLS 1.3: *_TRAFFIC_SECRET_0, taken after Finished
    application: bool = False  # TLS 1.3: past this side's Finished
    resync: int | None = None  # bytes lost in the last gap, while the record stream is being found again
    failures: int = 0  # records in a row that did not decrypt
    decrypted: int = 0
    dead: bool = False  # nothing more can be decrypted in this direction

    @property
    def who(self) -> str:
        return "client" if self.client else "server"


def _take_record(buf: bytearray) -> tuple[int, bytes, bytes] | None:
    """(type, version, fragment) of the record whose header starts buf, taken off it; None while not all
    of it is there."""
    length = int.from_bytes(buf[3:5], "big")
    if len(buf) < HEADER + length:
        return None
    record = buf[0], bytes(buf[1:3]), bytes(buf[HEADER:HEADER + length])
    del buf[:HEADER + length]
    return record


class TlsConnection:
    def __init__(self, keylog: KeyLog | None) -> None:
        self.keylog = keylog
        self.halves = {True: _Half(True), False: _Half(False)}
        self.client_hello: Hello | None = None
        self.server_hello: Hello | None = None
        self.suite: Suite | None = None
        self.state = "handshake"  # "handshake", "decrypting", "opaque" (no keys or no way to decrypt)
        self.keys_from: str | None = None  # where the connection's secrets came from, once found
        self.out: list[Output] = []
        self._time, self._frame = 0.0, 0

    # -- what the SPICE layer shows of it ---------------------------------------------------------
    @property
    def version(self) -> int | None:
        return self.server_hello.version if self.server_hello else None

    @property
    def other_protocol(self) -> bool:
        """The client asked for an application protocol (ALPN: h2, http/1.1, ...): HTTPS and the like,
        not SPICE, whose clients ask for none."""
        return bool(self.client_hello and self.client_hello.alpn)

    def describe(self) -> str:
        parts = [version_name(self.version)]
        if self.server_hello and self.server_hello.suite is not None:
            parts.append(suite_name(self.server_hello.suite))
        if self.client_hello and self.client_hello.sni:
            parts.append(f"SNI {self.client_hello.sni}")
        return ", ".join(parts)

    def info(self) -> dict[str, Any]:
        """The layer in a connection's transport chain (stable keys); `decrypted` None while its
        handshake is under way."""
        return {"layer": "tls", **self._fields(),
                "decrypted": True if self.state == "decrypting" else False if self.state == "opaque" else None}

    def _fields(self) -> dict[str, Any]:
        return {"version": version_name(self.version) if self.version else None,
                "cipher": suite_name(self.server_hello.suite) if self.server_hello and self.server_hello.suite
                is not None else None,
                "sni": self.client_hello.sni if self.client_hello else None}

    def _notice(self, kind: str, from_client: bool, reason: str, extra: dict[str, Any] | None = None) -> None:
        self.out.append((from_client, Notice(kind, from_client, self._time, self._frame, reason,
                                             {**self._fields(), **(extra or {})})))

    def _opaque(self, reason: str) -> None:
        self.state = "opaque"
        for h in self.halves.values():
            h.buf.clear()
            h.hs.clear()
        self._notice("encrypted", False, f"TLS-encrypted ({self.describe()}): {reason}")

    # -- input ---------------------------------------------------------------------------------
    def feed(self, from_client: bool, item: Data | Gap) -> list[Output]:
        self.out = []
        self._time, self._frame = item.time, item.frame
        half = self.halves[from_client]
        if half.dead:
            return self.out
        if self.state == "opaque":
            self._scan_clear(half, item)
            return self.out
        if isinstance(item, Gap):
            if self.state == "handshake" and not half.encrypted:
                self._opaque("part of the handshake is missing from the capture; cannot decrypt")
                return self.out
            lost = item.lost + len(half.buf)
            half.buf.clear()
            half.resync = (half.resync or 0) + lost
            self.out.append((from_client, Gap(lost, item.time, item.frame)))
            return self.out
        half.buf += item.data
        self._records(half)
        return self.out

    def _scan_clear(self, half: _Half, item: Data | Gap) -> None:
        """Not decrypted: the records are still framed until application data starts, for an alert sent in the
        clear (two bytes: a client refusing the server's certificate in TLS 1.2, a server refusing the hello),
        the one thing a connection without keys can still say about why it failed."""
        if isinstance(item, Gap):
            half.dead = True
            return
        half.buf += item.data
        buf = half.buf
        while len(buf) >= HEADER:
            if not plausible_header(buf):
                half.dead = True
                break
            record = _take_record(buf)
            if record is None:
                return
            rtype, _, fragment = record
            if rtype == ALERT and len(fragment) == 2:  # (a protected alert is longer: nonce, tag)
                self._notice("error", half.client, f"TLS {alert_text(fragment)} from the {half.who}",
                             {"alert": alert_name(fragment)})
            elif rtype == APPLICATION_DATA:
                half.dead = True  # from here on everything is protected
                break
        if half.dead:
            buf.clear()

    def finish(self, time: float, frame: int) -> list[Output]:
        """End of the capture: a record cut off by it is said so."""
        self.out = []
        self._time, self._frame = time, frame
        if self.state == "handshake" and self.client_hello and not self.server_hello:
            self._opaque("the capture ends before the server's hello")
        if self.state == "decrypting":
            for half in self.halves.values():
                if half.buf and not half.dead and half.resync is None:
                    need = HEADER + int.from_bytes(half.buf[3:5], "big") if len(half.buf) >= HEADER else HEADER
                    self._notice("error", half.client, f"TLS record from the {half.who} truncated: "
                                                       f"{len(half.buf)} of {need} bytes captured")
                    self.out.append((half.client, Gap(len(half.buf), time, frame)))
                half.buf.clear()
        return self.out

    # -- records -------------------------------------------------------------------------------
    def _records(self, half: _Half) -> None:
        buf = half.buf
        while buf and self.state != "opaque" and not half.dead:
            if half.resync is not None and not self._find_record(half):
                return
            ok = plausible_header(buf)
            if ok is None:
                return
            if not ok:
                self._notice("error", half.client, f"TLS record header from the {half.who} is corrupt "
                                                   f"({bytes(buf[:HEADER]).hex()}); resynchronising")
                half.resync = 0
                self.out.append((half.client, Gap(0, self._time, self._frame)))
                continue
            record = _take_record(buf)
            if record is None:
                return
            self._record(half, *record)

    def _find_record(self, half: _Half) -> bool:
        """After a gap: drop bytes up to a record that decrypts with a sequence number the lost bytes
        allow. False: more data is needed (or the direction was given up)."""
        buf = half.buf
        cipher = half.cipher
        if cipher is None or not half.encrypted:
            # nothing to decrypt yet on this side: a clear record header is enough
            at = next((i for i in range(len(buf)) if plausible_header(buf, i)), None)
            if at is None:
                del buf[:max(0, len(buf) - HEADER)]
                return False
            del buf[:at]
            half.resync = None
            return True
        lost = half.resync or 0
        lo = cipher.seq + lost // (HEADER + MAX_FRAGMENT + 256)
        hi = cipher.seq + lost // (HEADER + TAG + 1) + 2
        hi = min(hi, lo + 4096)  # a bounded search: at most this many tries per candidate
        i = 0
        while i + HEADER <= len(buf):
            if not plausible_header(buf, i) or buf[i] != APPLICATION_DATA:
                i += 1
                continue
            length = int.from_bytes(buf[i + 3:i + 5], "big")
            if len(buf) < i + HEADER + length:
                del buf[:i]
                return False  # wait for the rest of this candidate
            fragment = bytes(buf[i + HEADER:i + HEADER + length])
            for seq in range(lo, hi):
                try:
                    cipher.decrypt(buf[i], bytes(buf[i + 1:i + 3]), fragment, seq)
                except BadRecord:
                    continue
                cipher.seq = seq  # found: decode it again through the normal path
                del buf[:i]
                half.resync = None
                return True
            i += 1
        if len(buf) > 4 * (HEADER + MAX_FRAGMENT):
            half.dead = True
            self._notice("error", half.client, f"TLS records from the {half.who} cannot be found again after "
                                               f"a gap; the rest of this direction is not decrypted")
        else:
            del buf[:max(0, i)]
        return False

    def _record(self, half: _Half, rtype: int, version: bytes, fragment: bytes) -> None:
        if not half.encrypted:
            if rtype == HANDSHAKE:
                half.hs += fragment
                self._handshake(half)
            elif rtype == CHANGE_CIPHER_SPEC and self.server_hello is not None and self.version != TLS13:
                half.encrypted, half.cipher = True, half.pending
            elif rtype == ALERT:
                self._notice("error", half.client, f"TLS {alert_text(fragment)} from the {half.who}")
            return
        if rtype == CHANGE_CIPHER_SPEC:
            return  # TLS 1.3 middlebox compatibility: never protected, never meaningful
        cipher = half.cipher
        if cipher is None:
            return
        try:
            clear = cipher.decrypt(rtype, version, fragment)
        except BadRecord as exc:
            cipher.seq += 1  # the record used its number all the same
            half.failures += 1
            lost = max(0, len(fragment) - TAG)
            if half.failures >= MAX_FAILURES:
                half.dead = True
                why = ("do not decrypt with the key log's secrets (wrong or stale key log?)" if not half.decrypted
                       else "no longer decrypt; the rest of this direction is not decoded")
                self._notice("error", half.client, f"TLS records from the {half.who} {why}")
                return
            self._notice("error", half.client, f"TLS record {cipher.seq - 1} from the {half.who}: {exc} "
                                               f"(corrupt in the capture?); {lost} bytes skipped")
            self.out.append((half.client, Gap(lost, self._time, self._frame)))
            return
        half.failures = 0
        half.decrypted += 1
        if self.version == TLS13:
            end = len(clear)
            while end and clear[end - 1] == 0:  # RFC 8446 5.4: zero padding after the inner type
                end -= 1
            if not end:
                self._notice("error", half.client, f"TLS record from the {half.who} holds no content type")
                return
            rtype, clear = clear[end - 1], clear[:end - 1]
        if rtype == APPLICATION_DATA:
            if clear:
                self.out.append((half.client, Data(clear, self._time, self._frame)))
        elif rtype == ALERT:
            if clear[:2] != b"\x01\x00":  # close_notify is the normal end
                self._notice("error", half.client, f"TLS {alert_text(clear)} from the {half.who}")
        elif rtype == HANDSHAKE and self.version == TLS13:
            half.hs += clear
            self._handshake(half)

    # -- handshake -----------------------------------------------------------------------------
    def _handshake(self, half: _Half) -> None:
        try:
            messages = handshake_messages(half.hs, MAX_HANDSHAKE)
        except Malformed as exc:
            half.hs.clear()
            if self.state == "handshake":
                self._opaque(f"the handshake cannot be read ({exc})")
            return
        for mtype, body in messages:
            if mtype == CLIENT_HELLO and half.client and self.state == "handshake":
                try:
                    hello = parse_hello(mtype, body)
                except Malformed as exc:
                    self._opaque(f"the client's hello cannot be read ({exc})")
                    return
                if self.client_hello is None:  # a second hello (after a retry request) keeps the random
                    self.client_hello = hello
            elif mtype == SERVER_HELLO and not half.client and self.state == "handshake":
                try:
                    hello = parse_hello(mtype, body)
                except Malformed as exc:
                    self._opaque(f"the server's hello cannot be read ({exc})")
                    return
                if hello.random == HRR_RANDOM:
                    continue  # HelloRetryRequest: the real ServerHello follows
                self.server_hello = hello
                self._keys()
                if self.state == "opaque":
                    return
            elif mtype == FINISHED and self.version == TLS13 and half.encrypted and not half.application:
                half.application = True  # this side's application secret protects what follows
                self._set13(half, half.app_secret)
            elif mtype == KEY_UPDATE and self.version == TLS13 and half.application and half.secret:
                self._set13(half, next_secret13(self.suite, half.secret))  # type: ignore[arg-type]

    def _set13(self, half: _Half, secret: bytes | None) -> None:
        if secret is None or self.suite is None:
            return
        key, iv = keys13(self.suite, secret)
        half.secret, half.cipher = secret, RecordCipher(self.suite, key, iv, True)

    def _keys(self) -> None:
        """ServerHello seen: find the connection's secrets and prepare both directions."""
        sh, ch = self.server_hello, self.client_hello
        assert sh is not None
        suite = SUITES.get(sh.suite or 0)
        if ch is None:
            self._opaque("the client's hello is missing from the capture; cannot decrypt")
            return
        if sh.version not in (0x0303, TLS13):
            self._opaque("only TLS 1.2 and 1.3 are decrypted")
            return
        if suite is None:
            self._opaque("only AEAD cipher suites (AES-GCM, AES-CCM, ChaCha20-Poly1305) are decrypted")
            return
        self.suite = suite
        log = self.keylog
        secrets = log.lookup(ch.random) if log is not None else {}  # (the capture's later blocks looked for)
        if log is None or not log.given():
            self._opaque(f"no key log given; {HINT}")
            return
        self.keys_from = log.source_of(ch.random) if secrets else None
        if sh.version == TLS13:
            needed = ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                      "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0")
            if not all(k in secrets for k in needed):
                self._opaque(f"{log.name} lacks this connection's TLS 1.3 secrets "
                             f"(client random {ch.random.hex()[:16]}...)")
                return
            for client in (True, False):
                half, who = self.halves[client], "CLIENT" if client else "SERVER"
                half.encrypted = True  # everything after the ServerHello is protected
                half.app_secret = secrets[f"{who}_TRAFFIC_SECRET_0"]
                self._set13(half, secrets[f"{who}_HANDSHAKE_TRAFFIC_SECRET"])
        else:
            master = secrets.get("CLIENT_RANDOM")
            if master is None:
                self._opaque(f"{log.name} has no CLIENT_RANDOM line for this connection "
                             f"(client random {ch.random.hex()[:16]}...)")
                return
            (ck, civ), (sk, siv) = keys12(suite, master, ch.random, sh.random)
            self.halves[True].pending = RecordCipher(suite, ck, civ, False)
            self.halves[False].pending = RecordCipher(suite, sk, siv, False)
        self.state = "decrypting"
