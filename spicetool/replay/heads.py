"""`--replay` of a multi-head session: one QXL device per captured display channel (as a guest
with one QXL device per monitor), each fed by its own display's timeline, together on the
capture's clock. A capture with one display channel is one head, served as before.
"""
from __future__ import annotations

import asyncio
from typing import Callable

from spicetool.qxl.commands import Command
from spicetool.qxl.device import QxlDevice
from spicetool.replay.capture_replay import CaptureReplay
from spicetool.replay.timeline import ReplayError
from spicetool.stack.enums import ChannelType

DISPLAY = int(ChannelType.DISPLAY)


def display_channels(capture: str, session: int | None = None, keylog: str | None = None) -> list[int]:
    """The display channel ids of a capture's session: those its server listed in CHANNELS_LIST
    (read up to there), else those linked anywhere in the capture (one that starts mid-session)."""
    from spicetool.capture import CaptureFailure, open_records
    try:
        records = open_records(capture, keylog=keylog)
    except CaptureFailure as e:
        raise ReplayError(str(e)) from None
    seen: set[int] = set()
    try:
        for rec in records:
            ch = rec.channel
            if session is not None and ch.session != session:
                continue
            if rec.layer == "message" and ch.channel == "main" and rec.type == "channels_list":
                listed = sorted({c["id"] for c in rec.fields.get("channels", []) if c["type"] == DISPLAY})
                if listed:
                    return listed
            if ch.channel_type == DISPLAY:
                seen.add(ch.channel_id)
            if session is None and ch.session is not None:
                session = ch.session   # the first session, as the timelines take it
    finally:
        records.close()
    return sorted(seen) or [0]


class HeadsReplay:
    """A CaptureReplay per display channel; `prepare()`, then `run()` (as CaptureReplay's)."""

    def __init__(self, capture: str, speed: float = 1.0, loop: bool = False, session: int | None = None,
                 start: float = 0.0, stop: float | None = None, pause_at: float | None = None,
                 keylog: str | None = None, displays: list[int] | None = None,
                 warn: Callable[[str], None] | None = None, mode: str = "pictures"):
        ids = displays if displays is not None else display_channels(capture, session, keylog)
        self.capture, self.warn = capture, warn
        self.heads: dict[int, CaptureReplay] = {
            cid: CaptureReplay(QxlDevice(), capture, speed, loop, session, start, stop, pause_at,
                               display=cid, keylog=keylog, mode=mode) for cid in ids}
        self.paused = asyncio.Event()     # set while every head is held at pause_at

    @property
    def devices(self) -> dict[int, QxlDevice]:
        return {cid: head.device for cid, head in self.heads.items()}

    @property
    def first(self) -> CaptureReplay:
        return self.heads[min(self.heads)]

    @property
    def timeline(self):
        return self.first.timeline

    @property
    def prepare_command(self) -> Callable[[Command], None] | None:
        return self.first.prepare_command

    @prepare_command.setter
    def prepare_command(self, prepare: Callable[[Command], None] | None) -> None:
        # the prebuilder encodes for the server's setting, which only the first display sends
        # as it is (the others send LZ for GLZ): the other heads' draws are encoded when sent
        self.first.prepare_command = prepare

    def prepare(self) -> dict[int, tuple[int, int]]:
        """Each head's first picture, shown; returns their sizes by display channel id. A head
        without any picture is left out (said through `warn`) unless it is the only one."""
        sizes: dict[int, tuple[int, int]] = {}
        failures: list[tuple[int, ReplayError]] = []
        for cid, head in list(self.heads.items()):
            try:
                sizes[cid] = head.prepare()
            except ReplayError as e:
                failures.append((cid, e))
                del self.heads[cid]
        if not self.heads:   # the one error, as with a single display
            raise failures[0][1] if failures else ReplayError(f"{self.capture}: no display picture in this capture")
        for cid, e in failures:
            if self.warn is not None:
                self.warn(f"display {cid} not served: {e}")
        return sizes

    async def run(self, done: asyncio.Event | None = None) -> None:
        """Every head at once; each starts as much later than the earliest as its first picture
        came later in the capture."""
        earliest = min(h.timeline.first for h in self.heads.values())

        async def watch() -> None:
            while True:
                await asyncio.gather(*(h.paused.wait() for h in self.heads.values()))
                self.paused.set()
                while any(h.paused.is_set() for h in self.heads.values()):
                    await asyncio.sleep(0.05)
                self.paused.clear()
        watcher = asyncio.create_task(watch())
        try:
            await asyncio.gather(*(h.run(lead=h.timeline.first - earliest) for h in self.heads.values()))
        finally:
            watcher.cancel()
        if done is not None:
            done.set()

    def resume(self) -> None:
        for head in self.heads.values():
            head.resume()

    @property
    def rounds(self) -> int:
        return min(h.rounds for h in self.heads.values())

    @property
    def position(self) -> float:
        return self.first.position
