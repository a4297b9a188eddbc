#!/usr/bin/python3
"""A photo-like picture with a real alpha plane, in a GTK3 window with an RGBA visual (corpus program
"argb-photo" of scripts/record_corpus.py, session img-jpeg-alpha).

The window (depth 32, no window manager, no compositing manager) is painted with an ARGB32 cairo image
surface, operator SOURCE, so the window's pixmap holds exactly these premultiplied pixels, alpha byte
included. The X server composites the redirected window onto the screen, and the spiceqxl driver hands
spice-server the screen's 32-bit pixels as an RGBA bitmap: with auto_glz and jpeg-wan-compression always
the picture reaches the client as JPEG_ALPHA whose alpha plane is ALPHA below.

Run by Debian's /usr/bin/python3 (python3-gi, gir1.2-gtk-3.0, python3-gi-cairo):

    /usr/bin/python3 scripts/argb_photo.py --x 600 --y 400

`pixels()` and `alpha()` use only the standard library, so tests import this file (under any Python) to
know what was painted; GTK is imported in main() only.
"""
from __future__ import annotations

import argparse
import math

WIDTH, HEIGHT = 320, 224
X, Y = 600, 400  # where the window is put (there is no window manager to move it)
TITLE = "argb-photo"


def alpha(x: int, y: int, w: int = WIDTH, h: int = HEIGHT) -> int:
    """The alpha painted at window pixel (x, y): a diagonal ramp from 24 to 255 with a gentle ripple
    across it (integers only, so every Python computes the same plane)."""
    ramp = 24 + (231 * (x + y)) // (w + h - 2)  # 24 .. 255 along the diagonal
    ripple = ((x // 8 + y // 8) % 7) - 3  # -3 .. 3 in 8-pixel steps
    return max(0, min(255, ramp + ripple))


def colour(x: int, y: int, w: int = WIDTH, h: int = HEIGHT) -> tuple[int, int, int]:
    """Unpremultiplied (r, g, b) at window pixel (x, y): smooth photo-like shading."""
    u, v = x / (w - 1), y / (h - 1)
    r = 0.5 + 0.45 * math.sin(2.2 * u + 1.3 * v + 0.4)
    g = 0.5 + 0.40 * math.sin(1.7 * v - 1.1 * u + 2.0) * math.cos(0.9 * u)
    b = 0.5 + 0.42 * math.cos(2.6 * u * v + 1.5 * v)
    return tuple(max(0, min(255, round(255 * c))) for c in (r, g, b))  # type: ignore[return-value]


def premultiply(c: int, a: int) -> int:
    return (c * a + 127) // 255


def pixels(w: int = WIDTH, h: int = HEIGHT) -> bytes:
    """The painted picture as cairo ARGB32 bytes on a little-endian machine: B, G, R, A per pixel,
    colours premultiplied by alpha, rows top-down, stride 4 * w."""
    out = bytearray(4 * w * h)
    i = 0
    for y in range(h):
        for x in range(w):
            a = alpha(x, y, w, h)
            r, g, b = colour(x, y, w, h)
            out[i:i + 4] = bytes((premultiply(b, a), premultiply(g, a), premultiply(r, a), a))
            i += 4
    return bytes(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--x", type=int, default=X)
    ap.add_argument("--y", type=int, default=Y)
    a = ap.parse_args()

    import cairo
    import gi
    gi.require_version("Gtk", "3.0")
    from gi.repository import Gtk

    data = bytearray(pixels())
    stride = cairo.ImageSurface.format_stride_for_width(cairo.FORMAT_ARGB32, WIDTH)
    assert stride == 4 * WIDTH
    picture = cairo.ImageSurface.create_for_data(data, cairo.FORMAT_ARGB32, WIDTH, HEIGHT, stride)

    win = Gtk.Window(title=TITLE)
    visual = win.get_screen().get_rgba_visual()
    if visual is None:
        raise SystemExit("argb_photo: the X screen has no 32-bit (RGBA) visual")
    win.set_visual(visual)
    win.set_app_paintable(True)
    win.set_decorated(False)
    win.set_resizable(False)
    win.set_default_size(WIDTH, HEIGHT)
    win.move(a.x, a.y)

    def draw(_widget, cr) -> bool:
        cr.set_operator(cairo.OPERATOR_SOURCE)
        cr.set_source_surface(picture, 0, 0)
        cr.paint()
        return True

    win.connect("draw", draw)
    win.connect("destroy", Gtk.main_quit)
    win.show_all()
    Gtk.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
