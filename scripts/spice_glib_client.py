#!/usr/bin/python3
"""A headless SPICE client on spice-gtk's GObject API (SpiceClientGLib), for recordings.

Run with Debian's /usr/bin/python3 (python3-gi + gir1.2-spiceclientglib-2.0 live there).

`agent` mode connects every channel the server lists, waits for the guest agent, then:

1. copies FILE to the guest (spice_main_channel_file_copy_async: VD_AGENT_FILE_XFER_START, the agent's
   STATUS CAN_SEND_DATA, DATA chunks, STATUS SUCCESS);
2. grabs the CLIPBOARD selection with UTF8_TEXT (--to-guest TEXT) and answers the agent's
   CLIPBOARD_REQUEST with that text when a guest program reads the clipboard;
3. when the guest grabs the clipboard, requests UTF8_TEXT and reports the text it receives.

Every step is reported as one JSON object per line on stdout, so the recorder (scripts/peers.py
AgentClient) can act on the guest side at the right time:

    {"event": "agent_connected", ...}  {"event": "file_copy_done", "ok": true, ...}
    {"event": "client_grab", ...}      {"event": "clipboard_request", ...}  {"event": "clipboard_sent", ...}
    {"event": "guest_grab", ...}       {"event": "clipboard_received", "text": ...}  {"event": "done"}

`channels` mode turns on everything spice-gtk can link (audio playback and record through
SpiceAudio, usbredir, webdav with a shared directory), connects every channel, and on each port
channel sends a PORT_EVENT OPENED and one line of data (SPICEVMC_DATA), then stays --duration seconds:

`screenshot` mode is spicy-screenshot for any display channel (spicy-screenshot shoots display
channel 0 only): it links every display and cursor channel the server lists, and when the MARK of
a display channel of --display arrives (everything before it drawn) writes its primary surface as
a PPM; it ends when each is written:

    /usr/bin/python3 scripts/spice_glib_client.py agent --port 5930 --file /tmp/x.bin --to-guest 'hello'
    /usr/bin/python3 scripts/spice_glib_client.py channels --port 5931 --shared-dir /tmp/share --duration 10
    /usr/bin/python3 scripts/spice_glib_client.py screenshot --port 5932 --display 0 --display 1 --out 'head{display}.ppm'
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import time

import gi

gi.require_version("SpiceClientGLib", "2.0")
from gi.repository import Gio, GLib, GObject, SpiceClientGLib  # noqa: E402

# SpiceSession.connect and SpiceChannel.connect shadow GObject's signal connect: call that one by name.
on = GObject.Object.connect

SELECTION_CLIPBOARD = 0   # VD_AGENT_CLIPBOARD_SELECTION_CLIPBOARD
UTF8_TEXT = 1             # VD_AGENT_CLIPBOARD_UTF8_TEXT
T0 = time.monotonic()


def emit(what: str, **fields) -> None:
    print(json.dumps({"t": round(time.monotonic() - T0, 3), "wall": round(time.time(), 3), "event": what,
                      **fields}), flush=True)


# spice_port_channel_event() sends only events above CLOSED (OPENED/CLOSED follow the port's state).
SPICE_PORT_EVENT_BREAK = 2


class Client:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.loop = GLib.MainLoop()
        if a.mode == "channels":
            self.session = SpiceClientGLib.Session(host=a.host, port=str(a.port), enable_audio=True,
                                                   enable_usbredir=True, shared_dir=a.shared_dir)
            self.audio = SpiceClientGLib.Audio.get(self.session, None)  # handles playback and record
            # The USB device manager sets up the usbredir host side of each usbredir channel.
            self.usb = SpiceClientGLib.UsbDeviceManager.get(self.session)
        else:
            self.session = SpiceClientGLib.Session(host=a.host, port=str(a.port))
        self.main: SpiceClientGLib.MainChannel | None = None
        self.started = False
        self.failed: str | None = None
        self.wanted = set(a.display or [0])   # screenshot: the display channels still to write
        on(self.session, "channel-new", self.on_channel_new)

    def run(self) -> int:
        if not self.session.connect():
            emit("error", what="spice_session_connect failed")
            return 2
        GLib.timeout_add_seconds(int(self.a.timeout), self.on_timeout)
        if self.a.mode == "channels":
            GLib.timeout_add(int(self.a.duration * 1000), self.finish)
        self.loop.run()
        self.session.disconnect()
        return 0 if self.failed is None else 1

    def on_timeout(self) -> bool:
        self.failed = "timeout"
        emit("error", what="timeout", after_s=self.a.timeout)
        self.loop.quit()
        return False

    def on_channel_new(self, session, channel) -> None:
        kind = type(channel).__name__
        emit("channel_new", channel=kind, id=channel.props.channel_id)
        if isinstance(channel, SpiceClientGLib.MainChannel):
            self.main = channel
            on(channel, "notify::agent-connected", self.on_agent)
            on(channel, "main-clipboard-selection-request", self.on_request)
            on(channel, "main-clipboard-selection-grab", self.on_guest_grab)
            on(channel, "main-clipboard-selection", self.on_clipboard_data)
        if isinstance(channel, SpiceClientGLib.DisplayChannel):
            on(channel, "display-primary-create",
               lambda ch, fmt, width, height, *_rest: emit("primary_create", width=width, height=height, format=fmt))
        if isinstance(channel, SpiceClientGLib.PortChannel):
            on(channel, "notify::port-name", self.on_port_name)
            on(channel, "port-event", lambda ch, ev: emit("port_event", port=ch.props.port_name, event=ev))
            on(channel, "port-data", lambda ch, data, size: emit("port_data", port=ch.props.port_name, bytes=size))
        if self.a.mode == "screenshot":
            self.screenshot_channel(channel)
            return
        # Every other channel (display, inputs, cursor, ...) is connected too, as a real client does.
        if not isinstance(channel, SpiceClientGLib.MainChannel):
            SpiceClientGLib.Channel.connect(channel)

    def screenshot_channel(self, channel) -> None:
        """Every display and cursor channel is linked, as spicy links them (the display channels
        share the session's caches); each display of --display is written at its MARK."""
        if isinstance(channel, SpiceClientGLib.DisplayChannel) and channel.props.channel_id in self.wanted:
            cid = channel.props.channel_id
            primary: dict = {}

            def created(ch, fmt, width, height, stride, shmid, data) -> None:
                primary.update(width=width, height=height, stride=stride, data=data)

            def marked(ch, mark) -> None:
                if mark and primary and cid in self.wanted:
                    self.write_ppm(cid, primary)

            on(channel, "display-primary-create", created)
            on(channel, "display-mark", marked)
        if isinstance(channel, (SpiceClientGLib.DisplayChannel, SpiceClientGLib.CursorChannel)):
            SpiceClientGLib.Channel.connect(channel)

    def write_ppm(self, cid: int, primary: dict) -> None:
        w, h, stride = primary["width"], primary["height"], primary["stride"]
        raw = ctypes.string_at(primary["data"], stride * h)   # 32-bit xRGB, little-endian: B G R X
        rgb = bytearray(w * h * 3)
        for y in range(h):
            row = raw[y * stride:y * stride + w * 4]
            out = memoryview(rgb)[y * w * 3:(y + 1) * w * 3]
            out[0::3], out[1::3], out[2::3] = row[2::4], row[1::4], row[0::4]
        path = self.a.out.replace("{display}", str(cid))
        with open(path, "wb") as f:
            f.write(b"P6\n%d %d\n255\n" % (w, h) + bytes(rgb))
        emit("screenshot", display=cid, width=w, height=h, path=path)
        self.wanted.discard(cid)
        if not self.wanted:
            self.finish()

    def on_port_name(self, port, _pspec) -> None:
        """The server's PORT_INIT named the port: send a PORT_EVENT BREAK, and a line if the guest opened it."""
        name = port.props.port_name
        emit("port_init", port=name, opened=port.props.port_opened)
        if self.a.mode != "channels" or not name:
            return
        port.event(SPICE_PORT_EVENT_BREAK)
        emit("port_event_sent", port=name, port_event="BREAK", value=SPICE_PORT_EVENT_BREAK)
        if port.props.port_opened:  # spice-gtk refuses writes to a port the guest has not opened
            line = f"hello {name} from spicetool\r\n".encode()
            port.write_async(list(line), None, self.on_port_written, name)
            emit("port_sent", port=name, text=line.decode(), bytes=len(line))

    def on_port_written(self, port, result, name) -> None:
        try:
            n = port.write_finish(result)
            emit("port_written", port=name, bytes=n)
        except GLib.Error as e:
            emit("port_written", port=name, error=e.message)

    def on_agent(self, channel, _pspec) -> None:
        if self.a.mode != "agent" or not channel.props.agent_connected or self.started:
            return
        self.started = True
        emit("agent_connected")
        # Give the agent a moment to announce its capabilities (file transfer, clipboard selection).
        GLib.timeout_add(500, self.start_copy)

    def start_copy(self) -> bool:
        src = Gio.File.new_for_path(self.a.file)
        emit("file_copy_start", path=self.a.file, size=src.query_info("standard::size", 0, None).get_size())
        self.main.file_copy_async([src], Gio.FileCopyFlags.NONE, None, None, None, self.on_copied, None)
        return False

    def on_copied(self, channel, result, *_user) -> None:
        try:
            ok = channel.file_copy_finish(result)
            emit("file_copy_done", ok=bool(ok))
        except GLib.Error as e:
            emit("file_copy_done", ok=False, error=e.message)
            self.failed = "file copy: " + e.message
        # Client -> guest clipboard: announce that the client holds UTF8 text.
        GLib.timeout_add(300, self.grab)

    def grab(self) -> bool:
        self.main.clipboard_selection_grab(SELECTION_CLIPBOARD, [UTF8_TEXT])
        emit("client_grab", selection="CLIPBOARD", types=["UTF8_TEXT"])
        return False

    def on_request(self, channel, selection: int, ctype: int) -> bool:
        if self.a.ignore_requests:   # a client that holds the clipboard but never sends it
            emit("clipboard_request_ignored", selection=selection, type=ctype)
            return True
        emit("clipboard_request", selection=selection, type=ctype)
        data = self.a.to_guest.encode()
        channel.clipboard_selection_notify(selection, ctype, list(data))
        emit("clipboard_sent", selection=selection, type=ctype, text=self.a.to_guest, bytes=len(data))
        return True

    def on_guest_grab(self, channel, selection: int, types, ntypes: int) -> bool:
        emit("guest_grab", selection=selection, ntypes=ntypes)
        channel.clipboard_selection_request(selection, UTF8_TEXT)
        return True

    def on_clipboard_data(self, channel, selection: int, ctype: int, data, size: int) -> None:
        if isinstance(data, int):  # a gpointer: read `size` bytes at that address
            raw = ctypes.string_at(data, size)
        else:
            raw = bytes(data or b"")[:size]
        emit("clipboard_received", selection=selection, type=ctype, bytes=size, text=raw.decode(errors="replace"))
        GLib.timeout_add(int(self.a.linger * 1000), self.finish)

    def finish(self) -> bool:
        emit("done")
        self.loop.quit()
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("agent", "channels", "screenshot"))
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--file", help="agent: the file copied to the guest")
    ap.add_argument("--to-guest", default="text from the spice client", help="agent: client clipboard text")
    ap.add_argument("--ignore-requests", action="store_true",
                    help="agent: grab the clipboard but never answer the guest's requests for it")
    ap.add_argument("--linger", type=float, default=1.0, help="agent: seconds to stay after the last step")
    ap.add_argument("--shared-dir", help="channels: the directory webdav shares")
    ap.add_argument("--duration", type=float, default=10.0, help="channels: seconds connected")
    ap.add_argument("--display", type=int, action="append",
                    help="screenshot: a display channel id to shoot (again for more; default 0)")
    ap.add_argument("--out", help="screenshot: the PPM file written ({display} in it: the channel id)")
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args()
    if a.mode == "agent" and not a.file:
        ap.error("agent mode needs --file")
    if a.mode == "screenshot" and not a.out:
        ap.error("screenshot mode needs --out")
    if a.mode == "screenshot" and len(a.display or [0]) > 1 and "{display}" not in a.out:
        ap.error("several --display need {display} in --out")
    return Client(a).run()


if __name__ == "__main__":
    sys.exit(main())
