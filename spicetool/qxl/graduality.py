"""How photo-like a picture is: spice-server's graduality level, measured our own way.

spice-server (spice-bitmap-utils) samples every 15th pixel of the picture in reading order
(starting mid first row, stepping back one where a sample would land on a row's last pixel)
and compares it with its right, lower and lower-right neighbours: a pair that differs by 60
or more in some colour is a contrast (+1), an identical pair +0.5, a small difference -0.25;
samples whose three pairs are all identical count 0. The mean over the pairs gives the level:
below -0.03 HIGH (smooth colour changes: QUIC's case), below 0.002 MEDIUM, else LOW (text,
flat UI: LZ's case). `auto_glz`/`auto_lz` send HIGH pictures as QUIC; streams count frames
that are not LOW as gradual.
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np

SAMPLE_JUMP = 15
CONTRAST = 60
SAME, CONTRASTED, SMOOTH = 0.5, 1.0, -0.25
HIGH_BELOW, MEDIUM_BELOW = -0.03, 0.002


class Graduality(IntEnum):
    LOW = 2
    MEDIUM = 3
    HIGH = 4


def _samples(width: int, height: int) -> np.ndarray:
    """Indices (row-major) of the sampled pixels."""
    jump = SAMPLE_JUMP if SAMPLE_JUMP % width else SAMPLE_JUMP - 1
    end = (height - 1) * width
    parts, pos = [], width // 2
    while pos < end:
        run = np.arange(pos, end, jump)
        at_edge = np.flatnonzero((run + 1) % width == 0)
        if not len(at_edge):
            parts.append(run)
            break
        k = at_edge[0]
        parts.append(run[:k])
        parts.append(run[k:k + 1] - 1)   # the sample moves one pixel left, and so do the next ones
        pos = int(run[k]) - 1 + jump
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def score(pixels: np.ndarray) -> float:
    """The mean pair score of (h, w, 3+) B,G,R pixels (1.0 for a single row or column)."""
    height, width = pixels.shape[:2]
    if width <= 1 or height <= 1:
        return 1.0
    flat = np.ascontiguousarray(pixels).reshape(height * width, -1)   # no copy when contiguous
    at = _samples(width, height)
    here = flat[at, :3].astype(np.int16)
    total = np.zeros(len(at))
    all_same = np.ones(len(at), dtype=bool)
    for offset in (1, width, width + 1):
        diff = np.abs(here - flat[at + offset, :3])
        contrast = (diff >= CONTRAST).any(axis=1)
        same = ~diff.any(axis=1)
        total += np.where(contrast, CONTRASTED, np.where(same, SAME, SMOOTH))
        all_same &= same
    total[all_same] = 0.0
    return float(total.sum() / (3 * len(at)))


def level(pixels: np.ndarray, memo: dict | None = None) -> Graduality:
    """The picture's level; kept in `memo` (a draw's `shared` dict) so that the stream
    detector and the auto codec choice measure one picture once."""
    if memo is not None and "graduality" in memo:
        return memo["graduality"]
    s = score(pixels)
    found = Graduality.HIGH if s < HIGH_BELOW else Graduality.MEDIUM if s < MEDIUM_BELOW else Graduality.LOW
    if memo is not None:
        memo["graduality"] = found
    return found
