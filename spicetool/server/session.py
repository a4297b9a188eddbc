"""One client session: the main channel and the channels linked with its session id."""
from __future__ import annotations

from typing import Protocol

from spicetool.stack.enums import MouseMode


class Closable(Protocol):   # a channel of the session (server/channel.py ChannelClient)
    def close(self) -> None: ...


class Session:
    """Kept in `registry` (the server's sessions by id) until closed."""

    def __init__(self, registry: dict[int, Session], session_id: int, peer: str):
        self.registry = registry
        self.session_id = session_id
        self.peer = peer
        self.mouse_mode = int(MouseMode.CLIENT)
        self.client_agent_tokens = 0
        self.agent = None  # the AgentLink of its main channel, when the server has an agent
        self.channels: list[Closable] = []
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for ch in list(self.channels):
            ch.close()
        self.registry.pop(self.session_id, None)
