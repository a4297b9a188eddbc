"""Canvas semantics: raster operations as the reference defines them, and real draw commands."""
from __future__ import annotations


import numpy as np
import pytest

from spicetool.render import RenderStats, SessionScreen, frames, picture_at
from spicetool.render import rop
from spicetool.render.frames import records_of
from spicetool.render.images import placeholder

from .corpus import capture_path, sessions

NAMES = sessions()


def test_rop3_codes_are_their_own_truth_table() -> None:
    # the reference checks each handler with pattern 0xf0, source 0xcc, dest 0xaa: the result is the code
    p, s, d = (np.array([v], np.uint8) for v in (0xF0, 0xCC, 0xAA))
    for code in range(256):
        assert int(rop.rop3(code, p, s, d)[0]) == code


A, B = np.array([0b1100], np.uint8), np.array([0b1010], np.uint8)
CASES = [  # (descriptor, expected(src, dst)), from the reference's descriptor -> rop mapping
    (rop.OP_PUT, lambda s, d: s),
    (rop.OP_PUT | rop.INVERS_SRC, lambda s, d: ~s),
    (rop.OP_PUT | rop.INVERS_SRC | rop.INVERS_RES, lambda s, d: s),
    (rop.OP_PUT | rop.INVERS_DEST, lambda s, d: s),
    (rop.OP_OR | rop.INVERS_RES | rop.INVERS_SRC, lambda s, d: s & ~d),
    (rop.OP_OR | rop.INVERS_DEST, lambda s, d: s | ~d),
    (rop.OP_AND | rop.INVERS_RES, lambda s, d: ~(s & d)),
    (rop.OP_AND | rop.INVERS_SRC, lambda s, d: ~s & d),
    (rop.OP_XOR | rop.INVERS_SRC | rop.INVERS_DEST, lambda s, d: s ^ d),
    (rop.OP_XOR | rop.INVERS_RES, lambda s, d: ~(s ^ d)),
    (rop.OP_BLACKNESS, lambda s, d: np.zeros_like(d)),
    (rop.OP_WHITENESS, lambda s, d: np.full_like(d, 255)),
    (rop.OP_INVERS, lambda s, d: ~d),
    (rop.OP_XOR | rop.OP_BLACKNESS, lambda s, d: s ^ d),  # operator bits win in the reference's order
    (0, lambda s, d: s),  # no operator: a copy
    (rop.INVERS_SRC, lambda s, d: s),
]


@pytest.mark.parametrize("desc, expected", CASES)
def test_rop_descriptors(desc: int, expected) -> None:
    assert (rop.ropd_op(desc)(A, B) == expected(A, B)).all()
    assert rop.is_plain_copy(desc) == bool((rop.ropd_op(desc)(A, B) == A).all() and (rop.ropd_op(desc)(A, ~B) == A).all())


def test_brush_inversion_bit_is_used_for_fills() -> None:
    op = rop.ropd_op(rop.OP_PUT | rop.INVERS_BRUSH, rop.INVERS_BRUSH)
    assert (op(A, B) == ~A).all()
    assert (rop.ropd_op(rop.OP_PUT | rop.INVERS_BRUSH)(A, B) == A).all()  # not for images


def _need(name: str) -> str:
    if name not in NAMES:
        pytest.skip(f"{name} not in the corpus")
    return str(capture_path(name))


def test_copy_bits_moves_what_was_there() -> None:
    """Every COPY_BITS of a real session (xlogo dragged across) moves the pixels its source held."""
    screen = SessionScreen()
    checked = 0
    for rec in records_of(_need("img-lz")):
        if rec.type == "copy_bits" and rec.channel.channel == "display" and screen.primary() is not None:
            box, src = rec.fields["base"]["box"], rec.fields["src_pos"]
            h, w = box["bottom"] - box["top"], box["right"] - box["left"]
            before = screen.primary().pixels[src["y"]:src["y"] + h, src["x"]:src["x"] + w, :3].copy()
            assert rec.fields["base"]["clip"]["type"] == "NONE"
            screen.feed(rec)
            after = screen.primary().pixels[box["top"]:box["bottom"], box["left"]:box["right"], :3]
            assert (after == before).all()
            checked += 1
        else:
            screen.feed(rec)
    assert checked >= 5


def test_images_from_before_the_capture_become_counted_placeholders() -> None:
    """A GLZ session missing its first images: references into them are drawn as placeholders."""
    cap = _need("img-glz")
    skipped = 0

    def without_first_images():
        nonlocal skipped
        for rec in records_of(cap):
            img = rec.fields.get("data", {}).get("src_bitmap") if rec.type == "draw_copy" else None
            if img and img["descriptor"]["type"] == "GLZ_RGB" and skipped < 3:
                skipped += 1
                continue
            yield rec
    stats = RenderStats()
    frame = picture_at(without_first_images(), None, stats=stats)
    assert skipped == 3 and frame is not None
    assert stats.placeholders > 0
    assert any("never seen" in w for w in stats.warnings)
    magenta = (frame.image == (255, 0, 255)).all(axis=2)
    assert magenta.sum() > 100  # visible on the picture


def test_placeholder_is_visible() -> None:
    img = placeholder(32, 16)
    assert img.shape == (16, 32, 4)
    assert {tuple(p) for p in img.reshape(-1, 4)} == {(255, 0, 255, 255), (0, 0, 0, 255)}


def test_frames_follow_the_clock() -> None:
    cap = _need("typing")
    stats = RenderStats()
    times = [t for t, _ in frames(cap, fps=4, stats=stats)]
    assert len(times) > 10 and stats.frames == len(times)
    steps = np.diff(times)
    assert np.allclose(steps, 0.25)
    end = picture_at(cap, None).time
    # the last frame is the first tick at or after the last draw: the video ends on the final screen
    assert times[-1] - 0.25 < end <= times[-1] + 1e-6


def test_frames_from_to() -> None:
    cap = _need("typing")
    times = [t for t, _ in frames(cap, fps=10, start=2.0, end=3.0)]
    assert times[0] == pytest.approx(2.0) and times[-1] <= 3.0 and len(times) == 11


def test_per_change_pictures_are_changes() -> None:
    cap = _need("img-lz")
    last = None
    n = 0
    for t, img in frames(cap):
        if last is not None:
            assert t >= last[0]
        last = (t, img)
        n += 1
    assert n > 20
    assert (last[1] == picture_at(cap, None).image).all()


def test_resolution_change_mid_session() -> None:
    cap = _need("resize")
    sizes = []
    for t, img in frames(cap, fps=2):
        if not sizes or sizes[-1] != img.shape:
            sizes.append(img.shape)
    assert sizes == [(768, 1024, 3), (600, 800, 3)]


def test_cursor_is_drawn_only_when_asked() -> None:
    cap = _need("img-quic")  # the cursor channel shows an ALPHA pointer for a moment, then hides it
    t0, shown = None, None
    for rec in records_of(cap):
        t0 = t0 if t0 is not None else rec.time
        if rec.channel.channel == "cursor" and rec.type == "set" and rec.fields["visible"]:
            shown = rec.time - t0
            break
    assert shown is not None
    plain = picture_at(cap, shown).image
    with_cursor = picture_at(cap, shown, cursor=True).image
    assert (picture_at(cap, None).image == picture_at(cap, None, cursor=True).image).all()  # hidden again
    diff = (plain != with_cursor).any(axis=2)
    ys, xs = np.nonzero(diff)
    assert 0 < diff.sum() <= 24 * 24
    assert ys.max() - ys.min() < 24 and xs.max() - xs.min() < 24


def test_scaled_copy_stretches_the_source_area() -> None:
    """A real image copied into a box twice its size (scale_mode NEAREST): each pixel doubled."""
    from spicetool.render.canvas import Canvas
    cap = _need("img-lz")
    rec = next(r for r in records_of(cap) if r.type == "draw_copy" and r.fields["data"]["src_bitmap"])
    img = rec.fields["data"]["src_bitmap"]
    w, h = img["descriptor"]["width"], img["descriptor"]["height"]
    canvas = Canvas()
    canvas.create_surface(0, 2 * w + 10, 2 * h + 10, "32_xRGB", True)
    fields = {"base": {"surface_id": 0, "box": {"top": 5, "left": 5, "bottom": 5 + 2 * h, "right": 5 + 2 * w},
                       "clip": {"type": "NONE"}},
              "data": {**rec.fields["data"], "scale_mode": "NEAREST",
                       "src_area": {"top": 0, "left": 0, "bottom": h, "right": w}}}
    canvas.draw("draw_copy", fields)
    pixels = canvas.surfaces[0].pixels
    original = canvas.images.get(img)
    assert (pixels[5:5 + 2 * h:2, 5:5 + 2 * w:2, :3] == original[..., :3]).all()
    assert (pixels[6:6 + 2 * h:2, 6:6 + 2 * w:2, :3] == original[..., :3]).all()
    assert (pixels[:5] == 0).all()  # nothing outside the box
    fields["data"]["scale_mode"] = "INTERPOLATE"  # bilinear: every output between its neighbours
    canvas.draw("draw_copy", fields)
    assert np.abs(pixels[5:5 + 2 * h:2, 5:5 + 2 * w:2, :3].astype(int) - original[..., :3]).mean() < 40


def test_huge_box_costs_only_the_surface() -> None:
    from spicetool.render.canvas import Canvas
    cap = _need("img-lz")
    rec = next(r for r in records_of(cap) if r.type == "draw_copy" and r.fields["data"]["src_bitmap"])
    canvas = Canvas()
    canvas.create_surface(0, 64, 64, "32_xRGB", True)
    fields = {"base": {"surface_id": 0, "box": {"top": 0, "left": 0, "bottom": 1 << 30, "right": 1 << 30},
                       "clip": {"type": "NONE"}}, "data": rec.fields["data"]}
    assert canvas.draw("draw_copy", fields) is not None


def test_pixmap_cache_round_trip_and_invalidation() -> None:
    """A real image sent with CACHE_ME comes back for FROM_CACHE until INVAL_LIST drops it."""
    import copy

    from spicetool.render.images import ImageStore
    cap = _need("img-lz")
    rec = next(r for r in records_of(cap) if r.type == "draw_copy" and r.fields["data"]["src_bitmap"])
    image = copy.deepcopy(rec.fields["data"]["src_bitmap"])
    image["descriptor"]["flags"] = 1  # CACHE_ME
    image["descriptor"]["id"] = 0x1234_0000_0001
    store = ImageStore(lambda sid: None)
    sent = store.get(image)
    ref = {"descriptor": {**image["descriptor"], "type": "FROM_CACHE", "flags": 0}}
    assert (store.get(ref) == sent).all()
    assert (store.get({"descriptor": {**ref["descriptor"], "type": "FROM_CACHE_LOSSLESS"}}) == sent).all()
    assert not store.warnings
    store.inval_pixmap(0x1234_0000_0001)
    missing = store.get(ref)
    assert missing.shape == sent.shape and store.warnings["FROM_CACHE image refers to something never seen"] == 1
    store.get(image)
    store.inval_all_pixmaps()
    store.get(ref)
    assert store.warnings["FROM_CACHE image refers to something never seen"] == 2


def test_damaged_image_is_a_placeholder_not_a_crash() -> None:
    import copy

    from spicetool.render.images import ImageStore
    cap = _need("img-lz")
    rec = next(r for r in records_of(cap) if r.type == "draw_copy"
               and r.fields["data"]["src_bitmap"]["descriptor"]["type"] == "LZ_RGB")
    image = copy.deepcopy(rec.fields["data"]["src_bitmap"])
    data = bytearray(image["lz_rgb"]["data"])
    image["lz_rgb"]["data"] = bytes(data[: len(data) // 3])  # cut short
    store = ImageStore(lambda sid: None)
    img = store.get(image)
    assert img.shape[:2] == (image["descriptor"]["height"], image["descriptor"]["width"])
    assert store.warnings["LZ_RGB image undecodable"] == 1


def _first_image_copy(cap: str) -> dict:
    return next(r for r in records_of(cap) if r.type == "draw_copy" and r.fields["data"]["src_bitmap"]).fields


def test_copy_from_an_offscreen_surface() -> None:
    """Image type SURFACE: a real image drawn off-screen, then copied to the primary surface."""
    from spicetool.render.canvas import Canvas
    fields = _first_image_copy(_need("img-lz"))
    d = fields["data"]
    w, h = d["src_bitmap"]["descriptor"]["width"], d["src_bitmap"]["descriptor"]["height"]
    canvas = Canvas()
    canvas.create_surface(0, 400, 300, 32, True)
    canvas.create_surface(7, w, h, 96, False)
    off = {"base": {"surface_id": 7, "box": {"top": 0, "left": 0, "bottom": h, "right": w}, "clip": {"type": "NONE"}},
           "data": {**d, "src_area": {"top": 0, "left": 0, "bottom": h, "right": w}}}
    canvas.draw("draw_copy", off)
    ref = {"descriptor": {"id": 0, "type": "SURFACE", "flags": 0, "width": w, "height": h},
           "surface": {"surface_id": 7}}
    sub_w, sub_h = min(w, 50), min(h, 40)
    on = {"base": {"surface_id": 0, "box": {"top": 10, "left": 20, "bottom": 10 + sub_h, "right": 20 + sub_w},
                   "clip": {"type": "RECTS", "rects": {"num_rects": 1, "rects": [
                       {"top": 0, "left": 0, "bottom": 300, "right": 20 + sub_w // 2}]}}},
          "data": {**d, "src_bitmap": ref, "src_area": {"top": 0, "left": 0, "bottom": sub_h, "right": sub_w}}}
    canvas.draw("draw_copy", on)
    primary, offscreen = canvas.surfaces[0].pixels, canvas.surfaces[7].pixels
    assert (primary[10:10 + sub_h, 20:20 + sub_w // 2, :3] == offscreen[:sub_h, :sub_w // 2, :3]).all()
    assert (primary[10:10 + sub_h, 20 + sub_w // 2:20 + sub_w] == 0).all()  # clipped away


@pytest.mark.parametrize("fmt, bits", [("16_555", (5, 5, 5)), ("16_565", (5, 6, 5))])
def test_sixteen_bit_surfaces_hold_sixteen_bit_colours(fmt: str, bits: tuple[int, int, int]) -> None:
    from spicetool.render.canvas import Canvas
    fields = _first_image_copy(_need("img-lz"))
    canvas = Canvas()
    canvas.create_surface(0, 1024, 768, fmt, True)
    canvas.draw("draw_copy", fields)
    px = canvas.surfaces[0].pixels.astype(int)
    box = fields["base"]["box"]
    area = px[box["top"]:box["bottom"], box["left"]:box["right"]]
    for channel, n in enumerate(bits):
        v = area[..., channel]
        assert ((v >> n) == (v & ((1 << (8 - n)) - 1))).all()  # high bits repeated into the low ones
        assert len(np.unique(v)) <= 1 << n


def test_text_glyphs_bottom_up_with_background() -> None:
    """DRAW_TEXT as the reference lays it out: A1 glyph rows bottom-up, MSB first, back_area copied."""
    from spicetool.render.canvas import Canvas
    canvas = Canvas()
    canvas.create_surface(0, 32, 16, "32_xRGB", True)
    glyph = {"render_pos": {"x": 4, "y": 10}, "glyph_origin": {"x": 0, "y": -6}, "width": 3, "height": 2,
             "data": bytes([0b10000000, 0b01100000])}  # last row first: row 1 = 1.., row 0 = .11
    fields = {"base": {"surface_id": 0, "box": {"top": 0, "left": 0, "bottom": 16, "right": 32},
                       "clip": {"type": "NONE"}},
              "data": {"str": {"length": 1, "flags": 1, "glyphs": [glyph]},
                       "back_area": {"top": 2, "left": 2, "bottom": 8, "right": 10},
                       "fore_brush": {"type": "SOLID", "color": 0xFFFFFF},
                       "back_brush": {"type": "SOLID", "color": 0x0000FF},
                       "fore_mode": rop.OP_PUT, "back_mode": rop.OP_PUT}}
    canvas.draw("draw_text", fields)
    white = (canvas.surfaces[0].pixels[..., :3] == 255).all(axis=2)
    assert [tuple(p) for p in np.argwhere(white)] == [(4, 5), (4, 6), (5, 4)]
    blue = (canvas.surfaces[0].pixels[..., :3] == (255, 0, 0)).all(axis=2)  # B,G,R bytes of 0x0000FF
    assert blue.sum() == 6 * 8 - 3 and blue[2:8, 2:10].sum() == blue.sum()


def test_palette_cache() -> None:
    """An 8-bit BITMAP (a real desktop picture, quantised) caches its palette; later bitmaps use
    it by id until INVAL_PALETTE."""
    from PIL import Image

    from spicetool.render.images import ImageStore
    from .corpus import truth
    if "img-lz" not in NAMES:
        pytest.skip("img-lz not in the corpus")
    q = Image.fromarray(truth("img-lz")[:64, :96]).quantize(256)
    idx = np.asarray(q)
    rgb = np.array(q.getpalette()[:768], np.uint32).reshape(-1, 3)
    ents = [int(r) << 16 | int(g) << 8 | int(b) for r, g, b in rgb]
    def bitmap(flags: int, pal: dict) -> dict:
        return {"descriptor": {"id": 0, "type": "BITMAP", "flags": 0, "width": 96, "height": 64},
                "bitmap": {"format": "8BIT", "flags": flags | 4, "x": 96, "y": 64, "stride": 96,
                           "data": idx.tobytes(), **pal}}
    store = ImageStore(lambda sid: None)
    first = store.get(bitmap(1, {"palette": {"unique": 77, "num_ents": len(ents), "ents": ents}}))
    assert (first[..., 2::-1] == np.asarray(q.convert("RGB"))).all()
    again = store.get(bitmap(2, {"palette_id": 77}))
    assert (again == first).all() and not store.warnings
    store.inval_palette(77)
    store.get(bitmap(2, {"palette_id": 77}))
    assert store.warnings["BITMAP image refers to something never seen"] == 1


@pytest.mark.parametrize("command", ["draw_alpha_blend", "draw_composite"])
def test_blending_an_opaque_real_image(command: str) -> None:
    """Blending a real opaque image at full strength is a copy; at half strength, halfway."""
    from spicetool.render.canvas import Canvas
    fields = _first_image_copy(_need("img-lz"))
    d = fields["data"]
    image = d["src_bitmap"]
    box = fields["base"]["box"]
    results = {}
    for strength in (255, 128):
        canvas = Canvas()
        canvas.create_surface(0, 1024, 768, "32_ARGB", True)
        canvas.surfaces[0].pixels[...] = (40, 80, 120, 255)
        src = canvas.images.get(image)
        opaque = src[..., 3].min() == 255
        if command == "draw_alpha_blend":
            data = {"alpha_flags": 0, "alpha": strength, "src_bitmap": image, "src_area": d["src_area"]}
        else:
            if strength != 255:
                continue
            data = {"flags": 3, "src_bitmap": image, "src_origin": {"x": d["src_area"]["left"], "y": d["src_area"]["top"]},
                    "mask_origin": {"x": 0, "y": 0}}  # OP 3 = OVER
        canvas.draw(command, {"base": fields["base"], "data": data})
        results[strength] = canvas.surfaces[0].pixels[box["top"]:box["bottom"], box["left"]:box["right"]].astype(int)
    assert opaque
    h, w = results[255].shape[:2]
    src = src[:h, :w].astype(int)
    assert (results[255][..., :3] == src[..., :3]).all()
    if 128 in results:
        half = results[128][..., :3]
        expected = (src[..., :3] * 128 + np.array([40, 80, 120]) * 127) / 255
        assert np.abs(half - expected).max() <= 1


@pytest.mark.parametrize("flags,data,alphas", [
    (2, bytes([0xF8, 0x10, 0x04, 0x00]), [240, 128, 16, 0]),  # A4: first pixel high nibble, n << 4
    (4, bytes([255, 128, 1, 0]), [255, 128, 1, 0]),  # A8 bytes as they are
])
def test_antialiased_text_blends_the_brush_by_glyph_coverage(flags, data, alphas) -> None:
    """A4/A8 DRAW_TEXT: the fore brush goes OVER the surface through the glyph coverage (as
    spice-common's sw canvas composites it), not on/off; overlapping glyphs keep the larger."""
    from spicetool.render.canvas import Canvas
    canvas = Canvas()
    canvas.create_surface(0, 16, 8, "32_xRGB", True)
    canvas.surfaces[0].pixels[...] = (0, 0, 200, 255)  # BGRX: red 200
    w = 4 if flags == 4 else 4
    stride = 2 if flags == 2 else 4
    glyph = {"render_pos": {"x": 2, "y": 4}, "glyph_origin": {"x": 0, "y": -1}, "width": w, "height": 1,
             "data": data[:stride]}
    weak = {"render_pos": {"x": 2, "y": 4}, "glyph_origin": {"x": 0, "y": -1}, "width": 1, "height": 1,
            "data": bytes([0x10 if flags == 2 else 16])}  # under the first pixel: the max wins
    fields = {"base": {"surface_id": 0, "box": {"top": 0, "left": 0, "bottom": 8, "right": 16},
                       "clip": {"type": "NONE"}},
              "data": {"str": {"length": 2, "flags": flags, "glyphs": [glyph, weak]},
                       "back_area": {"top": 0, "left": 0, "bottom": 0, "right": 0},
                       "fore_brush": {"type": "SOLID", "color": 0x00FF00},  # green
                       "back_brush": {"type": "NONE"},
                       "fore_mode": rop.OP_XOR, "back_mode": rop.OP_PUT}}
    canvas.draw("draw_text", fields)
    row = canvas.surfaces[0].pixels[3, 2:6].astype(int)
    for px, a in zip(row, alphas):
        assert px[1] == round(255 * a / 255) and px[2] == (200 * (255 - a) + 127) // 255, (list(px), a)
    assert (canvas.surfaces[0].pixels[4] == (0, 0, 200, 255)).all()


@pytest.mark.parametrize("filt,expect", [(0, [0, 0, 255, 255]), (1, [0, 64, 191, 255])])
def test_composite_samples_with_the_filter_the_message_asks_for(filt, expect) -> None:
    """DRAW_COMPOSITE with a 2x scale transform: filter 0 (nearest) repeats source pixels,
    filter 1 (bilinear) interpolates between pixel centres (qxl_dev.h's filter field, bits 8-10)."""
    from spicetool.render.compositing import SRC_FILTER_SHIFT, SRC_REPEAT_SHIFT, composite
    src = np.zeros((1, 2, 4), np.uint8)
    src[..., 3] = 255
    src[0, 1, :3] = 255  # black, white (premultiplied, opaque)
    dst = np.full((1, 4, 4), 7, np.uint8)
    half = {"t00": 0x8000, "t01": 0, "t02": 0, "t10": 0, "t11": 0x8000, "t12": 0}  # 16.16: dest -> source / 2
    flags = 1 | (2 << SRC_REPEAT_SHIFT) | (filt << SRC_FILTER_SHIFT)  # SRC, PAD
    out = composite(flags, src, None, dst, (0, 0), (0, 0), half, None)
    assert out[0, :, 0].tolist() == expect and (out[0, :, 3] == 255).all()
    # without a transform both filters give the source pixels themselves
    same = composite(1 | (filt << SRC_FILTER_SHIFT), np.tile(src, (1, 2, 1)), None, dst, (0, 0), (0, 0), None, None)
    assert same[0, :, 0].tolist() == [0, 255, 0, 255]


@pytest.mark.parametrize("flags,expect", [
    (0, "#" * 12),  # solid
    (8, "###..##.###."),  # STYLED: dashes 3 on, 2 off, 2 on, 1 off (28.4 lengths), on along the joint
    (8 | 4, "..##.###..##"),  # START_WITH_GAP: the pattern starts in its first gap
])
def test_stroke_line_styles(flags, expect) -> None:
    """DRAW_STROKE with a styled LineAttr: on/off dashes in pixels, running on across the
    polyline's joint, START_WITH_GAP starting in the first gap."""
    from spicetool.render.geometry import stroke_mask
    from spicetool.render.surfaces import Region
    pts = [(0, 2), (5, 2), (11, 2)]  # two segments along row 2, joint at x=5
    path = {"segments": [{"flags": 1 | 2, "points": [{"x": x * 16, "y": y * 16} for x, y in pts]}]}
    import struct

    from spicetool.stack.channels.display import LineAttr
    # the LineAttr wire bytes (flags, style_nseg, style pointer, 28.4 lengths) through the stack's parser
    wire = bytes([flags, 4]) + struct.pack("<I", 6) + struct.pack("<4i", 3 * 16, 2 * 16, 2 * 16, 1 * 16)
    attr = LineAttr.parse(wire, 0, [])[0]
    keep = stroke_mask(path, Region(0, 4, 0, 12), attr)
    assert "".join("#" if k else "." for k in keep[2]) == expect
    assert keep.sum() == expect.count("#")
