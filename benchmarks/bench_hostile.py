"""`spicetool serve` under hostile load, beside real clients (run on demand, not in CI).

    python benchmarks/bench_hostile.py [--duration 120] [--hostile 200] [--real 10] [--seed 1]
                                       [--capture captures/long-desktop.pcapng] [--speed 1]
                                       [--port 5960] [--keep-log FILE]

Starts `spicetool serve --replay CAPTURE --loop` in a process of its own, then --hostile
connections at once (asyncio, seeded by --seed), each reconnecting as another kind until
--duration seconds have passed:

  fuzz       valid link and headers (mini or full), then messages of every client-side type of
             every channel type (the stack's tables, bodies made by the stack's builder), on a
             main, display, cursor or inputs channel, mutated: random bytes, truncated, extended,
             huge counts, a header size that lies (longer or shorter than the body)
  flood      valid messages as fast as the socket takes them (ACK/ACK_SYNC/PONG on display,
             mouse motion and keys on inputs, ATTACH_CHANNELS and agent tokens on main)
  slow       a display (or cursor) channel that links, sends its init, then never reads
  halfclose  shutdown(SHUT_WR) during the link, right after it, or in the middle of a message
  garbage    bytes before the link: random, an HTTP request, a TLS ClientHello, a cut magic
  unknown    a link for a channel type (or id) the server does not have, or a bad session id
  silent     connects and says nothing (or half a link message): the link timeout's case

Beside them, --real threads each run spicy-screenshot (a real spice-gtk client) again and
again; every picture it writes must be exactly one the replay passes through (the truth: the
same capture's timeline applied to a device here, a hash of the framebuffer after each frame;
the replay is deterministic, timeline.py). A screenshot that fails, times out or takes longer
than --max-shot seconds is a failure.

Measured: the server's VmRSS/VmHWM every second (start, after warm-up, peak, end; bounded means
the peak after the first half of the run is at most the first half's peak + max(10 %, 24 MiB));
the server's log scanned for internal errors (tracebacks, "internal error", asyncio's "Task
exception was never retrieved" / "Exception in callback"); hostile connections by kind and how
each ended; the real clients' picture checks. Exit 0 when all holds, 1 otherwise, 2 when the
server did not start. The hostile side takes about a core of its own (2-core machine: run it
when the others can spare it).
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "scripts")]

import peers  # noqa: E402
from support import read_ppm  # noqa: E402

from spicetool.stack import (  # noqa: E402
    ChannelEndpoint,
    ClientLink,
    Direction,
    LinkAccepted,
    LinkFailed,
    LinkRefused,
    Message,
    Role,
    forge,
    parse_body,
)
from spicetool.stack.channels import MESSAGES  # noqa: E402
from spicetool.stack.enums import ChannelType  # noqa: E402
from spicetool.stack.link import parse_link_reply  # noqa: E402

MAIN, DISPLAY, INPUTS, CURSOR = (int(ChannelType.MAIN), int(ChannelType.DISPLAY), int(ChannelType.INPUTS),
                                 int(ChannelType.CURSOR))
SERVED = [MAIN, DISPLAY, CURSOR, INPUTS]
SPICY_CACHE_PIXELS, SPICY_GLZ_WINDOW = 20971520, 14679040   # spicy's DISPLAY_INIT in the corpus
FLOOD_TARGETS = [DISPLAY, INPUTS, MAIN, CURSOR]
KINDS = {"fuzz": 5, "flood": 2, "slow": 2, "halfclose": 2, "garbage": 2, "unknown": 2, "silent": 1}

# What a server log must never hold: our own "internal error" lines, and what asyncio or Python
# print when an exception escapes a task, a callback or a destructor.
INTERNAL = re.compile(r"internal error|Traceback \(most recent call last\)|Task exception was never retrieved|"
                      r"Exception in callback|exception was never retrieved|Exception ignored|Fatal error|"
                      r"Unhandled exception|Task was destroyed but it is pending")


# ------------------------------------------------------------------------------- the truth

def picture_hash(rgb) -> bytes:
    return hashlib.blake2b(rgb.tobytes(), digest_size=16).digest() + repr(rgb.shape).encode()


def truth(capture: Path, rounds: int = 2) -> set[bytes]:
    """Every picture the replay of `capture` shows on display 0 between its frames (two rounds
    of --loop), as hashes: the server submits a frame's commands at once on its event loop, and
    a client's first picture is the device's surface at its link, so it is one of these."""
    from spicetool.qxl.device import QxlDevice
    from spicetool.replay.timeline import Timeline
    device = QxlDevice()
    seen: set[bytes] = set()
    ends = 0
    for frame in Timeline(str(capture), loop=True).frames():
        if frame.hold:
            continue
        device.tick()
        for cmd in frame.commands:
            device.submit(cmd)
        if frame.end:
            device.tick(float("inf"))
        seen.add(picture_hash(device.framebuffer_rgb()))
        if frame.end:
            ends += 1
            if ends >= rounds:
                break
    return seen


# ------------------------------------------------------------------------------- the server

def status_kib(pid: int, field: str) -> int:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# --trace-memory: a sitecustomize for the server's process (tracemalloc from its start; every 10 s, the
# largest growths since 8 s in, with where they were allocated)
TRACE_MEMORY = """\
import sys, threading, time, tracemalloc
from pathlib import Path
if "serve" in sys.argv:
    tracemalloc.start(12)
    def _report() -> None:
        time.sleep(8)
        base, n = tracemalloc.take_snapshot(), 0
        while True:
            time.sleep(10)
            n += 1
            snap = tracemalloc.take_snapshot()
            with open(Path(__file__).with_name("report.txt"), "a") as f:
                f.write(f"=== {n * 10 + 8} s: traced {tracemalloc.get_traced_memory()[0] / 2**20:.1f} MiB\\n")
                f.write("--- the largest holders\\n")
                for st in snap.statistics("traceback")[:4]:
                    f.write(f"{st.size / 2**20:.1f} MiB {st.count} blocks\\n")
                    f.writelines(f"    {line}\\n" for line in st.traceback.format()[-12:])
                f.write("--- the largest growths since 8 s\\n")
                for st in snap.compare_to(base, "traceback")[:6]:
                    f.write(f"{st.size_diff / 2**20:+.1f} MiB {st.count_diff:+d} blocks\\n")
                    f.writelines(f"    {line}\\n" for line in st.traceback.format()[-12:])
    threading.Thread(target=_report, daemon=True).start()
"""


class Server:
    def __init__(self, capture: Path, port: int, speed: float, log: Path, trace: Path | None = None) -> None:
        self.log_path = log
        self.log = open(log, "wb")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        if trace is not None:
            trace.mkdir(parents=True, exist_ok=True)
            (trace / "sitecustomize.py").write_text(TRACE_MEMORY)
            env["PYTHONPATH"] = f"{trace}{os.pathsep}{ROOT}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spicetool", "serve", "--disable-ticketing", "--replay", str(capture),
             "--loop", "--speed", str(speed), "--port", str(port)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=ROOT)
        self.port = port
        self.memory: list[tuple[float, int, int]] = []   # (seconds since start, VmRSS, VmHWM) KiB
        self._stop = threading.Event()

    def wait_ready(self, timeout: float = 120) -> None:
        peers.wait_until(lambda: b"serving " in self.log_path.read_bytes(), timeout, "server ready",
                         proc=self.proc)

    def sample(self, t0: float) -> None:
        while not self._stop.is_set():
            self.memory.append((time.monotonic() - t0, status_kib(self.proc.pid, "VmRSS"),
                                status_kib(self.proc.pid, "VmHWM")))
            self._stop.wait(1.0)

    def stop(self) -> int | None:
        self._stop.set()
        alive = self.proc.poll() is None
        if alive:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        return None if alive else self.proc.returncode


# ------------------------------------------------------------------------------- real clients

class RealClients:
    """spicy-screenshot again and again in `n` threads; each picture checked against the truth."""

    def __init__(self, n: int, port: int, tmp: Path, pictures: set[bytes], max_shot: float) -> None:
        self.n, self.port, self.tmp, self.pictures, self.max_shot = n, port, tmp, pictures, max_shot
        self.exact = 0
        self.wrong: list[str] = []
        self.failed: list[str] = []
        self.slow: list[float] = []
        self.times: list[float] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _run(self, i: int) -> None:
        k = 0
        while not self._stop.is_set():
            out = self.tmp / f"real{i}-{k}.ppm"
            k += 1
            start = time.monotonic()
            try:
                peers.spicy_screenshot(self.port, out, timeout=max(30.0, self.max_shot * 2))
                took = time.monotonic() - start
                ok = picture_hash(read_ppm(out)) in self.pictures
                with self._lock:
                    self.times.append(took)
                    if took > self.max_shot:
                        self.slow.append(took)
                    if ok:
                        self.exact += 1
                    else:
                        self.wrong.append(str(out))
                if ok:
                    out.unlink()
            except Exception as e:
                with self._lock:
                    self.failed.append(f"{type(e).__name__}: {str(e)[:200]}")
            self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()
        for t in self.threads:
            t.join(60)

    @property
    def checks(self) -> int:
        return self.exact + len(self.wrong) + len(self.failed)


# ------------------------------------------------------------------------------- hostile clients

class Refused(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class ServerClosed(Exception):
    """The server closed (EOF or reset) before the step we were in was done."""


def catalogue() -> list[tuple[int, int, str, bytes]]:
    """(channel type, type id, name, a valid body) of every client-side message of every
    channel type in the stack's tables; the body is the stack's builder's, from the fields its
    parser reads out of the smallest all-zero body that parses."""
    from spicetool.stack import build_body
    out = []
    for (ctype, direction), tab in MESSAGES.items():
        if direction is not Direction.CLIENT or ctype == 0:
            continue
        for tid, (name, _) in sorted(tab.items()):
            for n in range(0, 257):
                _, fields, err = parse_body(ctype, Direction.CLIENT, tid, bytes(n))
                if err is None:
                    try:
                        body = build_body(ctype, Direction.CLIENT, tid, fields)
                    except Exception:
                        body = bytes(n)
                    out.append((ctype, tid, name, body))
                    break
    return out


CATALOGUE: list[tuple[int, int, str, bytes]] = []


def random_valid(rng: random.Random, ctype: int, tid: int, body: bytes) -> bytes:
    """The same message with random values in its fields, rebuilt by the stack's builder (the
    zero body when random bytes do not parse, e.g. a count that runs past the body)."""
    from spicetool.stack import build_body
    raw = rng.randbytes(len(body))
    _, fields, err = parse_body(ctype, Direction.CLIENT, tid, raw)
    if err is not None:
        return body
    try:
        return build_body(ctype, Direction.CLIENT, tid, fields)
    except Exception:
        return raw


def mutated(rng: random.Random, ep: ChannelEndpoint, own: int) -> tuple[bytes, str]:
    """One hostile message with a valid header: (bytes, what was done)."""
    mine = [m for m in CATALOGUE if m[0] == own]
    ctype, tid, name, body = rng.choice(mine if rng.random() < 0.7 else CATALOGUE)
    how = rng.choice(["valid", "random", "truncated", "extended", "huge-count", "size-long", "size-short",
                      "random-type"])
    size = None
    if how == "valid":
        body = random_valid(rng, ctype, tid, body)
    elif how == "random":
        body = rng.randbytes(rng.choice([1, 2, 4, 8, 16, 64, 300, 4000]))
    elif how == "truncated":
        body = body[:rng.randrange(len(body))] if body else b""
        if not body:
            size = rng.randrange(1, 9)   # a header that promises bytes never sent (yet)
    elif how == "extended":
        body = random_valid(rng, ctype, tid, body) + rng.randbytes(rng.randrange(1, 200))
    elif how == "huge-count":
        b = bytearray(random_valid(rng, ctype, tid, body) or bytes(8))
        b += bytes(max(0, 8 - len(b)))
        at = rng.randrange(0, len(b) - 3)
        b[at:at + 4] = rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x10000000, 0xFFFF]).to_bytes(4, "little")
        body = bytes(b)
    elif how == "size-long":
        size = len(body) + rng.choice([1, 100, 65536, 1 << 20, 0x7FFFFFFF, 0xFFFFFFFF - len(body)])
    elif how == "size-short":
        body = random_valid(rng, ctype, tid, body) + rng.randbytes(8)
        size = rng.randrange(len(body))
    elif how == "random-type":
        tid = rng.choice([0, 1, 7, 99, 100, 200, 255, 0xFFFF])
    head = ep.header(tid, len(body) if size is None else min(size, 0xFFFFFFFF))
    return head + body, f"{how} {name}"


async def open_conn(port: int, timeout: float = 10.0):
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)


async def link(port: int, ctype: int, conn_id: int = 0, mini: bool = True, channel_id: int = 0,
               timeout: float = 15.0):
    """The stack's ClientLink on a socket: (reader, writer, endpoint, events after the link)."""
    r, w = await open_conn(port)
    caps = ["protocol_auth_selection", "mini_header"] if mini else ["protocol_auth_selection"]
    ep = ChannelEndpoint(Role.CLIENT, ClientLink({
        "channel_type": ctype, "channel_id": channel_id, "connection_id": conn_id,
        "common_caps": caps, "channel_caps": []}, b""))
    try:
        w.write(ep.data_to_send())
        deadline = time.monotonic() + timeout
        while True:
            data = await asyncio.wait_for(r.read(65536), max(0.1, deadline - time.monotonic()))
            if not data:
                raise ServerClosed("closed during the link")
            events = ep.receive_data(data)
            w.write(ep.data_to_send())
            for i, ev in enumerate(events):
                if isinstance(ev, LinkAccepted):
                    return r, w, ep, events[i + 1:]
                if isinstance(ev, LinkRefused):
                    raise Refused(ev.error)
                if isinstance(ev, LinkFailed):
                    raise Refused(f"link failed: {ev.reason}")
    except BaseException:
        w.close()
        raise


async def session(port: int, mini: bool = True):
    """A main channel and its session id."""
    r, w, ep, events = await link(port, MAIN, mini=mini)
    deadline = time.monotonic() + 10
    while True:
        for ev in events:
            if isinstance(ev, Message) and ev.name == "init":
                return r, w, ep, ev.fields["session_id"]
        data = await asyncio.wait_for(r.read(65536), max(0.1, deadline - time.monotonic()))
        if not data:
            w.close()
            raise ServerClosed("main closed before its init")
        events = ep.receive_data(data)


async def until_closed(r: asyncio.StreamReader, within: float) -> bool:
    """True when the server closes the connection (EOF or reset) within `within` seconds."""
    deadline = time.monotonic() + within
    try:
        while (left := deadline - time.monotonic()) > 0:
            if not await asyncio.wait_for(r.read(1 << 20), left):
                return True
    except (asyncio.TimeoutError, TimeoutError):
        return False
    except (ConnectionError, OSError):
        return True
    return False


async def drain_reader(r: asyncio.StreamReader) -> None:
    try:
        while await r.read(1 << 20):
            pass
    except (ConnectionError, OSError):
        pass


def close(*writers) -> None:
    for w in writers:
        if w is not None:
            try:
                w.close()
            except Exception:
                pass


async def send(w: asyncio.StreamWriter, data: bytes) -> None:
    w.write(data)
    await asyncio.wait_for(w.drain(), 10)


class Hostile:
    def __init__(self, port: int, seed: int, n: int, until: float) -> None:
        self.port, self.seed, self.n, self.until = port, seed, n, until
        self.outcomes: dict[str, Counter] = defaultdict(Counter)
        self.made: Counter = Counter()

    async def run(self) -> None:
        await asyncio.gather(*(self.worker(i) for i in range(self.n)))

    async def worker(self, i: int) -> None:
        rng = random.Random(self.seed * 100_003 + i)
        await asyncio.sleep(rng.random() * 2)   # not all 200 in the same millisecond
        kinds, weights = list(KINDS), list(KINDS.values())
        while time.monotonic() < self.until:
            kind = rng.choices(kinds, weights)[0]
            self.made[kind] += 1
            try:
                outcome = await getattr(self, kind)(rng)
            except Refused as e:
                outcome = f"refused {e.error}"
            except ServerClosed:
                outcome = "closed by server before the link ended"
            except (asyncio.TimeoutError, TimeoutError):
                outcome = "timed out waiting for the server"
            except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError) as e:
                outcome = f"{type(e).__name__}"
            except OSError as e:
                outcome = f"OSError {e.errno}"
            self.outcomes[kind][outcome] += 1

    # --- the kinds: each returns how the connection ended ---

    async def fuzz(self, rng: random.Random) -> str:
        target = rng.choice(SERVED)
        mini = rng.random() < 0.8
        mr, mw, mep, sid = await session(self.port, mini)
        r = w = None
        try:
            if target == MAIN:
                r, w, ep = mr, mw, mep
            else:
                r, w, ep, _ = await link(self.port, target, sid, mini)
                if target == DISPLAY and rng.random() < 0.5:
                    await send(w, ep.send("init", {"pixmap_cache_id": 1, "pixmap_cache_size": SPICY_CACHE_PIXELS,
                                                   "glz_dictionary_id": 1,
                                                   "glz_dictionary_window_size": SPICY_GLZ_WINDOW}))
            reader = asyncio.create_task(until_closed(r, 30))
            try:
                for _ in range(rng.randrange(1, 30)):
                    data, _ = mutated(rng, ep, target)
                    await send(w, data)
                    if reader.done():
                        break
                    if rng.random() < 0.2:
                        await asyncio.sleep(rng.random() * 0.2)
            except (ConnectionError, OSError):
                pass
            try:
                dropped = await asyncio.wait_for(asyncio.shield(reader), 1.5)
            except (asyncio.TimeoutError, TimeoutError):
                dropped = False
            reader.cancel()
            return "dropped by server" if dropped else "still open: ended by us"
        finally:
            close(w, mw)

    async def flood(self, rng: random.Random) -> str:
        target = rng.choice(FLOOD_TARGETS)
        mr, mw, mep, sid = await session(self.port)
        w = None
        try:
            if target == MAIN:
                r, w, ep = mr, mw, mep
                one = [ep.send("attach_channels", {}), ep.send("agent_token", {"num_tokens": 1}),
                       ep.send("mouse_mode_request", {"mode": 2}), ep.send("pong", {"id": 1, "timestamp": 0})]
            else:
                r, w, ep, _ = await link(self.port, target, sid)
                if target == INPUTS:
                    one = [ep.send("mouse_motion", {"dx": 1, "dy": -1, "buttons_state": 0}),
                           ep.send("key_down", {"code": 0x1E}), ep.send("key_up", {"code": 0x9E}),
                           ep.send("mouse_position", {"x": 5, "y": 6, "buttons_state": 0, "display_id": 0})]
                else:
                    one = [ep.send("ack", {}), ep.send("ack_sync", {"generation": rng.randrange(1 << 32)}),
                           ep.send("pong", {"id": rng.randrange(1 << 32), "timestamp": 0})]
            batch = b"".join(rng.choice(one) for _ in range(512))
            readers = [asyncio.create_task(drain_reader(r))] if rng.random() < 0.7 else []
            end = time.monotonic() + rng.uniform(1, 5)
            try:
                while time.monotonic() < end:
                    await send(w, batch)
            except (ConnectionError, OSError) as e:
                return f"dropped by server ({['', 'main', 'display', 'inputs', 'cursor'][target]}, {type(e).__name__})"
            finally:
                for t in readers:
                    t.cancel()
            return "still open: ended by us"
        finally:
            close(w, mw)

    async def slow(self, rng: random.Random) -> str:
        mr, mw, mep, sid = await session(self.port)
        w = None
        try:
            target = DISPLAY if rng.random() < 0.8 else CURSOR
            r, w, ep, _ = await link(self.port, target, sid)
            if target == DISPLAY:
                await send(w, ep.send("init", {"pixmap_cache_id": 1, "pixmap_cache_size": SPICY_CACHE_PIXELS,
                                               "glz_dictionary_id": 1, "glz_dictionary_window_size": SPICY_GLZ_WINDOW}))
            # never read again; the main channel is not read either
            hold = rng.uniform(5, 20)
            await asyncio.sleep(hold)
            return "still open: ended by us"
        finally:
            close(w, mw)

    async def halfclose(self, rng: random.Random) -> str:
        how = rng.choice(["during-link", "after-link", "mid-message", "after-link-main"])
        if how == "during-link":
            r, w = await open_conn(self.port)
            try:
                data = forge.link_mess(MAIN)
                w.write(data[:rng.randrange(1, len(data))])
                await w.drain()
                w.write_eof()
                return "closed by server" if await until_closed(r, 15) else "still open after 15 s"
            finally:
                close(w)
        mr, mw, mep, sid = await session(self.port)
        w = None
        try:
            if how == "after-link-main":
                r, w = mr, mw
            else:
                r, w, ep, _ = await link(self.port, rng.choice([DISPLAY, INPUTS, CURSOR]), sid)
                if how == "mid-message":
                    msg = ep.send("ack_sync", {"generation": 1})
                    w.write(msg[:rng.randrange(1, len(msg))])
                    await w.drain()
            w.write_eof()
            return "closed by server" if await until_closed(r, 15) else "still open after 15 s"
        finally:
            close(w, mw)

    async def garbage(self, rng: random.Random) -> str:
        data = rng.choice([
            rng.randbytes(rng.choice([1, 15, 16, 100, 4096])),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + rng.randbytes(200),   # a TLS ClientHello's start
            b"RED" + rng.randbytes(60),
            forge.link_mess(MAIN, size=rng.choice([0, 4, 0x7FFFFFFF, 0xFFFFFFFF])),
            forge.link_mess(MAIN, ncommon=rng.choice([3, 1000, 0xFFFFFFFF])),
            forge.link_mess(MAIN, major=rng.choice([0, 1, 3, 0xFFFFFFFF])),
        ])
        r, w = await open_conn(self.port)
        try:
            w.write(data)
            await w.drain()
            buf = b""
            deadline = time.monotonic() + 15
            while (left := deadline - time.monotonic()) > 0:
                try:
                    chunk = await asyncio.wait_for(r.read(65536), left)
                except (ConnectionError, OSError):
                    chunk = b""
                if not chunk:
                    parsed = parse_link_reply(buf, 0, None) if buf else None
                    return f"refused {parsed[0]['error']}" if parsed else "closed by server without a reply"
                buf += chunk
                parsed = parse_link_reply(buf, 0, None)
                if parsed is not None:
                    closed = await until_closed(r, 5)
                    return f"refused {parsed[0]['error']}" + ("" if closed else ", left open")
            return "still open after 15 s"
        finally:
            close(w)

    async def unknown(self, rng: random.Random) -> str:
        how = rng.choice(["type", "type", "id", "session"])
        if how == "type":
            ctype = rng.choice([0, 5, 6, 7, 8, 9, 10, 11, 12, 42, 200, 255])
            r, w = await open_conn(self.port)
            try:
                w.write(forge.link_mess(ctype))
                await w.drain()
                buf = b""
                deadline = time.monotonic() + 10
                while (parsed := parse_link_reply(buf, 0, None)) is None:
                    chunk = await asyncio.wait_for(r.read(65536), max(0.1, deadline - time.monotonic()))
                    if not chunk:
                        return "closed by server without a reply"
                    buf += chunk
                return f"refused {parsed[0]['error']}"
            finally:
                close(w)
        if how == "id":
            mr, mw, mep, sid = await session(self.port)
            try:
                await link(self.port, rng.choice([DISPLAY, CURSOR, INPUTS]), sid,
                           channel_id=rng.choice([1, 7, 255]))
                return "linked (unexpected)"
            finally:
                close(mw)
        await link(self.port, rng.choice([DISPLAY, CURSOR, INPUTS]), rng.randrange(1, 1 << 32))
        return "linked (unexpected)"

    async def silent(self, rng: random.Random) -> str:
        r, w = await open_conn(self.port)
        try:
            if rng.random() < 0.5:
                w.write(forge.link_mess(MAIN)[:rng.randrange(1, 20)])
                await w.drain()
            return "closed by server" if await until_closed(r, 20) else "still open after 20 s"
        finally:
            close(w)


# ------------------------------------------------------------------------------- the run

def scan_log(path: Path) -> tuple[list[str], Counter, Counter]:
    """(internal error lines, link refusals by error, channel endings by reason)."""
    text = path.read_text(errors="replace").splitlines()
    internal = [line for line in text if INTERNAL.search(line)]
    refusals, endings = Counter(), Counter()
    for line in text:
        if m := re.search(r"link refused \(([^)]*)\): (.*)", line):
            refusals[f"{m.group(1)}: {re.sub(r'[0-9]+', 'N', m.group(2))[:70]}"] += 1
        elif m := re.search(r" channel ended: (.*)", line):
            endings[re.sub(r"[0-9]+", "N", m.group(1))[:80]] += 1
        elif m := re.search(r": refused, \d+ connections already", line):
            refusals["(no link) too many connections"] += 1
        elif "client too slow" in line:
            endings["client too slow (pipe overflow)"] += 1
    return internal, refusals, endings


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of hostile load")
    ap.add_argument("--hostile", type=int, default=200, help="hostile connections at once")
    ap.add_argument("--real", type=int, default=10, help="spicy-screenshot threads")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--capture", type=Path, default=ROOT / "captures" / "long-desktop.pcapng")
    ap.add_argument("--speed", type=float, default=1.0, help="replay speed")
    ap.add_argument("--port", type=int, default=5960)
    ap.add_argument("--max-shot", type=float, default=15.0,
                    help="seconds a screenshot may take before it counts as a stall")
    ap.add_argument("--keep-log", type=Path, help="copy the server's log here")
    ap.add_argument("--kinds", help="only these hostile kinds, comma-separated (default: all)")
    ap.add_argument("--flood-channels", help="the channels flood picks from, comma-separated (default: "
                                             "main,display,inputs,cursor)")
    ap.add_argument("--trace-memory", type=Path, metavar="DIR",
                    help="run the server under tracemalloc; every 10 s DIR/report.txt gets its largest growths")
    args = ap.parse_args()
    if args.flood_channels:
        names = {"main": MAIN, "display": DISPLAY, "inputs": INPUTS, "cursor": CURSOR}
        FLOOD_TARGETS[:] = [names[c] for c in args.flood_channels.split(",")]
    if args.kinds:
        wanted = args.kinds.split(",")
        for k in list(KINDS):
            if k not in wanted:
                del KINDS[k]

    if not peers.port_free(args.port):
        print(f"port {args.port} is in use", file=sys.stderr)
        return 2
    t = time.monotonic()
    pictures = truth(args.capture)
    CATALOGUE[:] = catalogue()
    print(f"truth: {len(pictures)} distinct pictures in two rounds of {args.capture.name} "
          f"({time.monotonic() - t:.1f} s); fuzzer: {len(CATALOGUE)} client message types of "
          f"{len({c for c, *_ in CATALOGUE})} channel types; load average {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as d:
        tmp = Path(d)
        server = Server(args.capture, args.port, args.speed, tmp / "server.log", args.trace_memory)
        try:
            server.wait_ready()
        except Exception as e:
            print(f"server did not start: {e}\n{server.log_path.read_text(errors='replace')[-2000:]}")
            server.stop()
            return 2
        t0 = time.monotonic()
        sampler = threading.Thread(target=server.sample, args=(t0,), daemon=True)
        sampler.start()
        real = RealClients(args.real, args.port, tmp, pictures, args.max_shot)
        real.start()
        hostile = Hostile(args.port, args.seed, args.hostile, t0 + args.duration)
        asyncio.run(hostile.run())
        took = time.monotonic() - t0
        real.stop()
        time.sleep(2.0)   # the server's last log lines
        alive_before = server.proc.poll() is None
        rc = server.stop()
        if args.keep_log:
            args.keep_log.write_bytes(server.log_path.read_bytes())
        internal, refusals, endings = scan_log(server.log_path)
        wrong_kept = real.wrong[:3]
        if wrong_kept and args.keep_log:
            for p in wrong_kept:
                Path(p).replace(args.keep_log.with_suffix(f".{Path(p).name}"))

    # ---- the figures
    print(f"\nhostile: {args.hostile} at once for {took:.0f} s, seed {args.seed}; real: {args.real} spicy-screenshot threads")
    print(f"\n{'kind':10} {'made':>6}  how they ended")
    for kind in KINDS:
        ends = ", ".join(f"{k} {v}" for k, v in hostile.outcomes[kind].most_common())
        print(f"{kind:10} {hostile.made[kind]:6}  {ends}")
    print(f"{'total':10} {sum(hostile.made.values()):6}")
    print("\nserver's log: link refusals")
    for k, v in refusals.most_common(12):
        print(f"  {v:7}  {k}")
    print("server's log: channel endings")
    for k, v in endings.most_common(15):
        print(f"  {v:7}  {k}")
    mem = server.memory
    half = [m for m in mem if m[0] <= took / 2]
    later = [m for m in mem if m[0] > took / 2]
    start, peak_first = mem[0][1] if mem else 0, max((m[1] for m in half), default=0)
    peak_later = max((m[1] for m in later), default=0)
    hwm = max((m[2] for m in mem), default=0)
    end = mem[-1][1] if mem else 0
    bound = peak_first + max(peak_first // 10, 24 * 1024)
    bounded = peak_later <= bound
    print(f"\nserver memory (VmRSS): start {start / 1024:.0f} MiB, peak of the first half {peak_first / 1024:.0f} MiB, "
          f"peak of the second half {peak_later / 1024:.0f} MiB (bound {bound / 1024:.0f} MiB), end {end / 1024:.0f} MiB; "
          f"VmHWM {hwm / 1024:.0f} MiB")
    print("  every 10 s: " + " ".join(f"{m[1] / 1024:.0f}" for m in mem[::10]) + " MiB")
    times = sorted(real.times)
    print(f"\nreal clients: {real.checks} screenshots, {real.exact} exact, {len(real.wrong)} wrong pictures, "
          f"{len(real.failed)} failed, {len(real.slow)} slower than {args.max_shot:g} s; time median "
          f"{times[len(times) // 2] if times else 0:.2f} s, max {times[-1] if times else 0:.2f} s")
    for f in Counter(real.failed).most_common(5):
        print(f"  failed x{f[1]}: {f[0]}")
    print(f"\ninternal errors logged: {len(internal)}")
    for line in internal[:10]:
        print(f"  {line[:300]}")
    problems = []
    if not alive_before:
        problems.append(f"the server died (exit {rc})")
    if internal:
        problems.append(f"{len(internal)} internal errors logged")
    if not bounded:
        problems.append("memory grew after the first half")
    if real.wrong or real.failed or real.slow or not real.exact:
        problems.append(f"real clients: {len(real.wrong)} wrong, {len(real.failed)} failed, {len(real.slow)} slow, "
                        f"{real.exact} exact")
    print(f"\n{'summary':28} {'':>10}")
    print(f"{'hostile connections':28} {sum(hostile.made.values()):>10}")
    print(f"{'pictures exact':28} {f'{real.exact}/{real.checks}':>10}")
    print(f"{'internal errors logged':28} {len(internal):>10}")
    print(f"{'memory start/peak/end MiB':28} {f'{start // 1024}/{max(peak_first, peak_later) // 1024}/{end // 1024}':>10}")
    print(f"{'memory bounded':28} {'yes' if bounded else 'NO':>10}")
    print(f"{'server alive at the end':28} {'yes' if alive_before else 'NO':>10}")
    print("PASS" if not problems else "FAIL: " + "; ".join(problems))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
