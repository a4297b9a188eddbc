"""The display channel: surfaces and draws from the device, through the worker."""
from __future__ import annotations

from spicetool.stack import Message

from . import worker
from .channel import ChannelClient, ClientDropped, PipeItem
from .qxl import Command, DrawCopy, DrawFill


class DisplayChannel(ChannelClient):
    name = "display"
    handle_acks = True

    def on_connect(self) -> None:
        self.monitors = "monitors_config" in self.link.channel_caps
        self.preferred_compression = None
        self.push_set_ack()
        device = self.server.device
        state = worker.display_state(device, self.monitors)  # snapshot now, sent in order
        self.push_item(PipeItem(lambda: state, False, device.primary.nbytes if device.primary is not None else 0))
        device.listeners.append(self.on_command)

    def on_command(self, cmd: Command) -> None:
        draw = isinstance(cmd, (DrawFill, DrawCopy))
        size = cmd.pixels.nbytes if isinstance(cmd, DrawCopy) else 64
        self.push_item(PipeItem(lambda: worker.display_messages(cmd, self.monitors), draw, size))

    def collapse(self) -> PipeItem:
        device = self.server.device
        return PipeItem(lambda: worker.surface_refresh(device), True,
                        device.primary.nbytes if device.primary is not None else 0)

    def on_message(self, msg: Message) -> None:
        if msg.name == "init":
            self.client_init = msg.fields
        elif msg.name == "preferred_compression":
            self.preferred_compression = msg.fields["image_compression"]
            self.server.log(f"{self.peer} display: client prefers {self.preferred_compression}; "
                            "images go out as BITMAP", verbose=True)
        elif msg.name in ("stream_report", "preferred_video_codec_type", "gl_draw_done"):
            pass
        else:
            raise ClientDropped(f"unexpected display message {msg.name}")

    def on_close(self) -> None:
        try:
            self.server.device.listeners.remove(self.on_command)
        except ValueError:
            pass
