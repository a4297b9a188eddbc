"""One client session: the main channel and the channels linked with its session id."""
from __future__ import annotations

from typing import TYPE_CHECKING

from spicetool.server.main_channel import MOUSE_MODE_CLIENT

if TYPE_CHECKING:
    from spicetool.server.channel import ChannelClient
    from spicetool.server.server import SpiceServer


class Session:
    def __init__(self, server: "SpiceServer", session_id: int, peer: str):
        self.server = server
        self.session_id = session_id
        self.peer = peer
        self.mouse_mode = MOUSE_MODE_CLIENT
        self.client_agent_tokens = 0
        self.agent = None  # the AgentLink of its main channel, when the server has an agent
        self.channels: list["ChannelClient"] = []
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for ch in list(self.channels):
            ch.close()
        self.server.sessions.pop(self.session_id, None)
