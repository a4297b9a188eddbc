"""Transport layers under SPICE (HTTP CONNECT, WebSocket): the RFC 6455 examples, real SPICE streams of
the corpus carried through each layer in random chunking, gaps, refusals and absurd claims."""

from __future__ import annotations

import base64
import os
import random
import struct
from pathlib import Path

import pytest

from spicetool.capture.http_connect import HttpConnect, parse_target
from spicetool.capture import open_capture
from spicetool.capture.tcp import Data, Gap, TcpTracker
from spicetool.capture.transport import Notice
from spicetool.capture.websocket import WebSocket, unmask

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
UPGRADE = (b"GET /websockify HTTP/1.1\r\nHost: 127.0.0.1:5959\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: binary\r\n"
           b"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:8080\r\n\r\n")
SWITCH = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: binary\r\n\r\n")


def frame(payload: bytes, opcode: int = 2, fin: bool = True, key: bytes | None = None) -> bytes:
    """One RFC 6455 frame (section 5.2), masked when a key is given (as every client frame is)."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    mask = 0x80 if key is not None else 0
    if n < 126:
        head += bytes([mask | n])
    elif n < 1 << 16:
        head += bytes([mask | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mask | 127]) + struct.pack(">Q", n)
    if key is None:
        return head + payload
    return head + key + unmask(payload, key, 0)


def run(layer, items: list[tuple[bool, Data | Gap]]) -> tuple[dict[bool, bytes], list[Notice], list]:
    """Feed a layer; what it passes on per direction (gaps as NUL runs), its notices, and the raw outputs."""
    out = {True: bytearray(), False: bytearray()}
    notices, raw = [], []
    for from_client, item in items:
        raw += layer.feed(from_client, item)
    raw += layer.finish(9.0, 999)
    for c, it in raw:
        if isinstance(it, Notice):
            notices.append(it)
        elif isinstance(it, Gap):
            out[c] += bytes(it.lost)
        else:
            out[c] += it.data
    return {k: bytes(v) for k, v in out.items()}, notices, raw


def chunks(data: bytes, rng: random.Random, client: bool, most: int = 1500) -> list[tuple[bool, Data]]:
    out, pos = [], 0
    while pos < len(data):
        n = rng.randint(1, most)
        out.append((client, Data(data[pos:pos + n], 0.0, 0)))
        pos += n
    return out


def spice_streams(name: str) -> list[tuple[bytes, bytes]]:
    """The client and server byte streams of every SPICE connection of a corpus capture."""
    tracker, streams = TcpTracker(), {}
    for seg in open_capture(str(CAPTURES / name)):
        for conn, from_client, item in tracker.feed(seg):
            if isinstance(item, Data):
                streams.setdefault(id(conn), [bytearray(), bytearray()])[0 if from_client else 1].extend(item.data)
    return [(bytes(c), bytes(s)) for c, s in streams.values() if c[:4] == b"REDQ"]


# ----------------------------------------------------------------------------- WebSocket

def test_rfc6455_examples():
    """Section 5.7's examples: a masked and an unmasked "Hello", a fragmented one, ping and pong."""
    ws = WebSocket()
    items = [(True, Data(UPGRADE, 0, 1)), (False, Data(SWITCH, 0, 2)),
             (True, Data(bytes.fromhex("818537fa213d7f9f4d5158"), 0, 3)),        # masked "Hello"
             (False, Data(bytes.fromhex("810548656c6c6f"), 0, 4)),                # unmasked "Hello"
             (False, Data(bytes.fromhex("010348656c") + bytes.fromhex("80026c6f"), 0, 5)),   # "Hel" + "lo"
             (False, Data(bytes.fromhex("890548656c6c6f"), 0, 6)),                # ping, not data
             (True, Data(bytes.fromhex("8a8537fa213d7f9f4d5158"), 0, 7))]        # masked pong
    out, notices, _ = run(ws, items)
    assert out == {True: b"Hello", False: b"HelloHello"}
    assert [n.kind for n in notices] == ["websocket_upgrade", "websocket_established"]
    assert notices[0].fields["path"] == "/websockify" and notices[0].fields["origin"] == "http://127.0.0.1:8080"
    assert ws.subprotocol == "binary" and ws.halves[False].control == 1 and ws.halves[True].control == 1


@pytest.mark.parametrize("name", ["typing.pcapng", "img-quic.pcapng"])
def test_real_spice_streams_through_websocket_frames_in_any_chunking(name):
    """Every SPICE connection of a real capture, framed as websockify and spice-html5 frame it (masked
    client frames, server frames of many sizes, headers in segments of their own), comes out byte for byte."""
    rng = random.Random(name)
    for client, server in spice_streams(name):
        ws = WebSocket()
        items: list = [(True, Data(UPGRADE, 0, 0)), (False, Data(SWITCH, 0, 0))]
        for data, is_client in ((client, True), (server, False)):
            pos, wire = 0, bytearray()
            while pos < len(data):
                n = rng.choice([1, 5, 125, 126, 4000, 65535, 65536, 200_000])
                key = os.urandom(4) if is_client else None
                wire += frame(data[pos:pos + n], key=key)
                pos += n
            items += chunks(bytes(wire), rng, is_client, most=rng.choice([2, 4, 1448, 70_000]))
        out, notices, _ = run(ws, items)
        assert out == {True: client, False: server}
        assert [n.kind for n in notices] == ["websocket_upgrade", "websocket_established"]


def test_base64_subprotocol():
    """websockify's older "base64" subprotocol: text frames of base64, cut anywhere."""
    data = bytes(range(256)) * 20
    text = base64.b64encode(data)
    ws = WebSocket()
    items = [(True, Data(UPGRADE.replace(b"binary", b"base64"), 0, 0)),
             (False, Data(SWITCH.replace(b"binary", b"base64"), 0, 0))]
    items += [(False, Data(frame(text[i:i + 333], opcode=1), 0, 0)) for i in range(0, len(text), 333)]
    out, notices, _ = run(ws, items)
    assert out[False] == data and not [n for n in notices if n.kind == "error"]


def test_a_gap_inside_a_payload_keeps_the_framing():
    payload = bytes(range(200)) * 50
    wire = frame(payload, key=b"\x01\x02\x03\x04") + frame(b"next message", key=b"\x05\x06\x07\x08")
    ws = WebSocket()
    items = [(True, Data(UPGRADE, 0, 0)), (False, Data(SWITCH, 0, 0)),
             (True, Data(wire[:1000], 0, 0)), (True, Gap(3000, 0, 0)), (True, Data(wire[4000:], 0, 0))]
    out, notices, raw = run(ws, items)
    hdr = 4 + 4  # 16-bit length, masking key
    expect = payload[:1000 - hdr] + bytes(3000) + payload[4000 - hdr:] + b"next message"
    assert out[True] == expect
    assert [it.lost for c, it in raw if isinstance(it, Gap)] == [3000]


def test_a_gap_that_swallows_a_header_resynchronises():
    msgs = [bytes([i]) * 3000 for i in range(1, 6)]
    wire = b"".join(frame(m) for m in msgs)
    cut_from, cut_to = 2000, 3000 + 4 + 1500  # from inside the first payload into the second
    ws = WebSocket()
    items = [(True, Data(UPGRADE, 0, 0)), (False, Data(SWITCH, 0, 0)),
             (False, Data(wire[:cut_from], 0, 0)), (False, Gap(cut_to - cut_from, 0, 0)),
             (False, Data(wire[cut_to:], 0, 0))]
    out, notices, raw = run(ws, items)
    # the third message onwards is found again whole; nothing of a frame header leaks into the data
    assert out[False].endswith(b"".join(msgs[2:]))
    assert out[False].startswith(msgs[0][:2000 - 4])
    assert b"\x82" not in out[False].replace(b"\x82" * 3000, b"")


def test_absurd_and_malformed_frames_are_one_line_errors():
    for wire, said in [(b"\x82\xff" + b"\xff" * 8 + b"\0\0\0\0", "claims"),            # 2**64 - 1 bytes
                       (b"\x82\xff\x80" + b"\0" * 7 + b"\0\0\0\0", "most significant bit"),
                       (b"\x82\x05hello", "without a mask"),
                       (b"\xf2\x80\0\0\0\0", "reserved bits"),
                       (b"\x89\xfe\x01\x00\0\0\0\0", "ping frame of 256 bytes")]:
        ws = WebSocket()
        out, notices, _ = run(ws, [(True, Data(UPGRADE, 0, 0)), (False, Data(SWITCH, 0, 0)),
                                   (True, Data(wire, 0, 0)), (True, Data(b"more bytes", 0, 0))])
        errors = [n for n in notices if n.kind == "error"]
        assert len(errors) == 1 and said in errors[0].reason and "\n" not in errors[0].reason, wire
        assert out[True] == b""


def test_close_frame_code_and_reason():
    ws = WebSocket()
    close = frame(struct.pack(">H", 1001) + b"bye", opcode=8)
    out, notices, _ = run(ws, [(True, Data(UPGRADE, 0, 0)), (False, Data(SWITCH, 0, 0)),
                               (False, Data(frame(b"REDQ") + close + frame(b"after close"), 0, 0))])
    close_n = [n for n in notices if n.kind == "websocket_close"]
    assert out[False] == b"REDQ"
    assert len(close_n) == 1 and close_n[0].fields["code"] == 1001 and close_n[0].fields["close_reason"] == "bye"
    assert "going away" in close_n[0].reason and ws.close == {"code": 1001, "reason": "bye", "by": "server"}


def test_refused_upgrade():
    ws = WebSocket()
    _, notices, _ = run(ws, [(True, Data(UPGRADE, 0, 0)), (False, Data(b"HTTP/1.1 403 Forbidden\r\n\r\n", 0, 0))])
    assert [n.kind for n in notices] == ["websocket_upgrade", "websocket_refused"]
    assert "403 Forbidden" in notices[1].reason


# ----------------------------------------------------------------------------- HTTP CONNECT

REQUEST = (b"CONNECT 127.0.0.1:5912 HTTP/1.0\r\nHost: 127.0.0.1:5912\r\nUser-Agent: GLib/2.74\r\n"
           b"Proxy-Authorization: Basic " + base64.b64encode(b"alice:s3cret") + b"\r\n\r\n")
ESTABLISHED = b"HTTP/1.0 200 Connection established\r\nProxy-agent: tinyproxy/1.11.1\r\n\r\n"


@pytest.mark.parametrize("name", ["typing.pcapng", "password.pcap"])
def test_real_spice_streams_through_a_connect_tunnel(name):
    rng = random.Random(name)
    for client, server in spice_streams(name):
        layer = HttpConnect()
        # the request and the first tunnel bytes in one segment, the answer cut in two
        items = [(True, Data(REQUEST + client[:7], 1.0, 1)), (False, Data(ESTABLISHED[:10], 1.1, 2)),
                 (False, Data(ESTABLISHED[10:] + server[:3], 1.2, 3))]
        items += chunks(client[7:], rng, True) + chunks(server[3:], rng, False)
        out, notices, _ = run(layer, items)
        assert out == {True: client, False: server}
        assert [n.kind for n in notices] == ["proxy_connect", "proxy_established"]
        assert notices[0].fields["target"] == "127.0.0.1:5912" and notices[0].fields["user"] == "alice"
        assert "s3cret" not in repr(notices)
        assert notices[1].fields["answer_delay"] == pytest.approx(0.2)


@pytest.mark.parametrize("answer,code", [(b"HTTP/1.0 403 Access violation\r\n\r\n", 403),
                                         (b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                                          b"Proxy-Authenticate: Basic realm=\"x\"\r\n\r\n", 407),
                                         (b"HTTP/1.0 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", 502)])
def test_refused_connect(answer, code):
    layer = HttpConnect()
    out, notices, _ = run(layer, [(True, Data(REQUEST + b"REDQ", 0, 0)), (False, Data(answer, 0, 0)),
                                  (True, Data(b"more", 0, 0))])
    assert out == {True: b"", False: b""}
    assert [n.kind for n in notices] == ["proxy_connect", "proxy_refused"]
    assert notices[1].fields["status"] == code and answer.split(b"\r\n")[0].decode() in notices[1].reason


def test_connect_that_never_gets_an_answer():
    layer = HttpConnect()
    _, notices, _ = run(layer, [(True, Data(REQUEST, 0, 0))])
    assert [n.kind for n in notices] == ["proxy_connect", "proxy_no_answer"]
    assert "never got an answer" in notices[1].reason


def test_proxmox_targets_are_decoded():
    t = parse_target("pvespiceproxy:63489cf9:101:pvealone::c934cf7f7570012bbebab9e1167402b6471aae16:61000")
    assert t.proxmox == {"ticket_id": "63489cf9", "vmid": "101", "node": "pvealone"} and t.port == 61000
    assert t.describe() == "Proxmox VM 101 on node pvealone, port 61000"
    assert parse_target("[::1]:5900").describe() == "[::1]:5900"
    assert parse_target("spice.example:5901").port == 5901
