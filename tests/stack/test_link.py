"""Link stage: records as spice-gtk and spice-server send them (spice-facts §1)."""
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from spicetool.stack import (ChannelConnection, Direction, ProtocolError,
                             build_auth_mechanism, build_link_mess, build_link_reply,
                             build_link_result, build_ticket, decrypt_ticket, encrypt_ticket)
from spicetool.stack.link import parse_link_mess, parse_link_reply

C, S = Direction.CLIENT, Direction.SERVER

# Bytes written from the layout tables, not from our builder.
LINK_MESS_DISPLAY = (b"REDQ" + struct.pack("<III", 2, 2, 26)
                     + struct.pack("<IBBIII", 0xE44C0A29, 2, 0, 1, 1, 18)
                     + struct.pack("<II", 0b1101, 0b10_0011))


def reply(error=0, common=0b1011, chan=(0b10,)):
    words = [common, *chan]
    body = struct.pack("<I", error) + bytes(162) + struct.pack("<III", 1, len(chan), 178)
    body += struct.pack(f"<{len(words)}I", *words)
    return b"REDQ" + struct.pack("<III", 2, 2, len(body)) + body


def test_link_mess_fields_and_caps_by_name():
    fields, size = parse_link_mess(LINK_MESS_DISPLAY)
    assert size == len(LINK_MESS_DISPLAY) == 42
    assert fields["connection_id"] == 0xE44C0A29
    assert fields["channel_type"] == 2
    assert fields["common_caps"] == ["protocol_auth_selection", "auth_sasl", "mini_header"]
    assert fields["channel_caps"] == ["sized_stream", "monitors_config", "lz4_compression"]
    assert build_link_mess(fields) == LINK_MESS_DISPLAY


def test_link_reply_round_trip_and_error_name():
    raw = reply(error=7)
    fields, size = parse_link_reply(raw, 0, 2)
    assert size == len(raw) and fields["error"] == "PERMISSION_DENIED"
    assert fields["common_caps"] == ["protocol_auth_selection", "auth_spice", "mini_header"]
    assert fields["channel_caps"] == ["monitors_config"]
    assert build_link_reply(fields, 2) == raw


def test_full_link_sequence_then_mini_header_data():
    conn = ChannelConnection()
    ev = conn.receive(C, LINK_MESS_DISPLAY[:5])
    assert ev == []
    ev = conn.receive(C, LINK_MESS_DISPLAY[5:] + struct.pack("<I", 1) + bytes(range(128)))
    assert [e.name for e in ev] == ["link_mess"]  # auth record waits for the server's caps
    ev = conn.receive(S, reply() + struct.pack("<I", 0) + struct.pack("<HI", 314, 20)
                      + struct.pack("<5I", 0, 1024, 768, 32, 1))
    # the server's caps unblock the client's pending auth records in the same call
    server = [e for e in ev if e.direction is S]
    client = [e for e in ev if e.direction is C]
    assert [e.name for e in server] == ["link_reply", "link_result", "surface_create"]
    assert [e.name for e in client] == ["auth_mechanism", "ticket"]
    assert client[1].fields["encrypted_data"] == bytes(range(128))
    surface = server[2]
    assert surface.fields == {"surface_id": 0, "width": 1024, "height": 768, "format": "32_xRGB",
                              "flags": 1}
    assert surface.offset == len(reply()) + 4 and surface.header_size == 6
    assert conn.channel_type == 2 and conn.mini_header is True and conn.session_id == 0xE44C0A29


def test_no_auth_selection_means_ticket_directly():
    mess = (b"REDQ" + struct.pack("<III", 2, 2, 22) + struct.pack("<IBBIII", 0, 1, 0, 1, 0, 18)
            + struct.pack("<I", 0))  # no caps at all: no mini header, no auth selection
    conn = ChannelConnection()
    conn.receive(C, mess)
    ev = conn.receive(S, reply(common=0b0010, chan=()))
    ev += conn.receive(C, bytes(128) + struct.pack("<QHII", 1, 101, 8, 0) + struct.pack("<Q", 5))
    assert [e.name for e in ev] == ["link_reply", "ticket", "client_info"]
    assert ev[-1].serial == 1 and ev[-1].header_size == 18 and ev[-1].fields == {"cache_size": 5}
    assert conn.mini_header is False


def test_link_error_reply_stops_cleanly():
    conn = ChannelConnection()
    conn.receive(C, LINK_MESS_DISPLAY)
    ev = conn.receive(S, reply(error=9, chan=()))
    assert ev[0].fields["error"] == "CHANNEL_NOT_AVAILABLE"
    assert conn.broken == set()


def test_bad_magic_is_fatal_error():
    conn = ChannelConnection()
    ev = conn.receive(C, b"SPIC" + bytes(40))
    assert len(ev) == 1 and isinstance(ev[0], ProtocolError) and ev[0].fatal
    assert "magic" in ev[0].reason and C in conn.broken
    assert conn.receive(C, b"more") == []


def test_builders_for_auth_records():
    assert build_auth_mechanism({"auth_mechanism": 1}) == b"\1\0\0\0"
    assert build_link_result({"error": "OK"}) == bytes(4)
    assert build_link_result({"error": "PERMISSION_DENIED"}) == b"\7\0\0\0"
    with pytest.raises(Exception):
        build_ticket({"encrypted_data": b"short"})


def test_ticket_crypto_round_trip_with_real_rsa_1024():
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    der = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert len(der) == 162 and der.startswith(bytes.fromhex("30819f300d06092a864886f70d010101"))
    ticket = encrypt_ticket(der, b"s3cret")
    assert len(ticket) == 128
    assert decrypt_ticket(key, ticket) == b"s3cret"
    # the wire form carries the NUL: a raw OAEP decrypt shows it
    from spicetool.stack.link import _oaep
    assert key.decrypt(ticket, _oaep()) == b"s3cret\0"


def _blob(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


def test_sasl_exchange_records_then_data_phase():
    # layout of spice-gtk's spice_channel_perform_auth_sasl: two rounds, server completes on 2nd
    conn = ChannelConnection()
    conn.receive(C, LINK_MESS_DISPLAY)
    ev = conn.receive(S, reply(common=0b1101, chan=()))  # auth_selection, auth_sasl, mini_header
    ev += conn.receive(C, struct.pack("<I", 2) + _blob(b"DIGEST-MD5") + _blob(b"") )
    ev += conn.receive(S, _blob(b"DIGEST-MD5 PLAIN") + _blob(b"challenge\0") + b"\0")
    ev += conn.receive(C, _blob(b"response\0"))
    ev += conn.receive(S, _blob(b"rspauth\0") + b"\1" + struct.pack("<I", 0)
                       + struct.pack("<HI", 102, 0))
    ev += conn.receive(C, struct.pack("<HI", 2, 0))
    got = [(e.direction.value, e.name) for e in ev]
    assert got == [("server", "link_reply"), ("client", "auth_mechanism"),
                   ("client", "sasl_mechname"), ("client", "sasl_start"),
                   ("server", "sasl_mechlist"), ("server", "sasl_reply"),
                   ("client", "sasl_step"), ("server", "sasl_reply"), ("server", "link_result"),
                   ("server", "mark"), ("client", "ack")]
    assert ev[2].fields["mechname"] == "DIGEST-MD5" and ev[4].fields["mechlist"] == "DIGEST-MD5 PLAIN"
    assert ev[7].fields["complete"] == 1 and conn.broken == set()
