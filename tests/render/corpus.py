"""The shipped corpus as the render tests see it: capture, ground truth and settings per session."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

CAPTURES = Path(__file__).resolve().parents[2] / "captures"


def sessions() -> list[str]:
    """Names of the sessions that have a capture and a ground-truth PNG."""
    names = []
    for png in sorted(CAPTURES.glob("*.png")):
        if capture_path(png.stem) is not None:
            names.append(png.stem)
    return names


def capture_path(name: str) -> Path | None:
    for ext in (".pcapng", ".pcap"):
        p = CAPTURES / f"{name}{ext}"
        if p.exists():
            return p
    return None


@lru_cache(maxsize=None)
def settings(name: str) -> dict:
    p = CAPTURES / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else {}


def truth(name: str) -> np.ndarray:
    return np.asarray(Image.open(CAPTURES / f"{name}.png").convert("RGB"))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def differing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a != b).any(axis=2)

