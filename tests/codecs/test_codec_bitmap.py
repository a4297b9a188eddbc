"""BITMAP in every SpiceBitmapFmt and LZ_PLT, against a plain numpy reading of the format."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from spicetool import codecs as d
from spicetool.codecs import BitmapFormat as F

BITS = {F.ONE_BIT_LE: 1, F.ONE_BIT_BE: 1, F.FOUR_BIT_LE: 4, F.FOUR_BIT_BE: 4, F.EIGHT_BIT: 8}


def indices_of(fmt: int, rows: np.ndarray, width: int) -> np.ndarray:
    """Palette indices of packed rows, read the way the format says."""
    if fmt == F.EIGHT_BIT:
        return rows[:, :width].astype(int)
    if fmt in (F.FOUR_BIT_LE, F.FOUR_BIT_BE):
        hi, lo = rows >> 4, rows & 15
        first, second = (lo, hi) if fmt == F.FOUR_BIT_LE else (hi, lo)
        return np.stack([first, second], axis=2).reshape(rows.shape[0], -1)[:, :width].astype(int)
    order = "little" if fmt == F.ONE_BIT_LE else "big"
    return np.unpackbits(rows, axis=1, bitorder=order)[:, :width].astype(int)


def palette_bgra(palette: np.ndarray) -> np.ndarray:
    p = palette.astype("<u4").view(np.uint8).reshape(-1, 4).copy()
    p[:, 3] = 255
    return p


@given(st.sampled_from(sorted(BITS)), st.integers(1, 40), st.integers(1, 12), st.integers(0, 3),
       st.booleans(), st.data())
@settings(max_examples=200, deadline=None)
def test_palette_bitmaps(fmt: int, width: int, height: int, pad: int, top_down: bool, data: st.DataObject) -> None:
    stride = (width * BITS[fmt] + 7) // 8 + pad
    rows = data.draw(arrays(np.uint8, (height, stride)))
    n = 1 << BITS[fmt]
    palette = data.draw(arrays(np.uint32, n, elements=st.integers(0, 0xFFFFFF)))
    out = d.decode_bitmap(fmt, width, height, stride, top_down, rows.tobytes(), palette)
    expect = palette_bgra(palette)[indices_of(fmt, rows, width)]
    np.testing.assert_array_equal(out, expect if top_down else expect[::-1])


@given(st.integers(1, 30), st.integers(1, 10), st.integers(0, 5), st.booleans(), st.data())
@settings(max_examples=200, deadline=None)
def test_direct_colour_bitmaps(width: int, height: int, pad: int, top_down: bool, data: st.DataObject) -> None:
    fmt = data.draw(st.sampled_from([F.SIXTEEN_BIT, F.TWENTY_FOUR_BIT, F.THIRTY_TWO_BIT, F.RGBA, F.EIGHT_BIT_A]))
    bpp = {F.SIXTEEN_BIT: 2, F.TWENTY_FOUR_BIT: 3, F.THIRTY_TWO_BIT: 4, F.RGBA: 4, F.EIGHT_BIT_A: 1}[fmt]
    stride = width * bpp + pad
    rows = data.draw(arrays(np.uint8, (height, stride)))
    out = d.decode_bitmap(fmt, width, height, stride, top_down, rows.tobytes())
    px = rows[:, :width * bpp].reshape(height, width, bpp)
    expect = np.zeros((height, width, 4), np.uint8)
    if fmt == F.SIXTEEN_BIT:
        v = px[..., 0].astype(np.uint16) | (px[..., 1].astype(np.uint16) << 8)
        for i, shift in enumerate((0, 5, 10)):  # b, g, r
            c = ((v >> shift) & 31).astype(np.uint8)
            expect[..., i] = (c << 3) | (c >> 2)
        expect[..., 3] = 255
    elif fmt == F.EIGHT_BIT_A:
        expect[..., 3] = px[..., 0]
    else:
        expect[..., :3] = px[..., :3]
        expect[..., 3] = px[..., 3] if fmt == F.RGBA else 255
    np.testing.assert_array_equal(out, expect if top_down else expect[::-1])


def lz_plt_stream(kind: int, width: int, height: int, stride: int, body: bytes) -> bytes:
    return struct.pack(">7I", 0x20205A4C, 0x00010001, kind, width, height, stride, 1) + body


def test_lz_plt_literals_and_scaled_matches() -> None:
    # PLT4_BE, 6 pixels wide, stride 3 bytes, 2 rows: row 0 literal bytes, row 1 a match of
    # 3 bytes (length field 1 + bias 2) one row (3 bytes) back: the distance counts bytes
    body = bytes([2, 0x01, 0x23, 0x45]) + bytes([1 << 5, 2])
    palette = np.array([0x000000, 0x0000FF, 0x00FF00, 0xFF0000, 0xFFFFFF, 0x123456], np.uint32)
    out = d.decode_lz(lz_plt_stream(4, 6, 2, 3, body), palette)
    idx = np.array([0, 1, 2, 3, 4, 5])
    expect = palette_bgra(palette)[idx]
    np.testing.assert_array_equal(out[0], expect)
    np.testing.assert_array_equal(out[1], expect)
    with pytest.raises(d.DecodeError, match="palette"):
        d.decode_lz(lz_plt_stream(4, 6, 2, 3, body))


def test_lz_plt1_bit_order() -> None:
    body = bytes([0, 0b10000001])
    palette = np.array([0x000000, 0xFFFFFF], np.uint32)
    le = d.decode_lz(lz_plt_stream(1, 8, 1, 1, body), palette)[0, :, 0]
    be = d.decode_lz(lz_plt_stream(2, 8, 1, 1, body), palette)[0, :, 0]
    assert list(le) == [255, 0, 0, 0, 0, 0, 0, 255] == list(be)
    body = bytes([0, 0b00000001])
    assert d.decode_lz(lz_plt_stream(1, 8, 1, 1, body), palette)[0, 0, 0] == 255
    assert d.decode_lz(lz_plt_stream(2, 8, 1, 1, body), palette)[0, 7, 0] == 255
