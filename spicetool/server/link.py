"""The server side of the link stage, on asyncio streams, with the stack's records.

Checks and refusals follow spice-server's reds.cpp: bad magic -> INVALID_MAGIC, another major
version -> VERSION_MISMATCH (silence for major 0), a size or capability list out of range ->
INVALID_DATA (all three as a LinkReply); a wrong ticket -> PERMISSION_DENIED, a channel of an
unknown session -> BAD_CONNECTION_ID (as the u32 link result); a --secure-channels channel on
the plain port -> NEED_SECURED (as a LinkReply), after which spice-gtk reconnects with TLS.

Two refusals deliberately differ from spice-server, so the client can tell what happened:
a channel we do not serve gets CHANNEL_NOT_AVAILABLE in the LinkReply (spice-server closes
without a word), and an unknown auth mechanism gets INVALID_DATA as the u32 link result the
client is waiting for at that point (spice-server sends a whole LinkHeader + LinkReply there,
whose first bytes the client reads as the result).
"""
from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from spicetool.stack import build_link_reply, build_link_result, decrypt_ticket
from spicetool.stack.link import (
    LINK_HEADER,
    LINK_MESS,
    MAGIC,
    MAX_LINK_SIZE,
    TICKET_SIZE,
    U32,
    LinkError,
    parse_link_mess,
)
from spicetool.stack.enums import VERSION_MAJOR, VERSION_MINOR
from spicetool.stack.types import CAP_AUTH_SASL, CAP_AUTH_SPICE, CHANNEL_TYPES

SPICE_VERSION_MAJOR, SPICE_VERSION_MINOR = VERSION_MAJOR, VERSION_MINOR
SERVER_COMMON_CAPS = ["protocol_auth_selection", "auth_spice", "mini_header"]
# Channel caps we honour (names from stack.types.CHANNEL_CAPS).
SERVER_CHANNEL_CAPS: dict[int, list[str]] = {
    CHANNEL_TYPES["main"]: ["name_and_uuid", "agent_connected_tokens"],
    CHANNEL_TYPES["display"]: ["monitors_config", "pref_compression"],
    CHANNEL_TYPES["inputs"]: [],
    CHANNEL_TYPES["cursor"]: [],
}


class LinkRefused(Exception):
    """The link was refused; `error` is the SpiceLinkErr name sent (None: closed silently)."""

    def __init__(self, error: str | None, reason: str):
        super().__init__(reason)
        self.error = error
        self.reason = reason


@dataclass
class LinkedChannel:
    """What a successful link established."""
    channel_type: int
    channel_id: int
    connection_id: int
    common_caps: list
    channel_caps: list
    mini_header: bool


class TicketPolicy:
    """The RSA-1024 key pair made for this server start, and the password (None: no ticketing)."""

    def __init__(self, password: bytes | None):
        self.password = password
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        self.pub_der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def check(self, ticket: bytes) -> bool:
        try:
            given = decrypt_ticket(self.key, ticket)
        except ValueError:  # not an OAEP block for our key
            return self.password is None
        if self.password is None:
            return True  # ticketing disabled: the ticket is read and ignored, as spice-server does
        return hmac.compare_digest(given, self.password)


async def _send_link_error(writer: asyncio.StreamWriter, error: str) -> None:
    writer.write(build_link_reply({"error": error, "caps_offset": 0}, None))
    await writer.drain()


async def accept_link(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      policy: TicketPolicy, channel_available, session_exists,
                      needs_tls=None, tls: bool = False) -> LinkedChannel:
    """Run the link stage; returns the linked channel or raises LinkRefused (after telling the
    client why).  channel_available(type, id) and session_exists(connection_id) are the server's."""
    header = await reader.readexactly(LINK_HEADER.size)
    magic, major, _minor, size = LINK_HEADER.unpack(header)
    if magic != MAGIC:
        await _send_link_error(writer, "INVALID_MAGIC")
        raise LinkRefused("INVALID_MAGIC", f"bad link magic {magic!r}")
    if major != SPICE_VERSION_MAJOR:
        if major > 0:
            await _send_link_error(writer, "VERSION_MISMATCH")
            raise LinkRefused("VERSION_MISMATCH", f"protocol major version {major}")
        raise LinkRefused(None, "protocol major version 0")
    if not LINK_MESS.size <= size <= MAX_LINK_SIZE:
        await _send_link_error(writer, "INVALID_DATA")
        raise LinkRefused("INVALID_DATA", f"link message size {size}")
    body = await reader.readexactly(size)
    try:
        parsed = parse_link_mess(header + body)
    except LinkError as e:
        await _send_link_error(writer, "INVALID_DATA")
        raise LinkRefused("INVALID_DATA", str(e)) from None
    assert parsed is not None  # the whole record was read
    mess = parsed[0]
    ctype, cid = mess["channel_type"], mess["channel_id"]
    if not channel_available(ctype, cid):
        await _send_link_error(writer, "CHANNEL_NOT_AVAILABLE")
        raise LinkRefused("CHANNEL_NOT_AVAILABLE", f"no channel of type {ctype} id {cid}")
    if not tls and needs_tls is not None and needs_tls(ctype):
        # spice-server's security check: a secure channel on the plain port (the client
        # reconnects to the TLS port)
        await _send_link_error(writer, "NEED_SECURED")
        raise LinkRefused("NEED_SECURED", f"channel type {ctype} is secure: TLS port only")

    writer.write(build_link_reply({"error": "OK", "pub_key": policy.pub_der,
                                   "common_caps": SERVER_COMMON_CAPS,
                                   "channel_caps": SERVER_CHANNEL_CAPS.get(ctype, [])}, ctype))
    await writer.drain()

    common = mess["common_caps"]
    if "protocol_auth_selection" in common:
        (mechanism,) = U32.unpack(await reader.readexactly(4))
        if mechanism != CAP_AUTH_SPICE:
            writer.write(build_link_result({"error": "INVALID_DATA"}))
            await writer.drain()
            what = "SASL, which this server does not offer" if mechanism == CAP_AUTH_SASL \
                else f"unknown mechanism {mechanism}"
            raise LinkRefused("INVALID_DATA", f"auth mechanism {what}")
    ticket = await reader.readexactly(TICKET_SIZE)
    if not policy.check(ticket):
        writer.write(build_link_result({"error": "PERMISSION_DENIED"}))
        await writer.drain()
        raise LinkRefused("PERMISSION_DENIED", "wrong password")
    conn_id = mess["connection_id"]
    if ctype != CHANNEL_TYPES["main"] and not session_exists(conn_id):
        writer.write(build_link_result({"error": "BAD_CONNECTION_ID"}))
        await writer.drain()
        raise LinkRefused("BAD_CONNECTION_ID", f"no session {conn_id}")
    writer.write(build_link_result({"error": "OK"}))
    await writer.drain()
    return LinkedChannel(ctype, cid, conn_id, common, mess["channel_caps"], "mini_header" in common)
