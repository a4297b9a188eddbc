"""The main channel: session INIT, the channel list, mouse modes, name/uuid, agent tokens."""
from __future__ import annotations

from spicetool.stack import Message
from spicetool.stack.events import AgentMessage

from .channel import ChannelClient, ClientDropped

MOUSE_MODE_SERVER, MOUSE_MODE_CLIENT = 1, 2
AGENT_TOKENS = 10  # REDS_AGENT_WINDOW_SIZE: AGENT_DATA messages a client may send before a token returns
# With no guest agent, nothing needs a big vdagent message: bound what a client can make the
# stack hold while it reassembles one (the stack itself allows 64 MiB).
MAX_PENDING_AGENT_BYTES = 1 << 20


class MainChannel(ChannelClient):
    name = "main"

    def on_connect(self) -> None:
        self.agent_pending = 0
        s = self.session
        self.push("init", {
            "session_id": s.session_id, "display_channels_hint": 1,
            "supported_mouse_modes": MOUSE_MODE_SERVER | MOUSE_MODE_CLIENT,
            "current_mouse_mode": s.mouse_mode, "agent_connected": 0,
            "agent_tokens": AGENT_TOKENS, "multi_media_time": self.server.mm_time(),
            "ram_hint": 0})
        if "name_and_uuid" in self.link.channel_caps:
            name = self.server.name.encode()
            self.push("name", {"name_len": len(name) + 1, "name": name + b"\0"})
            self.push("uuid", {"uuid": self.server.uuid.bytes})

    def on_message(self, msg: Message) -> None:
        f = msg.fields
        if msg.name == "attach_channels":
            channels = [{"type": t, "id": i} for t, i in self.server.channel_list()]
            self.push("channels_list", {"num_of_channels": len(channels), "channels": channels})
        elif msg.name == "mouse_mode_request":
            mode = f["mode"]
            if mode in (MOUSE_MODE_SERVER, MOUSE_MODE_CLIENT):
                self.session.mouse_mode = mode
            self.push("mouse_mode", {"supported_modes": MOUSE_MODE_SERVER | MOUSE_MODE_CLIENT,
                                     "current_mode": self.session.mouse_mode})
        elif msg.name == "agent_start":
            self.session.client_agent_tokens = f["num_tokens"]
        elif msg.name == "agent_token":
            self.session.client_agent_tokens += f["num_tokens"]
        elif msg.name == "agent_data":
            # No guest agent behind us: the data is consumed at once, so its token goes back.
            self.agent_pending += len(f["data"])
            if self.agent_pending > MAX_PENDING_AGENT_BYTES:
                raise ClientDropped(f"vdagent message of more than {MAX_PENDING_AGENT_BYTES} bytes")
            self.push("agent_token", {"num_tokens": 1})
        elif msg.name in ("client_info", "quality_indicator"):
            pass
        else:
            raise ClientDropped(f"unexpected main message {msg.name}")

    def on_agent_message(self, msg: AgentMessage) -> None:
        self.agent_pending = 0
        self.server.log(f"{self.peer} main: agent message {msg.name} ({msg.size} bytes), no agent "
                        "to deliver it to", verbose=True)

    def on_close(self) -> None:
        self.session.close()  # the session ends with its main channel
