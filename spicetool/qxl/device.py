"""The QXL display device, as a guest driver and spice-server see it.

The device is memory (qxl_dev.py): a ROM with its modes, a RAM bar with the primary surface's
area, the driver's pages and the QXLRam header (command, cursor and release rings), a VRAM bar
for off-screen surfaces, and the memory slots through which every address in a command is
resolved and bounds-checked. The guest's driver (driver.py) writes QXLDrawable, QXLImage,
QXLSurfaceCmd and QXLCursorCmd structures there and pushes them into the rings.

`QxlDevice` is the device side: on an io port write its worker pops the rings, reads each
command out of guest memory into the command dataclasses (commands.py) (a DRAW_FILL with a solid brush, a
DRAW_COPY of a 32BIT, RGBA, 24BIT or 16BIT bitmap or of another surface, fills and copies clipped
to rects, a COPY_BITS, surface create/destroy, cursor set/move/hide: what the X QXL driver and the
Linux KMS driver send, bar the X driver's Render composites; an UPDATE is answered), applies it
to its surfaces (views of the guest memory behind them, so the model always knows what the client should show), hands it to every listener (the display and cursor
workers of the connected clients, like spice-server's worker), and gives the resource back
through the release ring. Anything in guest memory it cannot carry out is a DeviceError.

`QxlDevice.submit(cmd)` is how the demo desktop and the capture replay act as the guest: the
driver writes the command into guest memory and the device carries it out before it returns.
Video streams (StreamCreate/StreamDestroy) are the server's own decisions, never the guest's.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from spicetool.codecs import DecodeError, decode_bitmap
from spicetool.qxl import qxl_dev as dev
from spicetool.qxl.commands import (
    PRIMARY_SURFACE,
    SURFACE_FMT_32_XRGB,
    Command,
    CopyBits,
    CopySurface,
    CursorHide,
    CursorMove,
    CursorSet,
    CursorShape,
    DrawCopy,
    DrawFill,
    Rect,
    StreamCreate,
    StreamDestroy,
    SurfaceCreate,
    SurfaceDestroy,
)
from spicetool.qxl.driver import QxlDriver
from spicetool.qxl.qxl_dev import DeviceError  # noqa: F401 (the device's error, for every caller)
from spicetool.stack.cursor import CursorState


def drawn_parts(rect: Rect, clip: tuple[Rect, ...] | None, surface: np.ndarray) -> list[Rect]:
    """The parts of `rect` a draw reaches on `surface`: inside the surface, and inside one of the
    clip rects when there are any (where they overlap, the same pixels are put twice)."""
    h, w = surface.shape[:2]
    parts = [rect] if clip is None else [rect.intersection(c) for c in clip]
    return [r for r in (p.clipped(w, h) for p in parts) if not r.empty()]


def _inside(r: Rect, surface: np.ndarray) -> bool:
    return 0 <= r.left <= r.right <= surface.shape[1] and 0 <= r.top <= r.bottom <= surface.shape[0]


def color_bgrx(color: int) -> np.ndarray:
    return np.array([color & 0xFF, (color >> 8) & 0xFF, (color >> 16) & 0xFF, 0], dtype=np.uint8)


# bounds on what a guest may ask for (a hostile one must not make the device loop or allocate without end)
MAX_CHUNKS = 1024          # QXLDataChunk links followed for one image or cursor
MAX_STRIDE = 1 << 20       # bytes per row of an image or surface
# bytes per pixel of the bitmap formats a DRAW_COPY may carry (SpiceBitmapFmt numbers)
BITMAP_BYTES = {dev.SPICE_BITMAP_FMT_16BIT: 2, dev.SPICE_BITMAP_FMT_24BIT: 3,
                dev.SPICE_BITMAP_FMT_32BIT: 4, dev.SPICE_BITMAP_FMT_RGBA: 4}
MAX_CURSOR = 1024          # pixels per side of a cursor shape
MAX_CLIP_RECTS = 4096      # rects in one drawable's clip
RELEASE_BUNCH = 32         # resources chained through release_info.next behind one release ring item


@dataclass
class QxlDevice:
    """The device: its memory (qxl_dev.QxlMemory), the worker that reads its rings, the
    surfaces' pixels (views of the guest memory behind them), the cursor, and who listens."""
    surfaces: dict[int, np.ndarray] = field(default_factory=dict)
    cursor: CursorState = field(default_factory=CursorState)
    listeners: list[Callable[[Command], None]] = field(default_factory=list)
    max_pixels: int = 64 * 1024 * 1024
    commands: int = 0   # carried out so far: the surfaces' version
    memo: dict = field(default_factory=dict, repr=False)  # the worker's, valid while `commands` stays
    streams: Any = None       # a streams.VideoStreams when --streaming-video is on
    clock: Callable[[], float] = time.monotonic   # seconds, for the streams' timing
    memory: dev.QxlMemory = field(default_factory=dev.QxlMemory, repr=False)
    driver: QxlDriver | None = field(default=None, repr=False)   # the guest's driver
    _releases: list = field(default_factory=list, repr=False)   # (QXLPHYSICAL, id) to give back
    _canvases: dict = field(default_factory=dict, repr=False)   # surface id -> (pixels, keep data)
    _caller: Any = field(default=None, repr=False)             # the command submit() is carrying

    def __post_init__(self) -> None:
        if self.driver is None:
            self.driver = QxlDriver(self)

    @property
    def primary(self) -> np.ndarray | None:
        return self.surfaces.get(PRIMARY_SURFACE)

    def submit(self, cmd: Command) -> None:
        """A command from the guest: the driver writes it into guest memory and pushes it into a
        ring (or writes the io port, for the primary surface); the device carries it out from
        there before this returns. Stream commands are the server's own: straight to the worker."""
        if isinstance(cmd, (StreamCreate, StreamDestroy)):
            self._dispatch(cmd)
            return
        self._caller = cmd
        try:
            self.driver.submit(cmd)
        finally:
            self._caller = None

    def tick(self, now: float | None = None) -> None:
        """Let time pass for the streams (None: the device's clock; inf: end them all)."""
        if self.streams is not None:
            for c in self.streams.expired(self.clock() if now is None else now, self.primary):
                self._deliver(c)

    # --- the worker: what spice-server does with each command it took from the guest ----------

    def _dispatch(self, cmd: Command) -> None:
        if self.streams is not None:
            for c in self.streams.before(cmd, self.clock(), self.primary):
                self._deliver(c)
        self._deliver(cmd)

    def _deliver(self, cmd: Command) -> None:
        self._apply(cmd)
        self.commands += 1
        for listener in list(self.listeners):
            listener(cmd)

    def _surface(self, surface_id: int) -> np.ndarray:
        s = self.surfaces.get(surface_id)
        if s is None:
            raise DeviceError(f"draw on surface {surface_id}, which does not exist")
        return s

    def _apply(self, cmd: Command) -> None:
        if isinstance(cmd, SurfaceCreate):
            canvas, keep = self._canvases.pop(cmd.surface_id, (None, False))
            if canvas is None:
                raise DeviceError(f"surface {cmd.surface_id} has no memory: not created through the device")
            if not keep:
                canvas[...] = 0
            self.surfaces[cmd.surface_id] = canvas
        elif isinstance(cmd, SurfaceDestroy):
            self.surfaces.pop(cmd.surface_id, None)
        elif isinstance(cmd, DrawFill):
            s = self._surface(cmd.surface_id)
            for r in drawn_parts(cmd.rect, cmd.clip, s):
                s[r.top:r.bottom, r.left:r.right] = color_bgrx(cmd.color)
        elif isinstance(cmd, DrawCopy):
            s = self._surface(cmd.surface_id)
            h, w = cmd.pixels.shape[:2]
            if (w, h) != (cmd.rect.width, cmd.rect.height):
                raise DeviceError(f"image {w}x{h} does not fit rect {cmd.rect}")
            for r in drawn_parts(cmd.rect, cmd.clip, s):
                src = cmd.pixels[r.top - cmd.rect.top:r.bottom - cmd.rect.top,
                                 r.left - cmd.rect.left:r.right - cmd.rect.left]
                s[r.top:r.bottom, r.left:r.right, :3] = src[:, :, :3]
                s[r.top:r.bottom, r.left:r.right, 3] = 0
        elif isinstance(cmd, (CopyBits, CopySurface)):
            d = self._surface(cmd.surface_id)
            s = d if isinstance(cmd, CopyBits) else self._surface(cmd.src_surface)
            src, dst = cmd.src_rect, cmd.rect
            if not (_inside(src, s) and _inside(dst, d)):
                what = "copy bits" if isinstance(cmd, CopyBits) else f"copy from surface {cmd.src_surface}"
                raise DeviceError(f"{what} from {src} to {dst}: outside the {s.shape[1]}x{s.shape[0]} "
                                  f"source or the {d.shape[1]}x{d.shape[0]} destination")
            # the source is read whole before the destination is written: overlapping scrolls work
            d[dst.top:dst.bottom, dst.left:dst.right] = s[src.top:src.bottom, src.left:src.right].copy()
        elif isinstance(cmd, CursorSet):
            self.cursor = CursorState(cmd.x, cmd.y, cmd.visible, cmd.shape)
        elif isinstance(cmd, CursorMove):
            self.cursor.x, self.cursor.y = cmd.x, cmd.y
            self.cursor.visible = True
        elif isinstance(cmd, CursorHide):
            self.cursor.visible = False
        elif isinstance(cmd, (StreamCreate, StreamDestroy)):
            pass   # no pixels: the stream's frames are draws
        else:
            raise DeviceError(f"unknown command {type(cmd).__name__}")

    def framebuffer_rgb(self, surface_id: int = PRIMARY_SURFACE) -> np.ndarray:
        """(h, w, 3) RGB copy of a surface, as a client screenshot shows it."""
        s = self._surface(surface_id)
        return s[:, :, 2::-1].copy()

    # --- io ports ------------------------------------------------------------------------------

    def io_write(self, port: int, value: int = 0) -> None:
        """The guest wrote an io port (the only way it makes the device act)."""
        mem = self.memory
        if port == dev.QXL_IO_NOTIFY_CMD:
            self._process_ring("cmd_ring", self._command, dev.QXL_INTERRUPT_DISPLAY)
        elif port == dev.QXL_IO_NOTIFY_CURSOR:
            self._process_ring("cursor_ring", self._cursor_command, dev.QXL_INTERRUPT_CURSOR)
        elif port in (dev.QXL_IO_FLUSH_RELEASE, dev.QXL_IO_NOTIFY_OOM):
            self._flush_releases()
        elif port == dev.QXL_IO_UPDATE_IRQ:
            pass   # interrupts are only the int_pending bits here
        elif port == dev.QXL_IO_MEMSLOT_ADD:
            mem.add_slot(value, mem.ram_get("mem_slot.mem_start"), mem.ram_get("mem_slot.mem_end"))
        elif port == dev.QXL_IO_MEMSLOT_DEL:
            mem.del_slot(value)
        elif port == dev.QXL_IO_CREATE_PRIMARY:
            self._create_primary()
        elif port == dev.QXL_IO_DESTROY_PRIMARY:
            self._dispatch(SurfaceDestroy(PRIMARY_SURFACE))
        elif port == dev.QXL_IO_UPDATE_AREA:
            self._existing(mem.ram_get("update_surface"), "update area of")
        elif port == dev.QXL_IO_RESET:
            self._reset()
        else:
            raise DeviceError(f"io port {port} is not supported")

    def _reset(self) -> None:
        """Every surface goes, and the slots with their generation: old addresses are invalid."""
        for sid in sorted(self.surfaces, key=lambda s: s == PRIMARY_SURFACE):
            self._dispatch(SurfaceDestroy(sid))
        self._releases.clear()
        self._canvases.clear()
        gen = (self.memory.rom_field("slot_generation") + 1) & ((1 << dev.SLOT_GEN_BITS) - 1)
        dev.QXLRom.put(self.memory.rom, 0, "slot_generation", gen)
        self.memory.reset_ram()

    # --- rings ---------------------------------------------------------------------------------

    def _process_ring(self, ring: str, handle: Callable[[int, int], None], interrupt: int) -> None:
        """Take every command the guest pushed (the ring's size is the device's, never the
        guest's num_items), then re-arm notify_on_prod and hand back what was released."""
        mem = self.memory
        n = dev.QXL_COMMAND_RING_SIZE if ring == "cmd_ring" else dev.QXL_CURSOR_RING_SIZE
        items = mem.ram_offset(f"{ring}.items")
        try:
            while True:
                prod, cons = mem.ram_get(f"{ring}.hdr.prod"), mem.ram_get(f"{ring}.hdr.cons")
                if prod == cons:
                    break
                if (prod - cons) & 0xFFFFFFFF > n:
                    raise DeviceError(f"{ring}: prod {prod} is more than {n} items ahead of cons {cons}")
                item = dev.QXLCommand.unpack(mem.ram, items + (cons & (n - 1)) * dev.QXLCommand.size)
                mem.ram_put(f"{ring}.hdr.cons", (cons + 1) & 0xFFFFFFFF)
                handle(item["type"], item["data"])
                mem.ram_put("int_pending", mem.ram_get("int_pending") | interrupt)
        finally:
            mem.ram_put(f"{ring}.hdr.notify_on_prod", (mem.ram_get(f"{ring}.hdr.prod") + 1) & 0xFFFFFFFF)
            self._flush_releases()

    def _flush_releases(self) -> None:
        """Released ids into the release ring: up to RELEASE_BUNCH per item, each resource's
        release_info.next naming the next; when the ring is full they wait for FLUSH_RELEASE."""
        mem = self.memory
        n = dev.QXL_RELEASE_RING_SIZE
        items = mem.ram_offset("release_ring.items")
        while self._releases:
            prod, cons = mem.ram_get("release_ring.hdr.prod"), mem.ram_get("release_ring.hdr.cons")
            if (prod - cons) & 0xFFFFFFFF >= n:
                return
            bunch, self._releases = self._releases[:RELEASE_BUNCH], self._releases[RELEASE_BUNCH:]
            where = []
            for phys, rid in bunch:
                try:
                    where.append((*mem.resolve(phys, dev.QXLReleaseInfo.size, "release_info"), rid))
                except DeviceError:
                    pass   # its slot went away: there is nothing to write it back into
            if not where:
                continue
            for (bar, off, _), nxt in zip(where, [rid for _, _, rid in where[1:]] + [0]):
                dev.QXLReleaseInfo.put(bar, off, "id", nxt)
            mem.ram[items + (prod & (n - 1)) * 8:items + (prod & (n - 1)) * 8 + 8].view("<u8")[0] = where[0][2]
            mem.ram_put("release_ring.hdr.prod", (prod + 1) & 0xFFFFFFFF)

    def _run(self, phys: int, layout: dev.Layout, parse: Callable[[dict, int], Command | None]) -> None:
        """Read a command, carry it out, and release it (whatever became of it, once read)."""
        fields = self.memory.read(phys, layout)
        try:
            cmd = parse(fields, phys)
            if cmd is not None:
                self._dispatch(cmd)
        finally:
            self._releases.append((phys, fields["release_info.id"]))

    def _command(self, cmd_type: int, phys: int) -> None:
        if cmd_type == dev.QXL_CMD_NOP:
            return
        if cmd_type == dev.QXL_CMD_DRAW:
            self._run(phys, dev.QXLDrawable, self._drawable)
        elif cmd_type == dev.QXL_CMD_SURFACE:
            self._run(phys, dev.QXLSurfaceCmd, self._surface_cmd)
        elif cmd_type == dev.QXL_CMD_UPDATE:
            self._run(phys, dev.QXLUpdateCmd, self._update)
        elif cmd_type == dev.QXL_CMD_MESSAGE:
            self._run(phys, dev.QXLMessage, lambda fields, phys: None)   # the guest's log line
        else:
            raise DeviceError(f"unknown command type {cmd_type} on the command ring")

    def _cursor_command(self, cmd_type: int, phys: int) -> None:
        if cmd_type != dev.QXL_CMD_CURSOR:
            raise DeviceError(f"command type {cmd_type} on the cursor ring (only CURSOR commands go there)")
        self._run(phys, dev.QXLCursorCmd, self._cursor_cmd)

    # --- commands from guest memory ------------------------------------------------------------

    def _check_surface_id(self, surface_id: int) -> None:
        n = self.memory.rom_field("n_surfaces")
        if surface_id >= n:
            raise DeviceError(f"surface id {surface_id} is out of range (the device has {n})")

    def _existing(self, surface_id: int, what: str) -> None:
        self._check_surface_id(surface_id)
        if surface_id not in self.surfaces:
            raise DeviceError(f"{what} surface {surface_id}, which does not exist")

    def _drawable(self, d: dict, phys: int) -> Command | None:
        sid = d["surface_id"]
        self._check_surface_id(sid)
        rect = Rect.from_fields(d, "bbox")
        kind = d["type"]
        if kind == dev.QXL_DRAW_NOP:
            return None
        clip = self._clip(d["clip.type"], d["clip.data"], kind in (dev.QXL_DRAW_FILL, dev.QXL_DRAW_COPY))
        if kind == dev.QXL_DRAW_FILL:
            f = dev.QXLFill.unpack(d["u"])
            if f["brush.type"] != dev.SPICE_BRUSH_TYPE_SOLID:
                raise DeviceError(f"fill brush type {f['brush.type']} is not supported (only SOLID)")
            self._plain(f["rop_descriptor"], f["mask.bitmap"])
            return DrawFill(sid, rect, dev.SolidColor.unpack(f["brush.u"])["color"], clip)
        if kind == dev.QXL_DRAW_COPY:
            c = dev.QXLCopy.unpack(d["u"])
            self._plain(c["rop_descriptor"], c["mask.bitmap"])
            img = self.memory.read(c["src_bitmap"], dev.QXLImage)
            src = Rect.from_fields(c, "src_area")
            if img["descriptor.type"] == dev.SPICE_IMAGE_TYPE_SURFACE:   # its size is the surface's
                if clip is not None:
                    raise DeviceError("clip rects on a copy from a surface are not supported")
                if (src.width, src.height) != (rect.width, rect.height):
                    raise DeviceError(f"source area {src} does not fit rect {rect}")
                src_sid = dev.QXLSurfaceId.unpack(img["u"])["surface_id"]
                self._existing(src_sid, "copy from")
                return CopySurface(sid, rect, src.left, src.top, src_sid)
            pixels, image_id = self._image(img, src, rect)
            return self._with_caller_hints(DrawCopy(sid, rect, pixels, image_id, clip=clip))
        if kind == dev.QXL_COPY_BITS:
            pos = dev.QXLCopyBits.unpack(d["u"])
            return CopyBits(sid, rect, pos["src_pos.x"], pos["src_pos.y"])
        raise DeviceError(f"drawable type {kind} is not supported (FILL, COPY and COPY_BITS are)")

    def _clip(self, kind: int, phys: int, allowed: bool) -> tuple[Rect, ...] | None:
        """A drawable's clip: None (NONE), or its QXLClipRects read out of guest memory."""
        if kind == dev.SPICE_CLIP_TYPE_NONE:
            return None
        if kind != dev.SPICE_CLIP_TYPE_RECTS:
            raise DeviceError(f"drawable clip type {kind} is not supported (NONE and RECTS are)")
        if not allowed:
            raise DeviceError("clip rects are supported on FILL and COPY drawables only")
        n = self.memory.read(phys, dev.QXLClipRects)["num_rects"]
        if n > MAX_CLIP_RECTS:
            raise DeviceError(f"{n} clip rects (at most {MAX_CLIP_RECTS})")
        size = dev.QXLRect.size
        data = self._chunks(dev.phys_add(phys, dev.QXLClipRects.offsets["chunk"], "clip rects"), n * size, "clip rects")
        rects = (dev.QXLRect.unpack(data, i * size) for i in range(n))
        return tuple(Rect.from_fields(r) for r in rects)

    @staticmethod
    def _plain(rop: int, mask: int) -> None:
        if rop != dev.SPICE_ROPD_OP_PUT:
            raise DeviceError(f"rop descriptor 0x{rop:x} is not supported (only OP_PUT)")
        if mask:
            raise DeviceError("drawables with a mask are not supported")

    def _with_caller_hints(self, cmd: DrawCopy) -> DrawCopy:
        """What the caller of submit() knows of this draw beyond guest memory: the encodings the
        worker made ahead for it (`shared`), whether it is a frame of the guest's video, and the
        image type a replayed capture sent it in (`codec`)."""
        c = self._caller
        if isinstance(c, DrawCopy) and (c.surface_id, c.rect, c.image_id) == (cmd.surface_id, cmd.rect, cmd.image_id):
            cmd.shared, cmd.video, cmd.codec = c.shared, c.video, c.codec
        return cmd

    def _image(self, img: dict, src: Rect, dest: Rect) -> tuple[np.ndarray, int | None]:
        """The pixels of src in a QXLImage (BITMAP: 32BIT, RGBA, 24BIT or 16BIT, the formats the X
        and KMS QXL drivers write), as BGRX, copied once out of guest memory."""
        if img["descriptor.type"] != dev.SPICE_IMAGE_TYPE_BITMAP:
            raise DeviceError(f"image type {img['descriptor.type']} is not supported (BITMAP and SURFACE are)")
        bm = dev.QXLBitmap.unpack(img["u"])
        w, h = img["descriptor.width"], img["descriptor.height"]
        bpp = BITMAP_BYTES.get(bm["format"])
        if bpp is None:
            raise DeviceError(f"bitmap format {bm['format']} is not supported (32BIT, RGBA, 24BIT, 16BIT are)")
        if (bm["x"], bm["y"]) != (w, h):
            raise DeviceError(f"bitmap {bm['x']}x{bm['y']} in an image of {w}x{h}")
        if not (0 < w and 0 < h and w * h <= self.max_pixels):
            raise DeviceError(f"image size {w}x{h} is out of range")
        stride = bm["stride"]
        if not w * bpp <= stride <= MAX_STRIDE:
            raise DeviceError(f"bitmap stride {stride} is out of range for width {w}")
        if not (0 <= src.left < src.right <= w and 0 <= src.top < src.bottom <= h):
            raise DeviceError(f"source area {src} is outside the {w}x{h} image")
        if (src.width, src.height) != (dest.width, dest.height):
            raise DeviceError(f"image {src.width}x{src.height} does not fit rect {dest}")
        if bm["flags"] & dev.QXL_BITMAP_DIRECT:
            data = self.memory.bytes_at(bm["data"], stride * h, "bitmap data")
        else:
            data = self._chunks(bm["data"], stride * h, "bitmap")
        top_down = bool(bm["flags"] & dev.QXL_BITMAP_TOP_DOWN)
        if bpp != 4:   # the codecs' bitmap reader makes BGRA of it (one reader for these bytes)
            try:
                whole = decode_bitmap(bm["format"], w, h, stride, top_down, data, max_pixels=self.max_pixels)
            except DecodeError as e:
                raise DeviceError(f"bitmap: {e}") from None
            return whole[src.top:src.bottom, src.left:src.right].copy(), self._image_id(img)
        rows = data.reshape(h, stride)
        if not top_down:
            rows = rows[::-1]
        px = rows[src.top:src.bottom, src.left * 4:src.right * 4].reshape(src.height, src.width, 4).copy()
        return px, self._image_id(img)

    @staticmethod
    def _image_id(img: dict) -> int | None:
        return img["descriptor.id"] if img["descriptor.flags"] & dev.QXL_IMAGE_CACHE else None

    def _chunks(self, phys: int, total: int, what: str) -> np.ndarray:
        """Exactly `total` bytes from a QXLDataChunk chain: a view of guest memory when one
        chunk holds them all, else one copy. Loops, long chains and excess are errors."""
        parts: list[np.ndarray] = []
        got = 0
        seen: set[int] = set()
        while True:
            if phys in seen:
                raise DeviceError(f"{what}: the data chunk chain loops back to 0x{phys:016x}")
            if len(seen) >= MAX_CHUNKS:
                raise DeviceError(f"{what}: more than {MAX_CHUNKS} data chunks")
            seen.add(phys)
            chunk = self.memory.read(phys, dev.QXLDataChunk)
            size = chunk["data_size"]
            if got + size > total:
                raise DeviceError(f"{what}: data chunks hold more than the {total} bytes expected")
            parts.append(self.memory.bytes_at(dev.phys_add(phys, dev.QXLDataChunk.size, what), size, f"{what} chunk"))
            got += size
            if chunk["next_chunk"] == 0:
                break
            phys = chunk["next_chunk"]
        if got != total:
            raise DeviceError(f"{what}: data chunks hold {got} bytes, {total} expected")
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _surface_cmd(self, c: dict, phys: int) -> Command:
        sid = c["surface_id"]
        self._check_surface_id(sid)
        if sid == PRIMARY_SURFACE:
            raise DeviceError("surface 0 is the primary: CREATE_PRIMARY and DESTROY_PRIMARY make and end it")
        if c["type"] == dev.QXL_SURFACE_CMD_DESTROY:
            return SurfaceDestroy(sid)
        if c["type"] != dev.QXL_SURFACE_CMD_CREATE:
            raise DeviceError(f"surface command type {c['type']} is unknown")
        s = dev.QXLSurface.unpack(c["u"])
        self._map_surface(sid, s["format"], s["width"], s["height"], s["stride"], s["data"], c["flags"])
        return SurfaceCreate(sid, s["width"], s["height"], s["format"], primary=False)

    def _create_primary(self) -> None:
        mem = self.memory
        c = dev.QXLSurfaceCreate.unpack(mem.ram, mem.ram_offset("create_surface"))
        if c["type"] != dev.QXL_SURF_TYPE_PRIMARY:
            raise DeviceError(f"create primary of surface type {c['type']} (only PRIMARY)")
        self._map_surface(PRIMARY_SURFACE, c["format"], c["width"], c["height"], c["stride"], c["mem"], c["flags"])
        self._dispatch(SurfaceCreate(PRIMARY_SURFACE, c["width"], c["height"], c["format"], primary=True))

    def _map_surface(self, sid: int, fmt: int, width: int, height: int, stride: int, phys: int, flags: int) -> None:
        """The surface's pixels are its guest memory (as spice-server's canvases are): a numpy
        view, rows going up in memory when the stride is negative."""
        if fmt != SURFACE_FMT_32_XRGB:
            raise DeviceError(f"surface format {fmt} is not supported (only 32_xRGB)")
        if not (0 < width and 0 < height and width * height <= self.max_pixels):
            raise DeviceError(f"surface size {width}x{height} is out of range")
        step = abs(stride)
        if not width * 4 <= step <= MAX_STRIDE:
            raise DeviceError(f"surface stride {stride} is out of range for width {width}")
        bar, off = self.memory.resolve(phys, step * height, f"surface {sid} memory")
        if sid == PRIMARY_SURFACE:
            start, size = self.memory.rom_field("draw_area_offset"), self.memory.rom_field("surface0_area_size")
            if bar is not self.memory.ram or not start <= off <= off + step * height <= start + size:
                raise DeviceError(f"primary surface {width}x{height} does not fit the surface0 area ({size} bytes)")
        rows = bar[off:off + step * height].reshape(height, step)[:, :width * 4]
        if stride < 0:
            rows = rows[::-1]
        self._canvases[sid] = (rows.reshape(height, width, 4), bool(flags & dev.QXL_SURF_FLAG_KEEP_DATA))

    def _update(self, u: dict, phys: int) -> None:
        """QXL_CMD_UPDATE: draws are carried out as they come, so the area is up to date; the
        answer is the update id in the ROM and the DISPLAY interrupt."""
        self._existing(u["surface_id"], "update of")
        dev.QXLRom.put(self.memory.rom, 0, "update_id", u["update_id"])
        self.memory.ram_put("int_pending", self.memory.ram_get("int_pending") | dev.QXL_INTERRUPT_DISPLAY)

    def _cursor_cmd(self, c: dict, phys: int) -> Command | None:
        kind = c["type"]
        if kind == dev.QXL_CURSOR_SET:
            a = dev.CursorSetArgs.unpack(c["u"])
            return CursorSet(a["position.x"], a["position.y"], self._cursor_shape(a["shape"]), bool(a["visible"]))
        if kind == dev.QXL_CURSOR_MOVE:
            a = dev.CursorMoveArgs.unpack(c["u"])
            return CursorMove(a["position.x"], a["position.y"])
        if kind == dev.QXL_CURSOR_HIDE:
            return CursorHide()
        if kind == dev.QXL_CURSOR_TRAIL:
            return None   # no trails on our clients
        raise DeviceError(f"cursor command type {kind} is unknown")

    def _cursor_shape(self, phys: int) -> CursorShape:
        cur = self.memory.read(phys, dev.QXLCursor)
        if cur["header.type"] != dev.SPICE_CURSOR_TYPE_ALPHA:
            raise DeviceError(f"cursor type {cur['header.type']} is not supported (only ALPHA)")
        w, h = cur["header.width"], cur["header.height"]
        if w > MAX_CURSOR or h > MAX_CURSOR:
            raise DeviceError(f"cursor size {w}x{h} is out of range")
        n = w * h * 4
        if cur["data_size"] != n:
            raise DeviceError(f"cursor data_size {cur['data_size']}: a {w}x{h} ALPHA cursor has {n} bytes")
        data = self._chunks(dev.phys_add(phys, dev.QXLCursor.offsets["chunk"], "cursor"), n, "cursor")
        return CursorShape(cur["header.unique"], data.reshape(h, w, 4).copy(),
                           cur["header.hot_spot_x"], cur["header.hot_spot_y"])
