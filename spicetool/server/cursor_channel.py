"""The cursor channel: the pointer shape and position from the device."""
from __future__ import annotations

from spicetool.qxl import worker as worker
from spicetool.qxl.commands import Command, CursorHide, CursorMove, CursorSet
from spicetool.qxl.device import QxlDevice
from spicetool.server.channel import ChannelClient, PipeItem


class CursorChannel(ChannelClient):
    name = "cursor"
    handle_acks = True

    @property
    def device(self) -> QxlDevice:
        return self.server.display_device(self.link.channel_id)   # cursor N: display N's pointer

    def on_connect(self) -> None:
        self.push_set_ack()
        state = worker.cursor_state(self.device)
        self.push_item(PipeItem(lambda: state, False, 1024))
        self.device.listeners.append(self.on_command)

    def on_command(self, cmd: Command) -> None:
        if isinstance(cmd, (CursorSet, CursorMove, CursorHide)):
            # moves may be dropped for a slow client: the next SET or MOVE puts it right
            self.push_item(PipeItem(lambda: worker.cursor_messages(cmd), isinstance(cmd, CursorMove), 64))

    def collapse(self) -> PipeItem:
        device = self.device
        return PipeItem(lambda: [("move", {"position": {"x": device.cursor.x, "y": device.cursor.y}})],
                        True, 64)

    def on_close(self) -> None:
        try:
            self.device.listeners.remove(self.on_command)
        except ValueError:
            pass
