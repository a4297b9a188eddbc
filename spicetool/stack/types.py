"""Channel types, capability names and the enums shared by several channels."""
from __future__ import annotations

from typing import Iterable

from .schema import enum, u32

CHANNEL_NAMES: dict[int, str] = {
    1: "main", 2: "display", 3: "inputs", 4: "cursor", 5: "playback", 6: "record",
    7: "tunnel", 8: "smartcard", 9: "usbredir", 10: "port", 11: "webdav",
}
CHANNEL_TYPES: dict[str, int] = {v: k for k, v in CHANNEL_NAMES.items()}


def channel_name(channel_type: int | None) -> str:
    if channel_type is None:
        return "unknown"
    return CHANNEL_NAMES.get(channel_type, f"unknown_{channel_type}")


# Capability bit numbers (spice/protocol.h), by name.
COMMON_CAPS = ["protocol_auth_selection", "auth_spice", "auth_sasl", "mini_header"]
CAP_AUTH_SELECTION, CAP_AUTH_SPICE, CAP_AUTH_SASL, CAP_MINI_HEADER = range(4)

_SPICEVMC_CAPS = ["data_compress_lz4"]
CHANNEL_CAPS: dict[int, list[str]] = {CHANNEL_TYPES[name]: caps for name, caps in {
    "main": ["semi_seamless_migrate", "name_and_uuid", "agent_connected_tokens", "seamless_migrate"],
    "display": ["sized_stream", "monitors_config", "composite", "a8_surface", "stream_report",
                "lz4_compression", "pref_compression", "gl_scanout", "multi_codec", "codec_mjpeg",
                "codec_vp8", "codec_h264", "pref_video_codec_type", "codec_vp9", "codec_h265"],
    "inputs": ["key_scancode"],
    "playback": ["celt_0_5_1", "volume", "latency", "opus"],
    "record": ["celt_0_5_1", "volume", "opus"],
    "smartcard": _SPICEVMC_CAPS, "usbredir": _SPICEVMC_CAPS, "port": _SPICEVMC_CAPS, "webdav": _SPICEVMC_CAPS,
}.items()}

LINK_ERRORS = ["OK", "ERROR", "INVALID_MAGIC", "INVALID_DATA", "VERSION_MISMATCH", "NEED_SECURED",
               "NEED_UNSECURED", "PERMISSION_DENIED", "BAD_CONNECTION_ID", "CHANNEL_NOT_AVAILABLE"]
link_err = enum(u32, LINK_ERRORS)


def pack_caps(bits: Iterable[int], nwords: int | None = None) -> list[int]:
    """Capability bit numbers as the u32 words of the link stage (and of vdagent's
    ANNOUNCE_CAPABILITIES): bit n is bit n % 32 of word n // 32."""
    bits = list(bits)
    n = nwords if nwords is not None else (max(bits) // 32 + 1 if bits else 0)
    words = [0] * n
    for b in bits:
        words[b // 32] |= 1 << (b % 32)
    return words


def unpack_caps(words: Iterable[int]) -> list[int]:
    """The set bit numbers of capability words, ascending."""
    out: list[int] = []
    for w_i, w in enumerate(words):
        bit = 0
        while w:
            if w & 1:
                out.append(w_i * 32 + bit)
            w >>= 1
            bit += 1
    return out


def has_cap(words: list[int], bit: int) -> bool:
    return len(words) > bit // 32 and bool(words[bit // 32] & (1 << (bit % 32)))


def caps_to_names(words: list[int], names: list[str]) -> list[str | int]:
    """Set bits as names (unknown bits stay their bit number)."""
    return [names[n] if n < len(names) else n for n in unpack_caps(words)]


def names_to_caps(caps: list[str | int], names: list[str], nwords: int | None = None) -> list[int]:
    return pack_caps((c if isinstance(c, int) else names.index(c) for c in caps), nwords)
