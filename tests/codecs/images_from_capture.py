"""Images of the display channel of a real capture, with what drew them (test helper).

Only the draws whose body is DisplayBase followed by an Image pointer are looked at; the
image bytes are cut out of the message body by the layouts of spice.proto.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spicetool.dissect.capture import open_capture
from spicetool.dissect.sessions import decode_segments
from spicetool.render import decoders

CAPTURES = Path(__file__).resolve().parents[2] / "captures"

DRAW_COPY = 304
# draws whose body is DisplayBase then `Image *src`
SOURCE_DRAWS = {303, 304, 305, 309, 312}


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
    body: bytes
    at: int  # offset of the image body (after the 18-byte descriptor) in `body`


def images(path: Path) -> list[CapturedImage]:
    found = []
    for rec in decode_segments(open_capture(str(path))):
        ev = rec.event
        if rec.layer != "message" or rec.channel.channel != "display" or ev is None:
            continue
        if ev.type_id not in SOURCE_DRAWS or rec.direction != "server":
            continue
        body = ev.body
        pos = 21
        clip = body[20]
        if clip == 1:
            pos += 4 + 16 * struct.unpack_from("<I", body, 21)[0]
        ptr = struct.unpack_from("<I", body, pos)[0]
        src_area = struct.unpack_from("<iiii", body, pos + 4)
        image_id, image_type, _flags, width, height = struct.unpack_from("<QBBII", body, ptr)
        found.append(CapturedImage(rec.frame, ev.type_id, struct.unpack_from("<iiii", body, 4), src_area,
                                   clip != 0, image_id, image_type, width, height, body, ptr + 18))
    return found


def _palette(body: bytes, offset: int) -> np.ndarray:
    _unique, count = struct.unpack_from("<QH", body, offset)
    return np.frombuffer(body, "<u4", count, offset + 10)


def decode(img: CapturedImage, glz: decoders.GlzDictionary) -> np.ndarray:
    """Decode one captured image with the public decoders API."""
    b, p, t = img.body, img.at, img.image_type
    if t == 0:  # BITMAP
        fmt, flags, w, h, stride = struct.unpack_from("<BBIII", b, p)
        if flags & 2:
            raise NotImplementedError("palette from cache")
        pal_ptr = struct.unpack_from("<I", b, p + 14)[0]
        pal = _palette(b, pal_ptr) if pal_ptr else None
        return decoders.decode_bitmap(fmt, w, h, stride, bool(flags & 4), b[p + 18:p + 18 + stride * h], pal)
    if t == 100:  # LZ_PLT
        flags, n = struct.unpack_from("<BI", b, p)
        if flags & 2:
            raise NotImplementedError("palette from cache")
        pal_ptr = struct.unpack_from("<I", b, p + 5)[0]
        return decoders.decode_lz(b[p + 9:p + 9 + n], _palette(b, pal_ptr))
    if t == 107:  # ZLIB_GLZ_RGB
        glz_size, n = struct.unpack_from("<II", b, p)
        return glz.decode_zlib(b[p + 8:p + 8 + n], glz_size)
    if t == 108:  # JPEG_ALPHA
        flags, jpeg_size, n = struct.unpack_from("<BII", b, p)
        return decoders.decode_jpeg_alpha(b[p + 9:p + 9 + n], jpeg_size, bool(flags & 1))
    n = struct.unpack_from("<I", b, p)[0]
    data = b[p + 4:p + 4 + n]
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
    n = struct.unpack_from("<I", img.body, img.at)[0]
    return img.body[img.at + 4:img.at + 4 + n]


STREAM_DATA = 123


def mjpeg_frames(path: Path) -> list[bytes]:
    """The JPEG frames of the video streams (STREAM_DATA: u32 id, u32 mm_time, u32 size, data)."""
    frames = []
    for rec in decode_segments(open_capture(str(path))):
        ev = rec.event
        if rec.layer == "message" and rec.channel.channel == "display" and ev is not None \
                and ev.type_id == STREAM_DATA and rec.direction == "server":
            size = struct.unpack_from("<I", ev.body, 8)[0]
            frames.append(ev.body[12:12 + size])
    return frames
