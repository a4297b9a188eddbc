"""A two-host test network for induced faults: two network namespaces of our own (a server side and a
client side) joined either by a veth pair (for a rate limit: tbf on the receiving side, through an ifb) or
by two TAP devices and a relay of ours that holds each frame for a delay and drops a seeded share of them
(this kernel has no netem). Everything made is torn down on leaving the context, even on failure.

    with Netlab(rate="2mbit") as net:            # or Netlab(delay_ms=200), Netlab(loss=0.03, seed=16)
        net.run_server(...)                      # peers.NetnsXspice(settings, tmp, net.server_ns, net.server_addr)

Run as a program it is the relay itself:

    python3 scripts/netlab.py relay --a NS_A TAP_A --b NS_B TAP_B --delay-ms 200 --loss 0.03 --seed 16

A spike (`Netlab(spike=Spike(250, 1.0, 2.0))`, started with `net.spike()`): the delay each way ramps up to
250 ms over 1 s, holds 2 s and ramps back; each direction stays first in, first out, as a real queue.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import heapq
import os
import random
import select
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from peers import pid_alive  # (this script's folder: scripts/)

PREFIX = "st16"  # our namespaces: st16-<pid>-<n>-s / -c (the pid tells a stale one from a live one)
SERVER_ADDR, CLIENT_ADDR, MASK = "10.77.0.1", "10.77.0.2", 24
SERVER_IF, CLIENT_IF = "srv0", "cli0"
# what real-peers.md found makes tbf see real packets and hold a capped link flat
TBF = ("burst", "32kbit", "latency", "400ms")

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000


@dataclass(frozen=True)
class Spike:
    """The relay's delay rising from its base to `ms` over `ramp_s`, held `hold_s`, falling over `ramp_s`
    (a ramp, not a step: TCP's retransmission timer follows a growing delay, as on a congested path, instead
    of firing spuriously at a step larger than its 200 ms floor)."""

    ms: float
    ramp_s: float = 1.0
    hold_s: float = 2.0

    def extra_ms(self, since: float) -> float:
        """Delay over the base `since` seconds after the spike began."""
        r, h = self.ramp_s, self.hold_s
        if since < 0 or since >= 2 * r + h:
            return 0.0
        if since < r:
            return self.ms * since / r
        if since < r + h:
            return self.ms
        return self.ms * (2 * r + h - since) / r

    def arg(self) -> str:
        return f"{self.ms}:{self.ramp_s}:{self.hold_s}"

    @classmethod
    def parse(cls, text: str) -> "Spike":
        ms, ramp, hold = (float(x) for x in text.split(":"))
        return cls(ms, ramp, hold)


class NetlabError(RuntimeError):
    pass


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise NetlabError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def tc(ns: str, *args: str) -> None:
    done = subprocess.run(["tc", "-n", ns, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise NetlabError(f"tc -n {ns} {' '.join(args)}: {done.stderr.strip()}")


def in_ns(ns: str, argv: Sequence[str]) -> list[str]:
    """`argv` run inside namespace `ns` (ip netns exec execs it: the pid stays the program's own)."""
    return ["ip", "netns", "exec", ns, *argv]


def sockets(pid: int) -> list[tuple[int, int, str]]:
    """(local port, remote port, state hex) of the TCP sockets of the network namespace `pid` is in."""
    out = []
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError), open(f"/proc/{pid}/net/{table}") as f:
            next(f)
            for line in f:
                cols = line.split()
                out.append((int(cols[1].rsplit(":", 1)[1], 16), int(cols[2].rsplit(":", 1)[1], 16), cols[3]))
    return out


def listening_in(pid: int, port: int) -> bool:
    return any(lp == port and st == "0A" for lp, _, st in sockets(pid))  # 0A = TCP_LISTEN


def established_in(pid: int, port: int) -> int:
    """Established connections to remote `port` in `pid`'s namespace."""
    return sum(1 for _, rp, st in sockets(pid) if rp == port and st == "01")


def remove_stale() -> None:
    """Namespaces an earlier run of ours left behind (its pid is gone)."""
    for line in ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        parts = name.split("-")
        if len(parts) == 4 and parts[0] == PREFIX and parts[1].isdigit() and not pid_alive(int(parts[1])):
            ip("netns", "del", name, check=False)


_counter = 0


class Netlab:
    """Two namespaces, `server_ns` (SERVER_ADDR on SERVER_IF) and `client_ns` (CLIENT_ADDR on CLIENT_IF).

    `rate` ("2mbit"): a veth pair, the client's ingress redirected to an ifb carrying tbf at that rate (the
    server-to-client direction capped). Otherwise two TAP devices joined by the relay (`delay_ms` each way,
    `loss` the share of TCP segments with data dropped, from the seeded generator)."""

    def __init__(self, rate: str | None = None, delay_ms: float = 0.0, loss: float = 0.0, seed: int = 16,
                 log_dir: str | os.PathLike | None = None, spike: Spike | None = None) -> None:
        global _counter
        _counter += 1
        tag = f"{PREFIX}-{os.getpid()}-{_counter}"
        self.server_ns, self.client_ns = f"{tag}-s", f"{tag}-c"
        self.server_addr, self.client_addr = SERVER_ADDR, CLIENT_ADDR
        self.server_if, self.client_if = SERVER_IF, CLIENT_IF
        self.rate, self.delay_ms, self.loss, self.seed, self.spike_shape = rate, delay_ms, loss, seed, spike
        self.log_dir = Path(log_dir) if log_dir else None
        self.relay: subprocess.Popen | None = None
        self._relay_log: Path | None = None
        self._made: list[str] = []

    # -- setup ---------------------------------------------------------------------------------------
    def __enter__(self) -> "Netlab":
        remove_stale()
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _setup(self) -> None:
        for ns in (self.server_ns, self.client_ns):
            ip("netns", "add", ns)
            self._made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        s, c = self.server_ns, self.client_ns
        if self.rate:
            ip("-n", s, "link", "add", SERVER_IF, "type", "veth", "peer", "name", CLIENT_IF, "netns", c)
            for ns, dev in ((s, SERVER_IF), (c, CLIENT_IF)):
                # one segment per packet (no GSO super-packets), so tbf meters what the wire would carry
                ip("-n", ns, "link", "set", dev, "gso_max_segs", "1")
            ip("-n", c, "link", "add", "ifb0", "type", "ifb")
            ip("-n", c, "link", "set", "ifb0", "up")
            tc(c, "qdisc", "add", "dev", CLIENT_IF, "handle", "ffff:", "ingress")
            tc(c, "filter", "add", "dev", CLIENT_IF, "parent", "ffff:", "protocol", "all", "u32", "match", "u32",
               "0", "0", "action", "mirred", "egress", "redirect", "dev", "ifb0")
            tc(c, "qdisc", "add", "dev", "ifb0", "root", "tbf", "rate", self.rate, *TBF)
        else:
            for ns, dev in ((s, SERVER_IF), (c, CLIENT_IF)):
                ip("-n", ns, "tuntap", "add", "dev", dev, "mode", "tap")
        for ns, dev, addr in ((s, SERVER_IF, SERVER_ADDR), (c, CLIENT_IF, CLIENT_ADDR)):
            ip("-n", ns, "addr", "add", f"{addr}/{MASK}", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
        if not self.rate:
            self._start_relay()
        self._wait_reachable()

    def _start_relay(self) -> None:
        log_dir = self.log_dir or Path("/tmp")
        self._relay_log = log_dir / f"relay-{self.server_ns}.log"
        log = open(self._relay_log, "wb")
        argv = [sys.executable, str(Path(__file__).resolve()), "relay", "--a", self.server_ns, SERVER_IF,
                "--b", self.client_ns, CLIENT_IF, "--delay-ms", str(self.delay_ms), "--loss", str(self.loss),
                "--seed", str(self.seed)] + (["--spike", self.spike_shape.arg()] if self.spike_shape else [])
        self.relay = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)
        log.close()
        deadline = time.monotonic() + 10
        while "relaying" not in self.relay_log():
            if self.relay.poll() is not None or time.monotonic() > deadline:
                raise NetlabError(f"relay did not start: {self.relay_log()[-1000:]}")
            time.sleep(0.05)

    def _wait_reachable(self, timeout: float = 10.0) -> None:
        """ARP answered and a TCP round trip made (a connect refused by the server side counts)."""
        probe = ("import socket,sys\ns=socket.socket();s.settimeout(1)\n"
                 f"try: s.connect(('{self.server_addr}', 9))\n"
                 "except ConnectionRefusedError: sys.exit(0)\nexcept OSError: sys.exit(1)")
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(in_ns(self.client_ns, [sys.executable, "-c", probe]), capture_output=True, text=True)
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise NetlabError(f"{self.server_addr} not reachable from {self.client_ns}: {done.stderr[-300:]}")

    def spike(self) -> float:
        """Start the relay's spike (SIGUSR1); the wall-clock time it began."""
        if self.relay is None or self.spike_shape is None:
            raise NetlabError("this netlab has no relay with a spike")
        at = time.time()
        os.kill(self.relay.pid, signal.SIGUSR1)
        return at

    def relay_log(self) -> str:
        return self._relay_log.read_text(errors="replace") if self._relay_log and self._relay_log.exists() else ""

    def relay_counts(self) -> dict[str, int]:
        """What the relay said on its way out (after close()): frames forwarded, and dropped from the server
        side (a) and from the client side (b)."""
        for line in reversed(self.relay_log().splitlines()):
            if line.startswith("counts"):
                return {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
        return {}

    # -- teardown ------------------------------------------------------------------------------------
    def close(self) -> None:
        if self.relay is not None and self.relay.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.relay.pid, signal.SIGTERM)
            try:
                self.relay.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.relay.pid, signal.SIGKILL)
                self.relay.wait(5)
        for ns in reversed(self._made):
            # devices first (a process still inside would keep the namespace, and them, alive)
            for dev in (SERVER_IF, CLIENT_IF, "ifb0"):
                ip("-n", ns, "link", "del", dev, check=False)
            ip("netns", "del", ns, check=False)
        self._made.clear()


# -- the relay ---------------------------------------------------------------------------------------
def _setns(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
    finally:
        os.close(fd)


def _open_tap(ns: str, dev: str) -> int:
    _setns(ns)
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", dev.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def tcp_data(frame: bytes) -> bool:
    """An Ethernet frame holding IPv4 TCP with payload (what a lossy link's drop costs a retransmission)."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return False
    ihl = (frame[14] & 0x0F) * 4
    if frame[23] != 6 or len(frame) < 14 + ihl + 20:
        return False
    total = struct.unpack_from("!H", frame, 16)[0]
    doff = (frame[14 + ihl + 12] >> 4) * 4
    return total - ihl - doff > 0


def relay(a: tuple[str, str], b: tuple[str, str], delay_ms: float, loss: float, seed: int,
          spike: Spike | None = None) -> None:
    fa, fb = _open_tap(*a), _open_tap(*b)
    other = {fa: fb, fb: fa}
    rng = random.Random(seed)
    held: list[tuple[float, int, int, bytes]] = []  # (release time, order, to fd, frame)
    order = forwarded = 0
    dropped = {fa: 0, fb: 0}  # by the side the frame came from
    stop = False
    spike_at: float | None = None
    last_release = {fa: 0.0, fb: 0.0}  # by the device the frame goes to: each direction first in, first out

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    def on_spike(*_: object) -> None:
        nonlocal spike_at
        spike_at = time.monotonic()
        print(f"spike {spike.arg() if spike else 'none'}", flush=True)

    signal.signal(signal.SIGUSR1, on_spike)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    poller = select.poll()
    for fd in (fa, fb):
        poller.register(fd, select.POLLIN)
    delay = delay_ms / 1000.0
    print(f"relaying {a[0]}/{a[1]} <-> {b[0]}/{b[1]} delay {delay_ms} ms each way, loss {loss}, seed {seed}",
          flush=True)
    while not stop:
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, _, to, frame = heapq.heappop(held)
            with contextlib.suppress(OSError):  # a device going away at teardown
                os.write(to, frame)
            forwarded += 1
        wait = max(0.0, held[0][0] - now) if held else 0.2
        try:
            ready = poller.poll(wait * 1000.0)
        except InterruptedError:
            continue
        for fd, _ in ready:
            while True:
                try:
                    frame = os.read(fd, 65536)
                except BlockingIOError:
                    break
                except OSError:
                    stop = True
                    break
                if loss and tcp_data(frame) and rng.random() < loss:
                    dropped[fd] += 1
                    continue
                order += 1
                now = time.monotonic()
                extra = spike.extra_ms(now - spike_at) / 1000.0 if spike and spike_at is not None else 0.0
                to = other[fd]
                last_release[to] = release = max(now + delay + extra, last_release[to])
                heapq.heappush(held, (release, order, to, frame))
    print(f"counts forwarded={forwarded} dropped_from_a={dropped[fa]} dropped_from_b={dropped[fb]}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="netlab relay: two TAP devices joined with a delay and a seeded loss")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("relay")
    r.add_argument("--a", nargs=2, metavar=("NS", "TAP"), required=True)
    r.add_argument("--b", nargs=2, metavar=("NS", "TAP"), required=True)
    r.add_argument("--delay-ms", type=float, default=0.0)
    r.add_argument("--loss", type=float, default=0.0)
    r.add_argument("--seed", type=int, default=16)
    r.add_argument("--spike", type=Spike.parse, metavar="MS:RAMP_S:HOLD_S",
                   help="on SIGUSR1, the delay each way rises by MS over RAMP_S, holds HOLD_S and falls back")
    args = p.parse_args(argv)
    relay(tuple(args.a), tuple(args.b), args.delay_ms, args.loss, args.seed, args.spike)
    return 0


if __name__ == "__main__":
    sys.exit(main())
