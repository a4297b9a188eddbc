"""`spicetool serve` measured with real and scripted clients, on loopback.

    python benchmarks/bench_serve.py [--port 5948] [--seconds 5]
    python benchmarks/bench_serve.py --load 50 [--speed 10] [--rounds 3] [--compression lz]
                                     [--max-lag 0.25] [--capture X] [--profile FILE]

--load N: N clients built on the stack (main + display channel each, ACKing like spice-gtk,
parsing every message) watch the corpus's longest session replayed --rounds times at --speed;
the server runs in a process of its own. Prints draw messages (frames) sent/s and bytes/s over
all clients, the server's memory per client, both processes' CPU, and each frame's lag: when
it reached a client minus when the capture's pacing made it due. PASS (exit 0) when every
client got every frame within --max-lag seconds of its due time and none was dropped or had
its pipe collapsed; FAIL (exit 1) otherwise. The server's VmRSS and VmHWM (peak) are printed
after each round: with --rounds 3 or more, how its memory moved from round 2 to the last
(a replay looping for a day must keep it flat). SPICETOOL_BENCH_TRACEMALLOC=N prints, after each
round, the N source lines of the server process whose allocations grew most (tracemalloc; slow). Both processes share this machine's cores (and
whatever else runs on it): the load average before the run is printed with the figures.

Prints, for each image compression: the time spicy-screenshot takes from start to written
picture (link of two channels, surface image, decode), and the display throughput to one
scripted client that ACKs like spice-gtk while the demo desktop is stepped as fast as the
server takes it (messages/s, MB/s on the wire, demo frames/s); then how fast input events
are taken in (key events/s written to the input log) and the latency the pings measured.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "replay"), str(ROOT / "tests"), str(ROOT / "scripts")]

import peers  # noqa: E402
from serve_helpers import RawClient, ServerThread  # noqa: E402

from spicetool.stack.enums import ChannelType  # noqa: E402

DISPLAY, INPUTS = int(ChannelType.DISPLAY), int(ChannelType.INPUTS)
SPICY_CACHE_PIXELS, SPICY_GLZ_WINDOW = 20971520, 14679040   # spicy's DISPLAY_INIT in the corpus


def screenshot_times(srv: ServerThread, tmp: Path, n: int = 5) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        peers.spicy_screenshot(srv.port, tmp / f"b{i}.ppm")
        out.append(time.perf_counter() - t)
    return out


def display_throughput(srv: ServerThread, seconds: float) -> tuple[float, float, float]:
    main = RawClient(srv.port)
    assert main.link() == "OK"
    sid = main.messages(0.2)[0].fields["session_id"]
    c = RawClient(srv.port)
    assert c.link(DISPLAY, sid) == "OK"
    stop = threading.Event()
    frames = [0]

    def drive() -> None:  # the demo as fast as the loop allows, a frame at a time
        while not stop.is_set():
            srv.step(1)
            frames[0] += 1
    threading.Thread(target=drive, daemon=True).start()
    from spicetool.stack import FlowAnswers
    flow = FlowAnswers(c.endpoint.peer_mini_header)   # ACKs as spice-gtk sends them
    count = size = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for m in c.messages(0.05):
            count += 1
            size += m.size + 6
            for name, fields in flow.received(m):
                c.send(c.message(name, fields))
    took = time.perf_counter() - start
    stop.set()
    time.sleep(0.2)
    c.close()
    main.close()
    return count / took, size / took / 1e6, frames[0] / took


def input_rate(srv: ServerThread, n: int = 100_000) -> float:
    main = RawClient(srv.port)
    assert main.link() == "OK"
    sid = main.messages(0.2)[0].fields["session_id"]
    c = RawClient(srv.port)
    assert c.link(INPUTS, sid) == "OK"
    before = srv.input_log.count
    one = c.message("key_down", {"code": 0x1E})
    t = time.perf_counter()
    c.send(one * n)
    peers.wait_until(lambda: srv.input_log.count - before >= n, 120, "inputs logged", interval=0.01)
    return n / (time.perf_counter() - t)


def longest_capture() -> tuple[Path, float]:
    """The corpus capture whose session lasts longest (first to last SPICE record)."""
    from spicetool.render.frames import records_of
    best: tuple[Path, float] | None = None
    for path in sorted((ROOT / "captures").glob("*.pcap*")):
        first = last = None
        try:
            for rec in records_of(str(path)):
                first = rec.time if first is None else first
                last = rec.time
        except Exception:
            pass
        if first is not None and (best is None or last - first > best[1]):
            best = (path, last - first)
    assert best is not None, "no capture in captures/"
    return best


def _status_kib(field: str, pid: str = "self") -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _rss_kib(pid: str = "self") -> int:
    return _status_kib("VmRSS", pid)


def _trace_top(before, after, n: int) -> list[str]:
    """The `n` source lines whose allocations grew most between two tracemalloc snapshots."""
    stats = after.compare_to(before, "lineno")
    return [str(s) for s in stats[:n]]


def _load_server(conn, capture: str, speed: float, port: int, max_connections: int, rounds: int,
                 compression: str, profile: str | None = None) -> None:
    """The server process: a replay held at its first picture until told to go, then `rounds`
    rounds of the capture; sends back when each frame was due and submitted."""
    with tempfile.TemporaryDirectory() as d:
        srv = ServerThread(Path(d), port=port, replay=Path(capture), speed=speed, pause_at=0.0,
                           loop=rounds > 1)
        srv.server.max_connections = max_connections
        srv.server.image_compression = compression
        srv.server._log = None
        finished = srv.start_replay()
        peers.wait_until(lambda: srv.replay.paused.is_set(), 30, "replay held")
        conn.send(("ready", _rss_kib()))
        # (due, submitted, draws) of each frame, monotonic s: compact arrays, as this process's
        # memory is what is measured round after round
        dues, submitted, draw_counts = array("d"), array("d"), array("l")
        span = [0.0]                                   # capture seconds of a round

        def on_frame(frame, due: float) -> None:
            draws = sum(type(c).__name__ in ("DrawCopy", "DrawFill") for c in frame.commands)
            dues.append(due), submitted.append(time.monotonic()), draw_counts.append(draws)
            span[0] = max(span[0], frame.due)
        while True:
            cmd = conn.recv()
            if cmd == "rss":
                conn.send(_rss_kib())
            elif cmd == "go":
                prof = None
                if profile:  # the server's event loop thread, from go to the replay's end
                    import cProfile
                    prof = cProfile.Profile()
                    srv.call(_enable(prof))
                srv.replay.on_frame = on_frame
                cpu0 = time.process_time()
                srv.call(srv.replay.resume)
                start = time.monotonic()
                per_round = []   # (round, VmRSS KiB, VmHWM KiB, seconds since go) at each round's end
                trace = int(os.environ.get("SPICETOOL_BENCH_TRACEMALLOC", "0") or 0)
                if trace:        # what grows between rounds, by source line (slows the server)
                    import tracemalloc
                    tracemalloc.start(8)
                    snap = tracemalloc.take_snapshot()
                deadline = start + 3600
                while not (finished.is_set() or srv.replay.rounds >= rounds):
                    if time.monotonic() > deadline:
                        raise TimeoutError("replay rounds")
                    done = srv.replay.rounds
                    if done > len(per_round):
                        per_round.append((done, _rss_kib(), _status_kib("VmHWM"), time.monotonic() - start))
                        if trace:
                            now = tracemalloc.take_snapshot()
                            print(f"-- tracemalloc after round {done}:", *_trace_top(snap, now, trace),
                                  sep="\n  ", flush=True)
                            snap = now
                    time.sleep(0.002)
                while len(per_round) < srv.replay.rounds:   # the last round(s), after the loop saw them
                    per_round.append((len(per_round) + 1, _rss_kib(), _status_kib("VmHWM"),
                                      time.monotonic() - start))
                srv.pause()
                took = time.monotonic() - start
                cpu = time.process_time() - cpu0
                if prof is not None:
                    srv.call(_disable(prof))
                    prof.dump_stats(profile)
                conn.send({"took": took, "span": span[0], "rounds": srv.replay.rounds,
                           "end": time.monotonic(), "rss": _rss_kib(), "cpu": cpu,
                           "frames": list(zip(dues, submitted, draw_counts)),
                           "stats": dict(srv.server.stats), "sessions": srv.sessions(),
                           "per_round": per_round})
            elif cmd == "stop":
                srv.stop()
                return


async def _enable(prof) -> None:
    prof.enable()


async def _disable(prof) -> None:
    prof.disable()


async def link_channel(r, w, ctype: int, conn_id: int):
    """The stack's ClientLink on an open connection, as spicy links (mini header, LZ4 on display):
    (endpoint, the events after the link)."""
    from spicetool.stack import ChannelEndpoint, ClientLink, LinkAccepted, Role
    ep = ChannelEndpoint(Role.CLIENT, ClientLink({
        "channel_type": ctype, "channel_id": 0, "connection_id": conn_id,
        "common_caps": ["protocol_auth_selection", "mini_header"],
        "channel_caps": ["lz4_compression"] if ctype == DISPLAY else []}, b""))
    w.write(ep.data_to_send())
    while True:
        data = await r.read(65536)
        if not data:
            raise EOFError("the server closed the connection during the link stage")
        events = ep.receive_data(data)
        w.write(ep.data_to_send())
        for i, ev in enumerate(events):
            if isinstance(ev, LinkAccepted):
                return ep, events[i + 1:]
            if ep.state == "closed":
                raise AssertionError(f"link: {ev}")


class LoadClient:
    """One scripted client (main + display) on asyncio, parsing with the stack."""

    def __init__(self) -> None:
        self.messages = self.bytes = 0
        self.arrivals: list[float] = []   # when each draw message came in (monotonic s)
        self.error: str | None = None

    async def _link(self, port: int, ctype: int, conn_id: int):
        """The stack's ClientLink on a socket: (reader, writer, endpoint, events after the link)."""
        import asyncio

        r, w = await asyncio.open_connection("127.0.0.1", port)
        return (r, w, *await link_channel(r, w, ctype, conn_id))

    async def run(self, port: int, linked, stop) -> None:
        from spicetool.stack import FlowAnswers, Message
        try:
            mr, mw, main, events = await self._link(port, 1, 0)
            sid = None
            while sid is None:
                for ev in events:
                    if isinstance(ev, Message) and ev.name == "init":
                        sid = ev.fields["session_id"]
                if sid is None:
                    events = main.receive_data(await mr.read(65536))
            dr, dw, disp, events = await self._link(port, DISPLAY, sid)
            dw.write(disp.send("init", {   # as spicy announces them
                "pixmap_cache_id": 1, "pixmap_cache_size": SPICY_CACHE_PIXELS, "glz_dictionary_id": 1,
                "glz_dictionary_window_size": SPICY_GLZ_WINDOW}))
            linked()
            flow = FlowAnswers(disp.peer_mini_header)   # ACK, ACK_SYNC, PONG as spice-gtk
            while not stop.is_set():
                now = time.monotonic()
                for ev in events:
                    if not isinstance(ev, Message):
                        continue
                    self.messages += 1
                    if ev.error:
                        raise ValueError(f"malformed {ev.name}: {ev.error}")
                    if ev.name.startswith("draw_"):
                        self.arrivals.append(now)
                    for name, fields in flow.received(ev):
                        dw.write(disp.send(name, fields))
                chunk = await dr.read(1 << 20)
                if not chunk:
                    break
                self.bytes += len(chunk)
                events = disp.receive_data(chunk)
            mw.close(), dw.close()
        except Exception as e:  # reported, not raised: one bad client must not end the run
            self.error = f"{type(e).__name__}: {e}"
            linked()


def load(n: int, speed: float, port: int, capture: Path | None, rounds: int, compression: str,
         max_lag: float, profile: str | None = None) -> bool:
    """Runs the load; True when it passed: every client got every draw, each within `max_lag`
    seconds of the time the capture's pacing gives it, and none was dropped or collapsed."""
    import asyncio
    import multiprocessing as mp
    if capture is None:
        capture, span = longest_capture()
    else:
        span = 0.0
    print(f"load: {n} clients, {capture.name} ({span:.1f} s captured) at {speed:g}x, {rounds} round(s), "
          f"image compression {compression}; machine load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} cores before the run")
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_load_server, args=(
        child, str(capture), speed, port, 4 * n + 8, rounds, compression, profile))
    proc.start()
    tag, rss0 = parent.recv()
    clients = [LoadClient() for _ in range(n)]

    async def go() -> dict:
        stop = asyncio.Event()
        count = [0]
        all_linked = asyncio.Event()

        def linked() -> None:
            count[0] += 1
            if count[0] == n:
                all_linked.set()
        tasks = [asyncio.create_task(c.run(port, linked, stop)) for c in clients]
        await asyncio.wait_for(all_linked.wait(), 120)
        await asyncio.sleep(1.0)               # every first picture taken in
        parent.send("rss")
        rss1 = parent.recv()
        base = [(c.messages, len(c.arrivals), c.bytes) for c in clients]
        cpu0 = time.process_time()
        parent.send("go")
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(None, parent.recv)
        expected = sum(f[2] for f in result["frames"])
        for _ in range(100):                   # what is still in flight, 10 s at most
            if all(len(c.arrivals) - b[1] >= expected or c.error for c, b in zip(clients, base)):
                break
            await asyncio.sleep(0.1)
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        result.update(rss1=rss1, base=base, client_cpu=time.process_time() - cpu0)
        return result

    try:
        r = asyncio.run(go())
    finally:
        parent.send("stop")
        proc.join(30)
    took = r["took"]
    dues = [due for due, _, draws in r["frames"] for _ in range(draws)]
    late = [sub - due for due, sub, _ in r["frames"]]
    lags, short = [], 0
    for c, b in zip(clients, r["base"]):
        got = c.arrivals[b[1]:]
        short += len(got) < len(dues)
        lags.append(max((a - d for a, d in zip(got, dues)), default=0.0))
    all_lags = sorted(a - d for c, b in zip(clients, r["base"]) for a, d in zip(c.arrivals[b[1]:], dues))
    p95 = all_lags[int(0.95 * (len(all_lags) - 1))] if all_lags else 0.0
    size = sum(c.bytes - b[2] for c, b in zip(clients, r["base"]))
    errors = [c.error for c in clients if c.error]
    behind = sum(lag > max_lag for lag in lags)
    stats = r["stats"]
    print(f"replay: {r['span']:.1f} s of capture x {r['rounds']} round(s) in {took:.2f} s; frames submitted "
          f"late by {max(late, default=0) * 1000:.0f} ms at most (mean {sum(late) / max(1, len(late)) * 1000:.1f} ms)")
    print(f"sent to all clients: {len(dues) * n / took:.0f} frames (draw messages)/s, {size / took / 1e6:.1f} MB/s "
          f"({len(dues)} frames, {size / max(1, n) / 1e6:.1f} MB per client)")
    print(f"server memory: {rss0 / 1024:.0f} MiB before, {r['rss1'] / 1024:.0f} MiB with {n} clients: "
          f"{(r['rss1'] - rss0) / max(1, n):.0f} KiB per client; {r['rss'] / 1024:.0f} MiB at the end")
    for done, rss, hwm, at in r["per_round"]:
        print(f"  after round {done:2}: server VmRSS {rss / 1024:.0f} MiB, VmHWM {hwm / 1024:.0f} MiB "
              f"({at:.0f} s)")
    if len(r["per_round"]) >= 3:   # a looping replay must keep flat memory from round 2 on
        rss2, rssn = r["per_round"][1][1], r["per_round"][-1][1]
        print(f"memory from round 2 to round {len(r['per_round'])}: {rss2 / 1024:.0f} -> {rssn / 1024:.0f} MiB "
              f"({(rssn - rss2) / rss2:+.1%})")
    print(f"cpu: server process {r['cpu'] / took:.0%} of one core, the {n} clients' process "
          f"{r['client_cpu'] / took:.0%} (both on this machine)")
    print(f"lag of a frame (arrival - due by the capture's pacing): worst {max(lags, default=0) * 1000:.0f} ms, "
          f"95th percentile {p95 * 1000:.0f} ms")
    ok = not (behind or short or errors or stats.get("pipe_collapses", 0) or stats.get("clients_dropped", 0)
              or max(late, default=0) > max_lag)
    print(f"criterion: every client gets every frame within {max_lag * 1000:.0f} ms of its due time, none "
          f"dropped or collapsed: {n - behind} of {n} within, {short} missing frames, "
          f"{stats.get('pipe_collapses', 0)} pipe collapses, {stats.get('clients_dropped', 0)} dropped, "
          f"{len(errors)} client errors" + (f" (e.g. {errors[0]})" if errors else ""))
    print("PASS" if ok else "FAIL")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=5948)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--load", type=int, metavar="N", help="N stack clients watch a replay (see above)")
    ap.add_argument("--speed", type=float, default=10.0)
    ap.add_argument("--capture", type=Path, help="--load: this capture instead of the longest")
    ap.add_argument("--rounds", type=int, default=3, help="--load: replay the capture this many times")
    ap.add_argument("--compression", default="auto_glz", help="--load: the server's --image-compression")
    ap.add_argument("--max-lag", type=float, default=0.25,
                    help="--load: seconds a frame may reach a client after its due time (pass/fail)")
    ap.add_argument("--profile", metavar="FILE", help="--load: cProfile the server's loop into FILE")
    args = ap.parse_args()
    if args.load:
        ok = load(args.load, args.speed, args.port, args.capture, args.rounds, args.compression,
                  args.max_lag, args.profile)
        sys.exit(0 if ok else 1)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print(f"{'compression':12} {'screenshot s (median)':>22} {'msgs/s':>9} {'MB/s':>7} {'frames/s':>9}")
        for comp in ("off", "quic", "lz", "glz", "lz4"):
            srv = ServerThread(tmp, port=args.port, size=(1024, 768))
            srv.server.image_compression = comp
            try:
                shots = screenshot_times(srv, tmp)
                rate, mbs, fps = display_throughput(srv, args.seconds)
            finally:
                srv.stop()
            print(f"{comp:12} {statistics.median(shots):22.3f} {rate:9.0f} {mbs:7.1f} {fps:9.1f}")
        srv = ServerThread(tmp, port=args.port, ping_interval=0.5)
        try:
            print(f"inputs: {input_rate(srv):.0f} key events/s logged")
            peers.spicy_screenshot(srv.port, tmp / "l.ppm")
            lat = [m for m in srv.messages if "latency" in m]
            print(f"latency pings measured: {len(lat)}; e.g. {lat[-1] if lat else '-'}")
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
