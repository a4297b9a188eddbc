"""Link and transport: link errors by name (a refused ticket, NEED_SECURED, version mismatch), TLS
alerts and TLS without keys, a refused or unanswered HTTP CONNECT, a WebSocket closed with a code,
SPICE protocol errors, the server's NOTIFY messages."""

from __future__ import annotations

import re
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

# TLS alert description -> what it tells of the failed connection ({who}: the side that sent it)
CERTIFICATE_REFUSED = "the {who} refused the {other}'s certificate"
ALERT_MEANINGS = {
    "unknown_ca": CERTIFICATE_REFUSED + " (signed by a CA it does not trust: give the client the CA, e.g. --spice-ca-file)",
    "bad_certificate": CERTIFICATE_REFUSED + " (it does not verify: wrong host name or a broken chain)",
    "certificate_unknown": CERTIFICATE_REFUSED,
    "unsupported_certificate": CERTIFICATE_REFUSED + " (of a kind it does not support)",
    "certificate_expired": CERTIFICATE_REFUSED + " (expired, or the clocks disagree)",
    "certificate_revoked": CERTIFICATE_REFUSED + " (revoked)",
    "certificate_required": "the {who} wanted a client certificate and got none",
    "handshake_failure": "no TLS parameters in common (cipher suites, groups or signature algorithms)",
    "insufficient_security": "the {other} offered only ciphers too weak for the {who}",
    "protocol_version": "no TLS version in common (the {who} refused the {other}'s versions)",
    "decrypt_error": "the handshake's signature or Finished did not verify (a wrong key or a meddling middlebox)",
}
_ALERT = re.compile(r"TLS (fatal|warning) alert (\w+) from the (client|server)")


def _tls_error(n: int | None, p: dict[str, Any], ev: dict[str, Any]) -> Finding:
    """A TLS alert said with what it means (a record that does not decrypt as it is)."""
    where = p["channel"] if not p["channel"].startswith("unknown") else "a TLS connection"
    m = _ALERT.fullmatch(p["detail"])
    if m is None:
        return Finding(ERROR, "tls_error", f"{where}: {p['detail']}", p["time"], session=n, channel=p["channel"],
                       evidence=ev)
    level, name, who = m.groups()
    meaning = ALERT_MEANINGS.get(name, "")
    title = f"{where}: TLS {level} alert {name} from the {who}" + (
        ": " + meaning.format(who=who, other="server" if who == "client" else "client") if meaning else "")
    return Finding(ERROR if level == "fatal" else WARNING, "tls_error", title, p["time"], session=n,
                   channel=p["channel"], evidence={**ev, "alert": name, "level": level, "sent_by": who})


def _server_spoke(s: dict[str, Any], channel: str) -> bool:
    """Whether any connection of that channel name carried a SPICE message from the server."""
    return any(c.get("name") == channel and (c.get("messages") or {}).get("server", 0) for c in s["channels"])


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
        elif k == "tls_error":
            yield _tls_error(n, p, ev)
        elif k in TRANSPORT_KINDS:
            kind, sev = TRANSPORT_KINDS[k]
            title = f"{p['channel']}: {p['detail']}"
            if not _server_spoke(s, p["channel"]):  # the transport ended before the SPICE server said anything
                layer = "a WebSocket" if k.startswith("websocket") else "a proxied" if k.startswith("proxy") else "a"
                where = "" if p["channel"].startswith("unknown") else f" ({p['channel']})"
                title = f"{layer} connection{where}, before any SPICE message from the server: {p['detail']}"
                sev = ERROR  # (the client never reached the server: no session at all through it)
            yield Finding(sev, kind, title, p["time"], session=n, channel=p["channel"], evidence=ev)
        elif k == "tls_encrypted":
            encrypted.append(p)
        elif k == "notify":
            notices[p["detail"]].append(p)
    # a connection whose handshake ended in a fatal alert carried no data: no key log would show more
    failed = sum(1 for p in s["problems"] if p["kind"] == "tls_error" and (m := _ALERT.fullmatch(p["detail"]))
                 and m.group(1) == "fatal")
    if encrypted and len(encrypted) <= failed:
        yield Finding(INFO, "tls_without_keys",
                      f"{len(encrypted)} TLS connection(s) not decrypted, each ended by a fatal alert in its "
                      "handshake: they carried nothing to decrypt", encrypted[0]["time"], session=n,
                      evidence={"connections": len(encrypted), "first_frame": encrypted[0].get("frame"),
                                "detail": encrypted[0]["detail"], "failed_handshakes": failed})
    elif encrypted:
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


