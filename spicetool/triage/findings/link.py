"""Link and transport: link errors by name (a refused ticket, NEED_SECURED, version mismatch), TLS
alerts and TLS without keys, a refused or unanswered HTTP CONNECT, a WebSocket closed with a code,
SPICE protocol errors, the server's NOTIFY messages."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterator

from spicetool.triage.findings.base import ERROR, INFO, WARNING, Finding

# link error name -> (kind, what it means to the user)
LINK_KINDS = {
    "PERMISSION_DENIED": ("auth_refused", "the server refused the ticket (wrong or expired password)"),
    "NEED_SECURED": ("need_secured", "the server wants this channel over TLS (the client linked it in plain)"),
    "NEED_UNSECURED": ("need_unsecured", "the server wants this channel in plain (the client linked it over TLS)"),
    "VERSION_MISMATCH": ("version_mismatch", "client and server speak different SPICE protocol versions"),
    "BAD_CONNECTION_ID": ("bad_connection_id", "the channel named a session the server does not have"),
    "CHANNEL_NOT_AVAILABLE": ("channel_not_available", "the client asked for a channel the server does not offer"),
}
TRANSPORT_KINDS = {  # problem kind -> (finding kind, severity)
    "proxy_refused": ("proxy_refused", ERROR),
    "proxy_no_answer": ("proxy_no_answer", ERROR),
    "websocket_refused": ("websocket_refused", ERROR),
    "websocket_close": ("websocket_closed", WARNING),  # only unclean codes are problems (sessions.py)
    "proxy_error": ("proxy_error", ERROR),
    "websocket_error": ("websocket_error", ERROR),
    "tls_error": ("tls_error", ERROR),  # a TLS alert, a record that does not decrypt
    "protocol_error": ("protocol_error", WARNING),
}


def rules(s: dict[str, Any]) -> Iterator[Finding]:
    n = s["session"]
    encrypted: list[dict[str, Any]] = []
    notices: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in s["problems"]:
        k = p["kind"]
        ev = {"frame": p.get("frame"), "direction": p["direction"], "detail": p["detail"]}
        if k == "link_error":
            name = p.get("error") or p["detail"].rsplit(": ", 1)[-1]
            kind, meaning = LINK_KINDS.get(name, ("link_error", "the server refused the channel's link"))
            yield Finding(ERROR, kind, f"{p['channel']}: link refused with {name}: {meaning}", p["time"],
                          session=n, channel=p["channel"], evidence={**ev, "error": name})
        elif k in TRANSPORT_KINDS:
            kind, sev = TRANSPORT_KINDS[k]
            yield Finding(sev, kind, f"{p['channel']}: {p['detail']}", p["time"], session=n,
                          channel=p["channel"], evidence=ev)
        elif k == "tls_encrypted":
            encrypted.append(p)
        elif k == "notify":
            notices[p["detail"]].append(p)
    if encrypted:
        yield Finding(WARNING, "tls_without_keys",
                      f"{len(encrypted)} TLS connection(s) not decrypted: no key log for them (--tls-keylog), "
                      "so the figures leave them out", encrypted[0]["time"], session=n,
                      evidence={"connections": len(encrypted), "first_frame": encrypted[0].get("frame"),
                                "detail": encrypted[0]["detail"]})
    for text, ps in notices.items():
        severe = text.upper().startswith("ERROR")
        yield Finding(WARNING if severe else INFO, "server_notice",
                      f"the server said {text!r}" + (f" ({len(ps)} times)" if len(ps) > 1 else ""),
                      ps[0]["time"], session=n, channel=ps[0]["channel"],
                      evidence={"count": len(ps), "frames": [p.get("frame") for p in ps[:10]], "text": text})
    failure = s.get("failure")
    if failure and not any(p["kind"] in TRANSPORT_KINDS for p in s["problems"]):
        yield Finding(ERROR, "transport_failure", failure, s.get("start"), session=n, evidence={"failure": failure})


