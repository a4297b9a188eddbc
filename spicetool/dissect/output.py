"""Printing records: the human view (one line a message, `-v` for the field tree) and JSON lines."""

from __future__ import annotations

import json
from typing import Any, TextIO

from spicetool.capture import Channel, Record

BYTES_INLINE = 64  # longer byte strings are shown as a size and a head


def jsonable(value: Any) -> Any:
    """Fields as JSON: bytes become hex (long ones a {size, head} object), enums their value."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if len(raw) <= BYTES_INLINE:
            return raw.hex()
        return {"size": len(raw), "head": raw[:32].hex()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        if isinstance(value, str) and hasattr(value, "value"):  # str enums
            return value.value
        return value
    if hasattr(value, "value"):
        return value.value
    return str(value)


def _json_default(value: Any) -> Any:
    """What the C JSON encoder cannot write itself: bytes and enum-like objects."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if len(raw) <= BYTES_INLINE:
            return raw.hex()
        return {"size": len(raw), "head": raw[:32].hex()}
    if hasattr(value, "value"):
        return value.value
    return str(value)


# check_circular off: parsed fields are trees (no cycles to find), and the check's bookkeeping
# was a tenth of the encoding of a line
_encode = json.JSONEncoder(separators=(",", ":"), default=_json_default, check_circular=False).encode


def record_json(rec: Record, t0: float) -> dict[str, Any]:
    ch = rec.channel
    obj: dict[str, Any] = {
        "time": round(rec.time - t0, 6),
        "frame": rec.frame,
        "session": ch.session,
        "client": ch.client,
        "server": ch.server,
        "channel": ch.channel,
        "channel_id": ch.channel_id,
        "direction": rec.direction.value,
        "layer": rec.layer,
        "type": rec.type,
        "size": rec.size,
        "fields": rec.fields,
    }
    if rec.type_id is not None:
        obj["type_id"] = rec.type_id
    if ch.session_id is not None:
        obj["session_id"] = ch.session_id
    lost = _lost(rec)
    if lost:  # body ranges a capture gap took (zeros in the fields)
        obj["lost"] = [list(r) for r in lost]
    if ch.twin is not None:  # one of the two legs of a connection seen at a proxy
        obj["leg"] = ch.leg
    if ch.transport:  # HTTP CONNECT, WebSocket, TLS under the SPICE bytes (chain.py)
        obj["transport"] = ch.transport
    return obj


def connection_line(ch: Channel, channels: list[Channel]) -> str:
    """The line dissect writes before the first record of a connection that is a proxy's leg or has
    transport layers: its addresses, session and channel, leg, and transport chain."""
    where = f"{ch.channel}:{ch.channel_id if ch.channel_id is not None else '?'}"
    parts = [f"── connection {ch.client} → {ch.server}", f"s{ch.session or '?'} {where}"]
    if ch.twin is not None:
        twin = channels[ch.twin]
        parts.append(f"{ch.leg} leg (its {twin.leg} leg {twin.client} → {twin.server})")
    parts.append(f"transport: {ch.transport or 'plain TCP'}")
    return "  ".join(parts)


def _lost(rec: Record) -> tuple[tuple[int, int], ...]:
    return getattr(rec.event, "lost", ()) if rec.layer == "message" else ()


def write_json(rec: Record, t0: float, out: TextIO) -> None:
    out.write(_encode(record_json(rec, t0)))
    out.write("\n")


# -- the human view ----------------------------------------------------------------------

def _short(value: Any) -> str:
    if type(value) is int or type(value) is str:  # most values, as jsonable would give them (not enums)
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_short(v)}" for k, v in list(value.items())[:4]) + ("…}" if len(value) > 4 else "}")
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value[:4]) + (", …]" if len(value) > 4 else "]")
    return str(jsonable(value))


def _rect(r: Any) -> str:
    if isinstance(r, dict) and {"top", "left", "bottom", "right"} <= r.keys():
        return f"{r['right'] - r['left']}x{r['bottom'] - r['top']}+{r['left']}+{r['top']}"
    return _short(r)


def _image(img: Any) -> str:
    if not isinstance(img, dict):
        return ""
    desc = img.get("descriptor", img)
    kind = jsonable(desc.get("type", "?"))
    w, h = desc.get("width"), desc.get("height")
    return f" {kind} {w}x{h}" if w is not None else f" {kind}"


# fields worth showing on the one line, by message type; others get their first scalars
KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "link_mess": ("connection_id", "channel_type", "channel_id"),
    "link_reply": ("error",),
    "link_result": ("error",),
    "auth_mechanism": ("auth_mechanism",),
    "surface_create": ("surface_id", "width", "height", "format", "flags"),
    "surface_destroy": ("surface_id",),
    "stream_create": ("id", "codec_type", "stream_width", "stream_height"),
    "stream_data": ("id", "multi_media_time", "data_size"),
    "stream_data_sized": ("id", "width", "height", "data_size"),
    "mouse_position": ("x", "y", "buttons", "display_id"),
    "mouse_motion": ("dx", "dy", "buttons"),
    "mouse_press": ("button", "buttons"),
    "mouse_release": ("button", "buttons"),
    "key_down": ("code",),
    "key_up": ("code",),
    "ping": ("id", "timestamp"),
    "pong": ("id", "timestamp"),
    "init": ("session_id", "current_mouse_mode", "agent_connected"),
}


def summary_line(rec: Record, lost: tuple[tuple[int, int], ...] | None = None) -> str:
    if lost is None:
        lost = _lost(rec)
    text = _summary(rec)
    if lost:  # the fields may hold the zeros the gap left
        text = f"[damaged: {sum(b - a for a, b in lost)} of {rec.size} bytes lost in a capture gap] " + text
    return text


def _summary(rec: Record) -> str:
    f = rec.fields
    parts: list[str] = []
    if rec.layer in ("gap", "error"):
        return f.get("reason", "") + (f" ({rec.size} bytes lost)" if rec.layer == "gap" else "")
    base = f.get("base")
    if isinstance(base, dict):
        parts.append(f"surface {base.get('surface_id')} {_rect(base.get('box'))}")
        data = f.get("data") if isinstance(f.get("data"), dict) else f
        for key in ("src_bitmap", "src", "bitmap", "image"):
            if isinstance(data.get(key), dict):
                parts.append(_image(data[key]).strip())
                break
        return " ".join(p for p in parts if p)
    names = KEY_FIELDS.get(rec.type)
    if names:
        return " ".join(f"{k}={_short(f[k])}" for k in names if k in f)
    scalars = [(k, v) for k, v in f.items() if isinstance(v, (int, str)) and not isinstance(v, bool)][:4]
    return " ".join(f"{k}={_short(v)}" for k, v in scalars)


ARROWS = {"client": "→", "server": "←"}  # client → server, server → client
STYLES = {"gap": "yellow", "error": "bold red", "link": "cyan", "agent": "magenta"}


def human_line(rec: Record, t0: float) -> tuple[str, str | None]:
    ch = rec.channel
    where = f"{ch.channel}:{ch.channel_id if ch.channel_id is not None else '?'}"
    if ch.twin is not None:  # a leg of a connection seen at a proxy: which one
        where += f"/{ch.leg}"
    lost = _lost(rec)
    text = (
        f"{rec.time - t0:11.6f} s{ch.session or '?'} {where:<12} {ARROWS[rec.direction.value]} "
        f"{rec.type:<24} {summary_line(rec, lost)}"
    )
    return text, STYLES.get("gap" if lost else rec.layer)


def field_tree(fields: dict[str, Any], label: str) -> Any:
    """A rich Tree of the whole decoded body, for -v."""
    from rich.tree import Tree

    tree = Tree(label, guide_style="dim")

    def add(node: Any, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, (dict, list)) and v:
                    add(node.add(str(k)), v)
                else:
                    node.add(f"{k}: {_short(v)}")
        elif isinstance(value, list):
            for i, v in enumerate(value[:64]):
                if isinstance(v, (dict, list)):
                    add(node.add(f"[{i}]"), v)
                else:
                    node.add(f"[{i}]: {_short(v)}")
            if len(value) > 64:
                node.add(f"… {len(value) - 64} more")

    add(tree, fields)
    return tree
