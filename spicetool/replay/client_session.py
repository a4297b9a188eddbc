"""The replaying client's session: main first, the other channels at their captured times, each
channel's captured messages at their captured times (scaled by the speed), agent traffic within
the new server's agent tokens, then the rest of the captured session's length."""
from __future__ import annotations

import asyncio
import time
from typing import Callable

from spicetool.replay.client_channel import ClientChannel, LinkRefused, ReplayFailure
from spicetool.replay.client_plan import ChannelPlan, SessionPlan
from spicetool.stack import Message
from spicetool.stack.enums import ChannelType

AGENT_WAIT = 5.0       # seconds a message waits for the agent to connect or for tokens
SETTLE = 0.5           # at the end: the server has been quiet this long
SETTLE_MORE = 2.5      # ... waiting at most this much longer (a server that never goes quiet)
TICK = 0.05


class ReplaySession:
    def __init__(self, plan: SessionPlan, host: str, port: int, password: bytes, speed: float,
                 stream_factory: Callable | None, note: Callable[[str], None],
                 connect_timeout: float = 10.0, settle: float = SETTLE):
        self.plan, self.host, self.port = plan, host, port
        self.password, self.speed = password, speed
        self.stream_factory, self.note = stream_factory, note
        self.connect_timeout, self.settle = connect_timeout, settle
        self.channels: list[ClientChannel] = []
        self.session_id: int | None = None
        self.listed: set[tuple[int, int]] | None = None   # the server's CHANNELS_LIST
        self.agent_connected = False
        self.agent_started = False
        self.agent_tokens = 0
        self.agent_absent = False
        self._init = asyncio.Event()
        self._t0 = 0.0
        self.elapsed = 0.0

    # --- what the main channel tells us ---

    async def _on_message(self, ch: ClientChannel, m: Message) -> None:
        if ch.plan.channel_type != ChannelType.MAIN:
            return
        f = m.fields
        if m.name == "init":
            self.session_id = f.get("session_id")
            self.agent_connected = bool(f.get("agent_connected"))
            self.agent_tokens = f.get("agent_tokens", 0)
            self._init.set()
        elif m.name == "channels_list":
            self.listed = {(c["type"], c["id"]) for c in f.get("channels", [])}
        elif m.name == "agent_connected":
            self.agent_connected = True
        elif m.name == "agent_connected_tokens":
            self.agent_connected, self.agent_tokens = True, f.get("num_tokens", 0)
        elif m.name == "agent_disconnected":
            self.agent_connected, self.agent_started = False, False
        elif m.name == "agent_token":
            self.agent_tokens += f.get("num_tokens", 0)
        elif m.name == "agent_data" and self.agent_started:
            await ch.send("agent_token", {"num_tokens": 1})  # consumed: the server may send more

    # --- timing ---

    def _check(self) -> None:
        for ch in self.channels:
            if ch.closed_by_server:
                at = time.monotonic() - self._t0
                raise ReplayFailure(f"{ch.name}: {ch.closed_by_server}, {at:.1f} s into the replay")

    async def _until(self, capture_time: float) -> None:
        """Sleep until this capture time (scaled), watching for channels the server closed."""
        due = self._t0 + capture_time / self.speed
        while True:
            self._check()
            left = due - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, TICK))

    async def _wait_for(self, cond: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not cond():
            self._check()
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(TICK)
        return True

    # --- channels ---

    async def _open(self, p: ChannelPlan, connection_id: int) -> ClientChannel | None:
        ch = ClientChannel(p, self.password, self.stream_factory, self._on_message)
        self.channels.append(ch)
        await ch.connect(self.host, self.port, self.connect_timeout)
        try:
            await ch.link(connection_id)
        except LinkRefused as e:
            if e.error != "CHANNEL_NOT_AVAILABLE" or p.channel_type == ChannelType.MAIN:
                raise
            self.note(f"{p.name}: the server has no such channel" + _lost(p))
            await ch.close()
            self.channels.remove(ch)
            return None
        return ch

    async def _send_plan(self, ch: ClientChannel) -> None:
        skipped: dict[str, int] = {}
        for t, msg in ch.plan.messages:
            await self._until(t)
            if msg.name in ("agent_start", "agent_data") and ch.plan.channel_type == ChannelType.MAIN:
                why = await self._agent_gate(msg)
                if why:
                    skipped[why] = skipped.get(why, 0) + 1
                    continue
            await ch.replay(msg)
        for why, n in skipped.items():
            self.note(f"{ch.name}: {n} agent message(s) not replayed: {why}")

    async def _agent_gate(self, msg: Message) -> str | None:
        """None when the agent message may go now (taking a token), else why not."""
        # wait for the agent once; later messages do not wait again for an absent one
        wait = 0.0 if self.agent_absent else AGENT_WAIT
        if not await self._wait_for(lambda: self.agent_connected, wait):
            self.agent_absent = True
            return "no agent on this server"
        if msg.name == "agent_start":
            self.agent_started = True
            return None
        if not self.agent_started:
            return "the capture has no AGENT_START before it"
        if not await self._wait_for(lambda: self.agent_tokens > 0, AGENT_WAIT):
            return "the server gave no agent tokens"
        self.agent_tokens -= 1
        return None

    async def _secondary(self, p: ChannelPlan) -> None:
        await self._until(p.start)
        if self.listed is not None and p.channel_type and (p.channel_type, p.channel_id) not in self.listed:
            self.note(f"{p.name}: not in the server's channel list" + _lost(p))
            return
        ch = await self._open(p, self.session_id or 0)
        if ch is not None:
            await self._send_plan(ch)

    async def run(self) -> None:
        self._t0 = time.monotonic()
        main_plan, others = self.plan.channels[0], self.plan.channels[1:]
        tasks: list[asyncio.Task] = []
        try:
            main = await self._open(main_plan, 0)
            assert main is not None
            if not await self._wait_for(self._init.is_set, self.connect_timeout):
                raise ReplayFailure(f"main:0: no INIT from the server within {self.connect_timeout:g} s")
            tasks.append(asyncio.create_task(self._send_plan(main)))
            tasks += [asyncio.create_task(self._secondary(p)) for p in others]
            await asyncio.gather(*tasks)
            await self._until(self.plan.duration)
            await self._settle()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.elapsed = time.monotonic() - self._t0
            for ch in self.channels:
                await ch.close()

    async def _settle(self) -> None:
        """What the server still sends in answer to the last inputs belongs to the session."""
        start = time.monotonic()
        while time.monotonic() - start < self.settle + SETTLE_MORE:
            self._check()
            if time.monotonic() - max(c.last_receive for c in self.channels) >= self.settle:
                return
            await asyncio.sleep(TICK)


def _lost(p: ChannelPlan) -> str:
    return f"; its {len(p.messages)} captured messages are not replayed" if p.messages else ""
