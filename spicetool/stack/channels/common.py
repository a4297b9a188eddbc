"""Messages every channel (except the obsolete tunnel) inherits: spice.proto BaseChannel."""
from __future__ import annotations

from ..schema import END, Array, Bytes, Struct, enum, flags, u8, u32, u64
from ..types import link_err

Empty = Struct([])
Data = Struct([("data", Bytes(END))])

migrate_flags = flags(u32, ["NEED_FLUSH", "NEED_DATA_TRANSFER"])
notify_severity = enum(u32, ["INFO", "WARN", "ERROR"])
notify_visibility = enum(u32, ["LOW", "MEDIUM", "HIGH"])

ChannelWait = Struct([("channel_type", u8), ("channel_id", u8), ("message_serial", u64)])

SERVER: dict[int, tuple[str, Struct]] = {
    1: ("migrate", Struct([("flags", migrate_flags)])),
    2: ("migrate_data", Data),
    3: ("set_ack", Struct([("generation", u32), ("window", u32)])),
    4: ("ping", Struct([("id", u32), ("timestamp", u64), ("data", Bytes(END))])),
    5: ("wait_for_channels", Struct([("wait_count", u8),
                                     ("wait_list", Array(ChannelWait, "wait_count"))])),
    6: ("disconnecting", Struct([("time_stamp", u64), ("reason", link_err)])),
    7: ("notify", Struct([("time_stamp", u64), ("severity", notify_severity),
                          ("visibilty", notify_visibility), ("what", u32), ("message_len", u32),
                          ("message", Bytes("message_len"))])),
    8: ("list", Data),  # body is a SpiceSubMessageList, see headers.py
    100: ("base_last", Empty),
}

CLIENT: dict[int, tuple[str, Struct]] = {
    1: ("ack_sync", Struct([("generation", u32)])),
    2: ("ack", Empty),
    3: ("pong", Struct([("id", u32), ("timestamp", u64)])),
    4: ("migrate_flush_mark", Empty),
    5: ("migrate_data", Data),
    6: ("disconnecting", Struct([("time_stamp", u64), ("reason", link_err)])),
}
