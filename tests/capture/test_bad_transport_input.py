"""Bad input under SPICE, made from real captures: a CONNECT the proxy never answers and a
WebSocket frame that claims 2^63 bytes are each one warning line and exit 5, in bounded
memory, with every message before the damage (and every other connection) still reported."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from derived import connections, of, segments, spicetool, write
from support import deployment_capture

from spicetool.capture import EXIT_TRANSPORT, open_records


def test_a_connect_never_answered(tmp_path: Path) -> None:
    segs = segments(deployment_capture("proxy-client-leg.pcapng"))
    conn = connections(segs)[1]  # the display channel's
    answer = next(i for i, s in enumerate(segs) if of(s, conn) and s.src == conn[1] and s.payload)
    path = write(tmp_path / "no-answer.pcapng", [s for i, s in enumerate(segs) if not (of(s, conn) and i >= answer)])
    r, _ = spicetool("dissect", str(path))
    assert r.returncode == EXIT_TRANSPORT and "Traceback" not in r.stderr, r.stderr
    # (the connection's other segments gone, it waits until the capture's end)
    asked = next(s.time for s in segs if of(s, conn) and s.src == conn[0] and s.payload)
    waited = segs[-1].time - asked
    assert r.stderr.splitlines()[-1] == (f"warning: 1 connection broken under SPICE: {conn[0]} → {conn[1]}: "
                                         f"HTTP CONNECT 127.0.0.1:5916 never got an answer from the proxy in {waited:.1f} s")
    whole = [r.channel.channel for r in open_records(deployment_capture("proxy-client-leg.pcapng"))
             if r.layer == "message" and r.channel.client != conn[0]]
    ours = [r.channel.channel for r in open_records(path) if r.layer == "message"]
    assert ours == whole and {"main", "inputs", "cursor"} <= set(ours)


@pytest.mark.parametrize("claim", [1 << 63, (1 << 63) - 1])
def test_a_websocket_frame_that_claims_2_63_bytes(tmp_path: Path, claim: int) -> None:
    source = deployment_capture("html5-direct.pcapng")
    segs = segments(source)
    conn = connections(segs)[1]  # the display channel's
    mine = [i for i, s in enumerate(segs) if s.src == conn[1] and of(s, conn) and s.payload]
    stream = bytearray(b"".join(segs[i].payload for i in mine))
    pos, frames = stream.index(b"\r\n\r\n") + 4, 0
    while True:  # to the first frame with a 64-bit length
        n = stream[pos + 1] & 0x7F
        if n == 127:
            break
        size = 2 if n < 126 else 4
        pos += size + (n if n < 126 else int.from_bytes(stream[pos + 2:pos + 4], "big"))
        frames += 1
    stream[pos + 2:pos + 10] = claim.to_bytes(8, "big")  # the same bytes: TCP lengths and numbers hold
    out, off = list(segs), 0
    for i in mine:
        n = len(segs[i].payload)
        out[i] = dataclasses.replace(segs[i], payload=bytes(stream[off:off + n]))
        off += n
    path = write(tmp_path / "claims.pcapng", out)
    r, rss = spicetool("dissect", str(path), memory_limit=1 << 30)
    assert r.returncode == EXIT_TRANSPORT and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.splitlines()[-1] == (f"warning: 1 connection broken under SPICE: {conn[0]} → {conn[1]}: "
                                         f"WebSocket from the server: a frame that claims {claim} bytes"
                                         + (" (the most significant bit of a 64-bit length must be 0)"
                                            if claim >> 63 else ""))
    assert 0 < rss < 200 * 1024, rss  # KiB: no buffer of the claimed size
    def server_messages(p: Path) -> list:  # the damaged direction's: the client's goes on
        return [x for x in open_records(p) if x.layer == "message" and x.channel.client == conn[0]
                and x.direction.value == "server"]
    before, ours = server_messages(source), server_messages(path)
    assert 0 < len(ours) < len(before)
    assert [(x.type, x.size) for x in ours] == [(x.type, x.size) for x in before[:len(ours)]]
