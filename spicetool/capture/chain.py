"""A connection's transport chain as one line: what dissect, stats and report show of each layer.

Each layer (HttpConnect, WebSocket, TlsConnection) says what it saw as a dict with stable keys
(`info()`, bottom layer first); this module writes them as text, e.g.
`CONNECT 127.0.0.1:5916 -> 200 Connection established → TLS 1.3, TLS_AES_256_GCM_SHA384 (decrypted)`.
"""

from __future__ import annotations

from typing import Any

SERVERS = {  # who answered a WebSocket Upgrade, as WebSocket.info() or the legs tell it
    "spice-server": "spice-server's own port",
    "websockify": "websockify",
    "relay": "through a relay such as websockify (its other leg is plain SPICE)",
}


def _answer(status_line: str | None) -> str:
    """`HTTP/1.0 200 Connection established` -> `200 Connection established`."""
    if not status_line:
        return "no answer"
    version, _, rest = status_line.partition(" ")
    return rest if version.upper().startswith("HTTP/") and rest else status_line


def layer_text(entry: dict[str, Any]) -> str:
    kind = entry.get("layer")
    if kind == "connect":
        pve = entry.get("proxmox")
        target = entry.get("target") or "?"
        if pve:
            target = (f"Proxmox VM {pve['vmid']} on node {pve['node']}" + (f" port {pve['port']}" if pve["port"] else "")
                      + (f", ticket of {pve['ticket_time']}" if pve.get("ticket_time") else ""))
        user = f" (proxy user {entry['user']})" if entry.get("user") else ""
        return f"CONNECT {target}{user} -> {_answer(entry.get('status_line'))}"
    if kind == "websocket":
        parts = [f"WebSocket GET {entry.get('path') or '?'}"]
        if entry.get("host"):
            parts.append(f"host {entry['host']}")
        text = " ".join(parts)
        if entry.get("subprotocol"):
            text += f" ({entry['subprotocol']})"
        text += f" -> {_answer(entry.get('status_line'))}"
        if entry.get("server"):
            text += f", {SERVERS.get(entry['server'], entry['server'])}"
        return text
    if kind == "tls":
        what = ", ".join(str(entry[k]) if k != "sni" else f"SNI {entry[k]}"
                         for k in ("version", "cipher", "sni") if entry.get(k)) or "TLS"
        if not what.startswith("TLS"):
            what = "TLS " + what
        state = {True: "decrypted", False: "not decrypted", None: "handshake only"}[entry.get("decrypted")]
        return f"{what} ({state})"
    return str(kind)


def chain_text(entries: list[dict[str, Any]]) -> str | None:
    """The chain bottom first, None when the connection is plain TCP."""
    return " → ".join(layer_text(e) for e in entries) if entries else None
