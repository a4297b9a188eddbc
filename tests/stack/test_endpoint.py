"""Both roles in memory: a ClientLink and a ServerLink linked by hand-passed bytes, each refusal
with the link error the server sends, the data phase with mini and full headers, the ACK
window and ping bookkeeping, and byte-by-byte chunking giving the same events."""
from __future__ import annotations

import hmac
import struct

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from spicetool.stack import (ChannelEndpoint, ClientLink, LinkAccepted, LinkFailed, LinkRefused,
                             Message, Role, ServerLink, decrypt_ticket)
from spicetool.stack.flow import AckWindow, FlowAnswers, PingTracker

KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)
PUB = KEY.public_key().public_bytes(serialization.Encoding.DER,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)
SERVER_CAPS = ["protocol_auth_selection", "auth_spice", "mini_header"]
CLIENT_CAPS = ["protocol_auth_selection", "mini_header"]
MAIN, DISPLAY = 1, 2


def checker(password: bytes | None):
    def check(ticket: bytes) -> bool:
        try:
            given = decrypt_ticket(KEY, ticket)
        except ValueError:
            return password is None
        return password is None or hmac.compare_digest(given, password)
    return check


def server(password: bytes | None = None, **kw) -> ChannelEndpoint:
    return ChannelEndpoint(Role.SERVER, ServerLink(
        PUB, checker(password), common_caps=SERVER_CAPS,
        channel_caps={MAIN: ["name_and_uuid"], DISPLAY: ["monitors_config"]}, **kw))


def client(channel_type: int = MAIN, password: bytes = b"", caps=CLIENT_CAPS, connection_id: int = 0,
           **kw) -> ChannelEndpoint:
    return ChannelEndpoint(Role.CLIENT, ClientLink(
        {"channel_type": channel_type, "channel_id": 0, "connection_id": connection_id,
         "common_caps": list(caps), "channel_caps": []}, password, **kw))


def pump(c: ChannelEndpoint, s: ChannelEndpoint, chunk: int | None = None) -> tuple[list, list]:
    """Pass what each side has to say to the other until both are quiet."""
    got_c: list = []
    got_s: list = []
    while True:
        to_s, to_c = c.data_to_send(), s.data_to_send()
        if not to_s and not to_c:
            return got_c, got_s
        for data, dst, got in ((to_s, s, got_s), (to_c, c, got_c)):
            step = chunk or max(1, len(data))
            for i in range(0, len(data), step):
                got += dst.receive_data(data[i:i + step])


def kinds(events) -> list[str]:
    return [type(e).__name__ for e in events]


@pytest.mark.parametrize("password", [None, b"s3cret"])
def test_link_and_data_phase(password):
    c, s = client(password=password or b""), server(password)
    got_c, got_s = pump(c, s)
    assert kinds(got_c) == ["LinkAccepted"] and kinds(got_s) == ["LinkAccepted"]
    assert got_s[0] == LinkAccepted(MAIN, 0, 0, CLIENT_CAPS, [], True)
    assert got_c[0].common_caps == SERVER_CAPS and got_c[0].channel_caps == ["name_and_uuid"]
    assert c.state == s.state == "data" and c.mini_header and s.mini_header
    init = s.send("init", {"session_id": 7, "display_channels_hint": 1, "supported_mouse_modes": 3,
                           "current_mouse_mode": 2, "agent_connected": 0, "agent_tokens": 10,
                           "multi_media_time": 0, "ram_hint": 0})
    assert init[:6] == struct.pack("<HI", 103, 32)
    (m,) = c.receive_data(init)
    assert isinstance(m, Message) and m.name == "init" and m.fields["session_id"] == 7
    (a,) = s.receive_data(c.send("attach_channels", {}))
    assert a.name == "attach_channels" and a.header_size == 6


def test_full_headers_when_the_client_has_no_mini_header():
    c, s = client(caps=[]), server()
    got_c, got_s = pump(c, s)
    assert got_s[0].mini_header is False and got_c[0].mini_header is False
    data = s.send("ping", {"id": 1, "timestamp": 5, "data": b""})
    assert data[:18] == struct.pack("<QHII", 1, 4, 12, 0)
    (p,) = c.receive_data(data)
    assert p.name == "ping" and p.serial == 1 and p.header_size == 18
    first = c.send("ack_sync", {"generation": 1})
    (q,) = s.receive_data(first + c.send("pong", {"id": 1, "timestamp": 5}))[1:]
    assert q.name == "pong" and q.serial == 2


def test_data_after_the_ticket_in_the_same_bytes():
    """A client that does not wait for the result: its first message follows LinkAccepted."""
    c, s = client(), server()
    s.receive_data(c.data_to_send())
    c.receive_data(s.data_to_send())
    rest = c.data_to_send() + struct.pack("<HI", 104, 0)   # attach_channels right away
    events = s.receive_data(rest)
    assert kinds(events) == ["LinkAccepted", "Message"] and events[1].name == "attach_channels"


@pytest.mark.parametrize("chunk", [1, 7])
def test_chunking_gives_the_same_events(chunk):
    whole_c, whole_s = pump(client(password=b"pw"), server(b"pw"))
    c, s = client(password=b"pw"), server(b"pw")
    by_c, by_s = pump(c, s, chunk)
    assert kinds(by_c) == kinds(whole_c) and kinds(by_s) == kinds(whole_s)
    assert by_s[0] == whole_s[0]
    msgs = b"".join(s.send("ping", {"id": i, "timestamp": i, "data": b"x" * i}) for i in range(5))
    one = c.receive_data(msgs)
    c2 = client()
    s2 = server()
    pump(c2, s2)
    parts = [e for i in range(len(msgs)) for e in c2.receive_data(msgs[i:i + 1])]
    assert [(m.name, m.fields) for m in parts] == [(m.name, m.fields) for m in one]


# --- refusals: each with exactly the link error the server sends ---

def raw_link_mess(magic=b"REDQ", major=2, size=None, ncommon=1, caps_offset=18, channel_type=MAIN) -> bytes:
    body = struct.pack("<IBBIII", 0, channel_type, 0, ncommon, 0, caps_offset) + struct.pack("<I", 0b1001)
    return magic + struct.pack("<III", major, 2, len(body) if size is None else size) + body


@pytest.mark.parametrize("data, error", [
    (raw_link_mess(magic=b"RFB "), "INVALID_MAGIC"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "INVALID_MAGIC"),
    (raw_link_mess(major=3), "VERSION_MISMATCH"),
    (raw_link_mess(major=1), "VERSION_MISMATCH"),
    (raw_link_mess(size=0x7FFFFFFF), "INVALID_DATA"),
    (raw_link_mess(size=4), "INVALID_DATA"),
    (raw_link_mess(ncommon=100000), "INVALID_DATA"),
    (raw_link_mess(ncommon=3), "INVALID_DATA"),
    (raw_link_mess(caps_offset=2), "INVALID_DATA"),
    (raw_link_mess(channel_type=42), "CHANNEL_NOT_AVAILABLE"),
])
def test_bad_link_mess_is_refused_in_a_link_reply(data, error):
    s = server(channel_available=lambda t, i: t in (MAIN, DISPLAY))
    (ev,) = s.receive_data(data)
    assert ev == LinkRefused(error, ev.reason) and s.state == "closed"
    # what a client reads: a LinkReply with this error
    c = client()
    c.data_to_send()
    assert c.receive_data(s.data_to_send()) == [LinkRefused(error, "in the link reply")]
    assert s.receive_data(b"more") == []


def test_major_zero_is_closed_silently():
    s = server()
    assert s.receive_data(raw_link_mess(major=0)) == [LinkRefused(None, "protocol major version 0")]
    assert s.data_to_send() == b""


def refused(c: ChannelEndpoint, s: ChannelEndpoint) -> tuple:
    got_c, got_s = pump(c, s)
    assert kinds(got_c) == ["LinkRefused"] and kinds(got_s) == ["LinkRefused"]
    assert got_c[0].error == got_s[0].error
    return got_s[0].error, got_s[0].reason


def test_refusals_in_the_link_result_and_reply():
    assert refused(client(password=b"wrong"), server(b"pw")) == ("PERMISSION_DENIED", "wrong password")
    assert refused(client(DISPLAY, password=b"pw", connection_id=1234),
                   server(b"pw", session_exists=lambda cid: cid == 7)) == \
        ("BAD_CONNECTION_ID", "no session 1234")
    assert pump(client(DISPLAY, connection_id=7), server(session_exists=lambda cid: cid == 7))[1][0] \
        .channel_type == DISPLAY
    assert refused(client(), server(needs_secured=lambda t: t == MAIN)) == \
        ("NEED_SECURED", "channel type 1 is secure: TLS port only")
    assert refused(client(auth_mechanism=2), server()) == \
        ("INVALID_DATA", "auth mechanism SASL, which this server does not offer")
    assert refused(client(auth_mechanism=9), server()) == ("INVALID_DATA", "auth mechanism unknown mechanism 9")
    assert refused(client(ticket=bytes(128)), server(b"pw"))[0] == "PERMISSION_DENIED"


def test_client_failures():
    c = client()
    c.data_to_send()
    (ev,) = c.receive_data(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    assert isinstance(ev, LinkFailed) and ev.what == "protocol" and ev.reason.startswith("bad link magic")
    assert c.state == "closed"
    from spicetool.stack import build_link_reply
    c = client()
    (ev,) = c.receive_data(build_link_reply({"error": "OK", "pub_key": b"junk",
                                             "common_caps": SERVER_CAPS}, MAIN))
    assert ev.what == "pub_key" and ev.reason.startswith("the server's public key is unusable")
    c = client()
    (ev,) = c.receive_data(build_link_reply({"error": "OK", "pub_key": PUB,
                                             "common_caps": ["protocol_auth_selection", "auth_sasl"]}, MAIN))
    assert ev == LinkFailed("sasl", "the server wants SASL authentication")
    c = client()
    assert c.link.waiting_for == "link_reply"


# --- the ACK window and pings ---

def linked_pair():
    c, s = client(DISPLAY), server()
    pump(c, s)
    return c, s


def test_ack_window_both_sides():
    c, s = linked_pair()
    window, answers = AckWindow(window=4), FlowAnswers(c.peer_mini_header)
    wire = s.send("set_ack", window.set_ack())
    window.sent()
    for _ in range(9):
        wire += s.send("mark", {})
        window.sent()
    assert window.full is True   # 10 unacked > 2 x 4
    replies = b""
    for m in c.receive_data(wire):
        for name, fields in answers.received(m):
            replies += c.send(name, fields)
    got = s.receive_data(replies)
    assert [m.name for m in got] == ["ack_sync", "ack", "ack"]   # 9 marks after SET_ACK: 2 windows
    assert window.ack() is False                                  # before ACK_SYNC: not counted
    window.ack_sync(got[0].fields["generation"])
    assert [window.ack() for _ in got[1:]] == [True, True] and window.unacked == 2 and not window.full


def test_set_ack_counts_with_the_window_it_replaces():
    """spice-gtk counts a message before handling it: a second SET_ACK closes the old window."""
    c, _ = linked_pair()
    answers = FlowAnswers(True)
    m = lambda name, f: Message(c.our_role.peer_direction, 2, 0, name, 0, f, b"", None, 0, 6)
    assert answers.received(m("set_ack", {"generation": 1, "window": 2})) == [("ack_sync", {"generation": 1})]
    assert answers.received(m("mark", {})) == []
    assert answers.received(m("set_ack", {"generation": 2, "window": 3})) == [
        ("ack", {}), ("ack_sync", {"generation": 2})]
    full = FlowAnswers(False)   # full headers: sub-messages (no serial) do not count
    full.received(m("set_ack", {"generation": 1, "window": 1}))
    assert full.received(m("mark", {})) == []


def test_pings_and_pongs():
    now = [1000]
    pings = PingTracker(keep=3, clock=lambda: now[0])
    c, s = linked_pair()
    answers = FlowAnswers(True)
    (p,) = c.receive_data(s.send("ping", pings.ping()))
    (reply,) = answers.received(p)
    assert reply == ("pong", {"id": 1, "timestamp": 1000})
    now[0] = 3_501_000
    (pong,) = s.receive_data(c.send(*reply))
    assert pings.pong(pong.fields) == 3.5 and pings.latency_ms == 3.5
    assert pings.pong(pong.fields) is None                       # answered once
    for _ in range(5):
        pings.ping()
    assert list(pings.outstanding) == [4, 5, 6]                   # a silent peer costs at most `keep`
    assert pings.pong({"id": 6, "timestamp": 1}) is None          # not our timestamp


# --- the corpus: real clients' LinkMess taken by the ServerLink ---

CORPUS = ["screenshot-client.pcapng", "password.pcap"]


@pytest.mark.parametrize("name", CORPUS)
def test_corpus_link_mess_is_accepted(name):
    import json

    from corpus_support import CAPTURES, require_corpus
    from tcp_payloads import read_connections

    from spicetool.stack import ChannelConnection, Direction, LinkRecord
    require_corpus()
    path = CAPTURES / name
    port = int(json.loads(path.with_suffix(".json").read_text())["server"]["address"].rsplit(":", 1)[1])
    seen = 0
    for tc in read_connections(path, server_port=port):
        data = tc.data("client")
        if data[:4] != b"REDQ":
            continue
        obs = ChannelConnection()
        mess = next(e for e in obs.receive(Direction.CLIENT, data) if isinstance(e, LinkRecord))
        s = server()
        assert s.receive_data(data[:mess.size]) == []      # waiting for the auth records
        assert s.state == "link" and s.link.mess == mess.fields
        reply = s.data_to_send()
        c = client(mess.fields["channel_type"])
        c.data_to_send()
        assert c.receive_data(reply) == [] and c.link.reply["error"] == "OK"
        seen += 1
    assert seen >= 2


def test_pending_counts_an_incomplete_record_or_message():
    c, s = client(), server()
    mess = c.data_to_send()
    s.receive_data(mess[:10])
    assert s.pending() == 10
    s.receive_data(mess[10:])
    c.receive_data(s.data_to_send()[:5])
    assert c.pending() == 5
    c, s = linked_pair()
    ping = s.send("ping", {"id": 1, "timestamp": 2, "data": b""})
    assert c.receive_data(ping[:-1]) == [] and c.pending() == len(ping) - 1
