"""SpiceImage fields to pixels: dispatch to the codecs, pixmap/palette caches, placeholders.

One ImageStore per display channel. Its palette cache is the channel's own; its pixmap cache
and GLZ window are the channel's own too until the client's display INIT names them: then
they are the ones of the session with that id (caches.py), shared with every display channel
that names the same id, as spice-gtk and spice-server share them. Every image comes back as an HxWx4 uint8
array in B, G, R, A order. An image we cannot produce (codec missing, damaged data, a cache
entry or dictionary image from before the capture started) becomes a visible placeholder
of the right size, and the reason is counted in ``warnings``.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any, Callable

import numpy as np

from spicetool import codecs as dec
from spicetool.stack.enums import BitmapFlags, BitmapFmt, ImageFlags, JpegAlphaFlags, by_schema_name

# bound once as ints: tested for every image
CACHE_ME = int(ImageFlags.CACHE_ME)
CACHE_REPLACE_ME = int(ImageFlags.CACHE_REPLACE_ME)
PAL_CACHE_ME = int(BitmapFlags.PAL_CACHE_ME)
PAL_FROM_CACHE = int(BitmapFlags.PAL_FROM_CACHE)
TOP_DOWN = int(BitmapFlags.TOP_DOWN)
_JPEG_ALPHA_TOP_DOWN = int(JpegAlphaFlags.TOP_DOWN)
_MASK_FMTS = (int(BitmapFmt.FMT_1BIT_LE), int(BitmapFmt.FMT_1BIT_BE))
LOSSY_TYPES = {"JPEG", "JPEG_ALPHA"}
MAX_CACHE_BYTES = 512 << 20  # a bound on what a hostile capture can make us hold
MAX_PALETTES = 4096
MAX_PLACEHOLDER_SIDE = 4096


def placeholder(width: int, height: int) -> np.ndarray:
    """A magenta/black checkerboard: plainly not part of anybody's desktop."""
    # bounded: a damaged descriptor may claim any size; parts beyond are left undrawn
    width, height = max(0, min(width, MAX_PLACEHOLDER_SIDE)), max(0, min(height, MAX_PLACEHOLDER_SIDE))
    yy, xx = np.indices((height, width), dtype=np.int32)
    on = ((xx // 8 + yy // 8) & 1).astype(bool)
    img = np.zeros((height, width, 4), np.uint8)
    img[on] = (255, 0, 255, 255)
    img[..., 3] = 255
    return img


def palette_of(pal: dict[str, Any] | None) -> np.ndarray | None:
    if not pal:
        return None
    return np.asarray(pal.get("ents", []), dtype=np.uint32)


class PixmapCache:
    """Pictures the server told the client to keep (CACHE_ME), by id: id -> (pixels, lossy).

    The server evicts with INVAL_LIST / INVAL_ALL_PIXMAPS; ``max_bytes`` only bounds what a
    hostile capture can make us hold (the oldest go first)."""

    def __init__(self, max_bytes: int = MAX_CACHE_BYTES) -> None:
        self.entries: OrderedDict[int, tuple[np.ndarray, bool]] = OrderedDict()
        self.nbytes = 0
        self.max_bytes = max(1, min(max_bytes, MAX_CACHE_BYTES))

    def get(self, pid: int) -> tuple[np.ndarray, bool] | None:
        entry = self.entries.get(pid)
        if entry is not None:
            self.entries.move_to_end(pid)
        return entry

    def put(self, pid: int, img: np.ndarray, lossy: bool) -> None:
        self.drop(pid)
        self.entries[pid] = (img, lossy)
        self.nbytes += img.nbytes
        while self.nbytes > self.max_bytes and len(self.entries) > 1:
            _, (old, _) = self.entries.popitem(last=False)
            self.nbytes -= old.nbytes

    def drop(self, pid: int) -> None:
        entry = self.entries.pop(pid, None)
        if entry is not None:
            self.nbytes -= entry[0].nbytes

    def clear(self) -> None:
        self.entries.clear()
        self.nbytes = 0


class ImageStore:
    """Caches and decoders of one display channel."""

    def __init__(self, surface_pixels: Callable[[int], np.ndarray | None]) -> None:
        self.surface_pixels = surface_pixels  # surface id -> its pixels (for SURFACE images)
        self.pixmaps = PixmapCache()
        self.palettes: OrderedDict[int, np.ndarray] = OrderedDict()
        self.glz = dec.GlzDictionary()
        self.shared = False  # display INIT named the session's caches
        self.used = False    # an image cached or put in the GLZ window (before INIT: a server that did not wait)
        self.warnings: Counter[str] = Counter()
        self.codecs: Counter[str] = Counter()
        self.details: dict[str, str] = {}  # warning -> its first detailed message
        self.placeholders = 0  # images drawn as placeholders so far (what they held is unknown)

    def share(self, pixmaps: PixmapCache, glz: dec.GlzDictionary) -> None:
        """Use the session's pixmap cache and GLZ window named in display INIT from now on."""
        self.pixmaps, self.glz, self.shared = pixmaps, glz, True

    def before_init(self) -> tuple[PixmapCache, dec.GlzDictionary] | None:
        """This channel's own caches, when images went into them before any display INIT: spice-server
        waits for INIT before its first picture, a server that does not has them refer to what came
        before it (the caches the INIT names then start with these)."""
        return (self.pixmaps, self.glz) if self.used and not self.shared else None

    # -- cache management (INVAL_* and RESET messages) ---------------------------------
    def inval_pixmap(self, pid: int) -> None:
        self.pixmaps.drop(pid)

    def inval_all_pixmaps(self) -> None:
        self.pixmaps.clear()

    def inval_palette(self, pid: int) -> None:
        self.palettes.pop(pid, None)

    def inval_all_palettes(self) -> None:
        self.palettes.clear()

    def _palette(self, body: dict[str, Any]) -> np.ndarray | None:
        flags = int(body.get("flags", 0))
        if flags & PAL_FROM_CACHE:
            pid = int(body.get("palette_id", 0))
            pal = self.palettes.get(pid)
            if pal is None:
                raise dec.MissingReference(f"palette {pid:#x} not in the palette cache")
            return pal
        pal_fields = body.get("palette")
        pal = palette_of(pal_fields)
        if pal is not None and flags & PAL_CACHE_ME:
            self.palettes[int(pal_fields.get("unique", 0))] = pal
            while len(self.palettes) > MAX_PALETTES:
                self.palettes.popitem(last=False)
        return pal

    def _placeholder(self, what: str, exc: BaseException, width: int, height: int) -> np.ndarray:
        self.warnings[what] += 1
        self.placeholders += 1
        self.details.setdefault(what, _first_words(exc))
        return placeholder(width, height)

    # -- images --------------------------------------------------------------------------
    def get(self, image: dict[str, Any] | None, mask: bool = False) -> np.ndarray | None:
        """Pixels of an Image field tree, or None for a NULL image pointer."""
        if not image:
            return None
        desc = image["descriptor"]
        kind = str(desc.get("type"))
        width, height = int(desc.get("width", 0)), int(desc.get("height", 0))
        try:
            img, lossy = self._decode(kind, desc, image, mask)
        except dec.MissingReference as exc:
            return self._placeholder(f"{kind} image refers to something never seen", exc, width, height)
        except (dec.DecodeError, ValueError, KeyError, TypeError) as exc:
            return self._placeholder(f"{kind} image undecodable", exc, width, height)
        except AttributeError as exc:  # a decoder not there (yet)
            return self._placeholder(f"{kind} image: no decoder", exc, width, height)
        self.codecs[kind] += 1
        flags = int(desc.get("flags", 0))
        if flags & (CACHE_ME | CACHE_REPLACE_ME) and kind not in ("FROM_CACHE", "FROM_CACHE_LOSSLESS"):
            self.pixmaps.put(int(desc["id"]), img, lossy)
            self.used = True
        return img

    def _decode(self, kind: str, desc: dict, image: dict, mask: bool) -> tuple[np.ndarray, bool]:
        if kind in ("FROM_CACHE", "FROM_CACHE_LOSSLESS"):
            pid = int(desc["id"])
            entry = self.pixmaps.get(pid)
            if entry is None:
                raise dec.MissingReference(f"pixmap {pid:#x} not in the cache (sent before the capture?)")
            if kind == "FROM_CACHE_LOSSLESS" and entry[1]:
                # the server asked for the lossless picture but only a lossy one was cached
                self.warnings["FROM_CACHE_LOSSLESS found a lossy (JPEG) picture"] += 1
            return entry
        if kind == "BITMAP":
            b = image["bitmap"]
            pal = self._palette(b)
            fmt = _fmt_number(b["format"])
            if pal is None and mask and fmt in _MASK_FMTS:
                pal = np.array([0, 0xFFFFFF], np.uint32)  # mask bits: 0 off, 1 on
            return dec.decode_bitmap(fmt, int(b["x"]), int(b["y"]), int(b["stride"]),
                                     bool(int(b["flags"]) & TOP_DOWN), b["data"], pal), False
        if kind == "QUIC":
            return dec.decode_quic(image["quic"]["data"]), False
        if kind == "LZ_RGB":
            return dec.decode_lz(image["lz_rgb"]["data"]), False
        if kind == "LZ_PLT":
            body = image["lz_plt"]
            return dec.decode_lz(body["data"], self._palette(body)), False
        if kind == "GLZ_RGB":
            self.used = True
            return self.glz.decode(image["lz_rgb"]["data"]), False
        if kind == "ZLIB_GLZ_RGB":
            body = image["zlib_glz"]
            self.used = True
            return self.glz.decode_zlib(body["data"], int(body["glz_data_size"])), False
        if kind == "LZ4":
            return dec.decode_lz4(image["lz4"]["data"], int(desc["width"]), int(desc["height"])), False
        if kind == "JPEG":
            return dec.decode_jpeg(image["jpeg"]["data"]), True
        if kind == "JPEG_ALPHA":
            body = image["jpeg_alpha"]
            return dec.decode_jpeg_alpha(body["data"], int(body["jpeg_size"]),
                                         bool(int(body["flags"]) & _JPEG_ALPHA_TOP_DOWN)), True
        if kind == "SURFACE":
            sid = int(image["surface"]["surface_id"])
            pixels = self.surface_pixels(sid)
            if pixels is None:
                raise dec.MissingReference(f"surface {sid} does not exist")
            return pixels.copy(), False
        raise dec.DecodeError(f"image type {kind} not supported")


_FMT_NUMBERS = by_schema_name(BitmapFmt)


def _fmt_number(fmt: Any) -> int:
    return fmt if isinstance(fmt, int) else _FMT_NUMBERS.get(str(fmt), 0)


def _first_words(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:80]
