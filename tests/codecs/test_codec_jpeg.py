"""JPEG through our native decoder agrees with libjpeg (Pillow) on real MJPEG frames;
JPEG_ALPHA puts the LZ alpha plane on the JPEG colours, in the right row order."""
from __future__ import annotations

import io

import numpy as np
import pytest
from images_from_capture import CAPTURES, mjpeg_frames
from PIL import Image

from spicetool import codecs as d


def pillow_bgra(jpeg: bytes) -> np.ndarray:
    rgb = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    out = np.full(rgb.shape[:2] + (4,), 255, np.uint8)
    out[..., :3] = rgb[..., ::-1]
    return out


def test_mjpeg_frames_match_libjpeg() -> None:
    path = CAPTURES / "mjpeg-stream.pcapng"
    if not path.exists():
        pytest.skip("captures/mjpeg-stream.pcapng is missing")
    frames = mjpeg_frames(path)
    assert len(frames) >= 50
    for frame in frames[::5]:
        ours, ref = d.decode_jpeg(frame), pillow_bgra(frame)
        assert ours.shape == ref.shape
        diff = np.abs(ours.astype(int) - ref.astype(int))
        # different IDCT/upsampling rounding, never a different picture
        assert diff.mean() < 1.0 and diff.max() <= 40, (diff.mean(), diff.max())


def test_corrupt_jpeg_is_a_decode_error() -> None:
    path = CAPTURES / "mjpeg-stream.pcapng"
    if not path.exists():
        pytest.skip("captures/mjpeg-stream.pcapng is missing")
    frame = mjpeg_frames(path)[0]
    for bad in (frame[:20], b"\xff\xd8\xff" + bytes(50), b""):
        with pytest.raises(d.DecodeError, match="jpeg"):
            d.decode_jpeg(bad)


@pytest.mark.parametrize("top_down", [True, False])
def test_jpeg_alpha(top_down: bool) -> None:
    rng = np.random.default_rng(5)
    h, w = 40, 56
    colour = np.zeros((h, w, 3), np.uint8)
    colour[:, :, 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    colour[:, :, 2] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    buf = io.BytesIO()
    Image.fromarray(colour).save(buf, "JPEG", quality=90)
    jpeg = buf.getvalue()
    alpha = np.zeros((h, w, 4), np.uint8)
    alpha[..., 3] = rng.integers(0, 256, (h, w), dtype=np.uint8)
    alpha[: h // 2, :, 3] = 7  # a flat top half: runs in the LZ stream
    # the server writes the alpha rows bottom-up unless the image is top-down
    plane = alpha if top_down else alpha[::-1]
    lz = bytearray(d.encode_lz(np.ascontiguousarray(plane), d.LzKind.XXXA))
    lz[24:28] = int(top_down).to_bytes(4, "big")
    out = d.decode_jpeg_alpha(jpeg + bytes(lz), len(jpeg), top_down)
    np.testing.assert_array_equal(out[..., 3], alpha[..., 3])
    assert np.abs(out[..., :3].astype(int) - pillow_bgra(jpeg)[..., :3]).mean() < 1.0
    with pytest.raises(d.DecodeError, match="top_down"):
        d.decode_jpeg_alpha(jpeg + bytes(lz), len(jpeg), not top_down)
