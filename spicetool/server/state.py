"""What the channels of a server share: the device they show, the agent, settings, the
sessions and counters. SpiceServer (server.py) is this plus the listener; channels see only
this, so they never import the module that imports them."""
from __future__ import annotations

import time
import uuid as uuid_mod
from collections import Counter
from typing import Callable

from spicetool.qxl.device import QxlDevice
from spicetool.server.inputlog import InputLog
from spicetool.server.session import Session
from spicetool.stack.enums import ChannelType

# GLZ windows held at once. Each display channel sending GLZ keeps its own window (up to 4 Mi
# pixels of its last images, 16 MiB and more): the one per-client memory any client that links a
# display channel, reading or not, makes the server hold. Past this many, display channels get
# LZ instead (lossless too: the same pictures, without a window).
MAX_GLZ_WINDOWS = 16
# Display clients holding a snapshot of the surfaces at once (a client too slow for its pipe gets the
# screen as it was when the pipe overflowed, a copy of every surface). Past this many, a client whose
# pipe overflows is disconnected as too slow.
MAX_SNAPSHOTS = 32

# The order spice-server lists them in CHANNELS_LIST (one display device).
LISTED = [(int(ChannelType.DISPLAY), 0), (int(ChannelType.CURSOR), 0), (int(ChannelType.INPUTS), 0)]


def listed_channels(display_ids: list[int]) -> list[tuple[int, int]]:
    """CHANNELS_LIST for these display channel ids: each display device has a display and a
    cursor channel of its id (as each QXL device in spice-server), then the one inputs channel."""
    out = []
    for cid in display_ids:
        out += [(int(ChannelType.DISPLAY), cid), (int(ChannelType.CURSOR), cid)]
    return out + [(int(ChannelType.INPUTS), 0)]


class ServerState:
    def __init__(self, device: QxlDevice, input_log: InputLog | None = None, name: str = "spicetool",
                 ping_interval: float = 10.0, log: Callable[[str], None] | None = None,
                 verbose: bool = False, image_compression: str = "off", agent=None,
                 displays: dict[int, QxlDevice] | None = None):
        # one device per display channel, by channel id (a multi-head guest: one QXL device
        # per monitor, as QEMU's -device qxl); `device` is the first
        self.displays = dict(sorted((displays or {0: device}).items()))
        self.device = self.displays[min(self.displays)] if displays else device
        self._listed = LISTED if list(self.displays) == [0] else listed_channels(list(self.displays))
        self.agent = agent  # a GuestAgent, or None: INIT says no agent
        self.image_compression = image_compression
        # a replay's note for each display client: what mode it gets and why (runner.py sets it)
        self.replay_note: str | None = None
        self.input_log = input_log or InputLog()
        self.name = name
        self.uuid = uuid_mod.uuid4()
        self.ping_interval = ping_interval
        self.sessions: dict[int, Session] = {}
        self.stats: Counter = Counter()
        self.max_glz_windows = MAX_GLZ_WINDOWS
        self.glz_windows = 0   # held by display channels now
        self.max_snapshots = MAX_SNAPSHOTS
        self.snapshots = 0     # collapse snapshots held by display channels now
        self._log = log
        self.verbose = verbose
        self._start = time.monotonic()

    def log(self, text: str, verbose: bool = False) -> None:
        if self._log is not None and (self.verbose or not verbose):
            self._log(text)

    def mm_time(self) -> int:
        return int((time.monotonic() - self._start) * 1000) & 0xFFFFFFFF

    def channel_list(self) -> list[tuple[int, int]]:
        return self._listed

    def display_device(self, channel_id: int) -> QxlDevice:
        """The device behind display (and cursor) channel `channel_id` (a listed one)."""
        return self.displays[channel_id]

    @property
    def first_display(self) -> int:
        return min(self.displays)
