"""Segment boundaries at the end of each link-stage record, for readers that need them.

The proxy reads whatever the socket holds, so the server's 4-byte link result often arrives
together with the first messages of the channel. The bytes are the same either way, but
Wireshark's SPICE dissector takes the rest of such a segment for part of the link result and
loses the stream from there on. So the recording cuts its synthetic segments where each
link-stage record ends (link message, reply, auth mechanism, ticket, result), as the peers wrote
them. Only the link stage is parsed (at most LIMIT bytes per direction); the data phase is
recorded in the chunks it was read in.
"""

from __future__ import annotations

from spicetool.stack import ChannelConnection, Direction, LinkRecord
from spicetool.stack.enums import LinkErr

LIMIT = 64 * 1024
_LAST = {Direction.CLIENT: "ticket", Direction.SERVER: "link_result"}


class LinkStageCuts:
    def __init__(self) -> None:
        self.parser = ChannelConnection()
        self.seen = {Direction.CLIENT: 0, Direction.SERVER: 0}
        self.done = {Direction.CLIENT: False, Direction.SERVER: False}

    def split(self, from_client: bool, data: bytes) -> list[bytes]:
        """`data` (the next bytes of one direction) cut after each link-stage record ending inside it."""
        d = Direction.CLIENT if from_client else Direction.SERVER
        start = self.seen[d]
        self.seen[d] += len(data)
        if self.done[d]:
            return [data]
        try:
            events = self.parser.receive(d, data)
        except Exception:  # not SPICE after all, or broken: record as read, stop looking
            self.done = {Direction.CLIENT: True, Direction.SERVER: True}
            return [data]
        cuts: list[int] = []
        for ev in events:
            if getattr(ev, "direction", None) != d:
                continue
            if isinstance(ev, LinkRecord):
                end = ev.offset + ev.size - start
                if 0 < end < len(data):
                    cuts.append(end)
                if ev.name == _LAST[d] or ev.fields.get("error") not in (None, LinkErr.OK, "OK"):
                    self.done[d] = True
            else:  # a message or a protocol error: the link stage is over for this direction
                self.done[d] = True
        if self.seen[d] >= LIMIT or d in self.parser.broken:
            self.done[d] = True
        bounds = [0, *sorted(set(cuts)), len(data)]
        return [data[a:b] for a, b in zip(bounds, bounds[1:])]
