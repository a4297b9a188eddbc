"""Link stage records (before the data phase): parse, build, ticket crypto.

Order on the wire (spice-facts §1): client LinkHeader+LinkMess; server LinkHeader+LinkReply;
client auth mechanism (only if the server advertised AUTH_SELECTION); client encrypted
ticket (128 B, AUTH_SPICE) or SASL exchange; server u32 link result.
"""
from __future__ import annotations

import struct

from .schema import BuildError
from .types import (CHANNEL_CAPS, COMMON_CAPS, LINK_ERRORS, caps_to_names, names_to_caps)

MAGIC = b"REDQ"
LINK_HEADER = struct.Struct("<4sIII")         # magic, major, minor, size
LINK_MESS = struct.Struct("<IBBIII")          # connection_id, type, id, ncommon, nchannel, caps_offset
LINK_REPLY = struct.Struct("<I162sIII")       # error, pub_key, ncommon, nchannel, caps_offset
U32 = struct.Struct("<I")
TICKET_SIZE = 128
PUBKEY_SIZE = 162
MAX_LINK_SIZE = 4096        # the server refuses larger link messages
MAX_CAPS = 1024


class LinkError(Exception):
    """The link-stage bytes are not a valid record."""


def link_err_name(v: int) -> str | int:
    return LINK_ERRORS[v] if 0 <= v < len(LINK_ERRORS) else v


def link_err_value(v: str | int) -> int:
    return LINK_ERRORS.index(v) if isinstance(v, str) else v


def _caps(buf: bytes, start: int, end: int, ncommon: int, nchannel: int, channel_type: int | None
          ) -> tuple[list, list]:
    if ncommon > MAX_CAPS or nchannel > MAX_CAPS:
        raise LinkError(f"absurd capability counts {ncommon}/{nchannel}")
    if start + 4 * (ncommon + nchannel) > end:
        raise LinkError("capabilities run past the end of the link message")
    words = struct.unpack_from(f"<{ncommon + nchannel}I", buf, start)
    chan_names = CHANNEL_CAPS.get(channel_type or 0, [])
    return (caps_to_names(list(words[:ncommon]), COMMON_CAPS),
            caps_to_names(list(words[ncommon:]), chan_names))


def parse_link_header(buf: bytes, pos: int = 0) -> tuple[bytes, int, int, int] | None:
    """(magic, major, minor, size) of a SpiceLinkHeader, unchecked; None when more bytes are
    needed.  A server checks each field itself, with its own refusal for each."""
    if len(buf) - pos < LINK_HEADER.size:
        return None
    return LINK_HEADER.unpack_from(buf, pos)


def _header(buf: bytes, pos: int) -> tuple[dict, int] | None:
    h = parse_link_header(buf, pos)
    if h is None:
        return None
    magic, major, minor, size = h
    if magic != MAGIC:
        raise LinkError(f"bad link magic {magic!r} (expected b'REDQ')")
    if size > MAX_LINK_SIZE:
        raise LinkError(f"link message size {size} exceeds {MAX_LINK_SIZE}")
    return {"magic": magic.decode("latin-1"), "major_version": major, "minor_version": minor,
            "size": size}, size


def _whole_record(buf: bytes, pos: int, min_size: int, what: str,
                  struct_name: str) -> tuple[dict, int, int, int] | None:
    """A link header and the whole record behind it: (header fields, size, body start, total),
    or None when more bytes are needed."""
    h = _header(buf, pos)
    if h is None:
        return None
    fields, size = h
    total = LINK_HEADER.size + size
    if len(buf) - pos < total:
        return None
    if size < min_size:
        raise LinkError(f"{what} of {size} bytes is shorter than {struct_name}")
    return fields, size, pos + LINK_HEADER.size, total


def parse_link_mess(buf: bytes, pos: int = 0) -> tuple[dict, int] | None:
    """(fields, record size) or None when more bytes are needed."""
    rec = _whole_record(buf, pos, LINK_MESS.size, "link message", "SpiceLinkMess")
    if rec is None:
        return None
    fields, size, start, total = rec
    conn_id, ctype, cid, ncommon, nchannel, caps_off = LINK_MESS.unpack_from(buf, start)
    if caps_off < LINK_MESS.size:
        raise LinkError(f"caps_offset {caps_off} inside SpiceLinkMess")
    common, chan = _caps(buf, start + caps_off, start + size, ncommon, nchannel, ctype)
    fields.update(connection_id=conn_id, channel_type=ctype, channel_id=cid,
                  num_common_caps=ncommon, num_channel_caps=nchannel, caps_offset=caps_off,
                  common_caps=common, channel_caps=chan)
    return fields, total


def parse_link_reply(buf: bytes, pos: int, channel_type: int | None) -> tuple[dict, int] | None:
    rec = _whole_record(buf, pos, LINK_REPLY.size, "link reply", "SpiceLinkReply")
    if rec is None:
        return None
    fields, size, start, total = rec
    err, pub_key, ncommon, nchannel, caps_off = LINK_REPLY.unpack_from(buf, start)
    if caps_off < LINK_REPLY.size and (ncommon or nchannel):
        raise LinkError(f"caps_offset {caps_off} inside SpiceLinkReply")
    common, chan = _caps(buf, start + caps_off, start + size, ncommon, nchannel, channel_type)
    fields.update(error=link_err_name(err), pub_key=pub_key, num_common_caps=ncommon,
                  num_channel_caps=nchannel, caps_offset=caps_off, common_caps=common,
                  channel_caps=chan)
    return fields, total


def parse_u32(buf: bytes, pos: int) -> int | None:
    return U32.unpack_from(buf, pos)[0] if len(buf) - pos >= 4 else None


# --- builders (for our server and client) ---

def _build_caps(fields: dict, channel_type: int | None) -> tuple[list[int], list[int]]:
    chan_names = CHANNEL_CAPS.get(channel_type or 0, [])
    try:
        common = names_to_caps(fields.get("common_caps", []), COMMON_CAPS, fields.get("num_common_caps"))
        chan = names_to_caps(fields.get("channel_caps", []), chan_names, fields.get("num_channel_caps"))
    except ValueError as e:
        raise BuildError(f"unknown capability: {e}") from None
    return common, chan


def _wrap(fields: dict, fixed: bytes, caps_off: int, words: list[int]) -> bytes:
    gap = bytes(max(0, caps_off - len(fixed)))
    payload = fixed + gap + struct.pack(f"<{len(words)}I", *words)
    return LINK_HEADER.pack(MAGIC, fields.get("major_version", 2), fields.get("minor_version", 2),
                            len(payload)) + payload


def build_link_mess(fields: dict) -> bytes:
    ctype = fields["channel_type"]
    common, chan = _build_caps(fields, ctype)
    caps_off = fields.get("caps_offset", LINK_MESS.size)
    fixed = LINK_MESS.pack(fields.get("connection_id", 0), ctype, fields.get("channel_id", 0),
                           len(common), len(chan), caps_off)
    return _wrap(fields, fixed, caps_off, common + chan)


def build_link_reply(fields: dict, channel_type: int | None) -> bytes:
    common, chan = _build_caps(fields, channel_type)
    caps_off = fields.get("caps_offset", LINK_REPLY.size)
    pub_key = bytes(fields.get("pub_key", b""))
    if len(pub_key) > PUBKEY_SIZE:
        raise BuildError(f"pub_key longer than {PUBKEY_SIZE} bytes")
    fixed = LINK_REPLY.pack(link_err_value(fields.get("error", 0)), pub_key, len(common), len(chan),
                            caps_off)
    return _wrap(fields, fixed, caps_off, common + chan)


def build_auth_mechanism(fields: dict) -> bytes:
    return U32.pack(fields["auth_mechanism"])


def build_ticket(fields: dict) -> bytes:
    t = bytes(fields["encrypted_data"])
    if len(t) != TICKET_SIZE:
        raise BuildError(f"ticket must be {TICKET_SIZE} bytes")
    return t


def build_link_result(fields: dict) -> bytes:
    return U32.pack(link_err_value(fields["error"]))


# --- ticket crypto: RSA-OAEP, SHA-1, MGF1-SHA1, empty label; password + NUL ---

def _oaep():  # imported lazily: the dissector never needs cryptography
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


def decrypt_ticket(private_key, ticket: bytes) -> bytes:
    """The password bytes (trailing NUL removed).  private_key: a cryptography RSA key."""
    plain = private_key.decrypt(bytes(ticket), _oaep())
    return plain[:-1] if plain.endswith(b"\0") else plain


def encrypt_ticket(pub_key_der: bytes, password: bytes) -> bytes:
    """What a client sends: the server's DER public key encrypts password + NUL."""
    from cryptography.hazmat.primitives.serialization import load_der_public_key
    if len(password) > 60:
        raise BuildError("SPICE passwords are at most 60 bytes")
    return load_der_public_key(bytes(pub_key_der)).encrypt(password + b"\0", _oaep())
