"""Truncated, random and absurd input: errors as events, never exceptions or huge allocations."""
import random
import struct

from spicetool.stack import (ChannelConnection, Direction, Message, ProtocolError, find_resync_point,
                             parse_body)
from spicetool.stack.channels import MESSAGES

C, S = Direction.CLIENT, Direction.SERVER


def test_every_message_type_survives_truncation_and_garbage():
    rng = random.Random(1234)
    for (ct, d), tab in MESSAGES.items():
        for tid in tab:
            for n in (0, 1, 3, 7, 21, 40, 57, 100, 300):
                body = bytes(rng.getrandbits(8) for _ in range(n))
                name, fields, err = parse_body(ct, d, tid, body)
                assert isinstance(fields, dict) and name == tab[tid][0]


def test_huge_counts_do_not_allocate():
    # inval_list with count 65535 but 3 bytes of entries; channels_list with 2**32-1
    _, _, err = parse_body(2, S, 105, struct.pack("<H", 65535) + b"abc")
    assert err and "overruns" in err
    _, _, err = parse_body(1, S, 104, struct.pack("<I", 0xFFFFFFFF))
    assert err and "overruns" in err
    # a pointer far outside the body
    body = struct.pack("<I", 0) + bytes(16) + b"\0" + struct.pack("<I", 0xFFFFFFF0) + bytes(32)
    _, fields, err = parse_body(2, S, 304, body)
    assert err and "outside body" in err and fields["base"]["surface_id"] == 0


def test_absurd_header_size_is_fatal_for_that_direction_only():
    conn = ChannelConnection.resume(2)
    ev = conn.receive(S, struct.pack("<HI", 302, 0x7FFFFFFF) + bytes(100))
    assert len(ev) == 1 and isinstance(ev[0], ProtocolError) and ev[0].fatal and ev[0].offset == 0
    assert conn.broken == {S}
    ev = conn.receive(C, struct.pack("<HI", 2, 0))
    assert [e.name for e in ev] == ["ack"]


def test_random_streams_never_raise():
    rng = random.Random(99)
    for trial in range(200):
        conn = ChannelConnection() if trial % 2 else ChannelConnection.resume(rng.randint(0, 12))
        for _ in range(5):
            d = rng.choice([C, S])
            blob = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 400)))
            if trial % 4 == 1:
                blob = b"REDQ" + blob
            for e in conn.receive(d, blob):
                assert isinstance(e, (Message, ProtocolError)) or hasattr(e, "name")


def test_truncated_message_waits_for_more_bytes():
    conn = ChannelConnection.resume(1)
    msg = struct.pack("<HI", 103, 32) + struct.pack("<8I", 7, 1, 3, 2, 0, 10, 5, 0)
    assert conn.receive(S, msg[:20]) == []
    ev = conn.receive(S, msg[20:])
    assert ev[0].name == "init" and conn.session_id == 7


def test_resync_finds_message_boundary():
    msgs = b"".join([
        struct.pack("<HI", 4, 12) + struct.pack("<IQ", 1, 99),             # ping
        struct.pack("<HI", 314, 20) + struct.pack("<5I", 0, 640, 480, 32, 1),  # surface_create
        struct.pack("<HI", 102, 0),                                          # mark
        struct.pack("<HI", 125, 4) + struct.pack("<I", 3),                   # stream_destroy
    ])
    junk = b"\x13\x37\xff\xee\xdd"
    assert find_resync_point(junk + msgs, S, 2) == (len(junk), 2)
    off, ct = find_resync_point(junk + msgs, S, None)
    assert off == len(junk) and ct == 2
    assert find_resync_point(bytes(range(256)) * 4, S, 2) is None
