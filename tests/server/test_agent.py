"""The guest agent behind the main channel, against clients built on the stack and spicy:
INIT, token flow control both ways, capabilities, MONITORS_CONFIG resizing the primary surface,
clipboard both ways, file transfer into --agent-dir, mouse state."""
from __future__ import annotations

import time

import numpy as np
from serve_helpers import (
    AgentClient,
    RawClient,
    free_display,
    need,
    peers,
    read_ppm,
    spice_server,  # noqa: F401 (fixture)
)

from spicetool.server.agent import LINUX_AGENT_CAPS
from spicetool.stack.vdagent import AGENT_CAPS, caps_bits


def keyfile(name: str, size: int) -> bytes:
    return f"[vdagent-file-xfer]\nname={name}\nsize={size}\n".encode() + b"\0"


def test_no_agent_unless_asked(spice_server):
    srv = spice_server()
    c = AgentClient(srv.port, start=False)
    assert c.init["agent_connected"] == 0


def test_init_start_and_capabilities(spice_server):
    srv = spice_server(agent=True)
    c = AgentClient(srv.port)
    assert c.init["agent_connected"] == 1 and c.init["agent_tokens"] == 10
    caps = c.announce()
    assert caps.fields["request"] == 0
    assert caps_bits(caps.fields["caps"]) == {AGENT_CAPS.index(n) for n in LINUX_AGENT_CAPS}
    # every AGENT_DATA we sent came back as a token
    peers.wait_until(lambda: (c._pump(0.1), c.tokens)[1] == 10, 5, "tokens back")


def test_server_respects_client_tokens(spice_server):
    """With one token, one AGENT_DATA chunk; the rest waits until the client returns tokens."""
    srv = spice_server(agent=True)
    c = AgentClient(srv.port, tokens=1, auto_tokens=False)
    c.announce()                                   # the reply used our only token
    assert c.received_data == 1
    srv.call(lambda: srv.agent.guest_copy("CLIPBOARD", "UTF8_TEXT", b"x"))
    c._pump(0.5)
    assert c.received_data == 1 and not c.agent    # the GRAB waits
    c.give_tokens(1)
    grab = c.wait_agent("clipboard_grab")
    assert grab.fields["types"] == ["UTF8_TEXT"] and c.received_data == 2


def test_client_beyond_its_tokens_is_dropped(spice_server):
    srv = spice_server(agent=True)
    c = AgentClient(srv.port)
    from spicetool.stack import build_agent_message
    chunk = build_agent_message("clipboard_release", {"selection": "CLIPBOARD", "__reserved": b"\0" * 3})
    # no waiting for tokens: eleven AGENT_DATA at once, the server gave ten
    c.raw.sock.sendall(b"".join(c.raw.message("agent_data", {"data": chunk}) for _ in range(200)))
    assert c.raw.closed_by_server(5)
    assert any("beyond the tokens" in r for _, _, r in srv.server.refusals)


def test_monitors_config_resizes_the_primary(spice_server, tmp_path):
    need("spicy-screenshot")
    srv = spice_server(agent=True)
    c = AgentClient(srv.port)
    c.announce()
    d = RawClient(srv.port)
    assert d.link(2, c.init["session_id"], caps=("protocol_auth_selection", "mini_header")) == "OK"
    d.messages(0.5)
    c.send("monitors_config", {"flags": 0,
                               "monitors": [{"height": 600, "width": 800, "depth": 32, "x": 0, "y": 0}]})
    reply = c.wait_agent("reply")
    assert reply.fields == {"type": 2, "error": "SUCCESS"}
    assert srv.framebuffer().shape == (600, 800, 3)
    got = d.messages(1.0)
    creates = [m.fields for m in got if m.name == "surface_create" and m.fields["surface_id"] == 0]
    assert any(m.name == "surface_destroy" for m in got)
    assert creates and (creates[-1]["width"], creates[-1]["height"]) == (800, 600)
    shot = read_ppm(peers.spicy_screenshot(srv.port, tmp_path / "r.ppm"))
    assert np.array_equal(shot, srv.framebuffer())


def test_spicy_window_resize_resizes_the_guest(spice_server, tmp_path, monkeypatch):
    need("spicy"), need("Xvfb"), need("xdotool")
    # spicy keeps its toggles in $XDG_CONFIG_HOME/spicy/settings; "resize-guest" is off by default
    (tmp_path / "cfg" / "spicy").mkdir(parents=True)
    (tmp_path / "cfg" / "spicy" / "settings").write_text("[general]\nresize-guest=true\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    srv = spice_server(agent=True)
    display = free_display()
    with peers.Xvfb(display, size="1600x1200x24"), peers.Spicy(display, srv.port, min_channels=4) as spicy:
        peers.wait_until(lambda: any(e[0] == "caps" for e in srv.agent.events), 20, "spicy announced caps")
        before = srv.framebuffer().shape
        peers.xdotool(display, "windowsize", "--sync", spicy.window_id(), "900", "700")
        peers.wait_until(lambda: srv.framebuffer().shape[:2] != before[:2], 20, "guest resized by spicy")
        asked = [e for e in srv.agent.events if e[0] == "monitors_config"][-1][2][0]
        h, w = srv.framebuffer().shape[:2]
        assert (w, h) == asked and w > 640 and h > 300
        srv.wait_idle()
        from serve_helpers import wait_for_picture
        wait_for_picture(srv, display, tmp_path)   # the spicy window shows the new surface 1:1


def test_clipboard_client_to_guest(spice_server):
    srv = spice_server(agent=True)
    c = AgentClient(srv.port)
    c.announce()
    c.send("clipboard_grab", {"selection": "CLIPBOARD", "serial": 0, "types": ["UTF8_TEXT"]})
    peers.wait_until(lambda: srv.call(lambda: srv.agent.clipboard("CLIPBOARD").owner) == "client", 5, "grab")
    assert srv.call(lambda: srv.agent.guest_paste("CLIPBOARD", "UTF8_TEXT"))
    req = c.wait_agent("clipboard_request")
    assert req.fields == {"selection": "CLIPBOARD", "type": "UTF8_TEXT"}
    text = "héllo from the client " * 200      # several AGENT_DATA chunks
    c.send("clipboard", {"selection": "CLIPBOARD", "type": "UTF8_TEXT", "data": text.encode()})
    peers.wait_until(lambda: srv.call(lambda: srv.agent.clipboard("CLIPBOARD").data) == text.encode(), 5, "data")
    assert any(r.get("event") == "clipboard" and r["text"] == text for r in srv.inputs()) or \
        any("clipboard" in str(r) and text[:20] in str(r) for r in srv.inputs())
    # a grab with a stale serial loses (the guest grabbed in between)
    c.send("clipboard_grab", {"selection": "CLIPBOARD", "serial": 7, "types": ["UTF8_TEXT"]})
    peers.wait_until(lambda: any(e[0] == "grab_discarded" for e in srv.agent.events), 5, "stale grab discarded")
    c.send("clipboard_release", {"selection": "CLIPBOARD"})
    peers.wait_until(lambda: srv.call(lambda: srv.agent.clipboard("CLIPBOARD").owner) is None, 5, "release")
    assert not srv.call(lambda: srv.agent.guest_paste("CLIPBOARD", "UTF8_TEXT"))


def test_clipboard_guest_to_client(spice_server):
    srv = spice_server(agent=True)
    c = AgentClient(srv.port)
    c.announce()
    c.send("max_clipboard", {"max": 100})
    srv.call(lambda: srv.agent.guest_copy("PRIMARY", "UTF8_TEXT", b"from the guest"))
    grab = c.wait_agent("clipboard_grab")
    assert grab.fields["selection"] == "PRIMARY" and grab.fields["types"] == ["UTF8_TEXT"]
    assert grab.fields["serial"] == 0
    c.send("clipboard_request", {"selection": "PRIMARY", "type": "UTF8_TEXT"})
    data = c.wait_agent("clipboard")
    assert data.fields == {"selection": "PRIMARY", "type": "UTF8_TEXT", "data": b"from the guest"}
    c.send("clipboard_request", {"selection": "PRIMARY", "type": "IMAGE_PNG"})  # not offered
    assert c.wait_agent("clipboard").fields["type"] == "NONE"
    srv.call(lambda: srv.agent.guest_copy("PRIMARY", "UTF8_TEXT", b"y" * 200))    # over max_clipboard
    assert c.wait_agent("clipboard_grab").fields["serial"] == 1
    c.send("clipboard_request", {"selection": "PRIMARY", "type": "UTF8_TEXT"})
    assert c.wait_agent("clipboard").fields == {"selection": "PRIMARY", "type": "NONE", "data": b""}
    srv.call(lambda: srv.agent.guest_release("PRIMARY"))
    assert c.wait_agent("clipboard_release").fields == {"selection": "PRIMARY"}


def test_clipboard_without_selection_cap(spice_server):
    """A client without CLIPBOARD_SELECTION gets (and sends) messages with no selection byte."""
    srv = spice_server(agent=True)
    c = AgentClient(srv.port, caps=["clipboard_by_demand", "reply"])
    c.announce()
    srv.call(lambda: srv.agent.guest_copy("CLIPBOARD", "UTF8_TEXT", b"plain"))
    grab = c.wait_agent("clipboard_grab")
    assert grab.fields == {"types": ["UTF8_TEXT"]}
    c.send("clipboard_request", {"type": "UTF8_TEXT"})
    assert c.wait_agent("clipboard").fields == {"type": "UTF8_TEXT", "data": b"plain"}


def xfer(c, xid, name, payload, chunk=4096):
    c.send("file_xfer_start", {"id": xid, "data": keyfile(name, len(payload))})
    st = c.wait_agent("file_xfer_status", id=xid)
    if st.fields["result"] != "CAN_SEND_DATA":
        return st
    for i in range(0, len(payload), chunk):
        part = payload[i:i + chunk]
        c.send("file_xfer_data", {"id": xid, "size": len(part), "data": part})
    return c.wait_agent("file_xfer_status", id=xid)


def test_file_transfer(spice_server, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    srv = spice_server(agent_dir=inbox, agent_max_file=100_000)
    c = AgentClient(srv.port)
    c.announce()
    payload = bytes(range(256)) * 150
    assert xfer(c, 1, "report.txt", payload).fields["result"] == "SUCCESS"
    assert (inbox / "report.txt").read_bytes() == payload
    assert xfer(c, 2, "report.txt", b"again").fields["result"] == "SUCCESS"   # no overwrite
    assert (inbox / "report (1).txt").read_bytes() == b"again"
    assert (inbox / "report.txt").read_bytes() == payload
    # names are reduced to their last component: nothing lands outside the directory
    for i, evil in enumerate(["../escape.txt", "/etc/passwd-x", "a/../../b.txt", "..\\win.txt"]):
        assert xfer(c, 10 + i, evil, b"e").fields["result"] == "SUCCESS"
    assert sorted(p.name for p in inbox.iterdir()) == ["b.txt", "escape.txt", "passwd-x", "report (1).txt",
                                                       "report.txt", "win.txt"]
    assert not (tmp_path / "escape.txt").exists()
    for i, bad in enumerate(["..", ".", "", "dir/"]):
        assert xfer(c, 20 + i, bad, b"e").fields["result"] == "ERROR"
    # too large: NOT_ENOUGH_SPACE with the free bytes (a client with detailed errors)
    st = xfer(c, 30, "big.bin", b"z" * 100_001)
    assert st.fields["result"] == "NOT_ENOUGH_SPACE" and int.from_bytes(st.fields["data"], "little") <= 100_000
    # more data than announced: ERROR and no file left
    c.send("file_xfer_start", {"id": 31, "data": keyfile("short.bin", 10)})
    assert c.wait_agent("file_xfer_status", id=31).fields["result"] == "CAN_SEND_DATA"
    c.send("file_xfer_data", {"id": 31, "size": 11, "data": b"x" * 11})
    assert c.wait_agent("file_xfer_status", id=31).fields["result"] == "ERROR"
    assert not (inbox / "short.bin").exists()
    # cancelled by the client half way: no file left
    c.send("file_xfer_start", {"id": 32, "data": keyfile("half.bin", 10)})
    assert c.wait_agent("file_xfer_status", id=32).fields["result"] == "CAN_SEND_DATA"
    c.send("file_xfer_data", {"id": 32, "size": 5, "data": b"12345"})
    c.send("file_xfer_status", {"id": 32, "result": "CANCELLED", "data": b""})
    peers.wait_until(lambda: any(e[0] == "xfer_cancelled" for e in srv.agent.events), 5, "cancel")
    assert not (inbox / "half.bin").exists()
    # a client that goes away mid-transfer leaves nothing behind either
    c.send("file_xfer_start", {"id": 33, "data": keyfile("gone.bin", 10)})
    assert c.wait_agent("file_xfer_status", id=33).fields["result"] == "CAN_SEND_DATA"
    c.send("file_xfer_data", {"id": 33, "size": 3, "data": b"123"})
    time.sleep(0.3)
    assert (inbox / "gone.bin").exists()
    c.close()
    peers.wait_until(lambda: not (inbox / "gone.bin").exists(), 5, "partial file removed")


def test_file_transfer_refused_without_dir(spice_server):
    srv = spice_server(agent=True)
    c = AgentClient(srv.port)
    c.announce()
    assert xfer(c, 1, "a.txt", b"abc").fields["result"] == "DISABLED"
    old = AgentClient(srv.port, caps=["clipboard_by_demand"])   # no detailed errors: plain ERROR
    old.announce()
    assert xfer(old, 1, "a.txt", b"abc").fields["result"] == "ERROR"


def test_mouse_state_in_client_mode(spice_server):
    srv = spice_server(agent=True)
    c = AgentClient(srv.port)
    c.announce()
    i = RawClient(srv.port)
    assert i.link(3, c.init["session_id"]) == "OK"
    i.messages(0.3)
    i.send(i.message("mouse_position", {"x": 123, "y": 45, "buttons_state": 1 | 4, "display_id": 0}))
    peers.wait_until(lambda: srv.agent.mouse is not None, 5, "mouse state")
    assert srv.agent.mouse["x"] == 123 and srv.agent.mouse["y"] == 45
    assert srv.agent.mouse["buttons"] == 2 | 8       # VD_AGENT_LBUTTON_MASK | VD_AGENT_RBUTTON_MASK


def test_oversized_agent_message_is_refused(spice_server):
    """A vdagent message announced bigger than anything the agent takes is not buffered: the
    client is dropped once 1 MiB of it has come in, and the server goes on."""
    srv = spice_server(agent=True)
    c = AgentClient(srv.port)
    c.announce()
    import struct
    head = struct.pack("<IIQI", 1, 4, 0, 48 * 1024 * 1024)   # CLIPBOARD of 48 MiB
    chunks = [head + b"\0" * (2048 - len(head))] + [b"\0" * 2048] * 600
    try:
        for chunk in chunks:
            c.send_raw_chunk(chunk)
    except (BrokenPipeError, ConnectionResetError, AssertionError):
        pass
    assert c.raw.closed_by_server(5)
    assert any("more than" in r for _, _, r in srv.server.refusals)
    assert AgentClient(srv.port).announce().fields["request"] == 0   # the next client is served
