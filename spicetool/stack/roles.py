"""The link stage as the two roles play it, sans-I/O: ServerLink and ClientLink.

Each takes the peer's bytes (`receive_data`) and hands back events; what it has to say is
waiting in `data_to_send()`.  Records are parsed and built by stack.link (and, on the
client's side, by the ChannelConnection observer the dissector uses), never here.

Server checks and refusals follow spice-server's reds.cpp: bad magic -> INVALID_MAGIC,
another major version -> VERSION_MISMATCH (silence for major 0), a size or capability list out
of range -> INVALID_DATA (all three as a LinkReply); a wrong ticket -> PERMISSION_DENIED, a
channel of an unknown session -> BAD_CONNECTION_ID (as the u32 link result); a secure channel
on the plain port -> NEED_SECURED (as a LinkReply).  Two refusals differ from spice-server so
the client can tell what happened: a channel not served gets CHANNEL_NOT_AVAILABLE in the
LinkReply (spice-server closes without a word), and an auth mechanism other than AUTH_SPICE
gets INVALID_DATA as the u32 link result the client waits for at that point.
"""
from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Callable

from .connection import ChannelConnection
from .events import Direction, Event, LinkRecord, ProtocolError
from .link import (
    LINK_HEADER,
    LINK_MESS,
    MAGIC,
    MAX_LINK_SIZE,
    TICKET_SIZE,
    LinkError,
    build_auth_mechanism,
    build_link_mess,
    build_link_reply,
    build_link_result,
    encrypt_ticket,
    parse_link_header,
    parse_link_mess,
    parse_u32,
)
from .types import CAP_AUTH_SASL, CAP_AUTH_SPICE, CHANNEL_TYPES

SPICE_VERSION_MAJOR, SPICE_VERSION_MINOR = 2, 2
MAIN = CHANNEL_TYPES["main"]


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"

    @property
    def direction(self) -> Direction:
        """The direction of what this role sends."""
        return Direction.CLIENT if self is Role.CLIENT else Direction.SERVER

    @property
    def peer_direction(self) -> Direction:
        return Direction.SERVER if self is Role.CLIENT else Direction.CLIENT


# --- role events ---

@dataclass
class LinkAccepted:
    """The link stage succeeded.  Caps are the peer's; mini_header: the header we send."""
    channel_type: int
    channel_id: int
    connection_id: int
    common_caps: list
    channel_caps: list
    mini_header: bool


@dataclass
class LinkRefused:
    """A refusal: the SpiceLinkErr name sent (server) or received (client); None: closed
    without a word."""
    error: str | None
    reason: str


@dataclass
class LinkFailed:
    """The client cannot go on with what the server sent: `what` is "protocol" (bytes that
    are no link record), "sasl" (SASL only) or "pub_key" (no usable RSA key)."""
    what: str
    reason: str


def has_cap(caps: list, name: str) -> bool:
    """A common capability, by its name in the link records (the one place that reads them
    here: the day capabilities become enum members, this changes alone)."""
    return name in caps


def has_mini_header(ours: list, theirs: list) -> bool:
    """Mini headers when both sides announced MINI_HEADER."""
    return has_cap(ours, "mini_header") and has_cap(theirs, "mini_header")


def auth_selection(ours: list, theirs: list) -> bool:
    """The client sends its auth mechanism when both sides announced AUTH_SELECTION."""
    return has_cap(ours, "protocol_auth_selection") and has_cap(theirs, "protocol_auth_selection")


class _Link:
    def __init__(self) -> None:
        self.state = "start"
        self._out = bytearray()
        self.accepted: LinkAccepted | None = None

    @property
    def done(self) -> bool:
        return self.state in ("done", "refused", "failed")

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out


class ServerLink(_Link):
    """The server's link stage.  pub_key: the DER key sent in the LinkReply; check_ticket:
    the caller's check of the 128-byte encrypted ticket (its private key, its password
    policy); the callbacks decide which channels and sessions exist and which channels need
    TLS on this port (None: all do / none do)."""

    def __init__(self, pub_key: bytes, check_ticket: Callable[[bytes], bool], *,
                 common_caps: list, channel_caps: dict[int, list] | None = None,
                 channel_available: Callable[[int, int], bool] | None = None,
                 session_exists: Callable[[int], bool] | None = None,
                 needs_secured: Callable[[int], bool] | None = None):
        super().__init__()
        self.pub_key, self.check_ticket = pub_key, check_ticket
        self.common_caps, self.channel_caps = common_caps, channel_caps or {}
        self.channel_available = channel_available
        self.session_exists = session_exists
        self.needs_secured = needs_secured
        self.state = "link_header"
        self.mess: dict | None = None   # the client's LinkMess fields
        self._in = bytearray()
        self._size = 0

    @property
    def pending(self) -> int:
        return len(self._in)

    @property
    def trailing(self) -> bytes:
        """Bytes the client sent after the link stage (the start of the data phase)."""
        return bytes(self._in) if self.state == "done" else b""

    def receive_data(self, data: bytes) -> list:
        if self.done:
            return []
        self._in += data
        events: list = []
        while not self.done and self._step(events):
            pass
        return events

    def _refuse(self, events: list, error: str | None, reason: str, as_result: bool = False) -> bool:
        if error is not None:
            self._out += build_link_result({"error": error}) if as_result else \
                build_link_reply({"error": error, "caps_offset": 0}, None)
        events.append(LinkRefused(error, reason))
        self.state = "refused"
        self._in.clear()
        return False

    def _step(self, events: list) -> bool:
        buf = self._in
        if self.state == "link_header":
            h = parse_link_header(buf)
            if h is None:
                return False
            magic, major, _minor, size = h
            if magic != MAGIC:
                return self._refuse(events, "INVALID_MAGIC", f"bad link magic {magic!r}")
            if major != SPICE_VERSION_MAJOR:
                if major > 0:
                    return self._refuse(events, "VERSION_MISMATCH", f"protocol major version {major}")
                return self._refuse(events, None, "protocol major version 0")
            if not LINK_MESS.size <= size <= MAX_LINK_SIZE:
                return self._refuse(events, "INVALID_DATA", f"link message size {size}")
            self._size = size
            self.state = "link_mess"
            return True
        if self.state == "link_mess":
            total = LINK_HEADER.size + self._size
            if len(buf) < total:
                return False
            try:
                parsed = parse_link_mess(buf[:total])
            except LinkError as e:
                return self._refuse(events, "INVALID_DATA", str(e))
            assert parsed is not None  # the whole record is here
            del buf[:total]
            mess = self.mess = parsed[0]
            ctype, cid = mess["channel_type"], mess["channel_id"]
            if self.channel_available is not None and not self.channel_available(ctype, cid):
                return self._refuse(events, "CHANNEL_NOT_AVAILABLE", f"no channel of type {ctype} id {cid}")
            if self.needs_secured is not None and self.needs_secured(ctype):
                # spice-server's security check: the client reconnects to the TLS port
                return self._refuse(events, "NEED_SECURED", f"channel type {ctype} is secure: TLS port only")
            self._out += build_link_reply({"error": "OK", "pub_key": self.pub_key,
                                           "common_caps": self.common_caps,
                                           "channel_caps": self.channel_caps.get(ctype, [])}, ctype)
            self.state = "auth_mechanism" if auth_selection(mess["common_caps"], self.common_caps) \
                else "ticket"
            return True
        if self.state == "auth_mechanism":
            mechanism = parse_u32(buf, 0)
            if mechanism is None:
                return False
            del buf[:4]
            if mechanism != CAP_AUTH_SPICE:
                what = "SASL, which this server does not offer" if mechanism == CAP_AUTH_SASL \
                    else f"unknown mechanism {mechanism}"
                return self._refuse(events, "INVALID_DATA", f"auth mechanism {what}", as_result=True)
            self.state = "ticket"
            return True
        if self.state == "ticket":
            if len(buf) < TICKET_SIZE:
                return False
            ticket = bytes(buf[:TICKET_SIZE])
            del buf[:TICKET_SIZE]
            mess = self.mess
            assert mess is not None
            if not self.check_ticket(ticket):
                return self._refuse(events, "PERMISSION_DENIED", "wrong password", as_result=True)
            conn_id = mess["connection_id"]
            if mess["channel_type"] != MAIN and self.session_exists is not None \
                    and not self.session_exists(conn_id):
                return self._refuse(events, "BAD_CONNECTION_ID", f"no session {conn_id}", as_result=True)
            self._out += build_link_result({"error": "OK"})
            self.accepted = LinkAccepted(mess["channel_type"], mess["channel_id"], conn_id,
                                         mess["common_caps"], mess["channel_caps"],
                                         has_mini_header(self.common_caps, mess["common_caps"]))
            events.append(self.accepted)
            self.state = "done"
            return False
        return False


class ClientLink(_Link):
    """The client's link stage: LinkMess with our caps, the server's LinkReply, the auth
    mechanism, the ticket (the password encrypted with the server's key; or `ticket` as
    given), the link result.  An observing ChannelConnection parses both directions, so the
    records and their errors are the dissector's; after the link it goes on with the data
    phase, whose events follow LinkAccepted."""

    def __init__(self, link_mess: dict, password: bytes = b"", *,
                 auth_mechanism: int = CAP_AUTH_SPICE, ticket: bytes | None = None):
        super().__init__()
        self.link_mess = dict(link_mess)
        self.link_mess.setdefault("common_caps", [])
        self.password, self.auth_mechanism, self.ticket = password, auth_mechanism, ticket
        self.observer = ChannelConnection()
        self.reply: dict | None = None   # the server's LinkReply fields
        self._pending: deque = deque()
        self.state = "link_reply"
        self._send(build_link_mess(self.link_mess))

    @property
    def waiting_for(self) -> str | None:
        """The record awaited from the server ("link_reply", "link_result"), if any."""
        return self.state if self.state in ("link_reply", "link_result") else None

    def _send(self, data: bytes) -> None:
        self._out += data
        # our bytes move the observer on (the server's result follows our mechanism)
        self._pending.extend(self.observer.receive(Direction.CLIENT, data))

    def receive_data(self, data: bytes) -> list[Event | LinkAccepted | LinkRefused | LinkFailed]:
        self._pending.extend(self.observer.receive(Direction.SERVER, data))
        out: list = []
        while self._pending:
            ev = self._pending.popleft()
            if ev.direction is not Direction.SERVER:
                continue   # our own records
            if self.state == "done":
                out.append(ev)   # the data phase
            elif self.done:
                continue
            elif isinstance(ev, ProtocolError):
                self.state = "failed"
                out.append(LinkFailed("protocol", ev.reason))
            elif isinstance(ev, LinkRecord):
                self._record(ev, out)
        return out

    def _record(self, ev: LinkRecord, out: list) -> None:
        if ev.name == "link_reply" and self.state == "link_reply":
            f = self.reply = ev.fields
            if f["error"] != "OK":
                self.state = "refused"
                out.append(LinkRefused(str(f["error"]), "in the link reply"))
                return
            caps = f["common_caps"]
            if not has_cap(caps, "auth_spice") and has_cap(caps, "auth_sasl"):
                self.state = "failed"
                out.append(LinkFailed("sasl", "the server wants SASL authentication"))
                return
            self.state = "link_result"
            if auth_selection(self.link_mess["common_caps"], caps):
                self._send(build_auth_mechanism({"auth_mechanism": self.auth_mechanism}))
            ticket = self.ticket
            if ticket is None:
                try:
                    ticket = encrypt_ticket(f["pub_key"], self.password)
                except ValueError as e:  # not an RSA public key
                    self.state = "failed"
                    out.append(LinkFailed("pub_key", f"the server's public key is unusable: {e}"))
                    return
            self._send(ticket)
        elif ev.name == "link_result" and self.state == "link_result":
            if ev.fields["error"] != "OK":
                self.state = "refused"
                out.append(LinkRefused(str(ev.fields["error"]), "in the link result"))
                return
            assert self.reply is not None
            m = self.link_mess
            self.accepted = LinkAccepted(m["channel_type"], m.get("channel_id", 0),
                                         m.get("connection_id", 0), self.reply["common_caps"],
                                         self.reply["channel_caps"],
                                         has_mini_header(m["common_caps"], self.reply["common_caps"]))
            self.state = "done"
            out.append(self.accepted)
