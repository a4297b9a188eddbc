"""`spicetool serve` measured with real and scripted clients, on loopback.

    python benchmarks/bench_serve.py [--port 5948] [--seconds 5]

Prints, for each image compression: the time spicy-screenshot takes from start to written
picture (link of two channels, surface image, decode), and the display throughput to one
scripted client that ACKs like spice-gtk while the demo desktop is stepped as fast as the
server takes it (messages/s, MB/s on the wire, demo frames/s); then how fast input events
are taken in (key events/s written to the input log) and the latency the pings measured.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "replay"), str(ROOT / "scripts")]

import peers  # noqa: E402
from serve_helpers import RawClient, ServerThread  # noqa: E402

DISPLAY, INPUTS = 2, 3


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
    count = size = 0
    window = None
    since_ack = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for m in c.messages(0.05):
            count += 1
            size += m.size + 6
            if m.name == "set_ack":
                window = m.fields["window"]
                c.send(c.message("ack_sync", {"generation": m.fields["generation"]}))
                since_ack = 0
                continue
            if window:
                since_ack += 1
                if since_ack == window:
                    c.send(c.message("ack"))
                    since_ack = 0
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=5948)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
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
