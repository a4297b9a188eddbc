"""A guest agent behind the main channel, behaving as the Linux one (spice-vdagentd plus the
session's spice-vdagent) does towards a client:

* INIT says an agent is connected; the client's AGENT_START gives the tokens we may spend on
  AGENT_DATA towards it (one per chunk of at most 2048 bytes), AGENT_TOKEN gives more back; we
  hand out AGENT_TOKENS to the client and return one per AGENT_DATA consumed.
* ANNOUNCE_CAPABILITIES with `request` set is a new client: it is answered with ours
  (the Linux agent's set), and the clipboard serials start again.
* MONITORS_CONFIG: the primary surface takes the first monitor's size (the guest's xrandr), and
  a REPLY {MONITORS_CONFIG, SUCCESS} goes back, as vdagentd sends it.
* Clipboard both ways: a client GRAB makes the client the owner of that selection, a guest
  paste (`guest_paste`) sends it a REQUEST and keeps the CLIPBOARD data it answers with; a guest
  copy (`guest_copy`) sends every client a GRAB, answers its REQUEST with the data, RELEASE
  when the guest lets go. The selection byte and grab serial are used only when both ends
  announced them.
* File transfer into `--agent-dir`: START (a key file with name and size) is answered
  CAN_SEND_DATA, the DATA chunks are written, SUCCESS at the exact size; an existing name gets
  " (1)".."(63)" before its extension; names are reduced to their last component (no path
  leaves the directory); refused with NOT_ENOUGH_SPACE beyond the size limit (or the disk's free
  space) and with DISABLED when no directory was given (plain ERROR to clients without the
  detailed-errors capability). A cancelled or failed transfer leaves no file behind.
* Mouse state: in client mouse mode, positions and buttons from the inputs channel reach the
  agent (vdagentd moves the guest pointer with them).

Every message is built and parsed by spicetool.stack (build_agent_message, AgentReassembler).
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from spicetool.server.channel import ChannelClient, ClientDropped, PipeItem
from spicetool.stack import Direction, build_agent_message
from spicetool.stack.enums import AGENT_MAX_DATA_SIZE, AgentMsg, MouseButtonMask, pack_caps
from spicetool.stack.events import AgentMessage
from spicetool.stack.vdagent import AGENT_CAPS, AgentReassembler, caps_bits

AGENT_TOKENS = 10            # REDS_AGENT_WINDOW_SIZE
MAX_CHUNK = AGENT_MAX_DATA_SIZE  # one AGENT_DATA's bytes
MAX_QUEUED_CHUNKS = 4096     # agent data waiting for the client's tokens, per client
MAX_TRANSFERS = 128          # vdagentd's MAX_ACTIVE_TRANSFERS
MAX_COPIES = 63              # "name (1)" .. "name (63)"
DEFAULT_MAX_FILE = 256 * 1024 * 1024
MAX_NAME_BYTES = 255

# What spice-vdagentd announces (send_capabilities).
LINUX_AGENT_CAPS = ["mouse_state", "monitors_config", "reply", "clipboard_by_demand",
                    "clipboard_selection", "sparse_monitors_config", "guest_lineend_lf",
                    "max_clipboard", "audio_volume_sync", "graphics_device_info",
                    "clipboard_no_release_on_regrab", "clipboard_grab_serial"]
CAP = {name: i for i, name in enumerate(AGENT_CAPS)}
_SPICE_BUTTONS = int(MouseButtonMask.LEFT | MouseButtonMask.MIDDLE | MouseButtonMask.RIGHT
                     | MouseButtonMask.UP | MouseButtonMask.DOWN)  # the ones VDAgentMouseState has
DETAILED_ERRORS = {"NOT_ENOUGH_SPACE", "SESSION_LOCKED", "VDAGENT_NOT_CONNECTED", "DISABLED"}


def caps_words(names: list[str]) -> list[int]:
    return pack_caps((CAP[n] for n in names), nwords=(len(AGENT_CAPS) + 31) // 32)


def safe_name(name: str) -> str | None:
    """The file name a transfer may create inside the directory, or None to refuse it."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]  # "dir/" names no file: refused
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip()
    if base in ("", ".", "..") or len(base.encode()) > MAX_NAME_BYTES:
        return None
    return base


def parse_keyfile(text: bytes) -> dict[str, str] | None:
    """The [vdagent-file-xfer] group of a GKeyFile (what FILE_XFER_START carries)."""
    try:
        s = text.split(b"\0", 1)[0].decode("utf-8")
    except UnicodeDecodeError:
        return None
    group, out = None, {}
    for line in s.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1]
        elif "=" in line and group == "vdagent-file-xfer":
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out if "name" in out and "size" in out else None


@dataclass
class Transfer:
    id: int
    path: Path
    size: int
    fd: object
    written: int = 0


@dataclass
class Clipboard:
    """One selection of the guest's clipboard."""
    owner: str | None = None          # "client" (a session id in client_session) or "guest"
    types: list[str] = field(default_factory=list)
    data: bytes = b""                 # guest-owned: what it offers; client-owned: last pasted
    data_type: str = "NONE"
    client_session: int | None = None
    serial: int = 0


class GuestAgent:
    """The guest side, one per server (one guest); each session's main channel holds an
    AgentLink to it."""

    def __init__(self, agent_dir: Path | None = None, max_file_size: int = DEFAULT_MAX_FILE,
                 resize: Callable[[int, int], None] | None = None, max_total: int | None = None):
        self.agent_dir = agent_dir
        self.max_file_size = max_file_size
        self.max_total = max_total if max_total is not None else 4 * max_file_size
        self.bytes_received = 0           # into agent_dir, over the server's life
        self.resize = resize
        self.links: dict[int, "AgentLink"] = {}
        self.clipboards: dict[str, Clipboard] = {}
        self.monitors: list[dict] | None = None
        self.mouse: dict | None = None
        self.events: list[tuple] = []      # what happened, for the log and tests
        self.files: list[Path] = []

    def clipboard(self, selection: str) -> Clipboard:
        return self.clipboards.setdefault(selection, Clipboard())

    def note(self, *what) -> None:
        self.events.append(what)
        del self.events[:-1000]

    # guest-side actions (a program in the guest copies or pastes)
    def guest_copy(self, selection: str, type_: str, data: bytes) -> None:
        cb = self.clipboard(selection)
        cb.owner, cb.types, cb.data, cb.data_type, cb.client_session = "guest", [type_], data, type_, None
        for link in list(self.links.values()):
            link.send_grab(selection, [type_])

    def guest_release(self, selection: str) -> None:
        cb = self.clipboard(selection)
        if cb.owner == "guest":
            cb.owner, cb.types, cb.data = None, [], b""
            for link in list(self.links.values()):
                link.send("clipboard_release", {"selection": selection})

    def guest_paste(self, selection: str, type_: str = "UTF8_TEXT") -> bool:
        """Ask the client owning `selection` for its data (the answer lands in the clipboard)."""
        cb = self.clipboard(selection)
        link = self.links.get(cb.client_session) if cb.owner == "client" else None
        if link is None or type_ not in cb.types:
            return False
        link.send("clipboard_request", {"selection": selection, "type": type_})
        return True


class AgentLink:
    """The agent as one session's client sees it, over that session's main channel."""

    def __init__(self, agent: GuestAgent, main: ChannelClient):   # the session's MainChannel
        self.agent, self.main = agent, main
        self.session_id = main.session.session_id
        self.started = False
        self.tokens = 0                   # AGENT_DATA we may still send the client
        self.client_tokens = AGENT_TOKENS  # AGENT_DATA the client may still send us
        self.queue: list[bytes] = []
        self.reassembler = AgentReassembler(Direction.CLIENT)  # learns the client's caps itself
        self.client_caps: set[int] | None = None
        self.ours = caps_bits(caps_words(self.our_caps()))
        self.transfers: dict[int, Transfer] = {}
        agent.links[self.session_id] = self

    def our_caps(self) -> list[str]:
        return LINUX_AGENT_CAPS

    def both(self) -> set[int]:
        return self.ours & self.client_caps if self.client_caps is not None else set()

    def has(self, cap: str) -> bool:
        return CAP[cap] in self.both()

    # --- to the client ---

    def send(self, name: str, fields: dict) -> None:
        caps = self.both() if self.client_caps is not None else {CAP["clipboard_selection"]}
        if "selection" in fields:
            fields = {**fields, "__reserved": b"\0\0\0"}
        data = build_agent_message(name, fields, caps=caps)
        for i in range(0, len(data), MAX_CHUNK):
            self.queue.append(data[i:i + MAX_CHUNK])
        if len(self.queue) > MAX_QUEUED_CHUNKS:
            self.main.server.log(f"{self.main.peer} main: client does not take agent data "
                                 f"({len(self.queue)} chunks waiting); disconnecting")
            self.queue.clear()
            self.main.close()
            return
        self.flush()

    def flush(self) -> None:
        while self.queue and self.tokens > 0 and not self.main.closed:
            self.tokens -= 1
            self.main.push("agent_data", {"data": self.queue.pop(0)})

    def send_grab(self, selection: str, types: list[str]) -> None:
        if not self.started:
            return
        fields = {"selection": selection, "types": types}
        if self.has("clipboard_grab_serial"):
            cb = self.agent.clipboard(selection)
            fields["serial"] = cb.serial
            cb.serial += 1
        self.send("clipboard_grab", fields)

    # --- from the client (main channel messages) ---

    def on_start(self, tokens: int) -> None:
        self.started = True
        self.tokens = tokens
        self.flush()

    def on_token(self, tokens: int) -> None:
        self.tokens = min(self.tokens + tokens, 1 << 31)
        self.flush()

    def on_data(self, chunk: bytes) -> None:
        if self.client_tokens <= 0:
            raise ClientDropped("agent data beyond the tokens given")
        self.client_tokens -= 1
        msgs, err = self.reassembler.feed(chunk, self.ours)
        if err:
            raise ClientDropped(err)
        # the agent takes the chunk at once: its token goes back, and counts as the client's
        # again once it is on the wire
        def give() -> list:
            self.client_tokens += 1
            return [("agent_token", {"num_tokens": 1})]
        self.main.push_item(PipeItem(give, False, 16))
        if not self.started:
            return  # spice-server drops data from a client that never sent AGENT_START
        for m in msgs:
            self.handle(m)

    def handle(self, m: AgentMessage) -> None:
        f = m.fields
        a = self.agent
        if "error" in f:
            self.main.server.log(f"{self.main.peer} agent: malformed {m.name}: {f['error']}")
            return
        if m.name == "announce_capabilities":
            self.client_caps = caps_bits(f["caps"])
            self.reassembler.caps = self.client_caps  # how the client's later messages parse
            if f["request"]:
                self.drop_transfers()
                for cb in a.clipboards.values():
                    cb.serial = 0
                self.send("announce_capabilities", {"request": 0, "caps": caps_words(self.our_caps())})
            a.note("caps", self.session_id, sorted(self.client_caps))
        elif m.name == "monitors_config":
            mons = f["monitors"]
            a.monitors = mons
            a.note("monitors_config", self.session_id, [(x["width"], x["height"]) for x in mons])
            if mons and a.resize is not None:
                a.resize(int(mons[0]["width"]), int(mons[0]["height"]))
            self.send("reply", {"type": int(AgentMsg.MONITORS_CONFIG), "error": "SUCCESS"})
        elif m.name == "clipboard_grab":
            sel = f.get("selection", "CLIPBOARD")
            cb = a.clipboard(sel)
            if "serial" in f:
                if f["serial"] == cb.serial - 1:
                    pass                      # the client's grab wins a race
                elif f["serial"] == cb.serial:
                    cb.serial += 1
                else:
                    a.note("grab_discarded", self.session_id, sel, f["serial"])
                    return
            cb.owner, cb.types, cb.client_session = "client", list(f["types"]), self.session_id
            a.note("client_grab", self.session_id, sel, list(f["types"]))
        elif m.name == "clipboard":
            sel = f.get("selection", "CLIPBOARD")
            cb = a.clipboard(sel)
            cb.data, cb.data_type = f["data"], f["type"]
            a.note("client_data", self.session_id, sel, f["type"], f["data"])
            if f["type"] == "UTF8_TEXT":
                self.main.server.input_log.write(self.session_id, self.main.peer, "clipboard",
                                                 selection=sel, text=f["data"][:4096].decode("utf-8", "replace"))
        elif m.name == "clipboard_request":
            sel = f.get("selection", "CLIPBOARD")
            cb = a.clipboard(sel)
            if cb.owner == "guest" and f["type"] in cb.types and \
                    (self.max_clipboard < 0 or len(cb.data) <= self.max_clipboard):
                self.send("clipboard", {"selection": sel, "type": f["type"], "data": cb.data})
            else:
                self.send("clipboard", {"selection": sel, "type": "NONE", "data": b""})
            a.note("client_request", self.session_id, sel, f["type"])
        elif m.name == "clipboard_release":
            sel = f.get("selection", "CLIPBOARD")
            cb = a.clipboard(sel)
            if cb.owner == "client" and cb.client_session == self.session_id:
                cb.owner, cb.types = None, []
            a.note("client_release", self.session_id, sel)
        elif m.name == "max_clipboard":
            self.max_clipboard = f["max"]
        elif m.name == "file_xfer_start":
            self.xfer_start(f["id"], f["data"])
        elif m.name == "file_xfer_data":
            self.xfer_data(f["id"], f["data"], f["size"])
        elif m.name == "file_xfer_status":
            t = self.transfers.pop(f["id"], None)
            if t is not None and f["result"] != "CAN_SEND_DATA":
                self.abandon(t)
                a.note("xfer_cancelled", self.session_id, f["id"])
        elif m.name in ("display_config", "audio_volume_sync", "graphics_device_info", "mouse_state",
                        "reply", "client_disconnected"):
            a.note(m.name, self.session_id)
        else:
            a.note("ignored", self.session_id, m.name)

    max_clipboard = -1

    # --- mouse (from the inputs channel, client mouse mode) ---

    def mouse_state(self, x: int, y: int, buttons: int, display_id: int = 0) -> None:
        """`buttons`: SPICE's mask (LEFT 1, MIDDLE 2, RIGHT 4, UP 8, DOWN 16); the agent's
        VDAgentMouseState has them one bit higher (VD_AGENT_LBUTTON_MASK 2 ...)."""
        self.agent.mouse = {"x": x, "y": y, "buttons": (buttons & _SPICE_BUTTONS) << 1, "spice_buttons": buttons,
                            "display_id": display_id}

    # --- file transfer ---

    def status(self, xid: int, result: str, data: bytes = b"") -> None:
        if result in DETAILED_ERRORS and not self.has_client("file_xfer_detailed_errors"):
            result, data = "ERROR", b""
        self.send("file_xfer_status", {"id": xid, "result": result, "data": data})
        self.agent.note("xfer_status", self.session_id, xid, result)

    def has_client(self, cap: str) -> bool:
        return self.client_caps is not None and CAP[cap] in self.client_caps

    def xfer_start(self, xid: int, keyfile: bytes) -> None:
        a = self.agent
        if a.agent_dir is None:
            return self.status(xid, "DISABLED")
        if xid in self.transfers or len(self.transfers) >= MAX_TRANSFERS:
            return self.status(xid, "ERROR")
        info = parse_keyfile(keyfile)
        name = safe_name(info["name"]) if info else None
        try:
            size = int(info["size"]) if info else -1
        except ValueError:
            size = -1
        if name is None or size < 0:
            a.note("xfer_refused", self.session_id, xid, info.get("name") if info else None)
            return self.status(xid, "ERROR")
        free = shutil.disk_usage(a.agent_dir).free
        limit = max(0, min(a.max_file_size, free, a.max_total - a.bytes_received))
        if size > limit:
            return self.status(xid, "NOT_ENOUGH_SPACE", limit.to_bytes(8, "little"))
        stem, dot, ext = name.rpartition(".")
        if not stem:
            stem, dot, ext = name, "", ""
        for i in range(MAX_COPIES + 1):
            candidate = a.agent_dir / (name if i == 0 else f"{stem} ({i}){dot}{ext}")
            try:
                fd = os.open(candidate, os.O_CREAT | os.O_WRONLY | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                break
            except FileExistsError:
                continue
            except OSError:
                return self.status(xid, "ERROR")
        else:
            return self.status(xid, "ERROR")
        t = Transfer(xid, candidate, size, fd)
        self.transfers[xid] = t
        a.note("xfer_start", self.session_id, xid, candidate.name, size)
        if size == 0:
            self.finish(t)
            return
        self.status(xid, "CAN_SEND_DATA")

    def xfer_data(self, xid: int, data: bytes, size: int) -> None:
        t = self.transfers.get(xid)
        if t is None:
            return  # cancelled or unknown: vdagentd ignores it
        if size != len(data) or t.written + len(data) > t.size:
            self.transfers.pop(xid)
            self.abandon(t)
            return self.status(xid, "ERROR")
        try:
            os.write(t.fd, data)
        except OSError:
            self.transfers.pop(xid)
            self.abandon(t)
            return self.status(xid, "ERROR")
        t.written += len(data)
        self.agent.bytes_received += len(data)
        if t.written == t.size:
            self.transfers.pop(xid)
            self.finish(t)

    def finish(self, t: Transfer) -> None:
        os.close(t.fd)
        self.agent.files.append(t.path)
        self.agent.note("xfer_done", self.session_id, t.id, t.path.name, t.size)
        self.status(t.id, "SUCCESS")

    def abandon(self, t: Transfer) -> None:
        try:
            os.close(t.fd)
        finally:
            t.path.unlink(missing_ok=True)

    def drop_transfers(self) -> None:
        for t in self.transfers.values():
            self.abandon(t)
        self.transfers.clear()

    def close(self) -> None:
        self.drop_transfers()
        for cb in self.agent.clipboards.values():
            if cb.owner == "client" and cb.client_session == self.session_id:
                cb.owner, cb.types = None, []
        if self.agent.links.get(self.session_id) is self:
            del self.agent.links[self.session_id]
