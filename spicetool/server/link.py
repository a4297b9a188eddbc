"""The server side of the link stage: the stack's ServerLink on asyncio streams.

The checks and refusals are the ServerLink's (spicetool.stack.roles, where each one and
its spice-server counterpart is described); here the socket is read, what the state machine
says is written, and a refusal ends the connection.
"""
from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from spicetool.stack import ChannelEndpoint, LinkAccepted, Role, ServerLink, decrypt_ticket
from spicetool.stack import LinkRefused as Refusal
from spicetool.stack.types import CHANNEL_TYPES

READ_SIZE = 64 * 1024
MAX_CLIENT_MESSAGE = 64 * 1024    # larger client messages are refused (agent data is <= 2 KiB + header)
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
    endpoint: ChannelEndpoint | None = None   # the connection, in its data phase
    backlog: list = field(default_factory=list)   # data-phase events that came with the ticket


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


async def accept_link(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      policy: TicketPolicy, channel_available, session_exists,
                      needs_tls=None, tls: bool = False) -> LinkedChannel:
    """Run the link stage; returns the linked channel or raises LinkRefused (after telling the
    client why).  channel_available(type, id) and session_exists(connection_id) are the server's."""
    link = ServerLink(policy.pub_der, policy.check, common_caps=SERVER_COMMON_CAPS,
                      channel_caps=SERVER_CHANNEL_CAPS, channel_available=channel_available,
                      session_exists=session_exists,
                      needs_secured=None if tls or needs_tls is None else needs_tls)
    endpoint = ChannelEndpoint(Role.SERVER, link, max_message_size=MAX_CLIENT_MESSAGE)
    while True:
        data = await reader.read(READ_SIZE)
        if not data:
            raise asyncio.IncompleteReadError(b"", None)
        events = endpoint.receive_data(data)
        out = endpoint.data_to_send()
        if out:
            writer.write(out)
            await writer.drain()
        for i, ev in enumerate(events):
            if isinstance(ev, Refusal):
                raise LinkRefused(ev.error, ev.reason)
            if isinstance(ev, LinkAccepted):
                return LinkedChannel(ev.channel_type, ev.channel_id, ev.connection_id, ev.common_caps,
                                     ev.channel_caps, ev.mini_header, endpoint, events[i + 1:])
