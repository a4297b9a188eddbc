"""The inputs channel: keyboard and mouse from the client, written to the input log."""
from __future__ import annotations

from spicetool.server.channel import ChannelClient, ClientDropped
from spicetool.server.keys import is_release, key_name
from spicetool.stack import Message
from spicetool.stack.enums import INPUT_MOTION_ACK_BUNCH, MouseMode

MOTION_ACK_BUNCH = INPUT_MOTION_ACK_BUNCH  # one MOUSE_MOTION_ACK per 4 motions


class InputsChannel(ChannelClient):
    name = "inputs"

    def on_connect(self) -> None:
        self.motions = 0
        self.push("init", {"keyboard_modifiers": 0})

    def on_message(self, msg: Message) -> None:
        f = msg.fields
        log = self.server.input_log
        sid = self.session.session_id
        if msg.name in ("key_down", "key_up"):
            code = f["code"]
            log.write(sid, self.peer, msg.name, code=code, key=key_name(code))
        elif msg.name == "key_scancode":
            data = f["data"]
            log.write(sid, self.peer, msg.name, scancodes=data.hex(),
                      keys=[key_name(b) for b in data if b != 0xE0],
                      release=[is_release(b) for b in data if b != 0xE0])
        elif msg.name == "key_modifiers":
            log.write(sid, self.peer, msg.name, modifiers=f["modifiers"])
        elif msg.name in ("mouse_motion", "mouse_position"):
            log.write(sid, self.peer, msg.name, **f)
            agent = self.session.agent
            if msg.name == "mouse_position" and agent is not None and self.session.mouse_mode == MouseMode.CLIENT:
                # client mouse mode: spice-server hands the position to the guest agent
                agent.mouse_state(f["x"], f["y"], f["buttons_state"], f["display_id"])
            self.motions += 1
            if self.motions % MOTION_ACK_BUNCH == 0:
                self.push("mouse_motion_ack", {})
        elif msg.name in ("mouse_press", "mouse_release"):
            log.write(sid, self.peer, msg.name, **f)
            agent = self.session.agent
            if agent is not None and self.session.mouse_mode == MouseMode.CLIENT and agent.agent.mouse is not None:
                m = agent.agent.mouse
                agent.mouse_state(m["x"], m["y"], f["buttons_state"], m["display_id"])
        else:
            raise ClientDropped(f"unexpected inputs message {msg.name}")
