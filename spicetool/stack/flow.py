"""Flow control and liveness of the data phase, sans-I/O: the ACK window and PING/PONG.

The sender of a channel (the server) sends SET_ACK {generation, window}; the receiver (the
client) answers ACK_SYNC {generation}, then one ACK per `window` messages it received; the
sender stops while more than 2 x window messages are unacked (spice-server's ack_data in
red-channel-client.cpp, spice-gtk's message_ack_window/message_ack_count in spice-channel.c).
PING {id, timestamp} is answered by PONG with the same id and timestamp.
"""
from __future__ import annotations

import itertools
import time
from typing import Callable

from .events import Message

ACK_WINDOW = 20          # CLIENT_ACK_WINDOW in spice-server
MAX_OUTSTANDING_PINGS = 16

Answer = tuple[str, dict]  # a message to send: (name, fields)


class AckWindow:
    """The sender's side: SET_ACK generations and the count of unacked messages."""

    def __init__(self, window: int = ACK_WINDOW):
        self.window = window
        self.generation = 0
        self.client_generation = 0xFFFFFFFF   # none synced yet
        self.unacked = 0

    def set_ack(self) -> dict:
        """Fields of a SET_ACK about to be sent: a new generation, the count starts again."""
        self.generation += 1
        self.unacked = 0
        return {"generation": self.generation, "window": self.window}

    def sent(self, n: int = 1) -> None:
        self.unacked += n

    @property
    def full(self) -> bool:
        return self.unacked > self.window * 2

    def ack_sync(self, generation: int) -> None:
        self.client_generation = generation

    def ack(self) -> bool:
        """One ACK received; True when it counts (it is of the current generation)."""
        if self.client_generation != self.generation:
            return False
        self.unacked = max(0, self.unacked - self.window)
        return True


class PingTracker:
    """The pinger's side: outstanding pings by id, and the round trip a PONG measures."""

    def __init__(self, keep: int = MAX_OUTSTANDING_PINGS,
                 clock: Callable[[], int] = time.monotonic_ns):
        self.keep, self.clock = keep, clock
        self.ids = itertools.count(1)
        self.outstanding: dict[int, int] = {}   # id -> timestamp (ns)
        self.latency_ms: float | None = None

    def ping(self) -> dict:
        """Fields of a PING about to be sent."""
        pid, ts = next(self.ids), self.clock()
        self.outstanding[pid] = ts
        if len(self.outstanding) > self.keep:  # a peer that never answers costs at most `keep`
            self.outstanding.pop(next(iter(self.outstanding)))
        return {"id": pid, "timestamp": ts, "data": b""}

    def pong(self, fields: dict) -> float | None:
        """The round trip in ms when this PONG answers one of our pings, else None."""
        sent = self.outstanding.pop(fields.get("id"), None)
        if sent is None or sent != fields.get("timestamp"):
            return None
        self.latency_ms = (self.clock() - sent) / 1e6
        return self.latency_ms


class FlowAnswers:
    """The receiver's side, as spice-gtk answers: every message counts toward the ACK window
    (before it is handled, so a SET_ACK counts with the window it replaces), SET_ACK is
    answered by ACK_SYNC, PING by PONG.  Sub-messages of a full-header message do not count."""

    def __init__(self, mini_header: bool):
        self.mini_header = mini_header   # the header the peer sends us
        self.window = 0
        self.left = 0

    def received(self, msg: Message) -> list[Answer]:
        out: list[Answer] = []
        if self.window and (msg.serial is not None or self.mini_header):
            self.left -= 1
            if self.left <= 0:
                self.left = self.window
                out.append(("ack", {}))
        if msg.name == "set_ack":
            self.window = self.left = msg.fields.get("window", 0)
            out.append(("ack_sync", {"generation": msg.fields.get("generation", 0)}))
        elif msg.name == "ping":
            out.append(("pong", {"id": msg.fields["id"], "timestamp": msg.fields["timestamp"]}))
        return out
