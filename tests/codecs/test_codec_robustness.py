"""Corrupt, truncated and hostile input: always a DecodeError with a reason, never a crash,
a hang or an allocation the caller did not allow."""
from __future__ import annotations

import struct
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from images_from_capture import CAPTURES, codec_bytes, images

from spicetool import codecs as decoders
from spicetool.codecs import DecodeError, ImageTooLarge, MissingReference

SEEDS = Path("/work/shared/data/quic-seeds")
SEED_SIZES = {"test1.quic": (59, 24), "test2.quic": (87, 17), "test3.quic": (87, 29), "test4.quic": (94, 82)}


def seed(name: str) -> bytes:
    path = SEEDS / name
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path.read_bytes()


@pytest.mark.parametrize("name", sorted(SEED_SIZES))
def test_quic_seeds_decode(name: str) -> None:
    arr = decoders.decode_quic(seed(name))
    w, h = SEED_SIZES[name]
    assert arr.shape == (h, w, 4)
    # random-looking seeds: every channel spans most of its range
    assert arr[..., :3].std() > 40


@pytest.mark.parametrize("name", sorted(SEED_SIZES))
def test_quic_seed_truncations_raise(name: str) -> None:
    data = seed(name)
    for cut in range(0, len(data) - 64, max(1, len(data) // 97)):
        with pytest.raises(DecodeError, match="quic"):
            decoders.decode_quic(data[:cut])


@given(st.data())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_quic_seed_bit_flips_never_crash(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(SEED_SIZES)))
    buf = bytearray(seed(name))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] ^= 1 << data.draw(st.integers(0, 7))
    try:
        arr = decoders.decode_quic(bytes(buf), max_pixels=1 << 20)
    except DecodeError as exc:
        assert str(exc)
    else:
        assert arr.ndim == 3 and arr.shape[2] == 4


@lru_cache(maxsize=None)
def real_streams(name: str, image_type: int) -> list[bytes]:
    for suffix in (".pcapng", ".pcap"):
        path = CAPTURES / (name + suffix)
        if path.exists():
            return [codec_bytes(i) for i in images(path) if i.image_type == image_type][:40]
    return []


@given(st.data())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_lz_and_lz4_never_crash(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["lz", "lz4"]))
    streams = real_streams("img-lz", 101) if kind == "lz" else real_streams("img-lz4", 109)
    if not streams:
        pytest.skip("no capture")
    buf = bytearray(data.draw(st.sampled_from(streams)))
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    try:
        if kind == "lz":
            decoders.decode_lz(bytes(buf[:cut]), max_pixels=1 << 22)
        else:
            decoders.decode_lz4(bytes(buf[:cut]), 64, 64, max_pixels=1 << 22)
    except DecodeError as exc:
        assert str(exc)


def test_huge_declared_sizes_are_refused_before_allocating() -> None:
    quic = struct.pack("<5I", 0x43495551, 0, 4, 100_000, 100_000) + bytes(64)
    with pytest.raises(ImageTooLarge, match="100000x100000"):
        decoders.decode_quic(quic)
    lz = struct.pack(">7I", 0x20205A4C, 0x00010001, 8, 65536, 65536, 65536 * 4, 1) + bytes(8)
    with pytest.raises(ImageTooLarge):
        decoders.decode_lz(lz)
    with pytest.raises(ImageTooLarge):
        decoders.decode_lz4(b"\x01\x08", 1 << 20, 1 << 20)
    with pytest.raises(ImageTooLarge):
        decoders.decode_bitmap(8, 1000, 1000, 4000, True, b"", max_pixels=999_999)


def test_errors_say_what_and_where() -> None:
    with pytest.raises(DecodeError, match=r"quic: bad magic .* \(at byte 0\)"):
        decoders.decode_quic(b"XXXX" + bytes(40))
    lz = struct.pack(">7I", 0x20205A4C, 0x00010001, 8, 4, 1, 16, 1) + bytes([0x60, 0x00])
    with pytest.raises(DecodeError, match="reaches 1 pixels back from pixel 0"):
        decoders.decode_lz(lz)
    with pytest.raises(DecodeError, match="not allowed with LZ4"):
        decoders.decode_lz4(b"\x01\x05", 1, 1)
    with pytest.raises(DecodeError, match="palette"):
        decoders.decode_bitmap(5, 1, 1, 1, True, b"\x09", palette=[0, 1])
    assert issubclass(DecodeError, ValueError)


def test_glz_capture_started_mid_session_raises_missing_reference() -> None:
    streams = real_streams("img-glz", 102)
    if not streams:
        pytest.skip("no capture")
    late = decoders.GlzDictionary()
    outcomes = []
    for data in streams[5:]:
        try:
            late.decode(data)
            outcomes.append("ok")
        except MissingReference as exc:
            assert "not in the window" in str(exc)
            outcomes.append("missing")
    assert "missing" in outcomes


def test_glz_window_memory_is_bounded() -> None:
    streams = real_streams("img-glz", 102)
    if not streams:
        pytest.skip("no capture")
    small = decoders.GlzDictionary(max_bytes=64 << 10)
    for data in streams:
        try:
            small.decode(data)
        except MissingReference:
            pass
        # one image may exceed the bound alone; otherwise the window stays under it
        assert small.nbytes <= 64 << 10 or len(small) == 1
    full = decoders.GlzDictionary()
    for data in streams:
        full.decode(data)
    # this server's win_head_dist always reaches back to image 0, so nothing is released
    assert full.ids() == list(range(len(streams)))
    assert full.nbytes == sum(4 * int.from_bytes(s[9:13], "big") * int.from_bytes(s[13:17], "big")
                              for s in streams)


def test_zlib_glz_size_mismatch_is_an_error() -> None:
    import zlib
    glz = decoders.GlzDictionary()
    with pytest.raises(DecodeError, match="glz_data_size says 10"):
        glz.decode_zlib(zlib.compress(bytes(100)), 10)
    with pytest.raises(DecodeError, match="inflate failed"):
        glz.decode_zlib(b"not zlib at all", 10)
