"""The main channel: session INIT, the channel list, mouse modes, name/uuid, agent tokens."""
from __future__ import annotations

from spicetool.server.agent import AGENT_TOKENS, AgentLink
from spicetool.server.channel import ChannelClient, ClientDropped
from spicetool.stack import Message
from spicetool.stack.enums import MouseMode
from spicetool.stack.events import AgentMessage

MOUSE_MODE_SERVER, MOUSE_MODE_CLIENT = int(MouseMode.SERVER), int(MouseMode.CLIENT)
# Bound what a client can make the stack (and the agent link) hold while it reassembles one
# vdagent message (the stack itself allows 64 MiB): clipboard data and file chunks fit.
MAX_PENDING_AGENT_BYTES = 1 << 20


class MainChannel(ChannelClient):
    name = "main"

    def on_connect(self) -> None:
        self.agent_pending = 0
        s = self.session
        agent = self.server.agent
        self.agent = AgentLink(agent, self) if agent is not None else None
        s.agent = self.agent
        self.push("init", {
            "session_id": s.session_id, "display_channels_hint": len(self.server.displays),
            "supported_mouse_modes": MOUSE_MODE_SERVER | MOUSE_MODE_CLIENT,
            "current_mouse_mode": s.mouse_mode, "agent_connected": int(self.agent is not None),
            "agent_tokens": AGENT_TOKENS, "multi_media_time": self.server.mm_time(),
            "ram_hint": 0})
        if "name_and_uuid" in self.link.channel_caps:
            name = self.server.name.encode()
            self.push("name", {"name": name + b"\0"})
            self.push("uuid", {"uuid": self.server.uuid.bytes})

    def on_message(self, msg: Message) -> None:
        f = msg.fields
        if msg.name == "attach_channels":
            channels = [{"type": t, "id": i} for t, i in self.server.channel_list()]
            self.push("channels_list", {"channels": channels})
        elif msg.name == "mouse_mode_request":
            mode = f["mode"]
            if mode in (MOUSE_MODE_SERVER, MOUSE_MODE_CLIENT):
                self.session.mouse_mode = mode
            self.push("mouse_mode", {"supported_modes": MOUSE_MODE_SERVER | MOUSE_MODE_CLIENT,
                                     "current_mode": self.session.mouse_mode})
        elif msg.name == "agent_start":
            self.session.client_agent_tokens = f["num_tokens"]
            if self.agent is not None:
                self.agent.on_start(f["num_tokens"])
        elif msg.name == "agent_token":
            self.session.client_agent_tokens += f["num_tokens"]
            if self.agent is not None:
                self.agent.on_token(f["num_tokens"])
        elif msg.name == "agent_data" and self.agent is not None:
            self.agent_pending += len(f["data"])
            if self.agent_pending > MAX_PENDING_AGENT_BYTES:
                raise ClientDropped(f"vdagent message of more than {MAX_PENDING_AGENT_BYTES} bytes")
            self.agent.on_data(f["data"])
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
        if self.agent is not None:
            return  # the agent link reads the same data with the caps it negotiated
        self.server.log(f"{self.peer} main: agent message {msg.name} ({msg.size} bytes), no agent "
                        "to deliver it to", verbose=True)

    def on_close(self) -> None:
        if self.agent is not None:
            self.agent.close()
        self.session.close()  # the session ends with its main channel
