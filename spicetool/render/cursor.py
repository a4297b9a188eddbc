"""Drawing the pointer over a frame (the cursor channel's state is stack/cursor.py)."""
from __future__ import annotations

import numpy as np

from spicetool.stack.cursor import CursorState


def draw_cursor(frame: np.ndarray, cursor: CursorState, origin_x: int = 0, origin_y: int = 0) -> None:
    """Put the pointer on an RGB frame in place (origin: where the frame sits on the surface)."""
    shape = cursor.shape
    if not cursor.visible or shape is None:
        return
    h, w = shape.pixels.shape[:2]
    x = cursor.x - shape.hot_x - origin_x
    y = cursor.y - shape.hot_y - origin_y
    fh, fw = frame.shape[:2]
    y0, y1, x0, x1 = max(y, 0), min(y + h, fh), max(x, 0), min(x + w, fw)
    if y0 >= y1 or x0 >= x1:
        return
    src = shape.pixels[y0 - y:y1 - y, x0 - x:x1 - x].astype(np.uint16)   # B, G, R, A
    dst = frame[y0:y1, x0:x1]
    a = src[..., 3:4]
    dst[...] = ((src[..., 2::-1] * a + dst.astype(np.uint16) * (255 - a) + 127) // 255).astype(np.uint8)
    if shape.invert is not None:
        inv = shape.invert[y0 - y:y1 - y, x0 - x:x1 - x]
        dst[inv] = 255 - dst[inv]
