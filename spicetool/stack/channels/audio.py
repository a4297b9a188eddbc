"""Playback (type 5) and record (type 6) channels: PCM/Opus audio."""
from __future__ import annotations

from ..schema import END, Array, Bytes, Struct, enum, u8, u16, u32
from .common import Empty

audio_data_mode = enum(u16, ["INVALID", "RAW", "CELT_0_5_1", "OPUS"])
audio_fmt = enum(u16, ["INVALID", "S16"])

AudioVolume = Struct([("nchannels", u8), ("volume", Array(u16, "nchannels"))])
AudioMute = Struct([("mute", u8)])
_packet = Struct([("time", u32), ("data", Bytes(END))])
_mode = Struct([("time", u32), ("mode", audio_data_mode), ("data", Bytes(END))])

PLAYBACK_SERVER: dict[int, tuple[str, Struct]] = {
    101: ("data", _packet),
    102: ("mode", _mode),
    103: ("start", Struct([("channels", u32), ("format", audio_fmt), ("frequency", u32),
                           ("time", u32)])),
    104: ("stop", Empty),
    105: ("volume", AudioVolume),
    106: ("mute", AudioMute),
    107: ("latency", Struct([("latency_ms", u32)])),
}
PLAYBACK_CLIENT: dict[int, tuple[str, Struct]] = {}

RECORD_SERVER: dict[int, tuple[str, Struct]] = {
    101: ("start", Struct([("channels", u32), ("format", audio_fmt), ("frequency", u32)])),
    102: ("stop", Empty),
    103: ("volume", AudioVolume),
    104: ("mute", AudioMute),
}
RECORD_CLIENT: dict[int, tuple[str, Struct]] = {
    101: ("data", _packet),
    102: ("mode", _mode),
    103: ("start_mark", Struct([("time", u32)])),
}
