"""A video ends on the capture's final screen.

Pictures are taken at fixed ticks; draws after the last tick before the capture's end (a
prompt typed, a last band of a photo) used to be in no frame at all: the video's last frame
was an older screen than `render --last`. The corpus sessions below all end with draws
between two ticks at 4 fps.
"""
from __future__ import annotations

import numpy as np
import pytest

from spicetool.render import frames, picture_at

from .corpus import capture_path, sessions

ENDING_BETWEEN_TICKS = ["typing", "img-glz", "hd-1080", "two-heads", "mjpeg-stream", "long-desktop"]


@pytest.mark.parametrize("name", [n for n in ENDING_BETWEEN_TICKS if n in sessions()])
def test_the_last_frame_is_the_final_screen(name: str) -> None:
    cap = str(capture_path(name))
    shown = list(frames(cap, 4.0))
    final = picture_at(cap, None)
    last = shown[-1]
    assert last.time >= final.time  # the extra frame comes at the next tick, never before the draw
    assert np.array_equal(last.image, final.image)
    # and it is one frame, not a run of repeats: the frame before it shows an older screen
    assert not np.array_equal(shown[-2].image, final.image)
