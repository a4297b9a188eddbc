"""Channel behaviour seen from a scripted client built on the stack: main channel INIT, names,
mouse modes, agent tokens, pings with measured latency; inputs motion acks; cursor init."""
from __future__ import annotations


from serve_helpers import RawClient, peers
from serve_helpers import spice_server  # noqa: F401 (fixture)
from spicetool.stack.vdagent import build_agent_message

MAIN, DISPLAY, INPUTS, CURSOR = 1, 2, 3, 4


def test_main_channel(spice_server):
    srv = spice_server(ping_interval=0.2)
    c = RawClient(srv.port)
    # main, with the channel caps spice-gtk announces
    assert c.link(MAIN, channel_caps=("semi_seamless_migrate", "name_and_uuid",
                                      "agent_connected_tokens", "seamless_migrate")) == "OK"
    reply = c.reply
    assert reply["channel_caps"] == ["name_and_uuid", "agent_connected_tokens"]
    first = c.messages(0.5)
    names = [m.name for m in first]
    assert names[:4] == ["init", "name", "uuid", "ping"]
    init = first[0].fields
    assert init["session_id"] != 0 and init["supported_mouse_modes"] == 3 and init["current_mouse_mode"] == 2
    assert init["agent_connected"] == 0 and init["agent_tokens"] == 10
    assert first[1].fields["name"] == srv.server.name.encode() + b"\0"
    assert first[2].fields["uuid"] == srv.server.uuid.bytes

    c.send(c.message("attach_channels"))
    c.send(c.message("mouse_mode_request", {"mode": 1}))
    c.send(c.message("agent_start", {"num_tokens": 10}))
    agent = build_agent_message("announce_capabilities", {"request": 1, "caps": [0]})
    c.send(c.message("agent_data", {"data": agent}))
    got = c.messages(0.6)
    by = {m.name: m.fields for m in got}
    assert by["channels_list"]["channels"] == [{"type": 2, "id": 0}, {"type": 4, "id": 0}, {"type": 3, "id": 0}]
    assert by["mouse_mode"] == {"supported_modes": 3, "current_mode": 1}
    assert by["agent_token"] == {"num_tokens": 1}
    # answer the pings: the server measures the round trip
    for m in got + first:
        if m.name == "ping":
            c.send(c.message("pong", {"id": m.fields["id"], "timestamp": m.fields["timestamp"]}))
    peers.wait_until(lambda: any("main: latency" in m for m in srv.messages), 3, "latency measured")
    ch = srv.call(lambda: next(iter(srv.server.sessions.values())).channels[0])
    assert ch.latency_ms is not None and 0 <= ch.latency_ms < 1000


def test_inputs_and_cursor(spice_server):
    srv = spice_server()
    main = RawClient(srv.port)
    assert main.link() == "OK"
    sid = main.messages(0.3)[0].fields["session_id"]
    inputs = RawClient(srv.port)
    assert inputs.link(INPUTS, sid) == "OK"
    assert [m.name for m in inputs.messages(0.3)][:1] == ["init"]
    for i in range(8):
        inputs.send(inputs.message("mouse_motion", {"dx": i, "dy": -i, "buttons_state": 0}))
    inputs.send(inputs.message("key_down", {"code": 0xE0 | 0x48 << 8}))   # Up arrow (extended)
    inputs.send(inputs.message("key_up", {"code": 0xE0 | 0xC8 << 8}))
    assert [m.name for m in inputs.messages(0.5)].count("mouse_motion_ack") == 2
    peers.wait_until(lambda: len(srv.inputs()) >= 10, 3, "inputs logged")
    log = srv.inputs()
    assert [e["event"] for e in log[-2:]] == ["key_down", "key_up"]
    assert log[-2]["key"] == "Up" and log[-1]["key"] == "Up"
    assert all(e["session"] == sid for e in log)

    cursor = RawClient(srv.port)
    assert cursor.link(CURSOR, sid) == "OK"
    msgs = cursor.messages(0.4)
    assert [m.name for m in msgs][:2] == ["set_ack", "init"]
    cur = msgs[1].fields
    shape = srv.device.cursor.shape
    assert cur["visible"] == 1 and cur["cursor"]["header"]["type"] == "ALPHA"
    assert cur["cursor"]["header"]["width"] == shape.pixels.shape[1]
    assert cur["cursor"]["data"] == shape.pixels.tobytes()
    srv.step(2)
    moves = [m for m in cursor.messages(0.4) if m.name == "move"]
    assert moves and (moves[-1].fields["position"]["x"], moves[-1].fields["position"]["y"]) == \
        (srv.device.cursor.x, srv.device.cursor.y)
