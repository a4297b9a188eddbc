"""Display channel (type 2): surfaces, draw commands, images, video streams."""
from __future__ import annotations

from typing import Callable

from .. import image_headers as ih
from ..schema import (Array, Bytes, Pointer, Struct, Switch, enum, flags, i16, i32, i64, u8,
                      u16, u32, u64)
from .common import Data, Empty

# --- enums and flags (spice.proto names) ---
clip_type = enum(u8, ["NONE", "RECTS"])
path_flags = flags(u8, {1: "BEGIN", 2: "END", 8: "CLOSE", 16: "BEZIER"})
video_codec_type = enum(u8, ["MJPEG", "VP8", "H264", "VP9", "H265"], start=1)
stream_flags = flags(u8, ["TOP_DOWN"])
brush_type = enum(u8, ["NONE", "SOLID", "PATTERN"])
mask_flags = flags(u8, ["INVERS"])
image_type = enum(u8, {0: "BITMAP", 1: "QUIC", 2: "RESERVED", 100: "LZ_PLT", 101: "LZ_RGB",
                       102: "GLZ_RGB", 103: "FROM_CACHE", 104: "SURFACE", 105: "JPEG",
                       106: "FROM_CACHE_LOSSLESS", 107: "ZLIB_GLZ_RGB", 108: "JPEG_ALPHA",
                       109: "LZ4"})
image_compression = enum(u8, ["INVALID", "OFF", "AUTO_GLZ", "AUTO_LZ", "QUIC", "GLZ", "LZ", "LZ4"])
image_flags = flags(u8, ["CACHE_ME", "HIGH_BITS_SET", "CACHE_REPLACE_ME"])
bitmap_fmt = enum(u8, ih.BITMAP_FMTS)
bitmap_flags = flags(u8, ["PAL_CACHE_ME", "PAL_FROM_CACHE", "TOP_DOWN"])
PAL_FROM_CACHE = bitmap_flags.values["PAL_FROM_CACHE"]
jpeg_alpha_flags = flags(u8, ["TOP_DOWN"])
image_scale_mode = enum(u8, ["INTERPOLATE", "NEAREST"])
ropd = flags(u16, ["INVERS_SRC", "INVERS_BRUSH", "INVERS_DEST", "OP_PUT", "OP_OR", "OP_AND",
                   "OP_XOR", "OP_BLACKNESS", "OP_WHITENESS", "OP_INVERS", "INVERS_RES"])
line_flags = flags(u8, {8: "STYLED", 4: "START_WITH_GAP"})
LINE_STYLED = line_flags.values["STYLED"]
string_flags = flags(u8, ["RASTER_A1", "RASTER_A4", "RASTER_A8", "RASTER_TOP_DOWN"])
surface_flags = flags(u32, ["PRIMARY", "STREAMING_MODE"])
surface_fmt = enum(u32, {0: "INVALID", 1: "1_A", 8: "8_A", 16: "16_555", 80: "16_565",
                         32: "32_xRGB", 96: "32_ARGB"})
alpha_flags = flags(u8, ["DEST_HAS_ALPHA", "SRC_SURFACE_HAS_ALPHA"])
composite_flags = flags(u32, ["OP0", "OP1", "OP2", "OP3", "OP4", "OP5", "OP6", "OP7",
                              "SRC_FILTER0", "SRC_FILTER1", "SRC_FILTER2", "MASK_FILTER0",
                              "MASK_FITLER1", "MASK_FILTER2", "SRC_REPEAT0", "SRC_REPEAT1",
                              "MASK_REPEAT0", "MASK_REPEAT1", "COMPONENT_ALPHA", "HAS_MASK",
                              "HAS_SRC_TRANSFORM", "HAS_MASK_TRANSFORM", "SOURCE_OPAQUE",
                              "MASK_OPAQUE", "DEST_OPAQUE"])
gl_scanout_flags = flags(u32, ["Y0TOP"])

# --- basic structures ---
Point = Struct([("x", i32), ("y", i32)])
Point16 = Struct([("x", i16), ("y", i16)])
PointFix = Struct([("x", i32), ("y", i32)])  # fixed28_4
Rect = Struct([("top", i32), ("left", i32), ("bottom", i32), ("right", i32)])  # wire order
Transform = Struct([(n, u32) for n in ("t00", "t01", "t02", "t10", "t11", "t12")])
ClipRects = Struct([("num_rects", u32), ("rects", Array(Rect, "num_rects"))])
Clip = Struct([("type", clip_type),
               ("u", Switch("type", [({clip_type.values["RECTS"]}, [("rects", ClipRects)])],
                            on=clip_type))])
DisplayBase = Struct([("surface_id", u32), ("box", Rect), ("clip", Clip)])
ResourceID = Struct([("type", u8), ("id", u64)])
WaitForChannel = Struct([("channel_type", u8), ("channel_id", u8), ("message_serial", u64)])
Palette = Struct([("unique", u64), ("num_ents", u16), ("ents", Array(u32, "num_ents"))])

PathSegment = Struct([("flags", path_flags), ("count", u32), ("points", Array(PointFix, "count"))])
Path = Struct([("num_segments", u32), ("segments", Array(PathSegment, "num_segments"))])

# --- images ---
_pal_switch = [({PAL_FROM_CACHE}, [("palette_id", u64)])]
BitmapData = Struct([
    ("format", bitmap_fmt), ("flags", bitmap_flags), ("x", u32), ("y", u32), ("stride", u32),
    ("pal", Switch("flags", _pal_switch, default=[("palette", Pointer(Palette))], bits=True)),
    ("data", Bytes(lambda scope: scope[-1]["stride"] * scope[-1]["y"])),
])
BinaryData = Struct([("data_size", u32), ("data", Bytes("data_size"))])
LZPLTData = Struct([
    ("flags", bitmap_flags), ("data_size", u32),
    ("pal", Switch("flags", _pal_switch, default=[("palette", Pointer(Palette, nonnull=True))],
                   bits=True)),
    ("data", Bytes("data_size")),
])
ZlibGlzRGBData = Struct([("glz_data_size", u32), ("data_size", u32), ("data", Bytes("data_size"))])
JPEGAlphaData = Struct([("flags", jpeg_alpha_flags), ("jpeg_size", u32), ("data_size", u32),
                        ("data", Bytes("data_size"))])
Surface = Struct([("surface_id", u32)])
ImageDescriptor = Struct([("id", u64), ("type", image_type), ("flags", image_flags),
                          ("width", u32), ("height", u32)])

_CODEC_HEADERS: dict[str, tuple[str, Callable[[bytes], dict | None]]] = {
    "QUIC": ("quic", ih.quic_header), "LZ_RGB": ("lz_rgb", ih.lz_header),
    "GLZ_RGB": ("lz_rgb", ih.glz_header), "LZ4": ("lz4", ih.lz4_header),
    "LZ_PLT": ("lz_plt", ih.lz_header), "ZLIB_GLZ_RGB": ("zlib_glz", ih.zlib_glz_header),
}


def _image_codec_header(d: dict) -> None:
    """Add the decoded inner stream header as `codec_header` (ignored when building)."""
    t = d.get("descriptor", {}).get("type")
    entry = _CODEC_HEADERS.get(t)
    if entry is not None and entry[0] in d:
        h = entry[1](d[entry[0]]["data"])
        if h is not None:
            d[entry[0]]["codec_header"] = h
    elif t == "JPEG_ALPHA" and "jpeg_alpha" in d:
        ja = d["jpeg_alpha"]
        if 0 <= ja["jpeg_size"] <= len(ja["data"]):
            h = ih.lz_header(ja["data"][ja["jpeg_size"]:])
            if h is not None:
                ja["alpha_codec_header"] = h


def _images(*names: str) -> set[int]:
    return {image_type.values[n] for n in names}


Image = Struct([
    ("descriptor", ImageDescriptor),
    ("u", Switch("descriptor.type", [
        (_images("BITMAP"), [("bitmap", BitmapData)]),
        (_images("QUIC"), [("quic", BinaryData)]),
        (_images("LZ_RGB", "GLZ_RGB"), [("lz_rgb", BinaryData)]),
        (_images("JPEG"), [("jpeg", BinaryData)]),
        (_images("LZ4"), [("lz4", BinaryData)]),
        (_images("LZ_PLT"), [("lz_plt", LZPLTData)]),
        (_images("ZLIB_GLZ_RGB"), [("zlib_glz", ZlibGlzRGBData)]),
        (_images("JPEG_ALPHA"), [("jpeg_alpha", JPEGAlphaData)]),
        (_images("SURFACE"), [("surface", Surface)]),
    ], on=image_type)),
], post_parse=_image_codec_header)

ImagePtr = Pointer(Image)
Pattern = Struct([("pat", Pointer(Image, nonnull=True)), ("pos", Point)])
Brush = Struct([("type", brush_type),
                ("u", Switch("type", [({brush_type.values["SOLID"]}, [("color", u32)]),
                                      ({brush_type.values["PATTERN"]}, [("pattern", Pattern)])],
                             on=brush_type))])
QMask = Struct([("flags", mask_flags), ("pos", Point), ("bitmap", ImagePtr)])
LineAttr = Struct([
    ("flags", line_flags),
    ("u1", Switch("flags", [({LINE_STYLED}, [("style_nseg", u8)])], bits=True)),
    ("u2", Switch("flags", [({LINE_STYLED}, [("style", Pointer(Array(i32, "style_nseg")))])],
                  bits=True)),
])


def _glyph(bpp: int) -> Struct:
    def size(scope: list[dict]) -> int:
        g = scope[-1]
        return ((bpp * g["width"] + 7) // 8) * g["height"]
    return Struct([("render_pos", Point), ("glyph_origin", Point), ("width", u16),
                   ("height", u16), ("data", Bytes(size))])


String = Struct([
    ("length", u16), ("flags", string_flags),
    ("u", Switch("flags", [({string_flags.values["RASTER_A1"]}, [("glyphs", Array(_glyph(1), "length"))]),
                           ({string_flags.values["RASTER_A4"]}, [("glyphs", Array(_glyph(4), "length"))]),
                           ({string_flags.values["RASTER_A8"]}, [("glyphs", Array(_glyph(8), "length"))])],
                 bits=True)),
])
StreamDataHeader = Struct([("id", u32), ("multi_media_time", u32)])
Head = Struct([(n, u32) for n in ("monitor_id", "surface_id", "width", "height", "x", "y",
                                  "flags")])


def _draw(name: str, members: list) -> tuple[str, Struct]:
    return name, Struct([("base", DisplayBase), ("data", Struct(members))])


_mask = [("mask", QMask)]
_copy = [("src_bitmap", ImagePtr), ("src_area", Rect), ("rop_descriptor", ropd),
         ("scale_mode", image_scale_mode), *_mask]

COMPOSITE_HAS_MASK, COMPOSITE_HAS_SRC_TRANSFORM, COMPOSITE_HAS_MASK_TRANSFORM = (
    composite_flags.values[n] for n in ("HAS_MASK", "HAS_SRC_TRANSFORM", "HAS_MASK_TRANSFORM"))

SERVER: dict[int, tuple[str, Struct]] = {
    101: ("mode", Struct([("x_res", u32), ("y_res", u32), ("bits", u32)])),
    102: ("mark", Empty),
    103: ("reset", Empty),
    104: ("copy_bits", Struct([("base", DisplayBase), ("src_pos", Point)])),
    105: ("inval_list", Struct([("count", u16), ("resources", Array(ResourceID, "count"))])),
    106: ("inval_all_pixmaps", Struct([("wait_count", u8),
                                       ("wait_list", Array(WaitForChannel, "wait_count"))])),
    107: ("inval_palette", Struct([("id", u64)])),
    108: ("inval_all_palettes", Empty),
    122: ("stream_create", Struct([
        ("surface_id", u32), ("id", u32), ("flags", stream_flags), ("codec_type", video_codec_type),
        ("stamp", u64), ("stream_width", u32), ("stream_height", u32), ("src_width", u32),
        ("src_height", u32), ("dest", Rect), ("clip", Clip)])),
    123: ("stream_data", Struct([("base", StreamDataHeader), ("data_size", u32),
                                 ("data", Bytes("data_size"))])),
    124: ("stream_clip", Struct([("id", u32), ("clip", Clip)])),
    125: ("stream_destroy", Struct([("id", u32)])),
    126: ("stream_destroy_all", Empty),
    302: _draw("draw_fill", [("brush", Brush), ("rop_descriptor", ropd), *_mask]),
    303: _draw("draw_opaque", [("src_bitmap", ImagePtr), ("src_area", Rect), ("brush", Brush),
                               ("rop_descriptor", ropd), ("scale_mode", image_scale_mode), *_mask]),
    304: _draw("draw_copy", _copy),
    305: _draw("draw_blend", _copy),
    306: _draw("draw_blackness", _mask),
    307: _draw("draw_whiteness", _mask),
    308: _draw("draw_invers", _mask),
    309: _draw("draw_rop3", [("src_bitmap", ImagePtr), ("src_area", Rect), ("brush", Brush),
                             ("rop3", u8), ("scale_mode", image_scale_mode), *_mask]),
    310: _draw("draw_stroke", [("path", Pointer(Path, nonnull=True)), ("attr", LineAttr),
                               ("brush", Brush), ("fore_mode", u16), ("back_mode", u16)]),
    311: _draw("draw_text", [("str", Pointer(String, nonnull=True)), ("back_area", Rect),
                             ("fore_brush", Brush), ("back_brush", Brush), ("fore_mode", u16),
                             ("back_mode", u16)]),
    312: _draw("draw_transparent", [("src_bitmap", ImagePtr), ("src_area", Rect),
                                    ("src_color", u32), ("true_color", u32)]),
    313: _draw("draw_alpha_blend", [("alpha_flags", alpha_flags), ("alpha", u8),
                                    ("src_bitmap", ImagePtr), ("src_area", Rect)]),
    314: ("surface_create", Struct([("surface_id", u32), ("width", u32), ("height", u32),
                                    ("format", surface_fmt), ("flags", surface_flags)])),
    315: ("surface_destroy", Struct([("surface_id", u32)])),
    316: ("stream_data_sized", Struct([("base", StreamDataHeader), ("width", u32), ("height", u32),
                                       ("dest", Rect), ("data_size", u32),
                                       ("data", Bytes("data_size"))])),
    317: ("monitors_config", Struct([("count", u16), ("max_allowed", u16),
                                     ("heads", Array(Head, "count"))])),
    318: _draw("draw_composite", [
        ("flags", composite_flags), ("src_bitmap", ImagePtr),
        ("a", Switch("flags", [({COMPOSITE_HAS_MASK}, [("mask_bitmap", ImagePtr)])], bits=True)),
        ("b", Switch("flags", [({COMPOSITE_HAS_SRC_TRANSFORM}, [("src_transform", Transform)])],
                     bits=True)),
        ("c", Switch("flags", [({COMPOSITE_HAS_MASK_TRANSFORM}, [("mask_transform", Transform)])],
                     bits=True)),
        ("src_origin", Point16), ("mask_origin", Point16)]),
    319: ("stream_activate_report", Struct([("stream_id", u32), ("unique_id", u32),
                                            ("max_window_size", u32), ("timeout_ms", u32)])),
    # The dma-buf fd travels as SCM_RIGHTS ancillary data, not in the byte stream.
    320: ("gl_scanout_unix", Struct([("width", u32), ("height", u32), ("stride", u32),
                                     ("drm_fourcc_format", u32), ("flags", gl_scanout_flags)])),
    321: ("gl_draw", Struct([("x", u32), ("y", u32), ("w", u32), ("h", u32)])),
    322: ("quality_indicator", Data),
}

CLIENT: dict[int, tuple[str, Struct]] = {
    101: ("init", Struct([("pixmap_cache_id", u8), ("pixmap_cache_size", i64),
                          ("glz_dictionary_id", u8), ("glz_dictionary_window_size", i32)])),
    102: ("stream_report", Struct([("stream_id", u32), ("unique_id", u32),
                                   ("start_frame_mm_time", u32), ("end_frame_mm_time", u32),
                                   ("num_frames", u32), ("num_drops", u32),
                                   ("last_frame_delay", i32), ("audio_delay", u32)])),
    103: ("preferred_compression", Struct([("image_compression", image_compression)])),
    104: ("gl_draw_done", Empty),
    105: ("preferred_video_codec_type", Struct([("num_of_codecs", u8),
                                                ("codecs", Array(video_codec_type, "num_of_codecs"))])),
}
