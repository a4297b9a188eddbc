"""The QXL device model as a guest driver and spice-server see it: the qxl_dev.h layouts, the ROM
and RAM header, the rings, memory slots and the release ring; every command goes guest ->
memory -> rings -> device and comes out as the same command and the same framebuffer as the
plain model it replaced; a hostile guest's memory is a DeviceError, never a read out of bounds."""
from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from spicetool.qxl import qxl_dev as dev
from spicetool.qxl.commands import (
    PRIMARY_SURFACE,
    CopyBits,
    CopySurface,
    CursorHide,
    CursorMove,
    CursorSet,
    CursorShape,
    DrawCopy,
    DrawFill,
    Rect,
    SurfaceCreate,
    SurfaceDestroy,
)
from spicetool.qxl.demo import DemoDesktop
from spicetool.qxl.device import QxlDevice, color_bgrx
from spicetool.qxl.qxl_dev import DeviceError, QxlMemory, make_phys
from spicetool.replay.capture_replay import CaptureReplay

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(pages=4 << 20, vram_size=4 << 20, surface0_size=1024 * 768 * 4)


def small_device() -> QxlDevice:
    return QxlDevice(memory=QxlMemory(**SMALL))


class Reference:
    """The plain model the device replaced: numpy surfaces, commands applied as given."""

    def __init__(self) -> None:
        self.surfaces: dict[int, np.ndarray] = {}

    def submit(self, cmd) -> None:
        if isinstance(cmd, SurfaceCreate):
            self.surfaces[cmd.surface_id] = np.zeros((cmd.height, cmd.width, 4), dtype=np.uint8)
        elif isinstance(cmd, SurfaceDestroy):
            self.surfaces.pop(cmd.surface_id, None)
        elif isinstance(cmd, (DrawFill, DrawCopy)):
            s = self.surfaces[cmd.surface_id]
            drawn = np.zeros(s.shape[:2], bool)   # where the draw reaches: its rect, within its clip
            r = cmd.rect
            drawn[max(r.top, 0):max(r.bottom, 0), max(r.left, 0):max(r.right, 0)] = True
            if cmd.clip is not None:
                inside = np.zeros_like(drawn)
                for c in cmd.clip:
                    inside[max(c.top, 0):max(c.bottom, 0), max(c.left, 0):max(c.right, 0)] = True
                drawn &= inside
            if isinstance(cmd, DrawFill):
                s[drawn] = color_bgrx(cmd.color)
            else:
                whole = np.zeros_like(s)
                t, le = max(r.top, 0), max(r.left, 0)
                b, ri = max(t, min(r.bottom, s.shape[0])), max(le, min(r.right, s.shape[1]))
                whole[t:b, le:ri, :3] = cmd.pixels[t - r.top:b - r.top, le - r.left:ri - r.left, :3]
                s[drawn] = whole[drawn]
        elif isinstance(cmd, (CopyBits, CopySurface)):
            s = self.surfaces[cmd.surface_id]
            src = s if isinstance(cmd, CopyBits) else self.surfaces[cmd.src_surface]
            r, w, h = cmd.rect, cmd.rect.width, cmd.rect.height
            s[r.top:r.bottom, r.left:r.right] = src[cmd.src_y:cmd.src_y + h, cmd.src_x:cmd.src_x + w].copy()

    def rgb(self, surface_id: int = PRIMARY_SURFACE) -> np.ndarray:
        return self.surfaces[surface_id][:, :, 2::-1].copy()


def same(a, b) -> bool:
    """Dataclasses equal field by field, numpy arrays by value (shared/stream are the worker's)."""
    if type(a) is not type(b):
        return False
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
                   if f.name not in ("shared", "stream"))
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and np.array_equal(a, b)
    return a == b


def pixels(w: int, h: int, seed: int = 0) -> np.ndarray:
    px = np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)
    px[:, :, 3] = 0
    return px


def arrow() -> CursorShape:
    px = np.random.default_rng(7).integers(0, 256, (24, 16, 4), dtype=np.uint8)
    return CursorShape(unique=0x1234_5678_9ABC, pixels=px, hot_x=3, hot_y=5)


def all_commands() -> list:
    return [
        SurfaceCreate(PRIMARY_SURFACE, 320, 200),
        DrawFill(PRIMARY_SURFACE, Rect(0, 0, 320, 200), 0x203040),
        DrawFill(PRIMARY_SURFACE, Rect(-10, 190, 50, 260), 0xFFEEDD),          # clipped by the device
        DrawCopy(PRIMARY_SURFACE, Rect(10, 20, 74, 68), pixels(64, 48, 1)),
        DrawCopy(PRIMARY_SURFACE, Rect(300, 180, 340, 220), pixels(40, 40, 2), image_id=0xDEAD_BEEF_0000_0001),
        DrawFill(PRIMARY_SURFACE, Rect(0, 100, 200, 200), 0x405060,   # clipped to two (overlapping) rects
                 clip=(Rect(10, 90, 60, 150), Rect(40, 120, 250, 130))),
        DrawCopy(PRIMARY_SURFACE, Rect(100, 20, 164, 68), pixels(64, 48, 4),   # the KMS driver's dirty rects
                 clip=(Rect(100, 20, 110, 68), Rect(150, 30, 170, 40))),
        CopyBits(PRIMARY_SURFACE, Rect(10, 10, 70, 60), 14, 26),       # a scroll up and left, overlapping
        CopyBits(PRIMARY_SURFACE, Rect(20, 30, 80, 80), 10, 10),       # and down and right
        SurfaceCreate(5, 40, 30, primary=False),
        DrawFill(5, Rect(0, 0, 40, 30), 0x00FF00),
        DrawCopy(5, Rect(4, 4, 20, 20), pixels(16, 16, 3)),
        CopySurface(PRIMARY_SURFACE, Rect(100, 100, 130, 120), 6, 8, src_surface=5),   # an off-screen pixmap drawn
        SurfaceDestroy(5),
        CursorSet(100, 80, arrow()),
        CursorMove(-5, 199),
        CursorHide(),
        CursorSet(1, 2, arrow(), visible=False),
    ]


# --- layouts and the ROM ------------------------------------------------------------------------

def test_layouts_have_qxl_dev_h_sizes_and_offsets():
    sizes = {dev.QXLRom: 1160, dev.QXLRam: 5348, dev.QXLDrawable: 191, dev.QXLSurfaceCmd: 41,
             dev.QXLCursorCmd: 150, dev.QXLImageDescriptor: 18, dev.QXLDataChunk: 20, dev.QXLCommand: 16,
             dev.QXLMode: 32, dev.QXLSurfaceCreate: 40, dev.QXLUpdateCmd: 32, dev.QXLCursor: 42,
             dev.QXLBitmap: 30, dev.QXLImage: 48, dev.QXLReleaseInfo: 8}
    assert {layout.name: layout.size for layout in sizes} == {layout.name: n for layout, n in sizes.items()}
    ram = dev.QXLRam.offsets
    assert (ram["cmd_ring"], ram["cursor_ring"], ram["release_ring"], ram["update_area"], ram["create_surface"]) == \
        (4108, 4640, 5172, 5256, 5292)
    assert dev.QXLDrawable.offsets["u"] == 123 and dev.QXLDrawable.offsets["bbox.top"] == 31
    assert dev.QXLRom.offsets["slots_start"] == 64 and dev.QXLRom.offsets["client_monitors_config"] == 132
    assert dev.QXL_ROM_MAGIC == 0x4F525851 and dev.QXL_RAM_MAGIC == 0x41525851


def test_a_struct_packs_and_unpacks_by_name():
    buf = bytearray(dev.QXLDrawable.size)
    dev.QXLDrawable.pack_into(buf, 0,
                              {"release_info.id": 9, "surface_id": 2, "type": dev.QXL_DRAW_COPY,
                               "bbox.left": -3, "surfaces_dest[2]": -1, "surfaces_rects[1].right": 7})
    d = dev.QXLDrawable.unpack(buf)
    assert (d["release_info.id"], d["surface_id"], d["type"], d["bbox.left"], d["surfaces_dest[2]"],
            d["surfaces_rects[1].right"], d["effect"]) == (9, 2, 3, -3, -1, 7, 0)
    assert buf[dev.QXLDrawable.offsets["bbox.left"]:][:4] == (-3).to_bytes(4, "little", signed=True)
    with pytest.raises(KeyError):
        dev.QXLDrawable.pack_into(buf, 0, {"no_such_field": 1})


def test_rom_and_modes_as_a_driver_reads_them():
    d = QxlDevice()
    mem = d.memory
    rom = dev.QXLRom.unpack(mem.rom)
    assert rom["magic"] == dev.QXL_ROM_MAGIC and rom["n_surfaces"] == dev.N_SURFACES
    assert (rom["slot_id_bits"], rom["slot_gen_bits"], rom["slots_start"]) == (8, 8, 0)
    # the RAM header is where the ROM says, after the pages, after the primary's area
    assert rom["ram_header_offset"] + dev.QXLRam.size <= mem.ram.size
    assert dev.QXLRam.get(mem.ram, rom["ram_header_offset"], "magic") == dev.QXL_RAM_MAGIC
    assert rom["draw_area_offset"] == 0 and rom["pages_offset"] == rom["surface0_area_size"]
    assert rom["pages_offset"] + rom["num_pages"] * 4096 == rom["ram_header_offset"]
    for ring, n in (("cmd_ring", 32), ("cursor_ring", 32), ("release_ring", 8)):
        assert mem.ram_get(f"{ring}.hdr.num_items") == n
    n_modes = dev.QXLModes.unpack(mem.rom, rom["modes_offset"])["n_modes"]
    modes = [dev.QXLMode.unpack(mem.rom, rom["modes_offset"] + 4 + i * 32) for i in range(n_modes)]
    assert (1024, 768) in [(m["x_res"], m["y_res"]) for m in modes]
    for i, m in enumerate(modes):
        assert m["id"] == i and m["bits"] == 32 and m["stride"] == m["x_res"] * 4
        assert m["stride"] * m["y_res"] <= rom["surface0_area_size"]
    assert [(m.width, m.height) for m in d.driver.modes] == [(m["x_res"], m["y_res"]) for m in modes]
    # the driver registered its slots: RAM and VRAM, at the ROM's generation
    assert sorted(mem.slots) == [0, 1] and mem.slots[0].bar is mem.ram and mem.slots[1].bar is mem.vram


def test_physical_addresses_carry_slot_and_generation():
    phys = make_phys(1, 3, 0x2_0000_1000)
    assert phys >> 56 == 1 and (phys >> 48) & 0xFF == 3 and phys & dev.VA_SLOT_MASK == 0x2_0000_1000
    assert dev.split_phys(phys) == (1, 3, 0x2_0000_1000)


# --- rings ---------------------------------------------------------------------------------------

def test_rings_wrap_around_and_report_full():
    d = small_device()
    drv, mem = d.driver, d.memory
    d.submit(SurfaceCreate(PRIMARY_SURFACE, 64, 64))
    start = 0xFFFF_FFF0   # the indexes wrap past 2**32 in this test
    for k in ("prod", "cons"):
        mem.ram_put(f"cmd_ring.hdr.{k}", start)
    mem.ram_put("cmd_ring.hdr.notify_on_prod", start - 1)   # the device does not ask to be told: it fills
    ref = Reference()
    ref.submit(SurfaceCreate(PRIMARY_SURFACE, 64, 64))
    fills = [DrawFill(PRIMARY_SURFACE, Rect(i, i, i + 8, i + 8), 0x010203 * i) for i in range(40)]
    for f in fills[:32]:
        drv.draw_fill(f.surface_id, f.rect, f.color)
        ref.submit(f)
    assert drv.ring_full("cmd_ring")
    assert not drv.try_push("cmd_ring", dev.QXL_CMD_NOP, 0)
    assert d.commands == 1                       # nothing carried out yet
    for f in fills[32:]:                         # a full ring: the driver waits for the device
        drv.draw_fill(f.surface_id, f.rect, f.color)
        ref.submit(f)
    d.io_write(dev.QXL_IO_NOTIFY_CMD)
    prod, cons = mem.ram_get("cmd_ring.hdr.prod"), mem.ram_get("cmd_ring.hdr.cons")
    assert prod == cons == (start + 40) & 0xFFFFFFFF and prod < start
    assert np.array_equal(d.framebuffer_rgb(), ref.rgb())
    assert d.commands == 41
    drv.reclaim()
    assert not drv.resources and drv.ram.in_use == 0


def test_release_ring_chains_and_waits_for_the_guest():
    """More releases than the ring holds: chained through release_info.next, the rest held
    until the guest has made room (FLUSH_RELEASE)."""
    d = small_device()
    drv, mem = d.driver, d.memory
    d.submit(SurfaceCreate(PRIMARY_SURFACE, 32, 32))
    for _ in range(9):            # 9 x 32 releases, the guest not reclaiming meanwhile
        mem.ram_put("cmd_ring.hdr.notify_on_prod", 0)
        for i in range(32):
            drv.draw_fill(PRIMARY_SURFACE, Rect(0, 0, 4, 4), i)
        d.io_write(dev.QXL_IO_NOTIFY_CMD)
    assert mem.ram_get("release_ring.hdr.prod") - mem.ram_get("release_ring.hdr.cons") == 8
    assert len(d._releases) == 32   # the 9th bunch waits
    assert drv.reclaim() == 9 * 32
    assert not drv.resources and drv.ram.in_use == 0 and not d._releases and drv.unknown_releases == 0


# --- commands round-trip -------------------------------------------------------------------------

def test_every_command_comes_out_of_guest_memory_as_it_went_in():
    d = small_device()
    ref = Reference()
    seen = []
    d.listeners.append(seen.append)
    for cmd in all_commands():
        before = len(seen)
        d.submit(cmd)
        ref.submit(cmd)
        assert len(seen) == before + 1
        out = seen[-1]
        assert out is not cmd and same(out, cmd), (out, cmd)
        if isinstance(cmd, DrawCopy):   # read back out of guest memory, once
            assert not np.shares_memory(out.pixels, cmd.pixels) and not np.shares_memory(out.pixels, d.memory.ram)
        for sid in ref.surfaces:
            assert np.array_equal(d.framebuffer_rgb(sid), ref.rgb(sid))
        assert not d.driver.resources and d.driver.ram.in_use == 0
    assert d.cursor.shape is not None and not d.cursor.visible and (d.cursor.x, d.cursor.y) == (1, 2)
    assert d.driver.vram.in_use == 0      # surface 5's memory came back with its destroy


@pytest.mark.parametrize("fmt, bpp", [(dev.SPICE_BITMAP_FMT_16BIT, 2), (dev.SPICE_BITMAP_FMT_24BIT, 3),
                                      (dev.SPICE_BITMAP_FMT_RGBA, 4)])
def test_draw_copy_of_the_other_bitmap_formats(fmt, bpp):
    """16BIT (x555), 24BIT and RGBA bitmaps, as the X driver writes them, read by the device into
    the surface's xRGB (16BIT widened as spice's canvas does: the top bits repeated below)."""
    d = small_device()
    d.submit(SurfaceCreate(PRIMARY_SURFACE, 64, 48))
    px = np.random.default_rng(fmt).integers(0, 256, (30, 40, 4), dtype=np.uint8)
    d.driver.draw_copy(PRIMARY_SURFACE, Rect(5, 6, 45, 36), px, None, bitmap_format=fmt)
    d.io_write(dev.QXL_IO_NOTIFY_CMD)
    want = px[:, :, 2::-1]
    if fmt == dev.SPICE_BITMAP_FMT_16BIT:
        want = (want & 0xF8) | (want >> 5)
    assert np.array_equal(d.framebuffer_rgb()[6:36, 5:45], want)
    assert not d.framebuffer_rgb()[:6].any() and not d.framebuffer_rgb()[36:].any()
    assert d.driver.reclaim() == 1 and d.driver.ram.in_use == 0


@pytest.mark.parametrize("rect, src, message", [
    (Rect(0, 0, 10, 10), (60, 0), "copy bits from"),
    (Rect(60, 40, 70, 50), (0, 0), "outside the 64x48 source or the 64x48 destination"),
    (Rect(0, 0, 10, 10), (-1, 0), "outside the 64x48 source"),
])
def test_copy_bits_outside_the_surface(rect, src, message):
    d = small_device()
    d.submit(SurfaceCreate(PRIMARY_SURFACE, 64, 48))
    with pytest.raises(DeviceError, match=message):
        d.submit(CopyBits(PRIMARY_SURFACE, rect, *src))
    assert not d.driver.resources and d.driver.ram.in_use == 0
    d.submit(DrawFill(PRIMARY_SURFACE, Rect(0, 0, 64, 48), 0x010203))   # the device goes on
    assert (d.framebuffer_rgb() == [1, 2, 3]).all()


@pytest.mark.parametrize("cmd, message", [
    (CopySurface(PRIMARY_SURFACE, Rect(0, 0, 4, 4), 0, 0, src_surface=9), "copy from surface 9, which does not exist"),
    (CopySurface(PRIMARY_SURFACE, Rect(0, 0, 20, 20), 0, 0, src_surface=3), "outside the 10x10 source"),
    (CopySurface(PRIMARY_SURFACE, Rect(60, 40, 68, 48), 0, 0, src_surface=3), "or the 64x48 destination"),
])
def test_copy_from_a_surface_that_cannot_be(cmd, message):
    d = small_device()
    d.submit(SurfaceCreate(PRIMARY_SURFACE, 64, 48))
    d.submit(SurfaceCreate(3, 10, 10, primary=False))
    with pytest.raises(DeviceError, match=message):
        d.submit(cmd)
    assert not d.driver.resources and d.driver.ram.in_use == 0


def test_surfaces_are_guest_memory():
    d = small_device()
    d.submit(SurfaceCreate(PRIMARY_SURFACE, 64, 48))
    d.submit(SurfaceCreate(2, 10, 10, primary=False))
    assert np.shares_memory(d.primary, d.memory.ram) and np.shares_memory(d.surfaces[2], d.memory.vram)
    d.submit(DrawFill(2, Rect(0, 0, 10, 10), 0x112233))
    off = d.driver.surfaces[2]
    assert list(d.memory.vram[off:off + 4]) == [0x33, 0x22, 0x11, 0]
    # the primary's mode went through the RAM header's create_surface
    assert (d.memory.ram_get("create_surface.width"), d.memory.ram_get("create_surface.height"),
            d.memory.ram_get("create_surface.stride")) == (64, 48, 256)


def test_worker_hints_travel_with_the_draw():
    d = small_device()
    d.submit(SurfaceCreate(PRIMARY_SURFACE, 64, 64))
    seen = []
    d.listeners.append(seen.append)
    cmd = DrawCopy(PRIMARY_SURFACE, Rect(0, 0, 8, 8), pixels(8, 8), video=True)
    cmd.shared["prebuilt"] = 1
    d.submit(cmd)
    assert seen[-1].video and seen[-1].shared is cmd.shared


def test_update_command_is_answered():
    d = small_device()
    d.submit(SurfaceCreate(PRIMARY_SURFACE, 64, 64))
    d.driver.update_area(PRIMARY_SURFACE, Rect(0, 0, 10, 10), 77)
    assert d.memory.rom_field("update_id") == 77
    with pytest.raises(DeviceError, match="update of surface 9, which does not exist"):
        d.driver.update_area(9, Rect(0, 0, 1, 1), 78)
    assert not d.driver.resources and d.driver.ram.in_use == 0


def test_no_leak_over_10000_commands():
    d = small_device()
    d.submit(SurfaceCreate(PRIMARY_SURFACE, 256, 256))
    ref = Reference()
    ref.submit(SurfaceCreate(PRIMARY_SURFACE, 256, 256))
    rng = np.random.default_rng(3)
    imgs = [pixels(int(w), int(h), i) for i, (w, h) in enumerate(rng.integers(1, 80, (16, 2)))]
    cmds = []
    for i in range(10000):
        k = i % 7
        x, y = int(rng.integers(-20, 250)), int(rng.integers(-20, 250))
        if k in (0, 1):
            cmds.append(DrawFill(PRIMARY_SURFACE, Rect(x, y, x + 30, y + 20), int(rng.integers(0, 1 << 24))))
        elif k in (2, 3):
            px = imgs[i % len(imgs)]
            cmds.append(DrawCopy(PRIMARY_SURFACE, Rect(x, y, x + px.shape[1], y + px.shape[0]), px,
                                 image_id=i if k == 3 else None))
        elif k == 4:
            cmds.append(CursorMove(x, y))
        elif k == 5:
            cmds.append(SurfaceCreate(1 + i % 3, 32, 32, primary=False))
        else:
            cmds.append(SurfaceDestroy(1 + (i - 1) % 3))
    for c in cmds:
        d.submit(c)
        ref.submit(c)
    assert np.array_equal(d.framebuffer_rgb(), ref.rgb())
    drv = d.driver
    assert not drv.resources and drv.unknown_releases == 0 and not d._releases
    assert drv.ram.in_use == 0 and drv.ram.free_bytes == drv.ram.end - drv.ram.start
    assert drv.vram.in_use == sum(32 * 32 * 4 for s in d.surfaces if s != PRIMARY_SURFACE)


# --- a hostile guest -----------------------------------------------------------------------------

def raw(d: QxlDevice, layout: dev.Layout, values: dict, extra: int = 0) -> tuple[int, int]:
    """A struct the test writes itself into guest RAM: (its QXLPHYSICAL, its RAM offset)."""
    rid, off = d.driver._resource(layout.size + extra)
    layout.pack_into(d.memory.ram, off, {"release_info.id": rid, **values} if "release_info.id" in layout.names
                     else values)
    return d.driver.ram_phys(off), off


def ready() -> QxlDevice:
    d = small_device()
    d.submit(SurfaceCreate(PRIMARY_SURFACE, 64, 64))
    d.submit(DrawFill(PRIMARY_SURFACE, Rect(0, 0, 64, 64), 0x445566))
    return d


def still_works(d: QxlDevice, picture: np.ndarray) -> None:
    """The error changed nothing, and the device goes on."""
    assert np.array_equal(d.framebuffer_rgb(), picture)
    d.submit(DrawFill(PRIMARY_SURFACE, Rect(0, 0, 2, 2), 0x010101))
    assert list(d.framebuffer_rgb()[0, 0]) == [1, 1, 1]
    d.driver.reclaim()


@pytest.mark.parametrize("make, message", [
    (lambda d: make_phys(5, 0, dev.RAM_BAR_PHYS + 4096 * 300), "memory slot 5 is not registered"),
    (lambda d: make_phys(0, 1, dev.RAM_BAR_PHYS + d.memory.surface0_size), "generation 1, memory slot 0 is at generation 0"),
    (lambda d: make_phys(0, 0, dev.RAM_BAR_PHYS + d.memory.ram.size - 10), "run outside memory slot 0"),
    (lambda d: make_phys(0, 0, dev.RAM_BAR_PHYS - 4096), "run outside memory slot 0"),
    (lambda d: make_phys(1, 0, dev.VRAM_BAR_PHYS + (1 << 40)), "run outside memory slot 1"),
])
def test_bad_physical_addresses(make, message):
    d = ready()
    picture = d.framebuffer_rgb()
    assert d.driver.try_push("cmd_ring", dev.QXL_CMD_DRAW, make(d), notify=False)
    with pytest.raises(DeviceError, match=message):
        d.io_write(dev.QXL_IO_NOTIFY_CMD)
    still_works(d, picture)


def test_addresses_of_an_old_generation_fail_after_reset():
    d = ready()
    phys, _ = raw(d, dev.QXLDrawable, {"type": dev.QXL_DRAW_NOP})
    d.driver.reset()
    assert d.memory.rom_field("slot_generation") == 1 and not d.surfaces
    assert d.driver.try_push("cmd_ring", dev.QXL_CMD_DRAW, phys, notify=False)
    with pytest.raises(DeviceError, match="generation 0, memory slot 0 is at generation 1"):
        d.io_write(dev.QXL_IO_NOTIFY_CMD)
    d.submit(SurfaceCreate(PRIMARY_SURFACE, 8, 8))   # the driver's new addresses work
    assert d.primary.shape == (8, 8, 4)


def copy_in_memory(d: QxlDevice, w: int = 8, h: int = 8) -> dict:
    """A DRAW_COPY written by the driver but not pushed: the test corrupts it first."""
    seen = {}
    orig = d.driver.push
    d.driver.push = lambda ring, t, phys: seen.update(ring=ring, type=t, phys=phys)
    try:
        d.driver.draw_copy(PRIMARY_SURFACE, Rect(0, 0, w, h), pixels(w, h), None)
    finally:
        d.driver.push = orig
    drawable = dev.split_phys(seen["phys"])[2] - dev.RAM_BAR_PHYS
    copy = dev.QXLCopy.unpack(d.memory.ram, drawable + dev.QXLDrawable.offsets["u"])
    image = dev.split_phys(copy["src_bitmap"])[2] - dev.RAM_BAR_PHYS
    bitmap = image + dev.QXLImage.offsets["u"]
    chunk = dev.split_phys(dev.QXLBitmap.get(d.memory.ram, bitmap, "data"))[2] - dev.RAM_BAR_PHYS
    return dict(seen, drawable=drawable, image=image, bitmap=bitmap, chunk=chunk)


def run_corrupted(d: QxlDevice, c: dict, message: str) -> None:
    picture = d.framebuffer_rgb()
    assert d.driver.try_push(c["ring"], c["type"], c["phys"], notify=False)
    with pytest.raises(DeviceError, match=message):
        d.io_write(dev.QXL_IO_NOTIFY_CMD if c["ring"] == "cmd_ring" else dev.QXL_IO_NOTIFY_CURSOR)
    still_works(d, picture)
    assert not d.driver.resources and d.driver.ram.in_use == 0   # the bad command came back too


def test_chunk_chain_that_loops():
    d = ready()
    c = copy_in_memory(d)
    dev.QXLDataChunk.pack_into(d.memory.ram, c["chunk"], {
        "data_size": 8, "next_chunk": d.driver.ram_phys(c["chunk"])})
    run_corrupted(d, c, "chunk chain loops")


def test_chunk_that_runs_past_the_bar():
    d = ready()
    c = copy_in_memory(d)
    end = d.memory.ram.size - 100       # 20 bytes of header fit, 256 bytes of data do not
    dev.QXLBitmap.put(d.memory.ram, c["bitmap"], "data", d.driver.ram_phys(end))
    dev.QXLDataChunk.pack_into(d.memory.ram, end, {"data_size": 256})
    run_corrupted(d, c, "run outside memory slot 0")


@pytest.mark.parametrize("layout, where, field, value, message", [
    (dev.QXLDataChunk, "chunk", "data_size", 0xFFFF_FFF0, "more than the 256 bytes expected"),  # longer than the image
    (dev.QXLDataChunk, "chunk", "data_size", 100, "hold 100 bytes, 256 expected"),              # ends short
    (dev.QXLImage, "image", "descriptor.width", 0xFFFF_FFFF, "bitmap 8x8 in an image of 4294967295x8"),
    (dev.QXLImage, "image", "descriptor.type", 1, "image type 1 is not supported"),
    (dev.QXLBitmap, "bitmap", "x", 0xFFFF_FFFF, "bitmap 4294967295x8 in an image of 8x8"),
    (dev.QXLBitmap, "bitmap", "stride", 0xFFFF_FFFF, "bitmap stride 4294967295 is out of range"),
    (dev.QXLBitmap, "bitmap", "stride", 4, "bitmap stride 4 is out of range"),
    (dev.QXLBitmap, "bitmap", "format", 5, "bitmap format 5 is not supported"),
])
def test_absurd_fields_of_a_copy(layout, where, field, value, message):
    """One field of a DRAW_COPY's chunk, image or bitmap made absurd."""
    d = ready()
    c = copy_in_memory(d)
    layout.put(d.memory.ram, c[where], field, value)
    run_corrupted(d, c, message)


def test_absurd_image_size_agreeing_everywhere():
    d = ready()
    c = copy_in_memory(d)
    for layout, at, w, h in ((dev.QXLImage, c["image"], "descriptor.width", "descriptor.height"),
                             (dev.QXLBitmap, c["bitmap"], "x", "y")):
        layout.put(d.memory.ram, at, w, 70000)
        layout.put(d.memory.ram, at, h, 70000)
    run_corrupted(d, c, "image size 70000x70000 is out of range")


def _solid_fill() -> bytes:
    buf = bytearray(68)
    dev.QXLFill.pack_into(buf, 0, {"brush.type": dev.SPICE_BRUSH_TYPE_SOLID, "rop_descriptor": dev.SPICE_ROPD_OP_PUT})
    return bytes(buf)


SOLID_FILL = _solid_fill()


@pytest.mark.parametrize("values, message", [
    ({"type": 11}, "drawable type 11 is not supported"),
    ({"type": dev.QXL_DRAW_FILL, "clip.type": 2}, "clip type 2 is not supported"),
    ({"type": dev.QXL_DRAW_FILL, "clip.type": 1, "clip.data": 0x1234}, "QXLClipRects at .* outside memory slot"),
    ({"type": dev.QXL_COPY_BITS, "clip.type": 1}, "clip rects are supported on FILL and COPY drawables only"),
    ({"type": dev.QXL_DRAW_FILL, "surface_id": 5000}, "surface id 5000 is out of range"),
    ({"type": dev.QXL_DRAW_FILL, "surface_id": 7, "u": SOLID_FILL}, "draw on surface 7, which does not exist"),
    ({"type": dev.QXL_DRAW_FILL, "u": SOLID_FILL[:20] + b"\x01"}, "rop descriptor 0x1 is not supported"),
    ({"type": dev.QXL_DRAW_FILL}, "fill brush type 0 is not supported"),
])
def test_bad_drawables(values, message):
    d = ready()
    phys, _ = raw(d, dev.QXLDrawable, values)
    c = {"ring": "cmd_ring", "type": dev.QXL_CMD_DRAW, "phys": phys}
    run_corrupted(d, c, message)


@pytest.mark.parametrize("num_rects, data_size, message", [
    (100_000, 16, "100000 clip rects"),
    (2, 16, "clip rects: data chunks hold 16 bytes, 32 expected"),
    (1, 48, "clip rects: data chunks hold more than the 16 bytes expected"),
])
def test_bad_clip_rects(num_rects, data_size, message):
    d = ready()
    # the clip rects right after the drawable, in its allocation (given back with it)
    phys, off = raw(d, dev.QXLDrawable, {"type": dev.QXL_DRAW_FILL, "u": SOLID_FILL, "clip.type": 1},
                    extra=dev.QXLClipRects.size + 64)
    at = off + dev.QXLDrawable.size
    dev.QXLClipRects.pack_into(d.memory.ram, at, {"num_rects": num_rects, "chunk.data_size": data_size})
    dev.QXLDrawable.put(d.memory.ram, off, "clip.data", d.driver.ram_phys(at))
    run_corrupted(d, {"ring": "cmd_ring", "type": dev.QXL_CMD_DRAW, "phys": phys}, message)


@pytest.mark.parametrize("ring, cmd_type, message", [
    ("cmd_ring", 9, "unknown command type 9 on the command ring"),
    ("cmd_ring", dev.QXL_CMD_CURSOR, "unknown command type 3 on the command ring"),
    ("cursor_ring", dev.QXL_CMD_DRAW, "command type 1 on the cursor ring"),
])
def test_unknown_command_types(ring, cmd_type, message):
    d = ready()
    phys, _ = raw(d, dev.QXLDrawable, {"type": dev.QXL_DRAW_NOP})
    picture = d.framebuffer_rgb()
    assert d.driver.try_push(ring, cmd_type, phys, notify=False)
    port = dev.QXL_IO_NOTIFY_CMD if ring == "cmd_ring" else dev.QXL_IO_NOTIFY_CURSOR
    with pytest.raises(DeviceError, match=message):
        d.io_write(port)
    still_works(d, picture)


@pytest.mark.parametrize("values, extra, message", [
    ({"type": 9}, 0, "cursor command type 9 is unknown"),
    ({"type": dev.QXL_CURSOR_SET}, 0, "QXLCursor at 0x0000000000000000: 42 bytes at 0x0 run outside memory slot 0"),
])
def test_bad_cursor_commands(values, extra, message):
    d = ready()
    phys, _ = raw(d, dev.QXLCursorCmd, values, extra)
    run_corrupted(d, {"ring": "cursor_ring", "type": dev.QXL_CMD_CURSOR, "phys": phys}, message)


@pytest.mark.parametrize("header, message", [
    ({"header.type": 1, "header.width": 4, "header.height": 4, "data_size": 64}, "cursor type 1 is not supported"),
    ({"header.width": 5000, "header.height": 4, "data_size": 64}, "cursor size 5000x4 is out of range"),
    ({"header.width": 4, "header.height": 4, "data_size": 1 << 30}, "cursor data_size 1073741824"),
    ({"header.width": 4, "header.height": 4, "data_size": 64, "chunk.data_size": 1 << 30}, "more than the 64 bytes"),
])
def test_bad_cursor_shapes(header, message):
    d = ready()
    phys, off = raw(d, dev.QXLCursorCmd, {"type": dev.QXL_CURSOR_SET}, 8 + dev.QXLCursor.size + 64)
    shape = off + 152     # in the command's own allocation, as the drivers put it
    dev.QXLCursor.pack_into(d.memory.ram, shape, header)
    dev.CursorSetArgs.pack_into(d.memory.ram, off + dev.QXLCursorCmd.offsets["u"],
                                {"shape": d.driver.ram_phys(shape), "visible": 1})
    run_corrupted(d, {"ring": "cursor_ring", "type": dev.QXL_CMD_CURSOR, "phys": phys}, message)


@pytest.mark.parametrize("values, message", [
    ({"surface_id": 0, "type": dev.QXL_SURFACE_CMD_CREATE}, "surface 0 is the primary"),
    ({"surface_id": 3, "type": 7}, "surface command type 7 is unknown"),
    ({"surface_id": 3, "type": dev.QXL_SURFACE_CMD_CREATE}, "surface format 0 is not supported"),
])
def test_bad_surface_commands(values, message):
    d = ready()
    phys, _ = raw(d, dev.QXLSurfaceCmd, values)
    run_corrupted(d, {"ring": "cmd_ring", "type": dev.QXL_CMD_SURFACE, "phys": phys}, message)


@pytest.mark.parametrize("surface, message", [
    ({"width": 100000, "height": 100000}, "surface size 100000x100000 is out of range"),
    ({"width": 64, "height": 64, "stride": -1}, "surface stride -1 is out of range"),
    ({"width": 64, "height": 64, "stride": 1 << 30}, "surface stride 1073741824 is out of range"),
    ({"width": 1024, "height": 1100, "stride": 4096}, "run outside memory slot 1"),    # VRAM is 4 MiB
])
def test_absurd_surfaces(surface, message):
    d = ready()
    phys, off = raw(d, dev.QXLSurfaceCmd, {"surface_id": 3, "type": dev.QXL_SURFACE_CMD_CREATE})
    values = {"format": 32, "stride": surface.get("width", 0) * 4, "data": d.driver.vram_phys(0), **surface}
    dev.QXLSurface.pack_into(d.memory.ram, off + dev.QXLSurfaceCmd.offsets["u"], values)
    run_corrupted(d, {"ring": "cmd_ring", "type": dev.QXL_CMD_SURFACE, "phys": phys}, message)


def test_primary_bigger_than_its_area():
    d = small_device()      # a surface0 area of 1024x768
    with pytest.raises(DeviceError, match="does not fit the surface0 area"):
        d.submit(SurfaceCreate(PRIMARY_SURFACE, 1024, 1000))
    with pytest.raises(DeviceError, match="surface size 0x10 is out of range"):
        d.submit(SurfaceCreate(PRIMARY_SURFACE, 0, 10))
    d.submit(SurfaceCreate(PRIMARY_SURFACE, 1024, 768))
    assert d.primary.shape == (768, 1024, 4)


def test_commands_the_driver_cannot_write_leave_nothing_behind():
    d = ready()
    with pytest.raises(DeviceError, match="does not fit its QXL field"):
        d.submit(DrawFill(PRIMARY_SURFACE, Rect(0, 0, 1 << 40, 10), 1))
    with pytest.raises(DeviceError, match="image 8x8 does not fit rect"):
        d.submit(DrawCopy(PRIMARY_SURFACE, Rect(0, 0, 9, 8), pixels(8, 8)))
    with pytest.raises(DeviceError, match="surface size 100000x100000 is out of range"):
        d.submit(SurfaceCreate(4, 100000, 100000, primary=False))
    with pytest.raises(DeviceError, match="the primary surface is surface 0"):
        d.submit(SurfaceCreate(4, 10, 10))
    assert not d.driver.resources and d.driver.ram.in_use == 0 and d.driver.vram.in_use == 0


def test_ring_indexes_out_of_step():
    d = ready()
    d.memory.ram_put("cmd_ring.hdr.prod", d.memory.ram_get("cmd_ring.hdr.cons") + 1000)
    with pytest.raises(DeviceError, match="more than 32 items ahead"):
        d.io_write(dev.QXL_IO_NOTIFY_CMD)


def test_unknown_io_port_and_slot():
    d = ready()
    with pytest.raises(DeviceError, match="io port 99 is not supported"):
        d.io_write(99)
    with pytest.raises(DeviceError, match="memory slot 8 does not exist"):
        d.io_write(dev.QXL_IO_MEMSLOT_ADD, 8)
    d.memory.ram_put("mem_slot.mem_start", dev.RAM_BAR_PHYS)
    d.memory.ram_put("mem_slot.mem_end", dev.RAM_BAR_PHYS + d.memory.ram.size + 1)
    with pytest.raises(DeviceError, match="not inside the RAM or VRAM bar"):
        d.io_write(dev.QXL_IO_MEMSLOT_ADD, 3)


# --- whole desktops through the device -----------------------------------------------------------

class Recorder:
    """A device stand-in for DemoDesktop/CaptureReplay that keeps what was submitted."""

    def __init__(self, device: QxlDevice):
        self.device, self.given = device, []
        self._submit = device.submit
        self.out: list = []
        device.listeners.append(self.out.append)

    def submit(self, cmd) -> None:
        self.given.append(cmd)
        self._submit(cmd)


def test_demo_desktop_through_the_device():
    d = QxlDevice()
    rec = Recorder(d)
    demo = DemoDesktop(d)
    d.submit = rec.submit
    demo.draw_initial()
    for _ in range(60):
        demo.step()
    demo.resize(800, 600)
    for _ in range(10):
        demo.step()
    ref = Reference()
    for cmd in rec.given:
        ref.submit(cmd)
    assert len(rec.out) == len(rec.given) and all(same(a, b) for a, b in zip(rec.out, rec.given))
    assert np.array_equal(d.framebuffer_rgb(), ref.rgb()) and d.primary.shape == (600, 800, 4)
    assert not d.driver.resources and d.driver.ram.in_use == 0


def test_typing_capture_replayed_through_the_device():
    from spicetool.render.frames import picture_at
    path = ROOT / "captures" / "typing.pcapng"
    if not path.exists():
        pytest.skip("typing.pcapng is not in captures/")
    d = QxlDevice()
    rec = Recorder(d)
    replay = CaptureReplay(d, str(path), speed=10000)
    d.submit = rec.submit
    replay.prepare()
    asyncio.run(replay.run())
    ref = Reference()
    for cmd in rec.given:
        ref.submit(cmd)
    assert all(same(a, b) for a, b in zip(rec.out, rec.given)) and len(rec.out) == len(rec.given)
    assert np.array_equal(d.framebuffer_rgb(), ref.rgb())
    assert np.array_equal(d.framebuffer_rgb(), picture_at(str(path)).image)
    assert not d.driver.resources and d.driver.ram.in_use == 0
