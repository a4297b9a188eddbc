"""The QXL device as guest memory: the layouts of spice-protocol's `spice/qxl_dev.h` (and the
rings of `spice/ipc_ring.h`), the three PCI bars and the memory slots.

Every struct is described once, as an ordered list of (field, type): the offsets follow from the
order (the header's structs are packed, little-endian), and one `Layout` packs and unpacks any
of them. Nested structs flatten to dotted names ("bbox.left"); a union is a blob as large as its
largest member, whose members are Layouts of their own read at the union's offset.

The memory (`QxlMemory`) is what the device exposes and the driver writes:
- ROM bar (2): QXLRom, then the QXLModes table at rom.modes_offset;
- RAM bar (0): the primary surface's area at 0 (rom.draw_area_offset, surface0_area_size),
  then pages the driver allocates its commands and images from, then the QXLRam header at
  rom.ram_header_offset (the rings, update_area, mem_slot, create_surface);
- VRAM bar (1): the off-screen surfaces.
The bars are numpy byte arrays made with np.zeros: their pages cost nothing until written.

Addresses in commands are QXLPHYSICAL: the memory slot's id and generation in the high bits
(rom.slot_id_bits, rom.slot_gen_bits), below them a guest physical address that must fall in
the slot's [mem_start, mem_end) range, as registered by the driver (QXL_IO_MEMSLOT_ADD).
`QxlMemory.resolve` turns one into a bar and offset or raises DeviceError: the device never
reads outside what a slot covers.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Sequence, Union

import numpy as np

from spicetool.stack.enums import (
    BitmapFmt,
    BrushType,
    ClipType,
    CursorType,
    ImageScaleMode,
    ImageType,
    Ropd,
    SurfaceFmt,
)


class DeviceError(ValueError):
    """A command the device cannot carry out (unknown surface, bad size, bad guest memory...)."""


# --- numbers (qxl_dev.h, ipc_ring.h, enums.h) ------------------------------------------------

QXL_ROM_MAGIC = int.from_bytes(b"QXRO", "little")
QXL_RAM_MAGIC = int.from_bytes(b"QXRA", "little")
QXL_RAM_RANGE_INDEX, QXL_VRAM_RANGE_INDEX, QXL_ROM_RANGE_INDEX, QXL_IO_RANGE_INDEX = range(4)

(QXL_IO_NOTIFY_CMD, QXL_IO_NOTIFY_CURSOR, QXL_IO_UPDATE_AREA, QXL_IO_UPDATE_IRQ, QXL_IO_NOTIFY_OOM,
 QXL_IO_RESET, QXL_IO_SET_MODE, QXL_IO_LOG, QXL_IO_MEMSLOT_ADD, QXL_IO_MEMSLOT_DEL,
 QXL_IO_DETACH_PRIMARY, QXL_IO_ATTACH_PRIMARY, QXL_IO_CREATE_PRIMARY, QXL_IO_DESTROY_PRIMARY,
 QXL_IO_DESTROY_SURFACE_WAIT, QXL_IO_DESTROY_ALL_SURFACES, QXL_IO_UPDATE_AREA_ASYNC,
 QXL_IO_MEMSLOT_ADD_ASYNC, QXL_IO_CREATE_PRIMARY_ASYNC, QXL_IO_DESTROY_PRIMARY_ASYNC,
 QXL_IO_DESTROY_SURFACE_ASYNC, QXL_IO_DESTROY_ALL_SURFACES_ASYNC, QXL_IO_FLUSH_SURFACES_ASYNC,
 QXL_IO_FLUSH_RELEASE, QXL_IO_MONITORS_CONFIG_ASYNC) = range(25)

QXL_CMD_NOP, QXL_CMD_DRAW, QXL_CMD_UPDATE, QXL_CMD_CURSOR, QXL_CMD_MESSAGE, QXL_CMD_SURFACE = range(6)

(QXL_DRAW_NOP, QXL_DRAW_FILL, QXL_DRAW_OPAQUE, QXL_DRAW_COPY, QXL_COPY_BITS, QXL_DRAW_BLEND,
 QXL_DRAW_BLACKNESS, QXL_DRAW_WHITENESS, QXL_DRAW_INVERS, QXL_DRAW_ROP3, QXL_DRAW_STROKE,
 QXL_DRAW_TEXT, QXL_DRAW_TRANSPARENT, QXL_DRAW_ALPHA_BLEND, QXL_DRAW_COMPOSITE) = range(15)

QXL_EFFECT_BLEND, QXL_EFFECT_OPAQUE = 0, 1
QXL_CURSOR_SET, QXL_CURSOR_MOVE, QXL_CURSOR_HIDE, QXL_CURSOR_TRAIL = range(4)
QXL_SURFACE_CMD_CREATE, QXL_SURFACE_CMD_DESTROY = 0, 1
QXL_SURF_TYPE_PRIMARY = 0
QXL_SURF_FLAG_KEEP_DATA = 1 << 0
QXL_IMAGE_CACHE = 1 << 0
QXL_BITMAP_DIRECT, QXL_BITMAP_UNSTABLE, QXL_BITMAP_TOP_DOWN = 1 << 0, 1 << 1, 1 << 2
QXL_IMAGE_GROUP_DRIVER, QXL_IMAGE_GROUP_DEVICE, QXL_IMAGE_GROUP_RED, QXL_IMAGE_GROUP_DRIVER_DONT_CACHE = range(4)

QXL_INTERRUPT_DISPLAY, QXL_INTERRUPT_CURSOR, QXL_INTERRUPT_IO_CMD = 1 << 0, 1 << 1, 1 << 2
QXL_INTERRUPT_ERROR, QXL_INTERRUPT_CLIENT, QXL_INTERRUPT_CLIENT_MONITORS_CONFIG = 1 << 3, 1 << 4, 1 << 5

QXL_COMMAND_RING_SIZE, QXL_CURSOR_RING_SIZE, QXL_RELEASE_RING_SIZE = 32, 32, 8
QXL_LOG_BUF_SIZE = 4096
QXL_CURSOR_DEVICE_DATA_SIZE = 128

# enums.h values the device uses: stack.enums', by their enums.h names, as plain ints
SPICE_SURFACE_FMT_32_xRGB = int(SurfaceFmt.FMT_32_xRGB)
SPICE_IMAGE_TYPE_BITMAP, SPICE_IMAGE_TYPE_SURFACE = int(ImageType.BITMAP), int(ImageType.SURFACE)
SPICE_BITMAP_FMT_16BIT, SPICE_BITMAP_FMT_24BIT, SPICE_BITMAP_FMT_32BIT, SPICE_BITMAP_FMT_RGBA = (
    int(f) for f in (BitmapFmt.FMT_16BIT, BitmapFmt.FMT_24BIT, BitmapFmt.FMT_32BIT, BitmapFmt.RGBA))
SPICE_BRUSH_TYPE_SOLID = int(BrushType.SOLID)
SPICE_CLIP_TYPE_NONE, SPICE_CLIP_TYPE_RECTS = int(ClipType.NONE), int(ClipType.RECTS)
SPICE_ROPD_OP_PUT = int(Ropd.OP_PUT)
SPICE_IMAGE_SCALE_MODE_NEAREST = int(ImageScaleMode.NEAREST)
SPICE_CURSOR_TYPE_ALPHA = int(CursorType.ALPHA)


# --- the declarative layouts -------------------------------------------------------------------

@dataclass(frozen=True)
class Array:
    """`count` elements of a struct code or Layout, flattened to name[0], name[1]..."""
    elem: "FieldType"
    count: int


@dataclass(frozen=True)
class UnionOf:
    """A C union: as many bytes as its largest member; read a member with its own Layout."""
    members: tuple["Layout", ...]


FieldType = Union[str, "Layout", Array, UnionOf]


class Layout:
    """A packed little-endian struct: `unpack` gives {flattened name: value}, `pack_into` writes
    one from such a dict (missing fields are zero)."""

    def __init__(self, name: str, fields: Sequence[tuple[str, FieldType]]):
        self.name = name
        self.names: list[str] = []
        self.offsets: dict[str, int] = {}
        self._defaults: list[Any] = []
        self._codes: dict[str, str] = {}
        codes: list[str] = []
        pos = 0
        for fname, ftype in fields:
            pos = self._add(fname, ftype, pos, codes)
        self.code = "".join(codes)
        self.struct = struct.Struct("<" + self.code)
        self.size = pos
        assert self.struct.size == pos, (name, self.struct.size, pos)
        self._index = {n: i for i, n in enumerate(self.names)}
        self._fields = {n: struct.Struct("<" + c) for n, c in self._codes.items()}

    def _add(self, fname: str, ftype: FieldType, pos: int, codes: list[str]) -> int:
        self.offsets[fname] = pos
        if isinstance(ftype, Layout):
            for sub in ftype.names:
                self.names.append(f"{fname}.{sub}")
                self._codes[f"{fname}.{sub}"] = ftype._codes[sub]
            self._defaults += ftype._defaults
            for sub, off in ftype.offsets.items():
                self.offsets[f"{fname}.{sub}"] = pos + off
            codes.append(ftype.code)
            return pos + ftype.size
        if isinstance(ftype, Array):
            for i in range(ftype.count):
                pos = self._add(f"{fname}[{i}]", ftype.elem, pos, codes)
            return pos
        if isinstance(ftype, UnionOf):
            ftype = f"{max(m.size for m in ftype.members)}s"
        self.names.append(fname)
        self._codes[fname] = ftype
        self._defaults.append(b"" if ftype.endswith("s") else 0)
        codes.append(ftype)
        return pos + struct.calcsize("<" + ftype)

    def unpack(self, buf: Any, offset: int = 0) -> dict[str, Any]:
        return dict(zip(self.names, self.struct.unpack_from(buf, offset)))

    def pack_into(self, buf: Any, offset: int, values: dict[str, Any]) -> None:
        row = list(self._defaults)
        for k, v in values.items():
            row[self._index[k]] = v   # KeyError: a field this struct does not have
        self.struct.pack_into(buf, offset, *row)

    def get(self, buf: Any, offset: int, name: str) -> Any:
        return self._fields[name].unpack_from(buf, offset + self.offsets[name])[0]

    def put(self, buf: Any, offset: int, name: str, value: Any) -> None:
        self._fields[name].pack_into(buf, offset + self.offsets[name], value)

    def __repr__(self) -> str:
        return f"Layout({self.name}, {self.size} bytes)"


PHYS = "Q"   # QXLPHYSICAL
QXLPoint = Layout("QXLPoint", [("x", "i"), ("y", "i")])
QXLPoint16 = Layout("QXLPoint16", [("x", "h"), ("y", "h")])
QXLRect = Layout("QXLRect", [("top", "i"), ("left", "i"), ("bottom", "i"), ("right", "i")])
QXLURect = Layout("QXLURect", [("top", "I"), ("left", "I"), ("bottom", "I"), ("right", "I")])

QXLRom = Layout("QXLRom", [
    ("magic", "I"), ("id", "I"), ("update_id", "I"), ("compression_level", "I"), ("log_level", "I"),
    ("mode", "I"), ("modes_offset", "I"), ("num_pages", "I"), ("pages_offset", "I"),
    ("draw_area_offset", "I"), ("surface0_area_size", "I"), ("ram_header_offset", "I"),
    ("mm_clock", "I"), ("n_surfaces", "I"), ("flags", "Q"),
    ("slots_start", "B"), ("slots_end", "B"), ("slot_gen_bits", "B"), ("slot_id_bits", "B"),
    ("slot_generation", "B"),
    ("client_present", "B"), ("client_capabilities", "58s"), ("client_monitors_config_crc", "I"),
    ("client_monitors_config", Layout("ClientMonitorsConfig", [
        ("count", "H"), ("padding", "H"), ("heads", "1024s")])),   # 64 QXLURect
])
QXLMode = Layout("QXLMode", [
    ("id", "I"), ("x_res", "I"), ("y_res", "I"), ("bits", "I"), ("stride", "I"),
    ("x_mili", "I"), ("y_mili", "I"), ("orientation", "I")])
QXLModes = Layout("QXLModes", [("n_modes", "I")])   # followed by n_modes QXLMode

QXLCommand = Layout("QXLCommand", [("data", PHYS), ("type", "I"), ("padding", "I")])
RingHeader = Layout("QXLRingHeader", [
    ("num_items", "I"), ("prod", "I"), ("notify_on_prod", "I"), ("cons", "I"), ("notify_on_cons", "I")])


def _ring(name: str, elem_size: int, count: int) -> Layout:
    # ring elements are padded to a power of two: QXLCommand (16) and u64 (8) already are
    return Layout(name, [("hdr", RingHeader), ("items", f"{elem_size * count}s")])


QXLCommandRing = _ring("QXLCommandRing", QXLCommand.size, QXL_COMMAND_RING_SIZE)
QXLCursorRing = _ring("QXLCursorRing", QXLCommand.size, QXL_CURSOR_RING_SIZE)
QXLReleaseRing = _ring("QXLReleaseRing", 8, QXL_RELEASE_RING_SIZE)
QXLMemSlot = Layout("QXLMemSlot", [("mem_start", "Q"), ("mem_end", "Q")])
QXLSurfaceCreate = Layout("QXLSurfaceCreate", [
    ("width", "I"), ("height", "I"), ("stride", "i"), ("format", "I"), ("position", "I"),
    ("mouse_mode", "I"), ("flags", "I"), ("type", "I"), ("mem", PHYS)])
QXLRam = Layout("QXLRam", [
    ("magic", "I"), ("int_pending", "I"), ("int_mask", "I"), ("log_buf", f"{QXL_LOG_BUF_SIZE}s"),
    ("cmd_ring", QXLCommandRing), ("cursor_ring", QXLCursorRing), ("release_ring", QXLReleaseRing),
    ("update_area", QXLRect), ("update_surface", "I"), ("mem_slot", QXLMemSlot),
    ("create_surface", QXLSurfaceCreate), ("flags", "Q"), ("monitors_config", PHYS)])

QXLReleaseInfo = Layout("QXLReleaseInfo", [("id", "Q")])   # union: id in, next out
QXLDataChunk = Layout("QXLDataChunk", [("data_size", "I"), ("prev_chunk", PHYS), ("next_chunk", PHYS)])
QXLClipRects = Layout("QXLClipRects", [("num_rects", "I"), ("chunk", QXLDataChunk)])   # QXLRects follow
QXLMessage = Layout("QXLMessage", [("release_info", QXLReleaseInfo)])
QXLUpdateCmd = Layout("QXLUpdateCmd", [
    ("release_info", QXLReleaseInfo), ("area", QXLRect), ("update_id", "I"), ("surface_id", "I")])

QXLCursorHeader = Layout("QXLCursorHeader", [
    ("unique", "Q"), ("type", "H"), ("width", "H"), ("height", "H"), ("hot_spot_x", "H"), ("hot_spot_y", "H")])
QXLCursor = Layout("QXLCursor", [("header", QXLCursorHeader), ("data_size", "I"), ("chunk", QXLDataChunk)])
CursorSetArgs = Layout("QXLCursorCmd.u.set", [("position", QXLPoint16), ("visible", "B"), ("shape", PHYS)])
CursorTrailArgs = Layout("QXLCursorCmd.u.trail", [("length", "H"), ("frequency", "H")])
CursorMoveArgs = Layout("QXLCursorCmd.u.position", [("position", QXLPoint16)])
QXLCursorCmd = Layout("QXLCursorCmd", [
    ("release_info", QXLReleaseInfo), ("type", "B"),
    ("u", UnionOf((CursorSetArgs, CursorTrailArgs, CursorMoveArgs))),
    ("device_data", f"{QXL_CURSOR_DEVICE_DATA_SIZE}s")])

QXLPattern = Layout("QXLPattern", [("pat", PHYS), ("pos", QXLPoint)])
SolidColor = Layout("QXLBrush.u.color", [("color", "I")])
QXLBrush = Layout("QXLBrush", [("type", "I"), ("u", UnionOf((SolidColor, QXLPattern)))])
QXLQMask = Layout("QXLQMask", [("flags", "B"), ("pos", QXLPoint), ("bitmap", PHYS)])
QXLClip = Layout("QXLClip", [("type", "I"), ("data", PHYS)])
QXLFill = Layout("QXLFill", [("brush", QXLBrush), ("rop_descriptor", "H"), ("mask", QXLQMask)])
QXLOpaque = Layout("QXLOpaque", [
    ("src_bitmap", PHYS), ("src_area", QXLRect), ("brush", QXLBrush), ("rop_descriptor", "H"),
    ("scale_mode", "B"), ("mask", QXLQMask)])
QXLCopy = Layout("QXLCopy", [
    ("src_bitmap", PHYS), ("src_area", QXLRect), ("rop_descriptor", "H"), ("scale_mode", "B"),
    ("mask", QXLQMask)])
QXLTransparent = Layout("QXLTransparent", [
    ("src_bitmap", PHYS), ("src_area", QXLRect), ("src_color", "I"), ("true_color", "I")])
QXLAlphaBlend = Layout("QXLAlphaBlend", [
    ("alpha_flags", "H"), ("alpha", "B"), ("src_bitmap", PHYS), ("src_area", QXLRect)])
QXLCopyBits = Layout("QXLCopyBits", [("src_pos", QXLPoint)])
QXLRop3 = Layout("QXLRop3", [
    ("src_bitmap", PHYS), ("src_area", QXLRect), ("brush", QXLBrush), ("rop3", "B"),
    ("scale_mode", "B"), ("mask", QXLQMask)])
QXLLineAttr = Layout("QXLLineAttr", [
    ("flags", "B"), ("join_style", "B"), ("end_style", "B"), ("style_nseg", "B"),
    ("width", "i"), ("miter_limit", "i"), ("style", PHYS)])
QXLStroke = Layout("QXLStroke", [
    ("path", PHYS), ("attr", QXLLineAttr), ("brush", QXLBrush), ("fore_mode", "H"), ("back_mode", "H")])
QXLText = Layout("QXLText", [
    ("str", PHYS), ("back_area", QXLRect), ("fore_brush", QXLBrush), ("back_brush", QXLBrush),
    ("fore_mode", "H"), ("back_mode", "H")])
QXLBlackness = Layout("QXLBlackness", [("mask", QXLQMask)])
QXLDrawable = Layout("QXLDrawable", [
    ("release_info", QXLReleaseInfo), ("surface_id", "I"), ("effect", "B"), ("type", "B"),
    ("self_bitmap", "B"), ("self_bitmap_area", QXLRect), ("bbox", QXLRect), ("clip", QXLClip),
    ("mm_time", "I"), ("surfaces_dest", Array("i", 3)), ("surfaces_rects", Array(QXLRect, 3)),
    ("u", UnionOf((QXLFill, QXLOpaque, QXLCopy, QXLTransparent, QXLAlphaBlend, QXLCopyBits,
                   QXLRop3, QXLStroke, QXLText, QXLBlackness)))])

QXLSurface = Layout("QXLSurface", [
    ("format", "I"), ("width", "I"), ("height", "I"), ("stride", "i"), ("data", PHYS)])
QXLSurfaceCmd = Layout("QXLSurfaceCmd", [
    ("release_info", QXLReleaseInfo), ("surface_id", "I"), ("type", "B"), ("flags", "I"),
    ("u", UnionOf((QXLSurface,)))])

QXLImageDescriptor = Layout("QXLImageDescriptor", [
    ("id", "Q"), ("type", "B"), ("flags", "B"), ("width", "I"), ("height", "I")])
QXLBitmap = Layout("QXLBitmap", [
    ("format", "B"), ("flags", "B"), ("x", "I"), ("y", "I"), ("stride", "I"), ("palette", PHYS),
    ("data", PHYS)])
QXLQUICData = Layout("QXLQUICData", [("data_size", "I")])
QXLSurfaceId = Layout("QXLSurfaceId", [("surface_id", "I")])
QXLImage = Layout("QXLImage", [
    ("descriptor", QXLImageDescriptor), ("u", UnionOf((QXLBitmap, QXLQUICData, QXLSurfaceId)))])


def prefixed(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{k}": v for k, v in values.items()}


# --- memory slots and physical addresses --------------------------------------------------------

SLOT_ID_BITS = 8
SLOT_GEN_BITS = 8
NUM_MEMSLOTS = 8
SLOT_RAM, SLOT_VRAM = 0, 1   # the slots our driver registers (rom.slots_start + 0 and + 1)
VA_BITS = 64 - SLOT_ID_BITS - SLOT_GEN_BITS
VA_SLOT_MASK = (1 << VA_BITS) - 1

# guest physical addresses of the bars (where the guest's firmware mapped them)
RAM_BAR_PHYS = 0x1_0000_0000
VRAM_BAR_PHYS = 0x2_0000_0000
ROM_BAR_PHYS = 0x3_0000_0000

PAGE = 4096
N_SURFACES = 1024
MAX_PRIMARY = 8192 * 8192 * 4          # the largest primary the surface0 area holds
DEFAULT_PAGES = 64 << 20               # the driver's command/image memory in the RAM bar
DEFAULT_VRAM = 64 << 20
ROM_SIZE = 8192


def make_phys(slot_id: int, generation: int, address: int) -> int:
    """A QXLPHYSICAL: slot id and generation above VA_BITS, the physical address below."""
    return (slot_id << (64 - SLOT_ID_BITS)) | (generation << VA_BITS) | (address & VA_SLOT_MASK)


def split_phys(phys: int) -> tuple[int, int, int]:
    """(slot id, generation, physical address) of a QXLPHYSICAL."""
    return phys >> (64 - SLOT_ID_BITS), (phys >> VA_BITS) & ((1 << SLOT_GEN_BITS) - 1), phys & VA_SLOT_MASK


@dataclass
class MemSlot:
    start: int        # guest physical, inclusive
    end: int          # exclusive
    generation: int
    bar: np.ndarray
    bar_phys: int     # the bar's guest physical address


def _align(n: int, to: int = PAGE) -> int:
    return (n + to - 1) // to * to


DEFAULT_MODES = ((640, 480), (800, 600), (1024, 768), (1280, 720), (1280, 1024), (1440, 900),
                 (1600, 900), (1920, 1080), (1920, 1200), (2560, 1440), (2560, 1600), (3840, 2160))


class QxlMemory:
    """The device's three bars, the ROM it presents and the memory slots the driver added."""

    def __init__(self, pages: int = DEFAULT_PAGES, vram_size: int = DEFAULT_VRAM,
                 surface0_size: int = MAX_PRIMARY, modes: Sequence[tuple[int, int]] = DEFAULT_MODES):
        self.surface0_size = _align(surface0_size)
        self.ram_header_offset = self.surface0_size + _align(pages)
        self.ram = np.zeros(self.ram_header_offset + _align(QXLRam.size), dtype=np.uint8)
        self.vram = np.zeros(_align(vram_size), dtype=np.uint8)
        self.rom = np.zeros(ROM_SIZE, dtype=np.uint8)
        self.slots: dict[int, MemSlot] = {}
        self._write_rom(modes)
        self.reset_ram()

    # the ROM: fixed at power-on; the driver reads it to find everything else
    def _write_rom(self, modes: Sequence[tuple[int, int]]) -> None:
        modes_offset = _align(QXLRom.size, 64)
        QXLRom.pack_into(self.rom, 0, {
            "magic": QXL_ROM_MAGIC, "id": 0, "compression_level": 2, "modes_offset": modes_offset,
            "num_pages": (self.ram_header_offset - self.surface0_size) // PAGE,
            "pages_offset": self.surface0_size, "draw_area_offset": 0,
            "surface0_area_size": self.surface0_size, "ram_header_offset": self.ram_header_offset,
            "n_surfaces": N_SURFACES, "slots_start": 0, "slots_end": NUM_MEMSLOTS - 1,
            "slot_gen_bits": SLOT_GEN_BITS, "slot_id_bits": SLOT_ID_BITS, "slot_generation": 0})
        fitting = [(w, h) for w, h in modes if w * h * 4 <= self.surface0_size]
        assert modes_offset + 4 + len(fitting) * QXLMode.size <= ROM_SIZE
        QXLModes.pack_into(self.rom, modes_offset, {"n_modes": len(fitting)})
        for i, (w, h) in enumerate(fitting):
            QXLMode.pack_into(self.rom, modes_offset + 4 + i * QXLMode.size, {
                "id": i, "x_res": w, "y_res": h, "bits": 32, "stride": w * 4,
                "x_mili": w * 254 // 960, "y_mili": h * 254 // 960, "orientation": 0})  # 96 dpi

    def rom_field(self, name: str) -> Any:
        return QXLRom.get(self.rom, 0, name)

    def reset_ram(self) -> None:
        """The QXLRam header as the device sets it on reset: magic, empty rings."""
        off = self.ram_header_offset
        QXLRam.pack_into(self.ram, off, {"magic": QXL_RAM_MAGIC})
        for ring, n in (("cmd_ring", QXL_COMMAND_RING_SIZE), ("cursor_ring", QXL_CURSOR_RING_SIZE),
                        ("release_ring", QXL_RELEASE_RING_SIZE)):
            self.ram_put(f"{ring}.hdr.num_items", n)
            self.ram_put(f"{ring}.hdr.notify_on_prod", 1)
        self.slots.clear()

    def ram_get(self, name: str) -> Any:
        """A field of the QXLRam header."""
        return QXLRam.get(self.ram, self.ram_header_offset, name)

    def ram_put(self, name: str, value: Any) -> None:
        QXLRam.put(self.ram, self.ram_header_offset, name, value)

    def ram_offset(self, name: str) -> int:
        return self.ram_header_offset + QXLRam.offsets[name]

    # memory slots
    def bar_of(self, start: int, end: int) -> tuple[np.ndarray, int]:
        """The bar that holds guest physical [start, end), and the bar's address."""
        for bar, base in ((self.ram, RAM_BAR_PHYS), (self.vram, VRAM_BAR_PHYS)):
            if base <= start < end <= base + bar.size:
                return bar, base
        raise DeviceError(f"memory slot range 0x{start:x}-0x{end:x} is not inside the RAM or VRAM bar")

    def add_slot(self, slot_id: int, start: int, end: int) -> None:
        if not 0 <= slot_id < NUM_MEMSLOTS:
            raise DeviceError(f"memory slot {slot_id} does not exist (the device has {NUM_MEMSLOTS})")
        bar, base = self.bar_of(start, end)
        self.slots[slot_id] = MemSlot(start, end, self.rom_field("slot_generation"), bar, base)

    def del_slot(self, slot_id: int) -> None:
        self.slots.pop(slot_id, None)

    def resolve(self, phys: int, length: int, what: str = "data") -> tuple[np.ndarray, int]:
        """The bar and offset of `length` bytes at QXLPHYSICAL `phys`, checked against its slot."""
        slot_id, gen, addr = split_phys(phys)
        slot = self.slots.get(slot_id)
        if slot is None:
            raise DeviceError(f"{what} at 0x{phys:016x}: memory slot {slot_id} is not registered")
        if gen != slot.generation:
            raise DeviceError(f"{what} at 0x{phys:016x}: generation {gen}, memory slot {slot_id} is at "
                              f"generation {slot.generation}")
        if length < 0 or addr < slot.start or addr + length > slot.end:
            raise DeviceError(f"{what} at 0x{phys:016x}: {length} bytes at 0x{addr:x} run outside memory "
                              f"slot {slot_id} (0x{slot.start:x}-0x{slot.end:x})")
        return slot.bar, addr - slot.bar_phys

    def read(self, phys: int, layout: Layout) -> dict[str, Any]:
        bar, off = self.resolve(phys, layout.size, layout.name)
        return layout.unpack(bar, off)

    def bytes_at(self, phys: int, length: int, what: str = "data") -> np.ndarray:
        """A view (no copy) of guest memory."""
        bar, off = self.resolve(phys, length, what)
        return bar[off:off + length]


def phys_add(phys: int, n: int, what: str = "data") -> int:
    """`phys` + n bytes, in the same slot: a carry into the slot bits is a bad address."""
    slot_id, gen, addr = split_phys(phys)
    if addr + n > VA_SLOT_MASK:
        raise DeviceError(f"{what} at 0x{phys:016x}+{n} runs past the end of the address space")
    return make_phys(slot_id, gen, addr + n)
