"""SPICE image decoders: codec bytes in, pixels out.

Every decoder returns a numpy array of shape (height, width, 4), dtype uint8, rows top-down,
channels in **B, G, R, A** order: the little-endian 32-bit xRGB/ARGB word of a SPICE surface,
so a 32BIT bitmap pixel's B, G, R bytes go straight in. Formats without alpha get A = 255.

The work is done by the Rust extension ``spicetool._native`` with the GIL released. Bad input
raises :class:`DecodeError` (a ``ValueError``) naming the codec, the problem and the byte
offset; an image larger than ``max_pixels`` raises :class:`ImageTooLarge` before anything is
allocated; a GLZ image whose dictionary reference is not held raises :class:`MissingReference`.
"""
from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np

from spicetool import _native
from spicetool.stack.enums import BitmapFmt

__all__ = [
    "DecodeError", "MissingReference", "ImageTooLarge", "DEFAULT_MAX_PIXELS", "BitmapFormat",
    "decode_bitmap", "decode_quic", "decode_lz", "decode_lz4", "decode_jpeg", "decode_jpeg_alpha",
    "GlzDictionary", "QuicKind", "LzKind", "encode_quic", "encode_lz", "encode_lz4", "GlzEncoder",
    "available_encoders",
]

DecodeError = _native.DecodeError
MissingReference = _native.MissingReference
ImageTooLarge = _native.ImageTooLarge
for _exc in (DecodeError, MissingReference, ImageTooLarge):
    _exc.__module__ = __name__  # tracebacks name the public module
del _exc

#: Default ceiling on width x height of any one image (64 Mpx, 256 MiB of output).
DEFAULT_MAX_PIXELS: int = int(_native.DEFAULT_MAX_PIXELS)


class BitmapFormat:
    """SpiceBitmapFmt numbers."""

    ONE_BIT_LE = int(BitmapFmt.FMT_1BIT_LE)
    ONE_BIT_BE = int(BitmapFmt.FMT_1BIT_BE)
    FOUR_BIT_LE = int(BitmapFmt.FMT_4BIT_LE)
    FOUR_BIT_BE = int(BitmapFmt.FMT_4BIT_BE)
    EIGHT_BIT = int(BitmapFmt.FMT_8BIT)
    SIXTEEN_BIT = int(BitmapFmt.FMT_16BIT)  # x555
    TWENTY_FOUR_BIT = int(BitmapFmt.FMT_24BIT)  # b, g, r bytes
    THIRTY_TWO_BIT = int(BitmapFmt.FMT_32BIT)  # xRGB little-endian
    RGBA = int(BitmapFmt.RGBA)  # ARGB little-endian
    EIGHT_BIT_A = int(BitmapFmt.FMT_8BIT_A)  # alpha only


def _palette_bytes(palette: np.ndarray | Sequence[int] | None) -> bytes | None:
    """Palette entries (0x00RRGGBB ints) as little-endian u32 bytes for the native side."""
    if palette is None:
        return None
    arr = np.asarray(palette)
    if arr.ndim != 1:
        raise DecodeError(f"palette must be one-dimensional, got shape {arr.shape}")
    return arr.astype("<u4", copy=False).tobytes()


def _array(decoded: tuple[int, int, np.ndarray]) -> np.ndarray:
    width, height, words = decoded
    # little-endian 0xAARRGGBB words are B, G, R, A bytes in memory
    return words.astype("<u4", copy=False).view(np.uint8).reshape(height, width, 4)


def _bytes(data: bytes | bytearray | memoryview) -> bytes:
    return data if isinstance(data, bytes) else bytes(data)


def decode_bitmap(fmt: int, width: int, height: int, stride: int, top_down: bool, data: bytes,
                  palette: np.ndarray | Sequence[int] | None = None,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An uncompressed BITMAP image; rows are bottom-up unless ``top_down``."""
    if min(width, height, stride) < 0:
        raise DecodeError(f"bitmap: negative size {width}x{height} stride {stride}")
    return _array(_native.decode_bitmap(fmt, width, height, stride, bool(top_down), _bytes(data),
                                        _palette_bytes(palette), max_pixels))


def decode_quic(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A QUIC stream (GRAY, RGB16, RGB24, RGB32 or RGBA)."""
    return _array(_native.decode_quic(_bytes(data), max_pixels))


def decode_lz(data: bytes, palette: np.ndarray | Sequence[int] | None = None,
              max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An LZ stream: LZ_RGB (RGB16/24/32, RGBA, XXXA, A8) or LZ_PLT (needs ``palette``)."""
    return _array(_native.decode_lz(_bytes(data), _palette_bytes(palette), max_pixels))


def decode_lz4(data: bytes, width: int, height: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An LZ4 image body (top_down, format, then BE-length-prefixed blocks) of the descriptor's size."""
    if width < 0 or height < 0:
        raise DecodeError(f"lz4: negative size {width}x{height}")
    return _array(_native.decode_lz4(_bytes(data), width, height, max_pixels))


def decode_jpeg(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A JPEG image (the body of a JPEG image or one MJPEG stream frame), opaque."""
    return _array(_native.decode_jpeg(_bytes(data), max_pixels))


def decode_jpeg_alpha(data: bytes, jpeg_size: int, top_down: bool,
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """JPEG_ALPHA data: ``jpeg_size`` bytes of JPEG, then the alpha plane as LZ XXXA."""
    if jpeg_size < 0:
        raise DecodeError(f"jpeg_alpha: negative jpeg_size {jpeg_size}")
    return _array(_native.decode_jpeg_alpha(_bytes(data), jpeg_size, bool(top_down), max_pixels))


class GlzDictionary:
    """The GLZ window of one display channel.

    Feed it the GLZ_RGB and ZLIB_GLZ_RGB images of one channel in arrival order. It keeps each
    decoded image for later references, releases those the server's ``win_head_dist`` says are
    done with and, whatever the stream says, never holds more than ``max_bytes`` of pixels
    (the oldest go first; a later reference to one raises :class:`MissingReference`).
    """

    def __init__(self, max_bytes: int = 256 << 20, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self._window = _native.GlzWindow(max_bytes, max_pixels)
        self.max_pixels = max_pixels

    def decode(self, data: bytes, palette: np.ndarray | Sequence[int] | None = None) -> np.ndarray:
        """Decode one GLZ stream and add it to the window."""
        return _array(self._window.decode(_bytes(data), _palette_bytes(palette)))

    def decode_zlib(self, data: bytes, glz_size: int,
                    palette: np.ndarray | Sequence[int] | None = None) -> np.ndarray:
        """ZLIB_GLZ_RGB: inflate ``data`` (exactly ``glz_size`` bytes expected), then decode as GLZ."""
        if glz_size < 0:
            raise DecodeError(f"zlib_glz: negative glz_data_size {glz_size}")
        # the declared size bounds the inflated output; anything beyond is an error, not memory
        inflater = zlib.decompressobj()
        try:
            glz = inflater.decompress(_bytes(data), glz_size + 1)
        except zlib.error as exc:
            raise DecodeError(f"zlib_glz: inflate failed: {exc}") from None
        if len(glz) != glz_size:
            raise DecodeError(f"zlib_glz: inflated to {len(glz)}{'+' if len(glz) > glz_size else ''} bytes,"
                              f" glz_data_size says {glz_size}")
        return self.decode(glz, palette)

    def ids(self) -> list[int]:
        """Ids of the images held, oldest first."""
        return list(self._window.ids())

    @property
    def nbytes(self) -> int:
        """Bytes of pixels held."""
        return int(self._window.nbytes)

    def clear(self) -> None:
        """Forget every image (display channel reset, new session)."""
        self._window.clear()

    def __len__(self) -> int:
        return len(self._window)


# ---------------------------------------------------------------------------------------
# Encoders (for our own server). They take the same H x W x 4 B,G,R,A uint8 arrays the
# decoders return; decode(encode(img)) == img for every lossless kind.


class QuicKind:
    """QuicImageType numbers."""

    GRAY = 1  # takes the B byte
    RGB16 = 2  # keeps the top 5 bits of each colour
    RGB24 = 3
    RGB32 = 4
    RGBA = 5


class LzKind:
    """LzImageType numbers our encoders write."""

    RGB16 = 6
    RGB24 = 7
    RGB32 = 8
    RGBA = 9
    XXXA = 10  # alpha only
    A8 = 11


# codec name -> the native entry point behind its encoder
_ENCODERS = {"quic": "encode_quic", "lz": "encode_lz", "lz4": "encode_lz4", "glz": "GlzEncoder"}


def available_encoders() -> frozenset[str]:
    """The codecs this build of the extension can encode: of "quic", "lz", "lz4", "glz"."""
    return frozenset(name for name, entry in _ENCODERS.items() if hasattr(_native, entry))


def _checked(img: np.ndarray) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 4 or arr.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 4 uint8 B,G,R,A array, got {arr.dtype} {arr.shape}")
    return np.ascontiguousarray(arr)


def _pixels(img: np.ndarray) -> tuple[np.ndarray, int, int]:
    # the extension reads the contiguous array in place (no copy)
    arr = _checked(img)
    height, width = arr.shape[:2]
    return arr, width, height


def encode_quic(img: np.ndarray, kind: int = QuicKind.RGB32) -> bytes:
    """A QUIC stream of ``img`` (the bytes after an image's data_size field)."""
    data, width, height = _pixels(img)
    return _native.encode_quic(data, width, height, kind)


def encode_lz(img: np.ndarray, kind: int = LzKind.RGB32) -> bytes:
    """An LZ_RGB stream of ``img``, rows top-down."""
    data, width, height = _pixels(img)
    return _native.encode_lz(data, width, height, kind)


# bitmap format -> (bytes per pixel, how a B,G,R,A array is packed into it)
def _pack_rows(img: np.ndarray, fmt: int) -> np.ndarray:
    # a contiguous uint8 array of the packed rows, which the extension reads in place
    arr = _checked(img)
    if fmt in (BitmapFormat.THIRTY_TWO_BIT, BitmapFormat.RGBA):
        return arr
    if fmt == BitmapFormat.TWENTY_FOUR_BIT:
        return np.ascontiguousarray(arr[..., :3])
    if fmt == BitmapFormat.SIXTEEN_BIT:
        b, g, r = (arr[..., i].astype(np.uint16) >> 3 for i in range(3))
        return ((r << 10) | (g << 5) | b).astype("<u2").view(np.uint8)
    raise ValueError(f"bitmap format {fmt} cannot be sent as LZ4")


def encode_lz4(img: np.ndarray, fmt: int = BitmapFormat.THIRTY_TWO_BIT) -> bytes:
    """SPICE LZ4 image data (top_down, format, BE-length-prefixed blocks) of ``img``."""
    return _native.encode_lz4(_pack_rows(img, fmt), fmt)


class GlzEncoder:
    """The GLZ encoder of one display channel: numbers images from 0 and lets each match
    into any image it sent that is still in its window: the last ``max_images`` of them, and
    no more than 4 Mi pixels of them (spice-server's window reaches back over a hundred
    images of a session: small repeated pictures are references, not pixels again)."""

    def __init__(self, max_images: int = 1024) -> None:
        if max_images < 0:
            raise ValueError("max_images must not be negative")
        self._encoder = _native.GlzEncoder(max_images)

    def encode(self, img: np.ndarray, kind: int = LzKind.RGB32) -> bytes:
        """A GLZ_RGB stream of ``img`` (RGB16, RGB24, RGB32 or RGBA)."""
        data, width, height = _pixels(img)
        return self._encoder.encode(data, width, height, kind)
