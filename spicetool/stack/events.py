"""The events a ChannelConnection hands back: link records, messages, agent messages, errors."""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Direction(str, enum.Enum):
    CLIENT = "client"  # client -> server
    SERVER = "server"  # server -> client


@dataclass
class LinkRecord:
    direction: Direction
    name: str
    fields: dict
    size: int
    offset: int


@dataclass
class Message:
    direction: Direction
    channel_type: int
    type_id: int
    name: str
    size: int
    fields: dict
    body: bytes
    serial: int | None
    offset: int
    header_size: int
    error: str | None = None
    # byte ranges (start, end) of the body the capture lost, filled with zeros so offsets
    # stay right; empty for an intact message (see stack.damage)
    lost: tuple[tuple[int, int], ...] = ()


@dataclass
class AgentMessage:
    direction: Direction
    type_id: int
    name: str
    size: int
    fields: dict
    opaque: int


@dataclass
class ProtocolError:
    direction: Direction
    offset: int
    reason: str
    fatal: bool


Event = LinkRecord | Message | AgentMessage | ProtocolError
