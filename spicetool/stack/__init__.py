"""The SPICE protocol, sans-I/O: bytes in, typed events out; typed messages in, bytes out.

Observe a connection (dissector, renderer)::

    conn = ChannelConnection()                 # or ChannelConnection.resume(channel_type)
    for event in conn.receive(Direction.SERVER, tcp_payload):
        ...  # LinkRecord | Message | AgentMessage | ProtocolError, in wire order

Build bytes (our server, tests)::

    build_message(2, Direction.SERVER, "surface_create", fields, mini_header=True)
    message_bytes(msg)                         # rebuild a parsed Message exactly

Play one side of a connection (our server, our clients, tests)::

    ep = ChannelEndpoint(Role.CLIENT, ClientLink(link_mess_fields, password))
    sock.send(ep.data_to_send())
    for event in ep.receive_data(sock.recv(...)):
        ...  # LinkAccepted | LinkRefused | LinkFailed, then Message | AgentMessage | ProtocolError
    sock.send(ep.send("ack_sync", {"generation": 1}))

(ServerLink for the server's side; flow.py holds the ACK window and the ping bookkeeping.)

Every message is described once (channels/*.py, as in spice.proto) and the one engine in
schema.py both parses and builds it.  Field names and enum names are spice.proto's; the
numbers by name (ChannelType.DISPLAY, MsgDisplay.DRAW_COPY, SurfaceFlags.PRIMARY...) are in
enums.py, made from those same tables.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from spicetool.lazy_names import lazy_names

from .connection import ChannelConnection
from .events import AgentMessage, Direction, LinkRecord, Message, ProtocolError
from .link import (build_auth_mechanism, build_link_mess, build_link_reply, build_link_result,
                   build_ticket, decrypt_ticket, encrypt_ticket)
from .messages import build_body, build_message, message_bytes, parse_body
from .resync import find_resync_point
from .types import CHANNEL_NAMES, channel_name
from .vdagent import build_agent_message

# Playing a side (endpoint, roles, flow) and damage are imported on first use: an observer of
# captures (dissect, render, ...) needs none of them.
_LATER = {
    "alternate_fields": "damage", "ChannelEndpoint": "endpoint", "AckWindow": "flow", "FlowAnswers": "flow",
    "PingTracker": "flow", "ClientLink": "roles", "LinkAccepted": "roles", "LinkFailed": "roles",
    "LinkRefused": "roles", "Role": "roles", "ServerLink": "roles",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _LATER)


if TYPE_CHECKING:
    from .damage import alternate_fields
    from .endpoint import ChannelEndpoint
    from .flow import AckWindow, FlowAnswers, PingTracker
    from .roles import ClientLink, LinkAccepted, LinkFailed, LinkRefused, Role, ServerLink

__all__ = [
    "ChannelConnection", "Direction", "LinkRecord", "Message", "AgentMessage", "ProtocolError",
    "channel_name", "CHANNEL_NAMES", "find_resync_point", "build_message", "build_body",
    "parse_body", "message_bytes", "build_link_mess", "build_link_reply", "build_auth_mechanism",
    "build_ticket", "build_link_result", "decrypt_ticket", "encrypt_ticket", "build_agent_message",
    "ChannelEndpoint", "Role", "ClientLink", "ServerLink", "LinkAccepted", "LinkRefused",
    "LinkFailed", "AckWindow", "FlowAnswers", "PingTracker", "alternate_fields",
]
