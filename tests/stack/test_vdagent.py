"""vdagent messages reassembled across AGENT_DATA chunks (layouts from spice/vd_agent.h)."""
import struct

from spicetool.stack import AgentMessage, ChannelConnection, Direction, Message, build_agent_message

C, S = Direction.CLIENT, Direction.SERVER


def agent(tid, data, opaque=0):
    return struct.pack("<IIQI", 1, tid, opaque, len(data)) + data


def agent_data_msgs(payload, chunk=2048, tid=107):
    return b"".join(struct.pack("<HI", tid, len(payload[i:i + chunk])) + payload[i:i + chunk]
                    for i in range(0, len(payload), chunk))


def test_monitors_config_split_over_chunks_and_after_its_message():
    mon = struct.pack("<II", 2, 0) + struct.pack("<IIIii", 768, 1024, 32, 0, 0) + struct.pack(
        "<IIIii", 600, 800, 32, 1024, 0)
    caps = agent(6, struct.pack("<II", 1, 0b1111))
    stream = agent_data_msgs(caps + agent(2, mon, opaque=3), chunk=7)
    conn = ChannelConnection.resume(1)
    events = []
    for i in range(0, len(stream), 5):  # arbitrary TCP chunking too
        events += conn.receive(C, stream[i:i + 5])
    agents = [e for e in events if isinstance(e, AgentMessage)]
    assert [a.name for a in agents] == ["announce_capabilities", "monitors_config"]
    m = agents[1]
    assert m.opaque == 3 and m.fields["num_of_monitors"] == 2
    assert m.fields["monitors"][1] == {"height": 600, "width": 800, "depth": 32, "x": 1024, "y": 0}
    idx = events.index(m)
    assert isinstance(events[idx - 1], Message) and events[idx - 1].name == "agent_data"


def test_clipboard_variants_and_builder():
    grab = build_agent_message("clipboard_grab", {"selection": "CLIPBOARD", "__reserved": b"\0\0\0",
                                                  "types": ["UTF8_TEXT", "IMAGE_PNG"]})
    assert grab == agent(7, struct.pack("<B3xII", 0, 1, 2))
    clip = agent(4, struct.pack("<B3xI", 1, 1) + b"hello")
    conn = ChannelConnection.resume(1)
    ev = conn.receive(S, agent_data_msgs(grab + clip, tid=109))
    a = [e for e in ev if isinstance(e, AgentMessage)]
    assert a[0].fields["types"] == ["UTF8_TEXT", "IMAGE_PNG"]
    assert a[1].fields == {"selection": "PRIMARY", "__reserved": b"\0\0\0", "type": "UTF8_TEXT",
                           "data": b"hello"}


def test_file_xfer_and_absurd_agent_size():
    start = agent(10, struct.pack("<I", 5) + b"[vdagent-file-xfer]\nname=a.txt\nsize=3\n")
    data = agent(12, struct.pack("<IQ", 5, 3) + b"abc")
    bogus = struct.pack("<IIQI", 1, 12, 0, 0xFFFFFFFF)
    conn = ChannelConnection.resume(1)
    ev = conn.receive(C, agent_data_msgs(start + data + bogus))
    names = [e.name for e in ev if isinstance(e, AgentMessage)]
    assert names == ["file_xfer_start", "file_xfer_data"]
    assert any(getattr(e, "reason", "").startswith("agent message of") for e in ev)
    assert conn.broken == set()


def test_physical_sizes_and_graphics_device_info():
    from spicetool.stack.vdagent import parse_agent_message
    mon = struct.pack("<II", 1, 2) + struct.pack("<IIIii", 768, 1024, 32, 0, 0) + struct.pack("<HH", 190, 340)
    m = parse_agent_message(C, 2, 0, mon)
    assert m.fields["physical_sizes"] == [{"height": 190, "width": 340}] and "trailing" not in m.fields
    addr = b"pci/0000/02.0\0"
    info = struct.pack("<I", 1) + struct.pack("<4I", 0, 0, 1, len(addr)) + addr
    g = parse_agent_message(S, 16, 0, info)
    assert g.fields["display_info"][0]["device_address"] == addr
    assert build_agent_message(16, g.fields)[20:] == info
