"""Our graduality measure makes spice-server's choice: in captures made with auto_glz and
auto_lz, the server sent an image as QUIC exactly when our level of its pixels is HIGH."""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from spicetool import codecs as decoders
from spicetool.qxl.graduality import Graduality, _samples, level, score
from spicetool.qxl.images import codec_for

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "codecs"))
from images_from_capture import decode, images  # noqa: E402

QUIC = 1


@pytest.mark.parametrize("name", ["img-auto-glz.pcapng", "img-auto-lz.pcap"])
def test_quic_exactly_for_the_pictures_spice_server_found_photo_like(name):
    path = ROOT / "captures" / name
    glz = decoders.GlzDictionary()
    seen: Counter = Counter()
    for im in images(path):
        pixels = decode(im, glz)
        if im.width * im.height < 54:   # sent as they are
            continue
        high = level(pixels) == Graduality.HIGH
        assert (im.image_type == QUIC) == high, (im.frame, im.image_type, score(pixels))
        setting = "auto_glz" if "glz" in name else "auto_lz"
        assert codec_for(pixels, setting) == ("quic" if high else setting[5:])
        seen[high] += 1
    assert seen[True] >= 1 and seen[False] >= 20, seen


def test_sampling_steps_back_from_the_last_column():
    for width in range(2, 40):
        for height in range(2, 20):
            at, pos, want = _samples(width, height), width // 2, []
            jump = 15 if 15 % width else 14
            while pos < (height - 1) * width:
                pos -= (pos + 1) % width == 0
                want.append(pos)
                pos += jump
            assert list(at) == want, (width, height)


def test_levels_of_plain_pictures():
    rng = np.random.default_rng(1)
    ramp = np.clip(np.linspace(0, 255, 320)[None, :, None] + rng.normal(0, 4, (200, 320, 4)), 0, 255)
    assert level(ramp.astype(np.uint8)) == Graduality.HIGH
    flat = np.full((200, 320, 4), 240, np.uint8)
    flat[50:60] = 0   # a black bar: contrast at its edges, nothing smooth
    assert level(flat) == Graduality.LOW
    assert score(np.zeros((1, 50, 4), np.uint8)) == 1.0
