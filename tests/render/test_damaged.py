"""Damaged captures: bytes of a real session overwritten at random. Rendering goes on, with
placeholders and warnings, and never raises anything but the capture reader's one-line errors."""
from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spicetool.capture import CaptureFailure, open_records
from spicetool.render import RenderStats, frames, picture_at
from spicetool.render.sizing import largest_picture
from spicetool.render.surfaces import MAX_SURFACE_PIXELS

from .corpus import capture_path, sessions


def _data(name: str) -> bytes:
    if name not in sessions():
        pytest.skip(f"{name} not in the corpus")
    return capture_path(name).read_bytes()


@pytest.mark.parametrize("name", ["img-lz", "img-glz", "mjpeg-stream", "resize", "two-heads"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), min_size=1, max_size=60))
def test_overwritten_bytes(name: str, edits: list[tuple[float, int]]) -> None:
    buf = bytearray(_data(name))
    for where, value in edits:
        buf[2048 + int(where * (len(buf) - 2049))] = value  # past the file headers
    stats = RenderStats()
    try:
        picture_at(open_records(io.BytesIO(bytes(buf)), name=name), None, stats=stats)
    except CaptureFailure:
        pass
    try:  # the video's size: never more than a surface the canvas would take
        size = largest_picture(open_records(io.BytesIO(bytes(buf)), name=name))
    except CaptureFailure:
        size = None
    assert size is None or (size[0] > 0 and size[1] > 0 and size[0] * size[1] <= MAX_SURFACE_PIXELS)


def test_a_damaged_image_is_counted_and_the_rest_renders() -> None:
    data = bytearray(_data("img-lz"))
    # the largest LZ stream's magic: where the full-screen image starts
    at = data.find(bytes.fromhex("20205a4c"), len(data) // 10)
    assert at > 0
    data[at + 200:at + 400] = bytes(200)
    stats = RenderStats()
    pics = list(frames(open_records(io.BytesIO(bytes(data)), name="damaged"), fps=1, stats=stats))
    assert pics and stats.placeholders >= 1
    assert any("undecodable" in w for w in stats.warnings)
