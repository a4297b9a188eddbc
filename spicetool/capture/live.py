"""Live capture: the same stream of TCP segments a capture file gives, from a packet socket.

scapy opens the socket and compiles the BPF filter; the frames are read raw and cut by
our own parser (scapy's per-packet dissection is far too slow to keep up with a desktop).
"""

from __future__ import annotations

import logging
import select
import signal
import socket
import sys
import threading
import time
from typing import Iterator

from spicetool.capture.errors import CaptureFailure
from spicetool.capture.frames import LINKTYPE_ETHERNET, SNAPLEN, Segment, strip_link, tcp_from_ip

ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772
RECV_BUFFER = 64 * 1024 * 1024  # a burst of full-screen bitmaps must not overflow the socket
LIVE_FAILED = 1  # the exit code when the capture cannot start (as it always was)


def _open(iface: str | None, bpf: str | None):  # -> scapy L2ListenSocket
    # scapy warns that it cannot map loopback frames to one of its layers: we parse them ourselves
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    try:
        from scapy.arch.linux import L2ListenSocket
        from scapy.config import conf
    except ImportError:
        raise CaptureFailure("live capture needs scapy: pip install 'spicetool[live]'", LIVE_FAILED) from None
    conf.verb = 0
    conf.bufsize = RECV_BUFFER
    try:
        return L2ListenSocket(iface=iface or conf.iface, filter=bpf)
    except Exception as exc:  # permission, unknown interface, bad filter
        raise CaptureFailure(f"cannot capture live: {exc}", LIVE_FAILED) from None


def live_segments(iface: str | None, bpf: str | None, count: int | None,
                  duration: float | None) -> Iterator[Segment]:
    """TCP segments sniffed live, bounded by `count` packets and/or `duration` seconds.

    The socket opens now (CaptureFailure when it cannot); the segments come as they are iterated."""
    sock = _open(iface, bpf)
    where = f"capturing on {sock.iface}" + (f" (filter: {bpf})" if bpf else "")
    print(where, file=sys.stderr, flush=True)
    return _sniff(sock, count, duration)


def _sniff(sock, count: int | None, duration: float | None) -> Iterator[Segment]:  # sock: L2ListenSocket
    deadline = time.monotonic() + duration if duration is not None else None
    # Ctrl-C and SIGTERM end the capture in order: what was sniffed is still decoded and shown
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    frames = 0
    try:
        while count is None or frames < count:
            if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                # what the kernel already holds was captured before the stop: read it too
                wait = 0.0
            else:
                wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
            ready, _, _ = select.select([sock.ins], [], [], wait)
            if not ready:
                if wait == 0.0:
                    break
                continue
            data, sa_ll, ts = sock._recv_raw(sock.ins, SNAPLEN)
            if sa_ll[3] == ARPHRD_LOOPBACK and sa_ll[2] == socket.PACKET_OUTGOING:
                continue  # on loopback every packet is seen leaving and arriving: keep one
            frames += 1
            linktype = LINKTYPE_ETHERNET if sa_ll[3] in (ARPHRD_ETHER, ARPHRD_LOOPBACK) else None
            ip = strip_link(linktype, data) if linktype is not None else data
            if ip is None:
                continue
            seg = tcp_from_ip(ip, float(ts) if ts is not None else time.time(), frames)
            if seg is not None:
                yield seg
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
