"""Main channel (type 1): session setup, mouse modes, migration, agent transport."""
from __future__ import annotations

from ..schema import Array, Bytes, Pointer, Struct, flags, u8, u16, u32, u64
from ..types import link_err
from .common import Data, Empty

mouse_mode = flags(u16, ["SERVER", "CLIENT"])

ChannelId = Struct([("type", u8), ("id", u8)])


def _dst_info_members(host_nonnull: bool) -> list:
    return [("port", u16), ("sport", u16), ("host_size", u32),
            ("host_data", Pointer(Bytes("host_size"), nonnull=host_nonnull)),
            ("cert_subject_size", u32),
            ("cert_subject_data", Pointer(Bytes("cert_subject_size")))]


DstInfo = Struct(_dst_info_members(True))
tokens = Struct([("num_tokens", u32)])

SERVER: dict[int, tuple[str, Struct]] = {
    101: ("migrate_begin", Struct([("dst_info", DstInfo)])),
    102: ("migrate_cancel", Empty),
    103: ("init", Struct([("session_id", u32), ("display_channels_hint", u32),
                          ("supported_mouse_modes", u32), ("current_mouse_mode", u32),
                          ("agent_connected", u32), ("agent_tokens", u32),
                          ("multi_media_time", u32), ("ram_hint", u32)])),
    104: ("channels_list", Struct([("num_of_channels", u32),
                                   ("channels", Array(ChannelId, "num_of_channels"))])),
    105: ("mouse_mode", Struct([("supported_modes", mouse_mode), ("current_mode", mouse_mode)])),
    106: ("multi_media_time", Struct([("time", u32)])),
    107: ("agent_connected", Empty),
    108: ("agent_disconnected", Struct([("error_code", link_err)])),
    109: ("agent_data", Data),
    110: ("agent_token", tokens),
    111: ("migrate_switch_host", Struct(_dst_info_members(False))),
    112: ("migrate_end", Empty),
    113: ("name", Struct([("name_len", u32), ("name", Bytes("name_len"))])),
    114: ("uuid", Struct([("uuid", Bytes(16))])),
    115: ("agent_connected_tokens", tokens),
    116: ("migrate_begin_seamless", Struct([("dst_info", DstInfo), ("src_mig_version", u32)])),
    117: ("migrate_dst_seamless_ack", Empty),
    118: ("migrate_dst_seamless_nack", Empty),
}

CLIENT: dict[int, tuple[str, Struct]] = {
    101: ("client_info", Struct([("cache_size", u64)])),
    102: ("migrate_connected", Empty),
    103: ("migrate_connect_error", Empty),
    104: ("attach_channels", Empty),
    105: ("mouse_mode_request", Struct([("mode", mouse_mode)])),
    106: ("agent_start", tokens),
    107: ("agent_data", Data),
    108: ("agent_token", tokens),
    109: ("migrate_end", Empty),
    110: ("migrate_dst_do_seamless", Struct([("src_version", u32)])),
    111: ("migrate_connected_seamless", Empty),
    112: ("quality_indicator", Data),
}
