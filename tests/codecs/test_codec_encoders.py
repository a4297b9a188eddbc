"""Encoders: decode(encode(img)) == img (hypothesis), and our QUIC is spice-server's QUIC."""
from __future__ import annotations

import struct
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from images_from_capture import CAPTURES, codec_bytes, images

from spicetool import codecs as d
from spicetool.codecs import BitmapFormat, LzKind, QuicKind


@st.composite
def images_bgra(draw: st.DrawFn, max_side: int = 48) -> np.ndarray:
    """Pictures with flat areas, repeats and noise: what runs, matches and codes all meet."""
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    style = draw(st.sampled_from(["noise", "flat", "stripes", "mixed"]))
    if style == "noise":
        return draw(arrays(np.uint8, (h, w, 4)))
    colours = draw(arrays(np.uint8, (4, 4)))
    if style == "flat":
        return np.broadcast_to(colours[0], (h, w, 4)).copy()
    idx = (np.arange(w)[None, :] // draw(st.integers(1, 5)) + np.arange(h)[:, None]) % 4
    img = colours[idx]
    if style == "mixed":
        noise = draw(arrays(np.uint8, (h, w, 4)))
        mask = draw(arrays(np.bool_, (h, w)))
        img[mask] = noise[mask]
    return img


def opaque(img: np.ndarray) -> np.ndarray:
    out = img.copy()
    out[..., 3] = 255
    return out


def top5(img: np.ndarray) -> np.ndarray:
    """What x555 keeps of each colour, expanded back to 8 bits."""
    out = opaque(img)
    c = out[..., :3] >> 3
    out[..., :3] = (c << 3) | (c >> 2)
    return out


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@given(images_bgra(), st.sampled_from([QuicKind.RGB32, QuicKind.RGB24, QuicKind.RGBA, QuicKind.RGB16, QuicKind.GRAY]))
@SETTINGS
def test_quic_round_trip(img: np.ndarray, kind: int) -> None:
    out = d.decode_quic(d.encode_quic(img, kind))
    if kind == QuicKind.RGBA:
        expect = img
    elif kind == QuicKind.RGB16:
        expect = top5(img)
    elif kind == QuicKind.GRAY:
        expect = opaque(np.repeat(img[..., :1], 4, axis=2))
    else:
        expect = opaque(img)
    np.testing.assert_array_equal(out, expect)


@given(images_bgra(), st.sampled_from([LzKind.RGB32, LzKind.RGB24, LzKind.RGBA, LzKind.RGB16, LzKind.XXXA]))
@SETTINGS
def test_lz_round_trip(img: np.ndarray, kind: int) -> None:
    out = d.decode_lz(d.encode_lz(img, kind))
    if kind == LzKind.RGBA:
        expect = img
    elif kind == LzKind.RGB16:
        expect = top5(img)
    elif kind == LzKind.XXXA:
        expect = np.zeros_like(img)
        expect[..., 3] = img[..., 3]
    else:
        expect = opaque(img)
    np.testing.assert_array_equal(out, expect)


@given(images_bgra(), st.sampled_from([BitmapFormat.THIRTY_TWO_BIT, BitmapFormat.RGBA,
                                      BitmapFormat.TWENTY_FOUR_BIT, BitmapFormat.SIXTEEN_BIT]))
@SETTINGS
def test_lz4_round_trip(img: np.ndarray, fmt: int) -> None:
    h, w = img.shape[:2]
    out = d.decode_lz4(d.encode_lz4(img, fmt), w, h)
    expect = img if fmt == BitmapFormat.RGBA else top5(img) if fmt == BitmapFormat.SIXTEEN_BIT else opaque(img)
    np.testing.assert_array_equal(out, expect)


@given(st.lists(images_bgra(max_side=32), min_size=1, max_size=6), st.data())
@SETTINGS
def test_glz_round_trip_across_images(imgs: list[np.ndarray], data: st.DataObject) -> None:
    # repeat earlier pictures so that matches into older images happen
    seq = imgs + [imgs[data.draw(st.integers(0, len(imgs) - 1))] for _ in range(3)]
    enc, dec = d.GlzEncoder(max_images=4), d.GlzDictionary()
    for img in seq:
        kind = data.draw(st.sampled_from([LzKind.RGB32, LzKind.RGBA]))
        out = dec.decode(enc.encode(img, kind))
        np.testing.assert_array_equal(out, img if kind == LzKind.RGBA else opaque(img))


def test_glz_matches_into_earlier_images() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
    enc = d.GlzEncoder()
    first, second = enc.encode(img), enc.encode(img)
    assert len(second) < len(first) // 20  # the repeat is a reference, not the pixels again
    dec = d.GlzDictionary()
    dec.decode(first)
    np.testing.assert_array_equal(dec.decode(second), opaque(img))
    with pytest.raises(d.MissingReference):
        d.GlzDictionary().decode(second)


@lru_cache(maxsize=None)
def server_quic_streams() -> list[bytes]:
    for suffix in (".pcapng", ".pcap"):
        path = CAPTURES / ("img-quic" + suffix)
        if path.exists():
            return [codec_bytes(i) for i in images(path) if i.image_type == 1]
    pytest.skip("captures/img-quic is missing")


def test_quic_encoder_writes_what_spice_server_writes() -> None:
    """Re-encoding each decoded server image gives the server's stream, byte for byte."""
    streams = server_quic_streams()
    assert len(streams) >= 20
    for stream in streams:
        kind = struct.unpack_from("<I", stream, 8)[0]
        assert d.encode_quic(d.decode_quic(stream), kind) == stream


def test_encoders_refuse_bad_arrays() -> None:
    with pytest.raises(ValueError):
        d.encode_quic(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError):
        d.encode_lz(np.zeros((4, 4, 4), np.uint8), kind=1)  # palette kinds are not encoded
