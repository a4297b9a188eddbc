"""Message tables: (channel_type, direction) -> {type_id: (name, description)}."""
from __future__ import annotations

from ..events import Direction
from ..schema import Struct
from ..types import CHANNEL_TYPES
from . import audio, common, cursor, display, inputs, main, spicevmc, tunnel


def _with_base(server: dict, client: dict) -> tuple[dict, dict]:
    return {**common.SERVER, **server}, {**common.CLIENT, **client}


_BY_CHANNEL: dict[str, tuple[dict, dict]] = {
    "main": _with_base(main.SERVER, main.CLIENT),
    "display": _with_base(display.SERVER, display.CLIENT),
    "inputs": _with_base(inputs.SERVER, inputs.CLIENT),
    "cursor": _with_base(cursor.SERVER, cursor.CLIENT),
    "playback": _with_base(audio.PLAYBACK_SERVER, audio.PLAYBACK_CLIENT),
    "record": _with_base(audio.RECORD_SERVER, audio.RECORD_CLIENT),
    "tunnel": (tunnel.SERVER, tunnel.CLIENT),
    "smartcard": _with_base(spicevmc.SMARTCARD_SERVER, spicevmc.SMARTCARD_CLIENT),
    "usbredir": _with_base(spicevmc.VMC, spicevmc.VMC),
    "port": _with_base(spicevmc.PORT_SERVER, spicevmc.PORT_CLIENT),
    "webdav": _with_base(spicevmc.PORT_SERVER, spicevmc.PORT_CLIENT),
}
_TABLES: dict[int, tuple[dict, dict]] = {CHANNEL_TYPES[name]: t for name, t in _BY_CHANNEL.items()}

# Messages sent by the server are described in the "server:" part of spice.proto.
MESSAGES: dict[tuple[int, Direction], dict[int, tuple[str, Struct]]] = {}
BY_NAME: dict[tuple[int, Direction], dict[str, int]] = {}
for _ct, (_srv, _cli) in _TABLES.items():
    for _dir, _tab in ((Direction.SERVER, _srv), (Direction.CLIENT, _cli)):
        MESSAGES[(_ct, _dir)] = _tab
        BY_NAME[(_ct, _dir)] = {name: tid for tid, (name, _) in _tab.items()}

# Without a known channel, only the base messages can be named.
for _dir, _tab in ((Direction.SERVER, common.SERVER), (Direction.CLIENT, common.CLIENT)):
    MESSAGES[(0, _dir)] = _tab
    BY_NAME[(0, _dir)] = {name: tid for tid, (name, _) in _tab.items()}


def table(channel_type: int | None, direction: Direction) -> dict[int, tuple[str, Struct]]:
    return MESSAGES.get((channel_type or 0, direction), MESSAGES[(0, direction)])
