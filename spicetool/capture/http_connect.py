"""HTTP CONNECT tunnels (RFC 9110 section 9.3.6): what spice-gtk sends to a proxy (SPICE_PROXY=http://...),
as Proxmox's spiceproxy, oVirt's SPICE proxy and tinyproxy receive it.

The client opens with `CONNECT host:port HTTP/1.x` and headers (Proxy-Authorization among them), the
proxy answers with a status line and headers; on a 2xx answer the rest of both directions is the
tunnel's bytes (SPICE, or TLS carrying SPICE). `HttpConnect` is a transport layer: it takes the
reassembled bytes of both directions, reports the request and the answer as notices, and passes on
the tunnel's bytes. A refused CONNECT (403, 407, 502, ...) or one that never gets an answer is the
connection's failure, told with the proxy's status line.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from spicetool.capture.tcp import Data, Gap
from spicetool.capture.transport import (CONNECT, MAX_HEAD, HeadError, Notice, Output, head_end, is_http_version,
                                         parse_head)

PROXMOX_PREFIX = "pvespiceproxy:"


def looks_like_connect(data: bytes) -> bool:
    """Whether a connection's first client bytes are an HTTP CONNECT request."""
    return data[:8] == CONNECT


@dataclass
class Target:
    host: str
    port: int | None
    proxmox: dict[str, str] | None = None  # vmid, node (and the ticket's id) of a Proxmox spiceproxy target
    issued: str | None = None  # when Proxmox made the ticket (its id is the hex Unix time), ISO 8601 UTC

    def describe(self) -> str:
        if self.proxmox:
            where = f"Proxmox VM {self.proxmox['vmid']} on node {self.proxmox['node']}"
            return where + (f", port {self.port}" if self.port else "")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port is not None else host


def parse_target(authority: str) -> Target:
    """`host:port` of a CONNECT request (an IPv6 host in brackets).

    Proxmox's spiceproxy targets: the API's `spiceproxy` call gives the client a "host" of
    `pvespiceproxy:TIME:VMID:NODE::SIGNATURE` (TIME the ticket's Unix time in 8 hex digits, NODE in
    lower case, SIGNATURE 40 hex digits, as pve-common's PVE::Ticket makes it), and remote-viewer
    sends `CONNECT <host>:<tls-port>`; the VM id, node and the ticket's time are shown decoded."""
    host, port = authority, None
    if authority.startswith("["):
        end = authority.find("]")
        if end > 0:
            host, rest = authority[1:end], authority[end + 1:]
            port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    else:
        head, sep, tail = authority.rpartition(":")
        if sep and tail.isdigit():
            host, port = head, int(tail)
    proxmox, issued = None, None
    if host.startswith(PROXMOX_PREFIX):
        parts = host[len(PROXMOX_PREFIX):].split(":")
        if len(parts) >= 3 and parts[1].isdigit():
            proxmox = {"ticket_id": parts[0], "vmid": parts[1], "node": parts[2]}
            if len(parts[0]) == 8 and all(c in "0123456789abcdefABCDEF" for c in parts[0]):
                issued = datetime.fromtimestamp(int(parts[0], 16), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Target(host, port, proxmox, issued)


def proxy_user(value: str | None) -> str | None:
    """The user name of a Basic Proxy-Authorization (the password is never shown), or the scheme."""
    if not value:
        return None
    scheme, _, cred = value.partition(" ")
    if scheme.lower() != "basic":
        return f"({scheme} credentials)"
    try:
        return base64.b64decode(cred.strip(), validate=True).decode("utf-8", "replace").partition(":")[0]
    except (binascii.Error, ValueError):
        return "(malformed Basic credentials)"


class HttpConnect:
    """The CONNECT preamble of one TCP connection, then its tunnel."""

    def __init__(self) -> None:
        self.buf = {True: bytearray(), False: bytearray()}
        self.state = {True: "head", False: "head"}  # "head", "tunnel", "refused", "dead"
        self.target: Target | None = None
        self.request_time: float | None = None
        self.status: int | None = None
        self.status_line: str | None = None
        self.held: list[Data | Gap] = []  # client tunnel bytes sent before the proxy answered
        self.user: str | None = None  # of the Proxy-Authorization, if any

    @property
    def established(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        target = self.target.describe() if self.target else "?"
        answer = self.status_line or "no answer"
        return f"HTTP CONNECT {target}: {answer}"

    def info(self) -> dict[str, Any]:
        """The layer in a connection's transport chain (stable keys): the target, decoded when it is
        Proxmox's, and the proxy's answer (None while none came)."""
        t = self.target
        proxmox = None
        if t is not None and t.proxmox:
            proxmox = {"vmid": int(t.proxmox["vmid"]), "node": t.proxmox["node"], "port": t.port,
                       "ticket_time": t.issued}
        return {"layer": "connect", "target": self._fields()["target"], "proxmox": proxmox,
                "status": self.status, "status_line": self.status_line, "established": self.established,
                "user": self.user}

    def feed(self, from_client: bool, item: Data | Gap) -> list[Output]:
        state = self.state[from_client]
        if state == "tunnel":
            return [(from_client, item)]
        if state in ("refused", "dead"):
            return []
        if from_client and self.state[False] == "head" and self.target is not None:
            self.held.append(item)  # the tunnel's first bytes, sent before the answer came
            return []
        if isinstance(item, Gap):
            self.state[from_client] = "dead"
            who = "request" if from_client else "answer"
            return [(from_client, Notice("error", from_client, item.time, item.frame,
                                         f"HTTP CONNECT {who} lost in a gap of the capture", self._fields()))]
        buf = self.buf[from_client]
        buf += item.data
        size = head_end(buf)
        if size is None:
            if len(buf) > MAX_HEAD:
                self.state[from_client] = "dead"
                return [(from_client, Notice("error", from_client, item.time, item.frame,
                                             f"HTTP CONNECT head longer than {MAX_HEAD} bytes", self._fields()))]
            return []
        try:
            head = parse_head(buf, size)
        except HeadError as e:
            self.state[from_client] = "dead"
            return [(from_client, Notice("error", from_client, item.time, item.frame, str(e), self._fields()))]
        rest = bytes(buf[size:])
        buf.clear()
        out: list[Output] = []
        if from_client:
            method, target = head.parts[0], head.parts[1] if len(head.parts) > 1 else ""
            if method != "CONNECT" or len(head.parts) < 3 or not is_http_version(head.parts[2]):
                self.state[True] = "dead"
                return [(True, Notice("error", True, item.time, item.frame,
                                      f"not an HTTP CONNECT request: {head.start[:80]!r}", self._fields()))]
            self.target = parse_target(target)
            self.request_time = item.time
            fields = self._fields()
            self.user = proxy_user(head.header("Proxy-Authorization"))
            fields.update(http_version=head.parts[2], user=self.user,
                          user_agent=head.header("User-Agent"))
            out.append((True, Notice("proxy_connect", True, item.time, item.frame,
                                     f"HTTP CONNECT {self.target.describe()}", fields)))
            if rest:
                self.held.append(Data(rest, item.time, item.frame))
            return out
        version, code = head.parts[0], head.parts[1]
        if not is_http_version(version) or not code.isdigit():
            self.state[False] = "dead"
            return [(False, Notice("error", False, item.time, item.frame,
                                   f"not an HTTP answer: {head.start[:80]!r}", self._fields()))]
        self.status, self.status_line = int(code), head.start.strip()
        fields = self._fields()
        if self.request_time is not None:
            fields["answer_delay"] = round(item.time - self.request_time, 6)
        if not self.established:
            self.state = {True: "refused", False: "refused"}
            self.held.clear()
            return [(False, Notice("proxy_refused", False, item.time, item.frame,
                                   f"the proxy refused HTTP CONNECT {self._where()}: {self.status_line}", fields))]
        self.state = {True: "tunnel", False: "tunnel"}
        out.append((False, Notice("proxy_established", False, item.time, item.frame,
                                  f"HTTP CONNECT {self._where()}: {self.status_line}", fields)))
        out.extend((True, held) for held in self.held)
        self.held.clear()
        if rest:
            out.append((False, Data(rest, item.time, item.frame)))
        return out

    def finish(self, time: float, frame: int) -> list[Output]:
        if self.target is not None and self.status is None and self.state[False] == "head":
            self.state[False] = "dead"
            # how long the client waited is the evidence of a hanging proxy (the connection's end or the capture's)
            waited = f" in {time - self.request_time:.1f} s" if self.request_time is not None else ""
            return [(False, Notice("proxy_no_answer", False, time, frame,
                                   f"HTTP CONNECT {self._where()} never got an answer from the proxy{waited}",
                                   self._fields()))]
        return []

    def _where(self) -> str:
        return self.target.describe() if self.target else "?"

    def _fields(self) -> dict:
        t = self.target
        fields: dict = {"target": (f"{t.host}:{t.port}" if t and t.port is not None else t.host if t else None),
                        "status": self.status, "status_line": self.status_line}
        if t and t.proxmox:
            fields["proxmox_vmid"], fields["proxmox_node"] = t.proxmox["vmid"], t.proxmox["node"]
        return fields
