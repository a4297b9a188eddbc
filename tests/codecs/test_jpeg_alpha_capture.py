"""JPEG_ALPHA with a real alpha plane, from a real spice-server (captures/img-jpeg-alpha.pcapng).

In that session scripts/argb_photo.py (a GTK3 window with an RGBA visual, no window manager) painted a
known premultiplied ARGB picture at a known place; spice-server sent it as JPEG_ALPHA: the colours as
JPEG (lossy), the alpha plane as LZ (lossless). So the decoded alpha must equal the painted alpha exactly
wherever an image covers the window, and the colours must be the painted ones within JPEG's error.
"""
from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from images_from_capture import CAPTURES, CapturedImage, decode, images
from PIL import Image

from spicetool import codecs as decoders
from spicetool.render import RenderStats, picture_at

JPEG_ALPHA = 108
CAPTURE = CAPTURES / "img-jpeg-alpha.pcapng"
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "argb_photo.py"

pytestmark = pytest.mark.skipif(not CAPTURE.exists(), reason="captures/img-jpeg-alpha.pcapng is missing")


@lru_cache(maxsize=None)
def painter():
    """scripts/argb_photo.py itself (its picture functions need only the standard library)."""
    spec = importlib.util.spec_from_file_location("argb_photo", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@lru_cache(maxsize=None)
def painted() -> np.ndarray:
    """What the program painted, (h, w, 4) B, G, R, A with premultiplied colours."""
    ap = painter()
    return np.frombuffer(ap.pixels(), np.uint8).reshape(ap.HEIGHT, ap.WIDTH, 4)


@lru_cache(maxsize=None)
def decoded() -> list[tuple[CapturedImage, np.ndarray]]:
    glz = decoders.GlzDictionary()
    return [(img, decode(img, glz)) for img in images(CAPTURE) if img.image_type == JPEG_ALPHA]


def window_box() -> tuple[int, int, int, int]:
    """top, left, bottom, right of the painted window on the screen."""
    ap = painter()
    return ap.Y, ap.X, ap.Y + ap.HEIGHT, ap.X + ap.WIDTH


def on_screen(img: CapturedImage, pixels: np.ndarray) -> np.ndarray:
    """The part of a decoded image that the draw put on the screen (its box)."""
    st, sl, sb, sr = img.src_area
    return pixels[st:sb, sl:sr]


def overlap(img: CapturedImage, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where a drawn image covers the window: (drawn pixels there, painted pixels there, mask of the
    image's box that is outside the window)."""
    top, left, bottom, right = img.box
    wt, wl, wb, wr = window_box()
    y0, y1, x0, x1 = max(top, wt), min(bottom, wb), max(left, wl), min(right, wr)
    assert y0 < y1 and x0 < x1, f"frame {img.frame}: image {img.box} is not over the window {window_box()}"
    drawn = on_screen(img, pixels)
    outside = np.ones(drawn.shape[:2], bool)
    outside[y0 - top:y1 - top, x0 - left:x1 - left] = False
    return drawn[y0 - top:y1 - top, x0 - left:x1 - left], painted()[y0 - wt:y1 - wt, x0 - wl:x1 - wl], outside


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def test_the_session_is_what_the_test_assumes() -> None:
    meta = json.loads(CAPTURE.with_suffix(".json").read_text())
    assert meta["server"]["image_compression"] == "auto_glz"
    assert meta["server"]["jpeg_wan_compression"] == "always"
    ap = painter()
    argv = next(p["argv"] for p in meta["desktop_programs"] if p["program"] == "argb-photo")
    assert argv.endswith(f"scripts/argb_photo.py --x {ap.X} --y {ap.Y}")


def test_every_jpeg_alpha_image_decodes() -> None:
    found = decoded()
    assert len(found) >= 1
    for img, pixels in found:
        assert pixels.shape == (img.height, img.width, 4), (img.frame, pixels.shape)
        assert img.payload["jpeg_size"] < img.payload["data_size"]  # an LZ alpha plane follows the JPEG


def test_the_whole_picture_arrives_as_one_jpeg_alpha() -> None:
    whole = [img for img, _ in decoded() if img.box == window_box()]
    assert len(whole) == 1, [img.box for img, _ in decoded()]
    assert (whole[0].width, whole[0].height) == (painter().WIDTH, painter().HEIGHT)


def test_alpha_plane_varies_and_is_the_painted_one() -> None:
    for img, pixels in decoded():
        drawn, expected, outside = overlap(img, pixels)
        assert len(np.unique(drawn[..., 3])) > 20, f"frame {img.frame}: alpha hardly varies"
        # the alpha went through lossless LZ: every byte is the painted one
        mismatch = int(np.count_nonzero(drawn[..., 3] != expected[..., 3]))
        assert mismatch == 0, f"frame {img.frame}: {mismatch} alpha bytes differ from the painted ones"
        # beside the window the image shows the root window (depth 24), whose alpha byte is 0
        assert not on_screen(img, pixels)[outside][..., 3].any()
    whole = next(pixels for img, pixels in decoded() if img.box == window_box())
    assert len(np.unique(whole[..., 3])) > 200  # the full ramp, 21 .. 255
    assert whole[..., 3].min() < 32 and whole[..., 3].max() == 255


def test_colours_are_the_painted_ones_within_jpeg_error() -> None:
    for img, pixels in decoded():
        drawn, expected, _ = overlap(img, pixels)
        assert psnr(drawn[..., :3], expected[..., :3]) >= 30.0, img.frame


def test_the_truth_shows_the_painted_colours() -> None:
    """xwd of the X screen: the window's premultiplied colours, exactly (a check of the truth itself)."""
    truth = np.asarray(Image.open(CAPTURE.with_suffix(".png")).convert("RGB"))
    top, left, bottom, right = window_box()
    np.testing.assert_array_equal(truth[top:bottom, left:right], painted()[..., 2::-1])


def test_render_last_against_the_truth() -> None:
    truth = np.asarray(Image.open(CAPTURE.with_suffix(".png")).convert("RGB"))
    stats = RenderStats()
    frame = picture_at(str(CAPTURE), None, stats=stats)
    assert frame is not None
    img = frame.image
    assert img.shape == truth.shape
    assert stats.placeholders == 0, dict(stats.warnings)
    assert stats.images.get("JPEG_ALPHA", 0) == len(decoded())
    assert psnr(img, truth) >= 35.0
    top, left, bottom, right = window_box()
    assert psnr(img[top:bottom, left:right], painted()[..., 2::-1]) >= 30.0
    # lossy only where JPEG_ALPHA images were drawn: everywhere else the picture is exact
    jpeg = np.zeros(truth.shape[:2], bool)
    for im, _ in decoded():
        t, l, b, r = im.box
        jpeg[t:b, l:r] = True
    assert not (img != truth).any(axis=2)[~jpeg].any()
