"""ChannelEndpoint: one side of a channel connection, sans-I/O (h11's Connection, for SPICE).

    ep = ChannelEndpoint(Role.CLIENT, ClientLink({"channel_type": 1, ...}, password))
    sock.send(ep.data_to_send())                 # the LinkMess
    for event in ep.receive_data(sock.recv()):   # LinkAccepted | LinkRefused | LinkFailed,
        ...                                      # then Message | AgentMessage | ProtocolError
    sock.send(ep.send("pong", fields))           # header of the negotiated kind + body

The peer's bytes are split into messages once, by the stack's ChannelConnection; events of
our own direction never come back.  A ServerLink or ClientLink runs the link stage; without
one the endpoint starts in the data phase (a connection linked elsewhere).
"""
from __future__ import annotations

import itertools

from .connection import ChannelConnection
from .headers import MAX_MESSAGE_SIZE, pack_full_header, pack_mini_header
from .messages import build_message, message_bytes
from .roles import ClientLink, LinkAccepted, Role, ServerLink
from .schema import BuildError


class ChannelEndpoint:
    def __init__(self, our_role: Role, link: ClientLink | ServerLink | None = None, *,
                 channel_type: int | None = None, channel_id: int = 0, mini_header: bool = True,
                 max_message_size: int = MAX_MESSAGE_SIZE):
        self.our_role = our_role
        self.link = link
        self.max_message_size = max_message_size
        self.serial = itertools.count(1)   # of the full headers we send
        self.linked: LinkAccepted | None = None
        self.conn: ChannelConnection | None = None
        self.channel_type, self.mini_header = channel_type, mini_header
        if link is None:
            self._data_phase(ChannelConnection.resume(channel_type, channel_id, mini_header))

    # --- state ---

    @property
    def state(self) -> str:
        """"link" while the link stage runs, "data" after it, "closed" after a refusal or a
        failure."""
        if self.conn is not None:
            return "data"
        return "closed" if self.link is not None and self.link.done else "link"

    @property
    def peer_mini_header(self) -> bool:
        """The header kind the peer sends us (as the observer reads it)."""
        assert self.conn is not None
        return bool(self.conn.mini_header) if self.conn.mini_header is not None else True

    def pending(self) -> int:
        """Bytes of the peer not yet making a whole record or message."""
        peer = self.our_role.peer_direction
        if self.conn is not None:
            return self.conn.pending(peer)
        if isinstance(self.link, ClientLink):
            return self.link.observer.pending(peer)
        return self.link.pending if self.link is not None else 0

    def _data_phase(self, conn: ChannelConnection) -> None:
        conn.max_message_size = self.max_message_size
        self.conn = conn

    # --- bytes in ---

    def receive_data(self, data: bytes) -> list:
        """Events of the peer's bytes, in wire order (LinkAccepted may be followed by the
        first data-phase events in the same list)."""
        if self.conn is not None:
            return self.conn.receive(self.our_role.peer_direction, data)
        assert self.link is not None
        events = self.link.receive_data(data)
        accepted = self.link.accepted
        if accepted is not None and self.conn is None:
            self.linked = accepted
            self.channel_type, self.mini_header = accepted.channel_type, accepted.mini_header
            if isinstance(self.link, ClientLink):   # its observer goes on with the data phase
                self._data_phase(self.link.observer)
            else:
                self._data_phase(ChannelConnection.resume(accepted.channel_type, accepted.channel_id,
                                                          accepted.mini_header))
                trailing = self.link.trailing
                if trailing:
                    events += self.receive_data(trailing)
        return events

    def data_to_send(self) -> bytes:
        """What the link stage has to say (empty in the data phase)."""
        return self.link.data_to_send() if self.link is not None else b""

    # --- bytes out ---

    def header(self, type_id: int, size: int) -> bytes:
        if self.mini_header:
            return pack_mini_header(type_id, size)
        return pack_full_header(next(self.serial), type_id, size)

    def send(self, name_or_type_id: str | int, fields: dict) -> bytes:
        """A message of ours, built by the stack, with the negotiated header."""
        return build_message(self.channel_type, self.our_role.direction, name_or_type_id, fields,
                             self.mini_header, None if self.mini_header else next(self.serial))

    def frame(self, type_id: int, body: bytes) -> bytes:
        """A body built ahead (a shared display message) with our header."""
        return self.header(type_id, len(body)) + body

    def resend(self, msg) -> bytes:
        """A parsed Message (a captured one) rebuilt by the stack with our header; fields that
        do not rebuild send the captured body as it was."""
        try:
            body = message_bytes(msg)[msg.header_size:]
        except BuildError:
            body = bytes(msg.body)
        return self.header(msg.type_id, len(body)) + body
