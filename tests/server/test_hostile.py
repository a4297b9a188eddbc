"""Hostile and broken clients: each is refused with the error spice-server gives, or dropped,
in bounded time and memory, while a real client (spicy-screenshot) keeps getting its picture."""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from serve_helpers import (
    RawClient,
    need,
    peers,
    read_ppm,
    spice_server,  # noqa: F401 (fixture)
)

from spicetool.stack import forge, vdagent
from spicetool.stack.enums import ChannelType, Msgc, MsgcMain

MAIN, DISPLAY, INPUTS = ChannelType.MAIN, ChannelType.DISPLAY, ChannelType.INPUTS
UNKNOWN_TYPE = 9999   # no channel has a message with this id


def still_serves(srv, tmp_path) -> None:
    """A real client still gets the exact picture."""
    need("spicy-screenshot")
    shot = read_ppm(peers.spicy_screenshot(srv.port, tmp_path / f"ok{time.monotonic_ns()}.ppm", timeout=20))
    assert np.array_equal(shot, srv.framebuffer())
    assert not [m for m in srv.messages if "internal error" in m]


def raw_link_mess(channel_type=MAIN, **bent) -> bytes:
    return forge.link_mess(channel_type, **bent)


@pytest.mark.parametrize("data, error", [
    (raw_link_mess(magic=b"RFB "), "INVALID_MAGIC"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "INVALID_MAGIC"),
    (raw_link_mess(major=3), "VERSION_MISMATCH"),
    (raw_link_mess(major=1), "VERSION_MISMATCH"),
    (raw_link_mess(size=0x7FFFFFFF), "INVALID_DATA"),
    (raw_link_mess(size=4), "INVALID_DATA"),
    (raw_link_mess(ncommon=100000), "INVALID_DATA"),
    (raw_link_mess(ncommon=3), "INVALID_DATA"),   # caps run past the message
    (raw_link_mess(caps_offset=2), "INVALID_DATA"),
    (raw_link_mess(42), "CHANNEL_NOT_AVAILABLE"),
    (raw_link_mess(ChannelType.PLAYBACK), "CHANNEL_NOT_AVAILABLE"),  # no playback here
], ids=["magic", "http", "major3", "major1", "huge-size", "tiny-size", "caps-count", "caps-overrun",
        "caps-offset", "channel-42", "playback"])
def test_bad_link_is_refused(spice_server, tmp_path, data, error):
    srv = spice_server()
    c = RawClient(srv.port)
    c.send(data)
    assert c.link_reply(None)["error"] == error
    assert c.closed_by_server(2)
    assert srv.server.refusals[-1][1] == error
    still_serves(srv, tmp_path)


def test_major_zero_is_closed_silently(spice_server):
    srv = spice_server()
    c = RawClient(srv.port)
    c.send(raw_link_mess(major=0))
    assert c.closed_by_server(2) and c.buf == b""


def test_link_results(spice_server, tmp_path):
    srv = spice_server(password=b"pw")
    assert RawClient(srv.port).link(password=b"wrong") == "PERMISSION_DENIED"
    assert RawClient(srv.port).link(password=b"pw" * 30) == "PERMISSION_DENIED"
    assert RawClient(srv.port).link(DISPLAY, connection_id=1234, password=b"pw") == "BAD_CONNECTION_ID"
    # SASL is not offered: asking for it is INVALID_DATA (the link result)
    c = RawClient(srv.port)
    assert c.link(auth_mechanism=2) == "INVALID_DATA"
    reply = c.reply
    assert reply["common_caps"] == ["protocol_auth_selection", "auth_spice", "mini_header"]
    assert len(reply["pub_key"]) == 162 and reply["pub_key"].startswith(bytes.fromhex("30819f300d06092a"))
    # a ticket that is not even an OAEP block
    assert RawClient(srv.port).link(ticket=os.urandom(128)) == "PERMISSION_DENIED"
    # the right password, and a client without auth selection nor mini header (full headers)
    assert RawClient(srv.port).link(password=b"pw") == "OK"
    old = RawClient(srv.port)
    assert old.link(password=b"pw", caps=()) == "OK"
    init = old.messages(0.5)[0]
    assert init.name == "init" and init.serial == 1 and init.header_size == 18


def test_silent_client_is_timed_out(spice_server, tmp_path):
    srv = spice_server(link_timeout=1.0)
    silent = RawClient(srv.port)
    half = RawClient(srv.port)
    half.send(raw_link_mess()[:10])
    start = time.monotonic()
    assert silent.closed_by_server(5) and half.closed_by_server(5)
    assert time.monotonic() - start < 3
    still_serves(srv, tmp_path)


def linked_main(srv) -> tuple[RawClient, int]:
    c = RawClient(srv.port)
    assert c.link() == "OK"
    init = c.messages(0.3)[0]
    return c, init.fields["session_id"]


@pytest.mark.parametrize("garbage", [
    os.urandom(4096),
    forge.mini_message(MsgcMain.ATTACH_CHANNELS, 0x40000000),      # claiming 1 GiB
    forge.mini_message(UNKNOWN_TYPE, 0),
    forge.mini_message(MsgcMain.MOUSE_MODE_REQUEST, 1, b"\x01"),   # cut short
    forge.mini_message(Msgc.MIGRATE_FLUSH_MARK, 0),                 # with no migration
], ids=["random", "huge", "unknown-type", "truncated-body", "migrate"])
def test_garbage_after_link_drops_the_client(spice_server, tmp_path, garbage):
    srv = spice_server()
    c, _ = linked_main(srv)
    c.send(garbage)
    assert c.closed_by_server(3)
    peers.wait_until(lambda: srv.server.stats["clients_dropped"] >= 1, 3, "drop counted")
    still_serves(srv, tmp_path)


def test_disconnect_mid_message(spice_server, tmp_path):
    srv = spice_server()
    c, sid = linked_main(srv)
    c.send(forge.mini_message(MsgcMain.AGENT_DATA, 100, b"x" * 10))  # 10 of 100 bytes
    c.close()
    d = RawClient(srv.port)
    d.send(raw_link_mess()[:20])
    d.close()
    peers.wait_until(lambda: srv.sessions() == 0, 3, "session gone")
    still_serves(srv, tmp_path)


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_input_flood(spice_server, tmp_path):
    srv = spice_server()
    main, sid = linked_main(srv)
    flood = RawClient(srv.port)
    assert flood.link(INPUTS, sid) == "OK"
    one = flood.message("key_down", {"code": 0x1E}) + flood.message("mouse_position", {
        "x": 5, "y": 6, "buttons_state": 0, "display_id": 0})
    n = 50_000
    before = rss_kib()
    done = threading.Event()

    def blast():
        try:
            flood.send(one * n)
        finally:
            done.set()
    threading.Thread(target=blast, daemon=True).start()
    start = time.monotonic()
    still_serves(srv, tmp_path)            # another client is served during the flood
    assert time.monotonic() - start < 10
    assert done.wait(60)
    peers.wait_until(lambda: srv.input_log.count >= 2 * n, 60, "flood logged")
    assert rss_kib() - before < 100 * 1024
    acks = [m for m in flood.messages(1.0) if m.name == "mouse_motion_ack"]
    assert len(acks) == n // 4                # one MOUSE_MOTION_ACK per 4 motions
    assert srv.sessions() == 1


FLOODERS, FLOOD_BATCHES, FLOOD_BATCH = 6, 3, 20_000   # main connections, ATTACH_CHANNELS sent by each


def test_a_main_flood_holds_little_parsed_at_once(spice_server, tmp_path):
    """ATTACH_CHANNELS as fast as the sockets take them on FLOODERS sessions, each reading its replies:
    what the server has parsed and not yet handled stays small. (Fed 64 KiB at a time, the stack made
    11,000 messages per read, some 4 MiB per flooding connection alive at once: bench_hostile's floods
    took the server past 1.5 GiB.)"""
    import tracemalloc
    srv = spice_server()
    clients = [linked_main(srv)[0] for _ in range(FLOODERS)]
    batch = clients[0].message("attach_channels", {}) * FLOOD_BATCH
    replies = [0] * FLOODERS

    def drain(i: int, c: RawClient) -> None:
        c.sock.settimeout(5)
        try:
            while chunk := c.sock.recv(1 << 16):
                replies[i] += len(chunk)
        except OSError:
            pass

    def blast(c: RawClient) -> None:
        for _ in range(FLOOD_BATCHES):
            c.send(batch)
    tracemalloc.start()
    try:
        readers = [threading.Thread(target=drain, args=(i, c), daemon=True) for i, c in enumerate(clients)]
        senders = [threading.Thread(target=blast, args=(c,), daemon=True) for c in clients]
        for t in readers + senders:
            t.start()
        for t in senders:
            t.join(120)
        base, _ = tracemalloc.get_traced_memory()
        peers.wait_until(lambda: sum(replies) >= FLOODERS * FLOOD_BATCHES * FLOOD_BATCH * 6, 120,
                         "the channel lists answering the flood")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not any(t.is_alive() for t in senders)
    # every ATTACH_CHANNELS answered (a CHANNELS_LIST is more than 6 bytes), none dropped, little held
    assert peak < 16 * 1024 * 1024, f"{peak / 2**20:.1f} MiB traced at the peak (after the sends: {base / 2**20:.1f})"
    assert srv.sessions() == FLOODERS
    still_serves(srv, tmp_path)


def test_ack_window_and_slow_reader(spice_server, tmp_path):
    """A display client that never ACKs gets SET_ACK and 2 x window messages, then nothing;
    its pipe stays bounded while the desktop animates; ACKs release the flow."""
    srv = spice_server()
    main, sid = linked_main(srv)
    slow = RawClient(srv.port)
    assert slow.link(DISPLAY, sid) == "OK"
    srv.animate(fps=60)
    got = slow.messages(2.0)
    assert got[0].name == "set_ack" and got[0].fields["window"] == 20
    assert len(got) == 41
    time.sleep(2.0)
    chans = srv.call(lambda: [ch for s in srv.server.sessions.values() for ch in s.channels
                              if ch.name == "display"])
    assert chans[0].pipe_bytes <= chans[0].max_pipe_bytes and len(chans[0].pipe) <= chans[0].max_pipe_items
    assert srv.server.stats["pipe_collapses"] >= 1 or len(chans[0].pipe) > 100
    slow.send(slow.message("ack_sync", {"generation": 1}) + slow.message("ack"))
    more = slow.messages(1.0)
    assert 1 <= len(more) <= 21   # one window's worth released
    srv.pause()
    still_serves(srv, tmp_path)


def test_a_slow_reader_catches_up_to_the_exact_picture(spice_server, tmp_path):
    """A display client that stops reading while the desktop animates (scrolls included): its
    pipe overflows, the draws it missed collapse into the surfaces as they were then, and what
    comes after goes on from there. Once it reads again, the picture it composes (our renderer
    on a capture of the connection) is exactly the model's."""
    need("tshark")
    from spicetool.render import picture_at
    srv = spice_server(size=(800, 600))     # with the demo's scrolling log (COPY_BITS)
    cap = tmp_path / "slow.pcapng"
    with peers.Tshark(srv.port, cap):
        main, sid = linked_main(srv)
        slow = RawClient(srv.port)
        assert slow.link(DISPLAY, sid) == "OK"
        srv.animate(fps=60)
        time.sleep(3.5)                      # three scrolls and more than a pipe's worth of draws
        srv.pause()                          # (its pipe cannot drain: no wait_idle)
        collapses = srv.server.stats["pipe_collapses"]
        srv.call(lambda: srv.desktop.log("a scroll queued after the collapse"))
        time.sleep(0.3)
        received, acked = 0, False
        while True:                          # now a good client: ACK every window
            got = slow.messages(1.0)
            if not got:
                break
            if not acked and got[0].name == "set_ack":
                slow.send(slow.message("ack_sync", {"generation": got[0].fields["generation"]}))
                acked = True
            received += len(got)
            slow.send(slow.message("ack") * (len(got) // 20 + 1))
        time.sleep(0.5)
    assert collapses >= 1 and received > 40
    shown = picture_at(str(cap))
    assert shown is not None and np.array_equal(shown.image, srv.framebuffer())


def test_agent_data_without_end(spice_server, tmp_path):
    """AGENT_DATA chunks of a vdagent message announced as 50 MB: dropped after 1 MiB."""
    srv = spice_server()
    c, _ = linked_main(srv)
    c.send(c.message("agent_start", {"num_tokens": 10}))
    first = forge.agent_header(vdagent.BY_NAME["clipboard"], 50_000_000) + bytes(2000)
    c.send(c.message("agent_data", {"data": first}))
    sent = 1
    try:
        while sent < 2000:
            c.send(c.message("agent_data", {"data": bytes(2048)}))
            sent += 1
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert c.closed_by_server(5)
    assert any("vdagent message of more than" in r[2] for r in srv.server.refusals)
    still_serves(srv, tmp_path)


def test_display_init_once_and_an_absurd_cache_size_stays_bounded(spice_server, tmp_path):
    """A cache size of 2^63-1 pixels keeps the server's mirror of it within MAX_ITEMS ids;
    a second DISPLAY_INIT drops the client, as spice-server does."""
    from spicetool.qxl.pixmap_cache import MAX_ITEMS
    srv = spice_server()
    _, sid = linked_main(srv)
    d = RawClient(srv.port)
    assert d.link(2, sid) == "OK"
    init = d.message("init", {"pixmap_cache_id": 1, "pixmap_cache_size": (1 << 63) - 1,
                              "glz_dictionary_id": 1, "glz_dictionary_window_size": 0})
    d.send(init)
    peers.wait_until(lambda: srv.call(lambda: any(getattr(c, "client_init", None) for s in srv.server.sessions.values()
                                                  for c in s.channels)), 3, "init taken")
    cache = srv.call(lambda: [c.images.cache for s in srv.server.sessions.values() for c in s.channels
                              if c.name == "display"][0])
    assert cache.size == (1 << 63) - 1 and cache.max_items == MAX_ITEMS
    d.send(init)
    assert d.closed_by_server(3)
    peers.wait_until(lambda: any("second display init" in r[2] for r in srv.server.refusals), 3, "reason")
    still_serves(srv, tmp_path)
