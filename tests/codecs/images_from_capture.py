"""Images of the display channel of a real capture, with what drew them (test helper).

The bytes are read by the protocol stack's own parser (the records of
`spicetool.capture.open_records`, whose `.fields` hold the parsed message), so
there is one parser of the display messages: this module only picks the fields out.
Only the draws whose body is DisplayBase followed by an Image pointer are looked at.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spicetool import codecs as decoders
from spicetool.capture import open_records
from spicetool.stack.channels.display import image_type as IMAGE_TYPE
from spicetool.stack.image_headers import BITMAP_FMTS

CAPTURES = Path(__file__).resolve().parents[2] / "captures"

DRAW_COPY = 304
# draws whose body is DisplayBase then `Image *src`
SOURCE_DRAWS = {303, 304, 305, 309, 312}
# image type name (as the parser gives it) -> number
IMAGE_TYPES = {name: num for num, name in IMAGE_TYPE.names.items()}
BITMAP_FORMATS = {name: num for num, name in BITMAP_FMTS.items()}
PAL_FROM_CACHE, TOP_DOWN = 2, 4
# image type -> key of its body in the parsed image
BODY_KEYS = {0: "bitmap", 1: "quic", 100: "lz_plt", 101: "lz_rgb", 102: "lz_rgb", 105: "jpeg",
             107: "zlib_glz", 108: "jpeg_alpha", 109: "lz4"}


def _rect(r: dict) -> tuple[int, int, int, int]:
    return r["top"], r["left"], r["bottom"], r["right"]


@dataclass
class CapturedImage:
    frame: int
    msg_type: int
    box: tuple[int, int, int, int]  # top, left, bottom, right
    src_area: tuple[int, int, int, int]
    clipped: bool
    image_id: int
    image_type: int
    width: int
    height: int
    image: dict[str, Any] = field(repr=False)  # the parsed Image: descriptor and body

    @property
    def payload(self) -> dict[str, Any]:
        """The parsed image body (data_size, data, ...) of this image's type."""
        return self.image[BODY_KEYS[self.image_type]]


def images(path: Path) -> list[CapturedImage]:
    found = []
    for rec in open_records(path):
        ev = rec.event
        if rec.layer != "message" or rec.channel.channel != "display" or ev is None:
            continue
        if ev.type_id not in SOURCE_DRAWS or rec.direction != "server" or ev.error:
            continue
        base, data = ev.fields["base"], ev.fields["data"]
        img = data.get("src_bitmap")
        if img is None:
            continue
        desc = img["descriptor"]
        kind = desc["type"] if isinstance(desc["type"], int) else IMAGE_TYPES[desc["type"]]
        found.append(CapturedImage(rec.frame, ev.type_id, _rect(base["box"]), _rect(data["src_area"]),
                                   base["clip"]["type"] != "NONE", desc["id"], kind,
                                   desc["width"], desc["height"], img))
    return found


def _palette(body: dict) -> np.ndarray:
    if body["flags"] & PAL_FROM_CACHE:
        raise NotImplementedError("palette from cache")
    pal = body.get("palette")
    return None if pal is None else np.asarray(pal["ents"], "<u4")


def decode(img: CapturedImage, glz: decoders.GlzDictionary) -> np.ndarray:
    """Decode one captured image with the public decoders API."""
    t, p = img.image_type, img.payload
    if t == 0:  # BITMAP
        fmt = p["format"] if isinstance(p["format"], int) else BITMAP_FORMATS[p["format"]]
        return decoders.decode_bitmap(fmt, p["x"], p["y"], p["stride"], bool(p["flags"] & TOP_DOWN),
                                      bytes(p["data"]), _palette(p))
    if t == 100:  # LZ_PLT
        return decoders.decode_lz(bytes(p["data"]), _palette(p))
    if t == 107:  # ZLIB_GLZ_RGB
        return glz.decode_zlib(bytes(p["data"]), p["glz_data_size"])
    if t == 108:  # JPEG_ALPHA
        return decoders.decode_jpeg_alpha(bytes(p["data"]), p["jpeg_size"], bool(p["flags"] & 1))
    data = bytes(p["data"])
    if t == 1:
        return decoders.decode_quic(data)
    if t == 101:
        return decoders.decode_lz(data)
    if t == 102:
        return glz.decode(data)
    if t == 105:
        return decoders.decode_jpeg(data)
    if t == 109:
        return decoders.decode_lz4(data, img.width, img.height)
    raise NotImplementedError(f"image type {t}")


def codec_bytes(img: CapturedImage) -> bytes:
    """The codec stream of a QUIC / LZ_RGB / GLZ_RGB / LZ4 image (after data_size)."""
    return bytes(img.payload["data"])


STREAM_DATA = 123


def mjpeg_frames(path: Path) -> list[bytes]:
    """The JPEG frames of the video streams (the parsed STREAM_DATA's data)."""
    frames = []
    for rec in open_records(path):
        ev = rec.event
        if rec.layer == "message" and rec.channel.channel == "display" and ev is not None \
                and ev.type_id == STREAM_DATA and rec.direction == "server":
            frames.append(bytes(ev.fields["data"]))
    return frames
