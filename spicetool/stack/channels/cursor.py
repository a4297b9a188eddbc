"""Cursor channel (type 4): pointer shape and position from the server."""
from __future__ import annotations

from ..schema import END, Bytes, Struct, Switch, enum, flags, i16, u8, u16, u64
from .common import Empty

cursor_type = enum(u8, ["ALPHA", "MONO", "COLOR4", "COLOR8", "COLOR16", "COLOR24", "COLOR32"])
cursor_flags = flags(u16, ["NONE", "CACHE_ME", "FROM_CACHE"])
CURSOR_FLAG_NONE = cursor_flags.values["NONE"]

Point16 = Struct([("x", i16), ("y", i16)])
CursorHeader = Struct([("unique", u64), ("type", cursor_type), ("width", u16), ("height", u16),
                       ("hot_spot_x", u16), ("hot_spot_y", u16)])
Cursor = Struct([
    ("flags", cursor_flags),
    ("u", Switch("flags", [(("!", CURSOR_FLAG_NONE), [("header", CursorHeader)])])),
    ("data", Bytes(END)),  # shape bits run to the end of the message
])

SERVER: dict[int, tuple[str, Struct]] = {
    101: ("init", Struct([("position", Point16), ("trail_length", u16), ("trail_frequency", u16),
                          ("visible", u8), ("cursor", Cursor)])),
    102: ("reset", Empty),
    103: ("set", Struct([("position", Point16), ("visible", u8), ("cursor", Cursor)])),
    104: ("move", Struct([("position", Point16)])),
    105: ("hide", Empty),
    106: ("trail", Struct([("length", u16), ("frequency", u16)])),
    107: ("inval_one", Struct([("id", u64)])),
    108: ("inval_all", Empty),
}
CLIENT: dict[int, tuple[str, Struct]] = {}
