"""Wire bytes that break the protocol on purpose, for testing a peer's defences.

The builders in link.py, schema.py and vdagent.py refuse inconsistent fields; a test of how a
server meets a hostile client needs exactly those bytes (a wrong magic, a size that lies, a
capability count running past the message). They are packed here, next to the layouts they
bend, so no one outside the stack packs SPICE headers by hand.
"""
from __future__ import annotations

from .headers import pack_mini_header
from .link import LINK_HEADER, LINK_MESS, MAGIC
from .vdagent import HEADER as AGENT_HEADER
from .vdagent import PROTOCOL as AGENT_PROTOCOL


def link_mess(channel_type: int, *, magic: bytes = MAGIC, major: int = 2, minor: int = 2,
              size: int | None = None, connection_id: int = 0, channel_id: int = 0,
              ncommon: int | None = None, nchannel: int = 0, caps_offset: int = LINK_MESS.size,
              caps: tuple[int, ...] = (0b1001,)) -> bytes:
    """A SpiceLinkHeader + SpiceLinkMess with every field as given, consistent or not.

    size defaults to the true body size and ncommon to the number of capability words given."""
    words = b"".join(w.to_bytes(4, "little") for w in caps)
    body = LINK_MESS.pack(connection_id, channel_type, channel_id,
                          len(caps) if ncommon is None else ncommon, nchannel, caps_offset) + words
    return LINK_HEADER.pack(magic, major, minor, len(body) if size is None else size) + body


def mini_message(type_id: int, size: int, body: bytes = b"") -> bytes:
    """A mini data header announcing size bytes, followed by body (which may be shorter)."""
    return pack_mini_header(type_id, size) + body


def agent_header(type_id: int, size: int, opaque: int = 0) -> bytes:
    """A VDAgentMessage header announcing size bytes of data."""
    return AGENT_HEADER.pack(AGENT_PROTOCOL, type_id, opaque, size)
