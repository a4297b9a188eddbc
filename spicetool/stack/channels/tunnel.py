"""Tunnel channel (type 7): obsolete; spice.proto declares it with no messages and no base
channel, so every message on it decodes as unknown_<id>."""
from __future__ import annotations

from ..schema import Struct

SERVER: dict[int, tuple[str, Struct]] = {}
CLIENT: dict[int, tuple[str, Struct]] = {}
