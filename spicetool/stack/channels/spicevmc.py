"""Spicevmc-based channels: smartcard (8), usbredir (9), port (10), webdav (11)."""
from __future__ import annotations

from ..schema import END, Bytes, Pointer, Struct, Switch, enum, u8, u32
from .common import Data

data_compression_type = enum(u8, ["NONE", "LZ4"])
CompressedData = Struct([
    ("type", data_compression_type),
    ("u", Switch("type", [({data_compression_type.values["NONE"]}, [])], default=[("uncompressed_size", u32)],
                 on=data_compression_type)),
    ("compressed_data", Bytes(END)),
])

VMC: dict[int, tuple[str, Struct]] = {101: ("data", Data), 102: ("compressed_data", CompressedData)}

_event = Struct([("event", u8)])
PORT_SERVER: dict[int, tuple[str, Struct]] = {
    **VMC,
    201: ("init", Struct([("name_size", u32), ("name", Pointer(Bytes("name_size"), nonnull=True)),
                          ("opened", u8)])),
    202: ("event", _event),
}
PORT_CLIENT: dict[int, tuple[str, Struct]] = {**VMC, 201: ("event", _event)}

vsc_message_type = enum(u32, {1: "Init", 2: "Error", 3: "ReaderAdd", 4: "ReaderRemove", 5: "ATR",
                              6: "CardRemove", 7: "APDU", 8: "Flush", 9: "FlushComplete"})
# Smartcard: spice.proto lists several client layouts under id 101; on the wire it is
# always a VSCMsgHeader followed by `length` bytes, which is what we describe.
_vsc = Struct([("type", vsc_message_type), ("reader_id", u32), ("length", u32),
               ("data", Bytes("length"))])
SMARTCARD_SERVER: dict[int, tuple[str, Struct]] = {101: ("data", _vsc)}
SMARTCARD_CLIENT: dict[int, tuple[str, Struct]] = {101: ("data", _vsc)}
