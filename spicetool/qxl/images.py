"""Pixels -> the fields of a SPICE Image (spice.proto `Image`), built by the stack.

BITMAP (uncompressed 32BIT, top-down), or compressed by the Rust encoders (QUIC, LZ, GLZ, LZ4)
as the server setting or the client's PREFERRED_COMPRESSION asks, like spice-server's
image-encoders.cpp. Tiny images stay BITMAP, as there. `auto_glz` and `auto_lz` (spice-server's
default is auto_glz) send photo-like pictures (graduality.py) as QUIC, the others as GLZ or LZ.

QUIC, LZ, LZ4 and BITMAP are stateless: one image encodes to the same bytes for every client,
so the worker encodes it once per codec and shares the result (`ClientImages.shared`). GLZ
matches into the images the client decoded before, so each display channel has its own window.
"""
from __future__ import annotations

import itertools
from collections import Counter

import numpy as np

from spicetool import codecs
from spicetool.qxl.graduality import Graduality, level
from spicetool.qxl.pixmap_cache import PixmapCache
from spicetool.stack.enums import BitmapFlags, CursorFlags, ImageFlags

BITMAP_FLAG_TOP_DOWN = int(BitmapFlags.TOP_DOWN)
IMAGE_FLAG_CACHE_ME = int(ImageFlags.CACHE_ME)
COMPRESSIONS = ("off", "quic", "lz", "glz", "lz4", "auto_glz", "auto_lz")
AUTO = {"auto_glz": "glz", "auto_lz": "lz"}   # the codec of the pictures that are not photo-like
MIN_PIXELS_TO_COMPRESS = 54   # spice-server's MIN_SIZE_TO_COMPRESS
MIN_QUIC_SIDE = 3             # QUIC needs at least this many rows and columns
# SpiceImageCompression names (PREFERRED_COMPRESSION) -> what we send
CLIENT_PREFERENCES = {"OFF": "off", "AUTO_GLZ": "auto_glz", "AUTO_LZ": "auto_lz", "QUIC": "quic", "GLZ": "glz",
                      "LZ": "lz", "LZ4": "lz4"}

_unique = itertools.count(1)


def available_compressions() -> tuple[str, ...]:
    have = codecs.available_encoders()
    usable = [n for n in ("quic", "lz", "lz4", "glz") if n in have]
    usable += [n for n, base in AUTO.items() if base in usable and "quic" in usable]
    return ("off",) + tuple(n for n in COMPRESSIONS[1:] if n in usable)


def new_image_id() -> int:
    """A QXL-style image id ((unique << 32) | group): the key of the client's pixmap cache."""
    return next(_unique) << 32


def _descriptor(kind: str, w: int, h: int, image_id: int | None) -> dict:
    return {"id": new_image_id() if image_id is None else image_id, "type": kind, "flags": 0,
            "width": w, "height": h}


def effective_codec(compression: str, lz4_allowed: bool = True, glz_allowed: bool = True) -> str:
    """What a channel sends for a setting: LZ for LZ4 when the client lacks LZ4_COMPRESSION,
    LZ for GLZ (auto_lz for auto_glz) on a channel that must not use GLZ, BITMAP ('off') for a
    codec this build has no encoder for."""
    if compression == "lz4" and not lz4_allowed:
        compression = "lz"
    if not glz_allowed:
        compression = {"glz": "lz", "auto_glz": "auto_lz"}.get(compression, compression)
    if compression == "off" or compression not in available_compressions():
        return "off"
    return compression


def codec_for(pixels: np.ndarray, setting: str, shared: dict | None = None) -> str:
    """The codec one picture goes out in under `setting` (an auto one decides by the picture:
    its graduality, measured once per picture when `shared` keeps it)."""
    base = AUTO.get(setting)
    if base is None:
        return setting
    h, w = pixels.shape[:2]
    if h < MIN_QUIC_SIDE or w < MIN_QUIC_SIDE or w * h < MIN_PIXELS_TO_COMPRESS:
        return base
    return "quic" if level(pixels, shared) == Graduality.HIGH else base


def encode_image(pixels: np.ndarray, codec: str, glz: codecs.GlzEncoder | None = None,
                 image_id: int | None = None, exact: bool = False) -> dict:
    """Image fields of (h, w, 4) BGRX pixels in `codec` (a stateless one unless `glz` is given).
    `exact`: a tiny image too (a replayed capture's own type), where the encoder takes it."""
    h, w = pixels.shape[:2]
    if codec == "off" or w * h < MIN_PIXELS_TO_COMPRESS and not exact:
        return bitmap_image(pixels, image_id)
    try:
        return _compressed(pixels, w, h, codec, glz, image_id)
    except ValueError:  # the encoder refused this image: send it as it is
        return bitmap_image(pixels, image_id)


def _compressed(pixels: np.ndarray, w: int, h: int, codec: str, glz: codecs.GlzEncoder | None,
                image_id: int | None) -> dict:
    img = np.ascontiguousarray(pixels, dtype=np.uint8)   # no copy for the usual BGRX view
    if codec == "quic":
        data = codecs.encode_quic(img, codecs.QuicKind.RGB32)
        return {"descriptor": _descriptor("QUIC", w, h, image_id), "quic": {"data": data}}
    if codec == "lz":
        data = codecs.encode_lz(img, codecs.LzKind.RGB32)
        return {"descriptor": _descriptor("LZ_RGB", w, h, image_id), "lz_rgb": {"data": data}}
    if codec == "glz":
        data = glz.encode(img, codecs.LzKind.RGB32)
        return {"descriptor": _descriptor("GLZ_RGB", w, h, image_id), "lz_rgb": {"data": data}}
    data = codecs.encode_lz4(img, codecs.BitmapFormat.THIRTY_TWO_BIT)
    return {"descriptor": _descriptor("LZ4", w, h, image_id), "lz4": {"data": data}}


def with_flags(image: dict, flags: int) -> dict:
    """The same image with other descriptor flags (the pixels' encoding is shared)."""
    return {**image, "descriptor": {**image["descriptor"], "flags": flags}}


def from_cache_image(image_id: int, w: int, h: int) -> dict:
    """An image the client holds in its pixmap cache: the descriptor alone."""
    return {"descriptor": {"id": image_id, "type": "FROM_CACHE", "flags": 0, "width": w, "height": h}}


def bitmap_image(pixels: np.ndarray, image_id: int | None = None) -> dict:
    """An uncompressed 32BIT top-down image of (h, w, 4) BGRX pixels."""
    h, w = pixels.shape[:2]
    data = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    return {
        "descriptor": _descriptor("BITMAP", w, h, image_id),
        "bitmap": {"format": "32BIT", "flags": BITMAP_FLAG_TOP_DOWN, "x": w, "y": h, "stride": w * 4,
                   "palette": None, "data": data},
    }


class ClientImages:
    """The images of one display channel: its codec, its GLZ window, the server's counts."""

    def __init__(self, compression: str, lz4_allowed: bool, stats: Counter, glz_allowed: bool = True):
        self.lz4_allowed, self.glz_allowed, self.stats = lz4_allowed, glz_allowed, stats
        self.cache: PixmapCache | None = None   # from the client's DISPLAY_INIT
        self.set_compression(compression)

    def set_compression(self, compression: str) -> None:
        # the setting (may be auto)
        self.codec = effective_codec(compression, self.lz4_allowed, self.glz_allowed)
        if AUTO.get(self.codec) == "glz" or self.codec == "glz":
            self.glz = codecs.GlzEncoder(16)
        else:
            self.glz = None

    def codec_for(self, pixels: np.ndarray, shared: dict | None = None, wanted: str | None = None) -> str:
        """`wanted`: a codec asked for this picture (a replayed capture's image type), taken
        when this client may get it and the build has its encoder, else the channel's own."""
        if wanted is not None and effective_codec(wanted, self.lz4_allowed, self.glz_allowed) == wanted:
            if wanted != "glz" or self.glz is not None:
                return wanted
            self.glz = codecs.GlzEncoder(16)   # the capture used GLZ where the setting did not
            return wanted
        return codec_for(pixels, self.codec, shared)

    @staticmethod
    def stateless(codec: str) -> bool:
        """Whether a picture in `codec` is the same bytes for every client (GLZ depends on what
        this client decoded before)."""
        return codec != "glz"

    def encode(self, pixels: np.ndarray, image_id: int | None = None, codec: str | None = None,
               exact: bool = False) -> dict:
        """This client's own encoding (GLZ, or a picture no other client gets)."""
        codec = codec or self.codec_for(pixels)
        return encode_image(pixels, codec, self.glz if codec == "glz" else None, image_id, exact)

    def count(self, image: dict) -> None:
        self.stats["images_" + image["descriptor"]["type"]] += 1


def cursor_fields(shape, visible: bool = True) -> dict:
    """The Cursor struct of cursor INIT/SET: an ALPHA shape, or flags NONE when there is none."""
    if shape is None:
        return {"flags": int(CursorFlags.NONE), "data": b""}
    h, w = shape.pixels.shape[:2]
    return {"flags": 0,
            "header": {"unique": shape.unique, "type": "ALPHA", "width": w, "height": h,
                       "hot_spot_x": shape.hot_x, "hot_spot_y": shape.hot_y},
            "data": np.ascontiguousarray(shape.pixels, dtype=np.uint8).tobytes()}
