"""`spicetool record` under load: many sessions through one recording proxy, plain and TLS.

    python benchmarks/bench_record_load.py [--duration 120] [--sessions 50] [--speed 10]
                                           [--xspice 10] [--port 5960] [--mode plain|tls|both] [--keep DIR]

A replay server (the corpus's long-desktop.pcapng looping, in a process of its own, as
bench_serve.py runs it, with a plain and a TLS port) stands behind one `spicetool record`
process (its own process). --sessions clients built on the stack (main + display channel
each, ACKing like spice-gtk, parsing every message, as bench_serve's load clients) watch the
replay through the proxy for --duration seconds; two more sessions misbehave during the run:
one stops reading at 40% of it but goes on sending ACKs, so that the server keeps sending
(a stalled client: its socket buffers fill, TCP's window closes, the proxy must hold back),
one resets its connections at 50% (SO_LINGER 0, then close: RST), and one sends at 60% a
message the server refuses (the server closes that session's display channel); at 70% the
replay server itself is stopped (SIGSTOP) for 2 s: every session stalls on the server's side.
Then the same with --xspice sessions against a real spice-server (Xspice, its plain and TLS
ports, an xterm redrawing on its desktop; SPICE_DEBUG_ALLOW_MC lets it take several clients),
without the stalling client: spice-server's multi-client mode holds every client to the slowest
(seen here: with one client stalled, Xspice sent nothing more to any of the others, in the
server-side capture itself), which would measure the server, not the proxy.
tshark captures the proxy's listen port and the server's port. Measured and printed:

- every byte passed and recorded: for each TCP connection the byte streams of the client-side
  capture, the server-side capture and the recording, both directions, must be equal (TLS:
  both captures decrypted with the proxy's --tls-keylog); for the two misbehaving sessions what
  the client got is a prefix of what was recorded, itself a prefix of what the server sent;
- the proxy's added latency per direction, p50/p99: the byte at stream offset k seen leaving
  the proxy on one leg minus the time it arrived on the other (TLS: per decrypted record);
  the well-behaved sessions' p99 before the stall and after all of the above (from 1 s after the
  server resumed), which must not grow beyond 2x + 10 ms;
  (the replay sends a few hundred KB per session at 10x, less than the sockets' buffers hold:
  that the proxy holds back a client that never reads, rather than buffering, is proven by
  tests/record/test_proxy.py's flood test);
- memory: the proxy's VmRSS every second; after warm-up vs at the end within 10%, and peak.

Exit 0 when all of this holds for every mode run, 1 otherwise. Takes the 2 cores of a small
machine: keep --duration short there (e.g. --duration 30 --sessions 20 for a quick look).
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests"), str(ROOT / "scripts")]

import peers  # noqa: E402
from bench_serve import DISPLAY, SPICY_CACHE_PIXELS, SPICY_GLZ_WINDOW, _rss_kib, link_channel  # noqa: E402

CAPTURE = ROOT / "captures" / "long-desktop.pcapng"
UNKNOWN_TYPE = 9999   # no channel has a message of this type: the server drops the channel that sends one
SERVER_STALL_S = 2.0  # the replay server stopped (SIGSTOP) this long at 70 % of the run


# ---------------------------------------------------------------- the server process


def _server(conn, capture: str, speed: float, port: int, max_connections: int) -> None:
    """The replay server (plain `port` and a TLS port), looping until told to stop."""
    from serve_helpers import ServerThread
    with tempfile.TemporaryDirectory() as d:
        srv = ServerThread(Path(d), port=port, replay=Path(capture), speed=speed, loop=True, tls=True,
                           image_compression="auto_glz")
        srv.server.max_connections = max_connections
        srv.server._log = None
        srv.start_replay()
        conn.send((srv.port, srv.tls_port))
        while conn.recv() != "stop":   # "pause": the replay ends, so that the clients close on a quiet line
            srv.pause()
        srv.stop()


# ---------------------------------------------------------------- the clients


@dataclass
class Client:
    """One session: main + display, ACKing; `stall_at`/`reset_at`/`provoke_at` (monotonic s) make it
    misbehave (`provoke_at`: a message the server refuses, so that the server drops the session)."""

    tls: ssl.SSLContext | None
    stall_at: float | None = None
    reset_at: float | None = None
    provoke_at: float | None = None
    messages: int = 0
    error: str | None = None
    ports: list[int] = field(default_factory=list)   # its local ports (main, display)
    writers: list = field(default_factory=list)
    closed_at: float | None = None                   # epoch s, when it closed its connections
    server_closed: bool = False                      # its display channel ended by the server (EOF)

    async def _link(self, port: int, ctype: int, conn_id: int):
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=self.tls, limit=1 << 20)
        self.writers.append(w)
        self.ports.append(w.get_extra_info("sockname")[1])
        return (r, w, *await link_channel(r, w, ctype, conn_id))

    def reset(self) -> None:
        """RST on both connections: SO_LINGER 0, then close."""
        for w in self.writers:
            sock = w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.transport.abort()

    async def run(self, port: int, linked, stop: asyncio.Event) -> None:
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
            dw.write(disp.send("init", {
                "pixmap_cache_id": 1, "pixmap_cache_size": SPICY_CACHE_PIXELS, "glz_dictionary_id": 1,
                "glz_dictionary_window_size": SPICY_GLZ_WINDOW}))
            linked()
            flow = FlowAnswers(disp.peer_mini_header)
            while not stop.is_set():
                for ev in events:
                    if not isinstance(ev, Message):
                        continue
                    self.messages += 1
                    if ev.error:
                        raise ValueError(f"malformed {ev.name}: {ev.error}")
                    for name, fields in flow.received(ev):
                        dw.write(disp.send(name, fields))
                now = time.monotonic()
                if self.reset_at is not None and now >= self.reset_at:
                    self.reset()
                    return
                if self.provoke_at is not None and now >= self.provoke_at:
                    # a message type no display channel has: the server drops the channel (its close)
                    dw.write(disp.frame(UNKNOWN_TYPE, b""))
                    self.provoke_at = None
                if self.stall_at is not None and now >= self.stall_at:
                    # reads nothing more, but ACKs blindly, so the server keeps sending: the socket
                    # buffers fill, the window closes, and the proxy must hold back (not buffer)
                    while not stop.is_set():
                        dw.write(disp.send("ack", {}))
                        await asyncio.sleep(0.02)
                    break
                try:
                    chunk = await asyncio.wait_for(dr.read(1 << 20), 0.5)
                except asyncio.TimeoutError:
                    events = []
                    continue
                if not chunk:
                    self.server_closed = True
                    break
                events = disp.receive_data(chunk)
            self.closed_at = time.time()
            for w in self.writers:
                w.close()
        except Exception as e:  # reported, not raised: one bad client must not end the run
            self.error = f"{type(e).__name__}: {e}"
            linked()


# ---------------------------------------------------------------- byte streams of a capture


Pieces = list[tuple[int, float, bytes]]   # (offset in the direction's stream, time, bytes)


@dataclass
class Conn:
    client: str
    server: str
    pieces: dict[bool, Pieces] = field(default_factory=lambda: {True: [], False: []})
    gaps: int = 0

    def data(self, from_client: bool) -> bytes:
        return b"".join(p[2] for p in self.pieces[from_client])


def connections(path: Path, keylog: Path | None = None) -> list[Conn]:
    """Every TCP connection's bytes as the transport layers hand them to SPICE (TLS decrypted)."""
    from spicetool.capture import open_records
    from spicetool.capture.tcp import Gap
    conns: dict[int, Conn] = {}
    sizes: dict[tuple[int, bool], int] = {}

    def tap(conn, from_client: bool, item) -> None:
        c = conns.get(id(conn))
        if c is None:
            c = conns[id(conn)] = Conn(conn.client, conn.server)
            c._keep = conn   # noqa: SLF001 -- ids stay unique while the connection lives
        if isinstance(item, Gap):
            c.gaps += 1
            return
        off = sizes.get((id(conn), from_client), 0)
        c.pieces[from_client].append((off, item.time, item.data))
        sizes[(id(conn), from_client)] = off + len(item.data)
    for _ in open_records(str(path), keylog=str(keylog) if keylog else None, payload_tap=tap, leg="both"):
        pass
    return list(conns.values())


def latencies(src: Pieces, dst: Pieces) -> list[tuple[float, float]]:
    """(time at dst, dst time - src time) of the first byte of each dst piece, found by offset in src."""
    starts = [p[0] for p in src]
    out = []
    for off, t, _ in dst:
        i = bisect.bisect_right(starts, off) - 1
        if i >= 0 and off < src[i][0] + len(src[i][2]):
            out.append((t, t - src[i][1]))
    return out


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


# ---------------------------------------------------------------- one run


class ReplayTarget:
    """Our replay server in a process of its own (as bench_serve.py runs it)."""

    def __init__(self, args, n: int, tmp: Path) -> None:
        import multiprocessing as mp
        self.what = f"{CAPTURE.name} looping at {args.speed:g}x"
        self.pipe, child = mp.Pipe()
        self.proc = mp.get_context("spawn").Process(target=_server, args=(
            child, str(CAPTURE), args.speed, peers.pick_port(range(args.port, args.port + 10)), 2 * (n + 2) + 16))
        self.proc.start()
        if not self.pipe.poll(120):
            raise RuntimeError("the replay server did not start")
        self.plain_port, self.tls_port = self.pipe.recv()

    pausable = True

    def pause(self, stopped: bool) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP if stopped else signal.SIGCONT)

    def quiet(self) -> None:
        self.pipe.send("pause")

    def stop(self) -> None:
        self.pipe.send("stop")
        self.proc.join(30)


class XspiceTarget:
    """A real spice-server: Xspice (several clients at once: SPICE_DEBUG_ALLOW_MC) with its TLS port,
    an xterm redrawing text on its desktop."""

    def __init__(self, args, n: int, tmp: Path) -> None:
        from spicetool.capture import self_signed
        self.what = "Xspice with an xterm listing files every 0.2 s"
        d = tmp / "xspice"
        certs = d / "x509"
        certs.mkdir(parents=True, exist_ok=True)
        cert, key = self_signed(["127.0.0.1", "localhost"])
        for name, data in (("ca-cert.pem", cert), ("server-cert.pem", cert), ("server-key.pem", key)):
            (certs / name).write_bytes(data)
        self.plain_port = peers.pick_port(range(args.port + 40, args.port + 50))
        self.tls_port = peers.pick_port([p for p in range(args.port + 50, args.port + 60)])
        display = peers.pick_display(range(70, 90))
        os.environ["SPICE_DEBUG_ALLOW_MC"] = "1"   # spice-server otherwise lets one client in at a time
        self.xs = peers.Xspice(peers.XspiceSettings(
            port=self.plain_port, display=display,
            extra_options={"SpiceTlsPort": str(self.tls_port), "SpiceX509Dir": str(certs)}), d)
        peers.wait_until(lambda: peers.port_open(self.tls_port), 10, "Xspice TLS port")
        self.xterm = peers.Program(["xterm", "-geometry", "100x40+0+0", "-e", "sh", "-c",
                                    "while :; do date +%T.%N; ls -l /usr/bin | shuf | head -36; sleep 0.2; done"],
                                   display, d, name="xterm")

    pausable = False  # (spice-server holds every client to the slowest: a stall there is everyone's)

    def quiet(self) -> None:
        self.xterm.stop()

    def stop(self) -> None:
        self.xterm.stop()
        self.xs.stop()


def run(kind: str, mode: str, n: int, args, tmp: Path) -> bool:
    tls = mode == "tls"
    server = (ReplayTarget if kind == "replay" else XspiceTarget)(args, n, tmp)
    stalls = kind == "replay"
    print(f"== {kind}, {mode}: {n} sessions{' + 1 stalling' if stalls else ''} + 1 resetting + 1 the server drops through one proxy "
          f"for {args.duration:g} s, "
          f"{server.what}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    plain_port, tls_port = server.plain_port, server.tls_port
    target = tls_port if tls else plain_port
    listen = peers.pick_port(range(args.port + 10, args.port + 40))
    mode = f"{kind}-{mode}"
    client_cap, server_cap, rec = (tmp / f"{mode}-{what}.pcapng" for what in ("client", "server", "rec"))
    keylog = tmp / f"{mode}-keys.log"
    tsharks = [peers.Tshark(listen, client_cap, log_dir=tmp, buffer_mib=256),
               peers.Tshark(target, server_cap, log_dir=tmp, buffer_mib=256)]
    rec_log = open(tmp / f"{mode}-record.log", "wb")
    extra = ["--tls-listen", "--tls-target", "--tls-keylog", str(keylog)] if tls else []
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proxy = subprocess.Popen([sys.executable, "-m", "spicetool", "record", "--listen", f"127.0.0.1:{listen}",
                              "--target", f"127.0.0.1:{target}", "-w", str(rec), *extra],
                             stdout=rec_log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    ok = True
    try:
        peers.wait_until(lambda: "listening on" in (tmp / f"{mode}-record.log").read_text(errors="replace"),
                         30, "spicetool record", proxy)
        rss: list[tuple[float, int]] = []
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                rss.append((time.monotonic(), _rss_kib(str(proxy.pid))))
                sampling.wait(1.0)
        threading.Thread(target=sample, daemon=True).start()
        cctx = None
        if tls:
            cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            cctx.check_hostname, cctx.verify_mode = False, ssl.CERT_NONE
        clients = [Client(cctx) for _ in range(n + 2 + stalls)]
        stall, refused, reset = (clients[-3] if stalls else Client(None)), clients[-2], clients[-1]
        marks: dict[str, float] = {}

        async def go() -> None:
            stop = asyncio.Event()
            count = [0]
            all_linked = asyncio.Event()

            def linked() -> None:
                count[0] += 1
                if count[0] == len(clients):
                    all_linked.set()
            tasks = []
            for c in clients:   # not all at once: the link stages' RSA would time out on 2 cores
                tasks.append(asyncio.create_task(c.run(listen, linked, stop)))
                await asyncio.sleep(0.05)
            await asyncio.wait_for(all_linked.wait(), 120)
            t0 = marks["start"] = time.monotonic()
            marks["stall"] = t0 + 0.4 * args.duration
            stall.stall_at = marks["stall"] if stalls else None
            reset.reset_at = marks["reset"] = t0 + 0.5 * args.duration
            refused.provoke_at = marks["dropped"] = t0 + 0.6 * args.duration
            marks["warm"] = t0 + min(5.0, 0.25 * args.duration)
            marks["calm"] = marks["dropped"]
            if server.pausable:   # the whole server stalls (SIGSTOP) for SERVER_STALL_S at 70 %
                await asyncio.sleep(max(0.0, t0 + 0.7 * args.duration - time.monotonic()))
                marks["server_stall"] = time.monotonic()
                server.pause(True)
                await asyncio.sleep(SERVER_STALL_S)
                server.pause(False)
                marks["calm"] = time.monotonic()
                print(f"the replay server stopped (SIGSTOP) for {marks['calm'] - marks['server_stall']:.1f} s at "
                      f"{marks['server_stall'] - t0:.1f} s", flush=True)
            await asyncio.sleep(max(0.0, t0 + args.duration - time.monotonic()))
            marks["end"] = time.monotonic()
            server.quiet()
            await asyncio.sleep(1.0)   # what the server sent last reaches the clients
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.run(go())
        # every connection through the proxy ended (the server answers the clients' FINs with its own)
        try:
            peers.wait_until(lambda: peers.established_to(listen) == 0, 20, "connections closed")
        except peers.PeerError as e:
            print(f"  note: {e}")
        time.sleep(1.0)
        sampling.set()
        for t in tsharks:
            t.stop()
        proxy.send_signal(signal.SIGTERM)
        code = proxy.wait(30)
        rec_log.close()

        # -- memory
        warm = [kib for t, kib in rss if t >= marks["warm"]]
        end = [kib for t, kib in rss if t <= marks["end"]]
        rss_warm, rss_end, peak = warm[0], end[-1], max(k for _, k in rss)
        mem_ok = abs(rss_end - rss_warm) <= 0.10 * rss_warm
        print(f"proxy memory (VmRSS): {rss_warm / 1024:.1f} MiB after warm-up, {rss_end / 1024:.1f} MiB at the end "
              f"({(rss_end - rss_warm) / rss_warm:+.1%}), peak {peak / 1024:.1f} MiB: "
              f"{'flat' if mem_ok else 'NOT flat'} (within 10%)")
        ok &= mem_ok
        errors = [c.error for c in clients if c.error]
        print(f"clients: {sum(c.messages for c in clients)} messages parsed, {len(errors)} errors"
              + (f" (e.g. {errors[0]})" if errors else ""))
        ok &= not errors
        early = [c for c in clients if c.server_closed and c is not refused]
        print(f"the server closed the refused session's display channel: {refused.server_closed}; "
              f"{len(early)} other sessions closed by the server before the end")
        ok &= refused.server_closed and not early
        dropped = [t.dropped for t in tsharks]
        if any(dropped):
            print(f"tshark dropped packets: {dropped} (the comparison below cannot hold)")
            ok = False
        print(f"proxy exit code {code}")
        ok &= code == 0

        # -- bytes
        t = time.monotonic()
        kl = keylog if tls else None
        cside, sside, recd = connections(client_cap, kl), connections(server_cap, kl), connections(rec)
        print(f"read the captures in {time.monotonic() - t:.0f} s: {len(cside)} client-side, {len(sside)} "
              f"server-side, {len(recd)} recorded connections")

        def key(c: Conn) -> tuple[bytes, bytes]:
            # a display link carries its session's id, a main channel's init message (early from the server) too
            return c.data(True)[:200], c.data(False)[:1000]
        by_key_s = {key(c): c for c in sside}
        by_key_r = {key(c): c for c in recd}
        by_port = {p: c for c in clients for p in c.ports}
        c_client = by_port.__getitem__
        late = 0
        notes: list[str] = []
        special = {p: who for who, c in (("stalled", stall), ("reset", reset), ("dropped by the server", refused))
                   for p in c.ports}
        totals = {True: 0, False: 0}
        mismatches: list[str] = []
        lat: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for c in cside:
            cport = int(c.client.rsplit(":", 1)[1])
            s, r = by_key_s.get(key(c)), by_key_r.get(key(c))
            if s is None or r is None:
                mismatches.append(f"{c.client}: no {'server-side' if s is None else 'recorded'} connection "
                                  "with its first server bytes")
                continue
            who = special.get(cport)
            for fc in (True, False):
                cd, sd, rd = c.data(fc), s.data(fc), r.data(fc)
                totals[fc] += len(rd)
                way = "client->server" if fc else "server->client"
                if who is None and not fc and sd == rd and rd.startswith(cd) and len(cd) < len(rd) \
                        and c_client(cport).closed_at is not None \
                        and _time_at(r.pieces[False], len(cd)) >= c_client(cport).closed_at:
                    late += len(rd) - len(cd)   # the server's last bytes, sent as the client closed
                elif who is None:
                    if not cd == sd == rd:
                        mismatches.append(f"{c.client} {way}: client side {len(cd)}, server side {len(sd)}, "
                                          f"recorded {len(rd)} bytes" + (f", differ at {_diff(cd, rd)}" if cd != rd
                                                                         else ""))
                else:   # in flight when it stalled/reset: sender's >= recorded >= receiver's, prefixes
                    sent, got = (cd, sd) if fc else (sd, cd)
                    notes.append(f"{who} {c.client} {way}: {len(sent)} bytes sent, {len(rd)} recorded, "
                                 f"{len(got)} received")
                    if not (sent.startswith(rd) and rd.startswith(got)):
                        mismatches.append(f"{c.client} ({who}) {way}: sent {len(sent)}, recorded {len(rd)}, "
                                          f"received {len(got)} bytes: not prefixes of each other")
            if who is None:
                lat[True] += latencies(c.pieces[True], s.pieces[True])
                lat[False] += latencies(s.pieces[False], c.pieces[False])
        unmatched = len(recd) - len(cside)
        expected = 2 * len(clients)
        if len(cside) != expected or len(sside) != expected or len(recd) != expected:
            mismatches.append(f"expected {expected} connections in each file")
        print(f"bytes recorded: {totals[True]} client->server, {totals[False]} server->client "
              f"({(totals[True] + totals[False]) / 1e6:.1f} MB); {len(mismatches)} mismatches"
              + (f" ({unmatched:+d} recorded connections without a client-side one)" if unmatched else "")
              + (f"; {late} bytes the server sent after a client had closed (not deliverable)" if late else ""))
        for m in notes:
            print(f"  {m}")
        for m in mismatches[:20]:
            print(f"  MISMATCH {m}")
        ok &= not mismatches

        # -- latency
        for fc, way in ((True, "client->server"), (False, "server->client")):
            xs = [d for _, d in lat[fc]]
            before = [d for t, d in lat[fc] if _wall(marks["warm"]) <= t < _wall(marks["stall"])]
            after = [d for t, d in lat[fc] if _wall(marks["calm"]) + 1 <= t <= _wall(marks["end"])]
            b99, a99 = pct(before, 0.99), pct(after, 0.99)
            calm = bool(before) and bool(after) and a99 <= 2 * b99 + 0.010   # no pieces after: nothing flowed
            first = "before the stall" if stalls else "before 40% of the run"
            print(f"latency {way}: p50 {pct(xs, 0.5) * 1e3:.2f} ms, p99 {pct(xs, 0.99) * 1e3:.2f} ms over "
                  f"{len(xs)} pieces; the others' p99 {first} {b99 * 1e3:.2f} ms, after the reset, the drop"
                  f"{' and the server stall' if server.pausable else ''} "
                  f"{a99 * 1e3:.2f} ms: {'undisturbed' if calm else 'DISTURBED'}")
            ok &= calm
    finally:
        if proxy.poll() is None:
            os.killpg(proxy.pid, signal.SIGKILL)
            proxy.wait()
        for t in tsharks:
            t.stop()
        server.stop()
    print("PASS" if ok else "FAIL", flush=True)
    return ok


_OFFSET = time.time() - time.monotonic()


def _wall(mono: float) -> float:
    """A monotonic time as capture (epoch) time."""
    return mono + _OFFSET


def _time_at(pieces: Pieces, off: int) -> float:
    """When the byte at `off` of a direction was captured."""
    i = bisect.bisect_right([p[0] for p in pieces], off) - 1
    return pieces[max(i, 0)][1]


def _diff(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of load per mode")
    ap.add_argument("--sessions", type=int, default=50, help="well-behaved sessions (main + display each)")
    ap.add_argument("--speed", type=float, default=10.0, help="replay speed of the capture (as bench_serve --load)")
    ap.add_argument("--port", type=int, default=5960, help="the server's plain port (the others follow)")
    ap.add_argument("--mode", choices=("plain", "tls", "both"), default="both")
    ap.add_argument("--xspice", type=int, default=10, metavar="N",
                    help="then N sessions against a real Xspice (0: none; needs Xorg with spiceqxl)")
    ap.add_argument("--keep", type=Path, help="keep the captures, recordings and logs in this directory")
    args = ap.parse_args()
    modes = ("plain", "tls") if args.mode == "both" else (args.mode,)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-record-") as d:
        tmp = args.keep or Path(d)
        tmp.mkdir(parents=True, exist_ok=True)
        for mode in modes:
            results.append(run("replay", mode, args.sessions, args, tmp))
        for mode in modes if args.xspice else ():
            results.append(run("xspice", mode, args.xspice, args, tmp))
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
