"""The built-in demo desktop: a small drawing loop that drives the QXL model the way a guest
driver would (surfaces, fills, image copies, scrolls, cursor), so `spicetool serve` has something
to show without a capture: a title, colour bars, a clock, a frame counter, a log that scrolls a
line a second (COPY_BITS, as the X driver scrolls a terminal), a bouncing box copied from an
off-screen surface (as the X driver draws its pixmaps), a cursor going round."""
from __future__ import annotations

import asyncio
import math
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from spicetool.qxl.commands import (
    PRIMARY_SURFACE,
    CopyBits,
    CopySurface,
    CursorMove,
    CursorSet,
    CursorShape,
    DrawCopy,
    DrawFill,
    Rect,
    SurfaceCreate,
    SurfaceDestroy,
)
from spicetool.qxl.device import QxlDevice

BACKGROUND = 0x203040
BOX_COLOR = 0xE0A030
LOG_BACKGROUND = 0x102030
LOG_LINE = 20   # pixels per log line
SPRITE_SURFACE = 1   # an off-screen surface holding the box, copied to the screen at each move
TEXT = (0xF0, 0xF0, 0xF0)
BOX = 48
MIN_SIZE, MAX_SIZE = 64, 8192


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def text_image(text: str, size: int, width: int, height: int, background: int = BACKGROUND) -> np.ndarray:
    """Text drawn on a solid background, as (h, w, 4) BGRX pixels."""
    bg = ((background >> 16) & 0xFF, (background >> 8) & 0xFF, background & 0xFF)
    img = Image.new("RGB", (width, height), bg)
    ImageDraw.Draw(img).text((4, 2), text, fill=TEXT, font=_font(size))
    rgb = np.asarray(img, dtype=np.uint8)
    out = np.zeros((height, width, 4), dtype=np.uint8)
    out[:, :, 0], out[:, :, 1], out[:, :, 2] = rgb[:, :, 2], rgb[:, :, 1], rgb[:, :, 0]
    return out


def colour_bars(width: int, height: int) -> np.ndarray:
    """Hue ramp over a brightness ramp: every pixel differs, so any byte-order slip shows."""
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    y = np.linspace(1.0, 0.25, height, dtype=np.float32)[:, None]
    h6 = x * 6.0
    r = np.clip(np.abs(h6 - 3.0) - 1.0, 0, 1)
    g = np.clip(2.0 - np.abs(h6 - 2.0), 0, 1)
    b = np.clip(2.0 - np.abs(h6 - 4.0), 0, 1)
    out = np.zeros((height, width, 4), dtype=np.uint8)
    for i, c in enumerate((b, g, r)):
        out[:, :, i] = np.round(c * y * 255).astype(np.uint8)
    return out


def arrow_cursor() -> CursorShape:
    """A 16x24 white arrow with a black outline, alpha cursor, hot spot at the tip."""
    w, h = 16, 24
    px = np.zeros((h, w, 4), dtype=np.uint8)
    for y in range(h):
        span = min(y, 12) if y < 17 else max(0, 12 - (y - 16) * 3)
        for x in range(span + 1):
            edge = x == 0 or x == span or y in (0, 16)
            v = 0 if edge else 255
            px[y, x] = (v, v, v, 255)
    return CursorShape(unique=1, pixels=px, hot_x=0, hot_y=0)


class DemoDesktop:
    """Draws the scene into a device; `step()` advances the animation by one frame."""

    def __init__(self, device: QxlDevice, width: int = 1024, height: int = 768):
        self.device, self.width, self.height = device, width, height
        self.frame = 0
        self.box = (width // 3, height // 2)
        self.velocity = (7, 5)
        self.clock_rect = Rect(24, 88, 24 + 360, 88 + 44)
        self.counter_rect = Rect(24, 140, 24 + 360, 140 + 28)
        self.arena = Rect(0, 200, width, height - 100)
        self.last_clock = ""
        self.log_rect = self._log_rect()

    def _log_rect(self) -> Rect | None:
        """Four log lines right of the clock, when the screen is large enough for them."""
        if self.width < 800 or self.height < 400:
            return None
        return Rect(self.width - 384, 88, self.width - 24, 88 + 4 * LOG_LINE)

    def resize(self, width: int, height: int) -> None:
        """The guest takes a new mode (xrandr after a MONITORS_CONFIG): a new primary surface
        of that size, the scene drawn again on it."""
        width, height = max(MIN_SIZE, min(MAX_SIZE, width)), max(MIN_SIZE, min(MAX_SIZE, height))
        if (width, height) == (self.width, self.height):
            return
        self.device.submit(SurfaceDestroy(SPRITE_SURFACE))
        self.device.submit(SurfaceDestroy(PRIMARY_SURFACE))
        self.width, self.height = width, height
        self.arena = Rect(0, min(200, height // 2), width, max(min(200, height // 2) + BOX + 2, height - 100))
        a = self.arena
        self.box = (max(a.left, min(self.box[0], a.right - BOX - 1)), max(a.top, min(self.box[1], a.bottom - BOX - 1)))
        self.last_clock = ""
        self.log_rect = self._log_rect()
        self.draw_initial()

    def draw_initial(self) -> None:
        d, w, h = self.device, self.width, self.height
        d.submit(SurfaceCreate(PRIMARY_SURFACE, w, h))
        d.submit(DrawFill(PRIMARY_SURFACE, Rect(0, 0, w, h), BACKGROUND))
        d.submit(SurfaceCreate(SPRITE_SURFACE, BOX, BOX, primary=False))
        d.submit(DrawFill(SPRITE_SURFACE, Rect(0, 0, BOX, BOX), BOX_COLOR))
        d.submit(DrawCopy(SPRITE_SURFACE, Rect(8, 8, BOX - 8, BOX - 8), colour_bars(BOX - 16, BOX - 16)))
        d.submit(DrawCopy(PRIMARY_SURFACE, Rect(24, 24, 24 + 600, 24 + 48),
                          text_image("spicetool serve: demo desktop", 32, 600, 48)))
        bars = colour_bars(w - 48, 64)
        d.submit(DrawCopy(PRIMARY_SURFACE, Rect(24, h - 88, w - 24, h - 24), bars))
        d.submit(CursorSet(w // 2, h // 2, arrow_cursor()))
        if self.log_rect is not None:
            d.submit(DrawFill(PRIMARY_SURFACE, self.log_rect, LOG_BACKGROUND))
        self.draw_clock()
        self.draw_box()

    def draw_clock(self, now: float | None = None) -> None:
        text = time.strftime("%H:%M:%S", time.localtime(now if now is not None else time.time()))
        if text != self.last_clock:
            r = self.clock_rect
            self.device.submit(DrawCopy(PRIMARY_SURFACE, r, text_image(text, 36, r.width, r.height)))
            self.last_clock = text
            self.log(f"{text}  frame {self.frame}")

    def log(self, line: str) -> None:
        """A line at the bottom of the log: the others scroll up one line (COPY_BITS), the new
        one is drawn where the last was."""
        r = self.log_rect
        if r is None:
            return
        self.device.submit(CopyBits(PRIMARY_SURFACE, Rect(r.left, r.top, r.right, r.bottom - LOG_LINE),
                                    r.left, r.top + LOG_LINE))
        self.device.submit(DrawCopy(PRIMARY_SURFACE, Rect(r.left, r.bottom - LOG_LINE, r.right, r.bottom),
                                    text_image(line, 16, r.width, LOG_LINE, LOG_BACKGROUND)))

    def box_rect(self) -> Rect:
        x, y = self.box
        return Rect(x, y, x + BOX, y + BOX)

    def draw_box(self) -> None:
        self.device.submit(CopySurface(PRIMARY_SURFACE, self.box_rect(), 0, 0, src_surface=SPRITE_SURFACE))

    def step(self) -> None:
        self.frame += 1
        d = self.device
        d.submit(DrawFill(PRIMARY_SURFACE, self.box_rect(), BACKGROUND))
        (x, y), (vx, vy) = self.box, self.velocity
        a = self.arena
        if not a.left <= x + vx <= a.right - BOX:
            vx = -vx
        if not a.top <= y + vy <= a.bottom - BOX:
            vy = -vy
        self.box, self.velocity = (x + vx, y + vy), (vx, vy)
        self.draw_box()
        r = self.counter_rect
        d.submit(DrawCopy(PRIMARY_SURFACE, r, text_image(f"frame {self.frame}", 20, r.width, r.height)))
        self.draw_clock()
        t = self.frame / 20.0
        d.submit(CursorMove(int(self.width / 2 + 200 * math.cos(t)), int(self.height / 2 + 120 * math.sin(t))))


async def animate(desktop: DemoDesktop, fps: float, running: asyncio.Event) -> None:
    """Step the desktop at `fps` while `running` is set (cleared: paused, the picture holds)."""
    period = 1.0 / fps
    while True:
        await running.wait()
        desktop.step()
        await asyncio.sleep(period)
