"""The guest side of the QXL device: what a QXL driver (Linux's qxl.ko, the Windows driver)
does with it, in Python: read the ROM, register the memory slots, allocate its commands and
images in the RAM bar's pages and surfaces in the VRAM bar, write QXLDrawable / QXLImage /
QXLSurfaceCmd / QXLCursorCmd / QXLUpdateCmd there, push QXLCommand items into the command and
cursor rings and notify the device, and free every resource the device hands back through the
release ring.

The primary surface is made the way the real drivers do it: the mode goes into the QXLRam
header's create_surface (its memory at the start of the RAM bar, the ROM's draw area) and the
driver writes the CREATE_PRIMARY io port; destroying it is DESTROY_PRIMARY. Off-screen surfaces
are QXLSurfaceCmd commands on the command ring.

`QxlDriver.submit` turns one of commands.py's commands into the above; the device (device.py) does the
rest synchronously, from the port write.
"""
from __future__ import annotations

import bisect
import itertools
import struct
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from spicetool.qxl.commands import (
    PRIMARY_SURFACE,
    CopyBits,
    CopySurface,
    CursorHide,
    CursorMove,
    CursorSet,
    DrawCopy,
    DrawFill,
    Rect,
    SurfaceCreate,
    SurfaceDestroy,
)
from spicetool.qxl.qxl_dev import (
    QXL_BITMAP_TOP_DOWN,
    QXL_CMD_CURSOR,
    QXL_CMD_DRAW,
    QXL_CMD_SURFACE,
    QXL_CMD_UPDATE,
    QXL_COPY_BITS,
    QXL_CURSOR_HIDE,
    QXL_CURSOR_MOVE,
    QXL_CURSOR_SET,
    QXL_DRAW_COPY,
    QXL_DRAW_FILL,
    QXL_EFFECT_OPAQUE,
    QXL_IMAGE_CACHE,
    QXL_INTERRUPT_CURSOR,
    QXL_INTERRUPT_DISPLAY,
    QXL_IO_CREATE_PRIMARY,
    QXL_IO_DESTROY_PRIMARY,
    QXL_IO_FLUSH_RELEASE,
    QXL_IO_MEMSLOT_ADD,
    QXL_IO_NOTIFY_CMD,
    QXL_IO_NOTIFY_CURSOR,
    QXL_IO_NOTIFY_OOM,
    QXL_IO_RESET,
    QXL_RAM_MAGIC,
    QXL_ROM_MAGIC,
    QXL_SURF_TYPE_PRIMARY,
    QXL_SURFACE_CMD_CREATE,
    QXL_SURFACE_CMD_DESTROY,
    RAM_BAR_PHYS,
    SLOT_RAM,
    SLOT_VRAM,
    SPICE_BITMAP_FMT_16BIT,
    SPICE_BITMAP_FMT_24BIT,
    SPICE_BITMAP_FMT_32BIT,
    SPICE_BITMAP_FMT_RGBA,
    SPICE_BRUSH_TYPE_SOLID,
    SPICE_CLIP_TYPE_RECTS,
    SPICE_CURSOR_TYPE_ALPHA,
    SPICE_IMAGE_SCALE_MODE_NEAREST,
    SPICE_IMAGE_TYPE_BITMAP,
    SPICE_IMAGE_TYPE_SURFACE,
    SPICE_ROPD_OP_PUT,
    VRAM_BAR_PHYS,
    CursorMoveArgs,
    CursorSetArgs,
    DeviceError,
    QXLBitmap,
    QXLClipRects,
    QXLCommand,
    QXLCopy,
    QXLCopyBits,
    QXLCursor,
    QXLCursorCmd,
    QXLDataChunk,
    QXLDrawable,
    QXLFill,
    QXLImage,
    QxlMemory,
    QXLMode,
    QXLModes,
    QXLRect,
    QXLReleaseInfo,
    QXLRom,
    QXLSurface,
    QXLSurfaceCmd,
    QXLSurfaceId,
    QXLUpdateCmd,
    make_phys,
    prefixed,
)

ALIGN = 8


class DeviceIo(Protocol):
    """The device as the driver reaches it: its memory and its io ports."""
    memory: QxlMemory

    def io_write(self, port: int, value: int = 0) -> None: ...


def bitmap_rows(pixels: np.ndarray, fmt: int) -> np.ndarray:
    """(h, w, 4) BGRX/BGRA pixels as the rows of a bitmap of SpiceBitmapFmt `fmt`: (h, stride) bytes."""
    h, w = pixels.shape[:2]
    if fmt in (SPICE_BITMAP_FMT_32BIT, SPICE_BITMAP_FMT_RGBA):
        return np.ascontiguousarray(pixels).reshape(h, w * 4)
    if fmt == SPICE_BITMAP_FMT_24BIT:
        return np.ascontiguousarray(pixels[:, :, :3]).reshape(h, w * 3)
    if fmt == SPICE_BITMAP_FMT_16BIT:   # x555: 5 bits of each of R, G, B, little-endian
        b, g, r = (pixels[:, :, i].astype(np.uint16) >> 3 for i in range(3))
        return ((r << 10) | (g << 5) | b).astype("<u2").view(np.uint8).reshape(h, w * 2)
    raise DeviceError(f"the driver writes no bitmap format {fmt}")


def _align(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


class Allocator:
    """First fit over [start, end), neighbours merged when freed (the driver's heap)."""

    def __init__(self, start: int, end: int):
        self.start, self.end = start, end
        self._free: list[tuple[int, int]] = [(start, end - start)] if end > start else []
        self.used: dict[int, int] = {}

    def alloc(self, size: int) -> int | None:
        size = _align(max(size, 1))
        for i, (off, n) in enumerate(self._free):
            if n >= size:
                if n == size:
                    del self._free[i]
                else:
                    self._free[i] = (off + size, n - size)
                self.used[off] = size
                return off
        return None

    def free(self, off: int) -> None:
        size = self.used.pop(off)
        i = bisect.bisect_left(self._free, (off, 0))
        # merge with the following block, then the preceding one
        if i < len(self._free) and self._free[i][0] == off + size:
            size += self._free.pop(i)[1]
        if i > 0 and self._free[i - 1][0] + self._free[i - 1][1] == off:
            i -= 1
            off, size = self._free[i][0], self._free[i][1] + size
            del self._free[i]
        self._free.insert(i, (off, size))

    @property
    def in_use(self) -> int:
        return sum(self.used.values())

    @property
    def free_bytes(self) -> int:
        return sum(n for _, n in self._free)


@dataclass
class Resource:
    """Something handed to the device, freed when its release_info id comes back."""
    offset: int                       # in the RAM bar; release_info is at its start
    on_release: Callable[[], None] | None = None


@dataclass
class Mode:
    id: int
    width: int
    height: int
    bits: int
    stride: int


@dataclass
class QxlDriver:
    """A QXL guest driver bound to a device."""
    device: DeviceIo = field(repr=False)
    resources: dict[int, Resource] = field(default_factory=dict)
    unknown_releases: int = 0        # ids the device returned that we never gave it
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _unpushed: list[int] = field(default_factory=list)   # resources of the command being written

    def __post_init__(self) -> None:
        self.mem = self.device.memory
        self.start()

    # --- set-up --------------------------------------------------------------------------------

    def start(self) -> None:
        """What the driver does at probe time: check the ROM, find its memory, add its slots."""
        rom = QXLRom.unpack(self.mem.rom)
        if rom["magic"] != QXL_ROM_MAGIC:
            raise DeviceError("not a QXL ROM")
        self.rom = rom
        self.header = rom["ram_header_offset"]
        if self.mem.ram_get("magic") != QXL_RAM_MAGIC:
            raise DeviceError("bad QXLRam magic")
        self.generation = rom["slot_generation"]
        self.surface0 = (rom["draw_area_offset"], rom["surface0_area_size"])
        pages = rom["pages_offset"]
        self.ram = Allocator(pages, pages + rom["num_pages"] * 4096)
        self.vram = Allocator(0, self.mem.vram.size)
        self.surfaces: dict[int, int] = {}      # off-screen surface id -> its VRAM offset
        self.resources.clear()
        self.modes = self.read_modes()
        self.mem.ram_put("int_mask", QXL_INTERRUPT_DISPLAY | QXL_INTERRUPT_CURSOR)
        self.slot_ram = rom["slots_start"] + SLOT_RAM
        self.slot_vram = rom["slots_start"] + SLOT_VRAM
        self.add_slot(self.slot_ram, RAM_BAR_PHYS, RAM_BAR_PHYS + self.mem.ram.size)
        self.add_slot(self.slot_vram, VRAM_BAR_PHYS, VRAM_BAR_PHYS + self.mem.vram.size)

    def read_modes(self) -> list[Mode]:
        off = self.rom["modes_offset"]
        n = QXLModes.unpack(self.mem.rom, off)["n_modes"]
        out = []
        for i in range(min(n, (self.mem.rom.size - off - 4) // QXLMode.size)):
            m = QXLMode.unpack(self.mem.rom, off + 4 + i * QXLMode.size)
            out.append(Mode(m["id"], m["x_res"], m["y_res"], m["bits"], m["stride"]))
        return out

    def add_slot(self, slot_id: int, start: int, end: int) -> None:
        self.mem.ram_put("mem_slot.mem_start", start)
        self.mem.ram_put("mem_slot.mem_end", end)
        self.device.io_write(QXL_IO_MEMSLOT_ADD, slot_id)

    def reset(self) -> None:
        """QXL_IO_RESET: the device forgets everything (and bumps the slots' generation); the
        driver starts over."""
        self.device.io_write(QXL_IO_RESET)
        self.start()

    # --- addresses and memory ------------------------------------------------------------------

    def ram_phys(self, off: int) -> int:
        return make_phys(self.slot_ram, self.generation, RAM_BAR_PHYS + off)

    def vram_phys(self, off: int) -> int:
        return make_phys(self.slot_vram, self.generation, VRAM_BAR_PHYS + off)

    def _alloc(self, size: int) -> int:
        """RAM for a command and what it points to; when there is none, take back what the
        device released (and ask it to release more: NOTIFY_OOM) before giving up."""
        off = self.ram.alloc(size)
        if off is None:
            self.reclaim()
            self.device.io_write(QXL_IO_NOTIFY_OOM)
            self.reclaim()
            off = self.ram.alloc(size)
        if off is None:
            raise DeviceError(f"guest RAM exhausted: no {size} bytes free of {self.ram.end - self.ram.start}")
        return off

    def _resource(self, size: int, on_release: Callable[[], None] | None = None) -> tuple[int, int]:
        """(release id, RAM offset) of a new resource of `size` bytes."""
        off = self._alloc(size)
        rid = next(self._ids)
        self.resources[rid] = Resource(off, on_release)
        self._unpushed.append(rid)
        return rid, off

    def _drop_unpushed(self) -> None:
        """A command that failed before it reached a ring: its memory is still ours."""
        for rid in self._unpushed:
            res = self.resources.pop(rid, None)
            if res is not None:
                self.ram.free(res.offset)
        self._unpushed.clear()

    # --- rings ---------------------------------------------------------------------------------

    def ring_full(self, ring: str) -> bool:
        prod, cons = self.mem.ram_get(f"{ring}.hdr.prod"), self.mem.ram_get(f"{ring}.hdr.cons")
        return (prod - cons) & 0xFFFFFFFF >= self.mem.ram_get(f"{ring}.hdr.num_items")

    def try_push(self, ring: str, cmd_type: int, phys: int, notify: bool = True) -> bool:
        """One QXLCommand into `ring` ("cmd_ring" or "cursor_ring"); False when it is full.
        Notifies the device when the ring asks for it (prod reached notify_on_prod)."""
        if self.ring_full(ring):
            return False
        n = self.mem.ram_get(f"{ring}.hdr.num_items")
        prod = self.mem.ram_get(f"{ring}.hdr.prod")
        item = self.mem.ram_offset(f"{ring}.items") + (prod & (n - 1)) * QXLCommand.size
        QXLCommand.pack_into(self.mem.ram, item, {"data": phys, "type": cmd_type})
        prod = (prod + 1) & 0xFFFFFFFF
        self.mem.ram_put(f"{ring}.hdr.prod", prod)
        self._unpushed.clear()   # the device's now, until released
        if notify and prod == self.mem.ram_get(f"{ring}.hdr.notify_on_prod"):
            self._notify(ring)
        return True

    def _notify(self, ring: str) -> None:
        self.device.io_write(QXL_IO_NOTIFY_CMD if ring == "cmd_ring" else QXL_IO_NOTIFY_CURSOR)

    def push(self, ring: str, cmd_type: int, phys: int) -> None:
        """As the driver waits for room: a full ring is notified (the device drains it)."""
        if not self.try_push(ring, cmd_type, phys):
            self._notify(ring)
            if not self.try_push(ring, cmd_type, phys):
                raise DeviceError(f"the {ring.replace('_', ' ')} stays full")

    def reclaim(self) -> int:
        """The interrupt handler's work: every id in the release ring, and the ids chained
        behind it through release_info.next, is freed. Returns how many."""
        freed = 0
        while True:
            popped = self._pop_releases()
            freed += popped
            if not popped:
                break
            self.device.io_write(QXL_IO_FLUSH_RELEASE)   # room again: the device may have more
        self.mem.ram_put("int_pending", 0)
        return freed

    def _pop_releases(self) -> int:
        n = self.mem.ram_get("release_ring.hdr.num_items")
        freed = 0
        while (cons := self.mem.ram_get("release_ring.hdr.cons")) != self.mem.ram_get("release_ring.hdr.prod"):
            item = self.mem.ram_offset("release_ring.items") + (cons & (n - 1)) * 8
            rid = int(self.mem.ram[item:item + 8].view("<u8")[0])
            for _ in range(len(self.resources) + 1):   # a chain is never longer than what we gave
                if rid == 0:
                    break
                res = self.resources.pop(rid, None)
                if res is None:
                    self.unknown_releases += 1
                    break
                rid = QXLReleaseInfo.get(self.mem.ram, res.offset, "id")   # now release_info.next
                self.ram.free(res.offset)
                if res.on_release is not None:
                    res.on_release()
                freed += 1
            self.mem.ram_put("release_ring.hdr.cons", (cons + 1) & 0xFFFFFFFF)
        return freed

    # --- commands ------------------------------------------------------------------------------

    def submit(self, cmd: object) -> None:
        """One of commands.py's commands, written into guest memory and pushed (or, for the primary
        surface, the io port); then the released resources are taken back."""
        try:
            if isinstance(cmd, DrawFill):
                self.draw_fill(cmd.surface_id, cmd.rect, cmd.color, cmd.clip)
            elif isinstance(cmd, DrawCopy):
                self.draw_copy(cmd.surface_id, cmd.rect, cmd.pixels, cmd.image_id, clip=cmd.clip)
            elif isinstance(cmd, CopyBits):
                self.copy_bits(cmd.surface_id, cmd.rect, cmd.src_x, cmd.src_y)
            elif isinstance(cmd, CopySurface):
                self.copy_surface(cmd.surface_id, cmd.rect, cmd.src_surface, cmd.src_x, cmd.src_y)
            elif isinstance(cmd, SurfaceCreate):
                self.create_surface(cmd)
            elif isinstance(cmd, SurfaceDestroy):
                self.destroy_surface(cmd.surface_id)
            elif isinstance(cmd, CursorSet):
                self.cursor_set(cmd)
            elif isinstance(cmd, CursorMove):
                self.cursor_cmd(QXL_CURSOR_MOVE, (cmd.x, cmd.y))
            elif isinstance(cmd, CursorHide):
                self.cursor_cmd(QXL_CURSOR_HIDE)
            else:
                raise DeviceError(f"unknown command {type(cmd).__name__}")
        except struct.error as e:
            self._drop_unpushed()
            raise DeviceError(f"{type(cmd).__name__}: a value does not fit its QXL field ({e})") from None
        except BaseException:
            self._drop_unpushed()
            raise
        finally:
            self.reclaim()

    def _drawable(self, surface_id: int, rect: Rect, draw_type: int, extra: int,
                  clip: tuple[Rect, ...] | None = None) -> tuple[int, int, int]:
        """A QXLDrawable (and `extra` bytes after it, then its QXLClipRects if it has a clip, as
        the Linux KMS driver clips its dirty-framebuffer copies): (release id, its offset,
        extra's offset)."""
        size = _align(QXLDrawable.size)
        extra = _align(extra)
        clip_size = 0 if clip is None else QXLClipRects.size + len(clip) * QXLRect.size
        rid, off = self._resource(size + extra + clip_size)
        values = {"release_info.id": rid, "surface_id": surface_id, "effect": QXL_EFFECT_OPAQUE,
                  "type": draw_type, **prefixed("bbox", rect.fields())}
        for i in range(3):
            values[f"surfaces_dest[{i}]"] = -1   # no other surface is read
        if clip is not None:
            at = off + size + extra
            QXLClipRects.pack_into(self.mem.ram, at, {"num_rects": len(clip),
                                                      "chunk.data_size": len(clip) * QXLRect.size})
            for i, c in enumerate(clip):
                QXLRect.pack_into(self.mem.ram, at + QXLClipRects.size + i * QXLRect.size,
                                  c.fields())
            values.update({"clip.type": SPICE_CLIP_TYPE_RECTS, "clip.data": self.ram_phys(at)})
        QXLDrawable.pack_into(self.mem.ram, off, values)
        return rid, off, off + size

    def draw_fill(self, surface_id: int, rect: Rect, color: int, clip: tuple[Rect, ...] | None = None) -> None:
        _, off, _ = self._drawable(surface_id, rect, QXL_DRAW_FILL, 0, clip)
        u = off + QXLDrawable.offsets["u"]
        QXLFill.pack_into(self.mem.ram, u, {"brush.type": SPICE_BRUSH_TYPE_SOLID,
                                             "brush.u": (color & 0xFFFFFFFF).to_bytes(4, "little"),
                                             "rop_descriptor": SPICE_ROPD_OP_PUT})
        self.push("cmd_ring", QXL_CMD_DRAW, self.ram_phys(off))

    def copy_bits(self, surface_id: int, rect: Rect, src_x: int, src_y: int) -> None:
        """A COPY_BITS: the surface's pixels at (src_x, src_y) moved to rect (the X driver's
        scrolls and window moves within one surface)."""
        _, off, _ = self._drawable(surface_id, rect, QXL_COPY_BITS, 0)
        QXLCopyBits.pack_into(self.mem.ram, off + QXLDrawable.offsets["u"], {"src_pos.x": src_x, "src_pos.y": src_y})
        self.push("cmd_ring", QXL_CMD_DRAW, self.ram_phys(off))

    def copy_surface(self, surface_id: int, rect: Rect, src_surface: int, src_x: int, src_y: int) -> None:
        """A DRAW_COPY from another surface, as the X driver writes it: a QXLImage of type
        SURFACE (id and size 0) naming the surface, which the drawable also lists as a source."""
        rid, off, image = self._drawable(surface_id, rect, QXL_DRAW_COPY, _align(QXLImage.size))
        src = Rect(src_x, src_y, src_x + rect.width, src_y + rect.height).fields()
        QXLCopy.pack_into(self.mem.ram, off + QXLDrawable.offsets["u"], {
            "src_bitmap": self.ram_phys(image), **prefixed("src_area", src),
            "rop_descriptor": SPICE_ROPD_OP_PUT, "scale_mode": SPICE_IMAGE_SCALE_MODE_NEAREST})
        QXLDrawable.put(self.mem.ram, off, "surfaces_dest[0]", src_surface)
        for k, v in src.items():
            QXLDrawable.put(self.mem.ram, off, f"surfaces_rects[0].{k}", v)
        QXLImage.pack_into(self.mem.ram, image, {"descriptor.type": SPICE_IMAGE_TYPE_SURFACE})
        QXLSurfaceId.pack_into(self.mem.ram, image + QXLImage.offsets["u"], {"surface_id": src_surface})
        self.push("cmd_ring", QXL_CMD_DRAW, self.ram_phys(off))

    def draw_copy(self, surface_id: int, rect: Rect, pixels: np.ndarray, image_id: int | None,
                  bitmap_format: int = SPICE_BITMAP_FMT_32BIT, clip: tuple[Rect, ...] | None = None) -> None:
        """A DRAW_COPY of a top-down bitmap (BGRX/BGRA pixels written in `bitmap_format`) in one
        QXLDataChunk, all in one allocation after the drawable: the pixels are copied once, into
        guest RAM."""
        h, w = pixels.shape[:2]
        rows = bitmap_rows(pixels, bitmap_format)
        stride = rows.shape[1]
        image_at = 0
        chunk_at = _align(QXLImage.size)
        rid, off, extra = self._drawable(surface_id, rect, QXL_DRAW_COPY,
                                         chunk_at + QXLDataChunk.size + stride * h, clip)
        image, chunk = extra + image_at, extra + chunk_at
        QXLCopy.pack_into(self.mem.ram, off + QXLDrawable.offsets["u"], {
            "src_bitmap": self.ram_phys(image), **prefixed("src_area", Rect(0, 0, w, h).fields()),
            "rop_descriptor": SPICE_ROPD_OP_PUT, "scale_mode": SPICE_IMAGE_SCALE_MODE_NEAREST})
        cached = image_id is not None
        QXLImage.pack_into(self.mem.ram, image, {
            "descriptor.id": (image_id if cached else rid) & 0xFFFFFFFFFFFFFFFF,
            "descriptor.type": SPICE_IMAGE_TYPE_BITMAP, "descriptor.flags": QXL_IMAGE_CACHE if cached else 0,
            "descriptor.width": w, "descriptor.height": h})
        QXLBitmap.pack_into(self.mem.ram, image + QXLImage.offsets["u"], {
            "format": bitmap_format, "flags": QXL_BITMAP_TOP_DOWN, "x": w, "y": h,
            "stride": stride, "data": self.ram_phys(chunk)})
        QXLDataChunk.pack_into(self.mem.ram, chunk, {"data_size": stride * h})
        data = chunk + QXLDataChunk.size
        self.mem.ram[data:data + stride * h].reshape(h, stride)[...] = rows
        self.push("cmd_ring", QXL_CMD_DRAW, self.ram_phys(off))

    def create_surface(self, cmd: SurfaceCreate) -> None:
        stride = cmd.width * 4
        if cmd.primary:
            if cmd.surface_id != PRIMARY_SURFACE:
                raise DeviceError(f"the primary surface is surface 0, not {cmd.surface_id}")
            self.create_primary(cmd.width, cmd.height, stride, cmd.format)
            return
        if cmd.surface_id == PRIMARY_SURFACE:
            raise DeviceError("surface 0 is the primary: made through CREATE_PRIMARY, not a surface command")
        size = stride * cmd.height
        vram = self.vram.alloc(size) if cmd.width > 0 and cmd.height > 0 else None
        if vram is None:
            raise DeviceError(f"surface size {cmd.width}x{cmd.height} is out of range (no room in VRAM)")
        rid, off = self._resource(_align(QXLSurfaceCmd.size))
        QXLSurfaceCmd.pack_into(self.mem.ram, off, {
            "release_info.id": rid, "surface_id": cmd.surface_id, "type": QXL_SURFACE_CMD_CREATE})
        QXLSurface.pack_into(self.mem.ram, off + QXLSurfaceCmd.offsets["u"], {
            "format": cmd.format, "width": cmd.width, "height": cmd.height, "stride": stride,
            "data": self.vram_phys(vram)})
        try:
            self.push("cmd_ring", QXL_CMD_SURFACE, self.ram_phys(off))
        except DeviceError:
            self.vram.free(vram)
            raise
        old = self.surfaces.pop(cmd.surface_id, None)
        if old is not None:   # created again over the old one: its memory is no longer the device's
            self.vram.free(old)
        self.surfaces[cmd.surface_id] = vram

    def create_primary(self, width: int, height: int, stride: int, fmt: int) -> None:
        self.mem.ram_put("create_surface.width", width & 0xFFFFFFFF)
        self.mem.ram_put("create_surface.height", height & 0xFFFFFFFF)
        self.mem.ram_put("create_surface.stride", max(-2**31, min(2**31 - 1, stride)))
        self.mem.ram_put("create_surface.format", fmt & 0xFFFFFFFF)
        self.mem.ram_put("create_surface.position", 0)
        self.mem.ram_put("create_surface.mouse_mode", 0)
        self.mem.ram_put("create_surface.flags", 0)
        self.mem.ram_put("create_surface.type", QXL_SURF_TYPE_PRIMARY)
        self.mem.ram_put("create_surface.mem", self.ram_phys(self.surface0[0]))
        self.device.io_write(QXL_IO_CREATE_PRIMARY)

    def destroy_surface(self, surface_id: int) -> None:
        if surface_id == PRIMARY_SURFACE:
            self.device.io_write(QXL_IO_DESTROY_PRIMARY)
            return
        vram = self.surfaces.pop(surface_id, None)
        # the surface's memory is the device's until the destroy command comes back
        on_release = (lambda: self.vram.free(vram)) if vram is not None else None
        rid, off = self._resource(_align(QXLSurfaceCmd.size), on_release)
        QXLSurfaceCmd.pack_into(self.mem.ram, off, {
            "release_info.id": rid, "surface_id": surface_id, "type": QXL_SURFACE_CMD_DESTROY})
        self.push("cmd_ring", QXL_CMD_SURFACE, self.ram_phys(off))

    def cursor_cmd(self, kind: int, position: tuple[int, int] | None = None) -> None:
        """A QXLCursorCmd MOVE (to `position`) or HIDE on the cursor ring."""
        rid, off = self._resource(_align(QXLCursorCmd.size))
        QXLCursorCmd.pack_into(self.mem.ram, off, {"release_info.id": rid, "type": kind})
        if position is not None:
            CursorMoveArgs.pack_into(self.mem.ram, off + QXLCursorCmd.offsets["u"], {
                "position.x": _i16(position[0]), "position.y": _i16(position[1])})
        self.push("cursor_ring", QXL_CMD_CURSOR, self.ram_phys(off))

    def cursor_set(self, cmd: CursorSet) -> None:
        px = cmd.shape.pixels
        h, w = px.shape[:2]
        n = w * h * 4
        size = _align(QXLCursorCmd.size)
        rid, off = self._resource(size + QXLCursor.size + n)
        shape = off + size
        QXLCursorCmd.pack_into(self.mem.ram, off, {"release_info.id": rid, "type": QXL_CURSOR_SET})
        CursorSetArgs.pack_into(self.mem.ram, off + QXLCursorCmd.offsets["u"], {
            "position.x": _i16(cmd.x), "position.y": _i16(cmd.y), "visible": int(bool(cmd.visible)),
            "shape": self.ram_phys(shape)})
        QXLCursor.pack_into(self.mem.ram, shape, {
            "header.unique": cmd.shape.unique & 0xFFFFFFFFFFFFFFFF, "header.type": SPICE_CURSOR_TYPE_ALPHA,
            "header.width": w, "header.height": h, "header.hot_spot_x": cmd.shape.hot_x,
            "header.hot_spot_y": cmd.shape.hot_y, "data_size": n, "chunk.data_size": n})
        data = shape + QXLCursor.size
        self.mem.ram[data:data + n].reshape(h, w, 4)[...] = px
        self.push("cursor_ring", QXL_CMD_CURSOR, self.ram_phys(off))

    def update_area(self, surface_id: int, rect: Rect, update_id: int) -> None:
        """A QXL_CMD_UPDATE: the device draws the area and answers with rom.update_id."""
        rid, off = self._resource(_align(QXLUpdateCmd.size))
        QXLUpdateCmd.pack_into(self.mem.ram, off, {
            "release_info.id": rid, **prefixed("area", rect.fields()),
            "update_id": update_id, "surface_id": surface_id})
        try:
            self.push("cmd_ring", QXL_CMD_UPDATE, self.ram_phys(off))
        finally:
            self.reclaim()


def _i16(v: int) -> int:
    # a cursor position is a QXLPoint16 (as on the SPICE wire)
    return max(-32768, min(32767, int(v)))

