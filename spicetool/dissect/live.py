"""Live capture through scapy, as the same stream of TCP segments a capture file gives."""

from __future__ import annotations

import queue
import signal
import sys
import threading
import time
from typing import Iterator

from spicetool.dissect.capture import Segment, _tcp_from_ip


def live_segments(iface: str | None, bpf: str | None, count: int | None,
                  duration: float | None) -> Iterator[Segment]:
    """Yield TCP segments sniffed live, bounded by `count` packets and/or `duration` seconds."""
    try:
        from scapy.config import conf
        from scapy.layers.inet import IP
        from scapy.layers.inet6 import IPv6
        from scapy.sendrecv import AsyncSniffer
    except ImportError:
        raise SystemExit("error: live capture needs scapy: pip install 'spicetool[live]'") from None
    conf.verb = 0
    packets: queue.Queue = queue.Queue(maxsize=100_000)
    frames = 0

    def on_packet(pkt: object) -> None:
        packets.put(pkt)

    kwargs: dict = {"prn": on_packet, "store": False}
    if iface:
        kwargs["iface"] = iface
    if bpf:
        kwargs["filter"] = bpf
    if count:
        kwargs["count"] = count
    sniffer = AsyncSniffer(**kwargs)
    try:
        sniffer.start()
    except Exception as exc:  # permission, unknown interface, bad filter
        raise SystemExit(f"error: cannot capture live: {exc}") from None
    deadline = time.monotonic() + duration if duration is not None else None
    # Ctrl-C and SIGTERM end the capture in order: what was sniffed is still decoded and shown
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    where = f"capturing on {iface or 'the default interface'}" + (f" (filter: {bpf})" if bpf else "")
    print(where, file=sys.stderr, flush=True)
    try:
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            try:
                pkt = packets.get(timeout=0.2)
            except queue.Empty:
                if not sniffer.running:
                    break
                continue
            frames += 1
            layer = pkt.getlayer(IP) or pkt.getlayer(IPv6)  # type: ignore[attr-defined]
            if layer is None:
                continue
            seg = _tcp_from_ip(bytes(layer), float(pkt.time), frames)  # type: ignore[attr-defined]
            if seg is not None:
                yield seg
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if sniffer.running:
            sniffer.stop()
        while not packets.empty():  # what arrived before the stop is still shown
            pkt = packets.get_nowait()
            frames += 1
            layer = pkt.getlayer(IP) or pkt.getlayer(IPv6)
            if layer is not None:
                seg = _tcp_from_ip(bytes(layer), float(pkt.time), frames)
                if seg is not None:
                    yield seg
