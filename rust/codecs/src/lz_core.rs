//! The copy/match engine shared by LZ and GLZ. Both write packed 0xAARRGGBB words; palette
//! images are expanded as they are read, so distances count output pixels (a palette byte
//! stands for 8, 2 or 1 pixels and distances are scaled the same way, as upstream does).
use crate::bitmap::expand_palette_row;
use crate::error::Result;
use crate::image::rgb555_to_word;
use crate::lz_header::row_pixels;
use crate::reader::Reader;

/// LzImageType numbers (lz_common.h); 1..5 coincide with SpiceBitmapFmt palette formats.
pub mod lz_type {
    pub const PLT1_LE: u32 = 1;
    pub const PLT1_BE: u32 = 2;
    pub const PLT4_LE: u32 = 3;
    pub const PLT4_BE: u32 = 4;
    pub const PLT8: u32 = 5;
    pub const RGB16: u32 = 6;
    pub const RGB24: u32 = 7;
    pub const RGB32: u32 = 8;
    pub const RGBA: u32 = 9;
    pub const XXXA: u32 = 10;
    pub const A8: u32 = 11;
}

/// Pixels per stored byte for palette types, else None.
pub fn plt_pixels_per_byte(t: u32) -> Option<usize> {
    match t {
        lz_type::PLT1_LE | lz_type::PLT1_BE => Some(8),
        lz_type::PLT4_LE | lz_type::PLT4_BE => Some(2),
        lz_type::PLT8 => Some(1),
        _ => None,
    }
}

/// What one literal unit in the stream is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Unit {
    /// big-endian x555 pair
    Rgb16,
    /// b, g, r bytes (RGB24 and RGB32 alike)
    Rgb,
    /// a palette byte of the given LZ/bitmap palette format
    Plt(u8),
    /// the alpha byte only; the other three bytes of the word are left alone
    Alpha,
    /// an A8 byte: word = a << 24
    A8,
}

impl Unit {
    pub fn for_type(t: u32) -> Option<Unit> {
        Some(match t {
            1..=5 => Unit::Plt(t as u8),
            lz_type::RGB16 => Unit::Rgb16,
            lz_type::RGB24 | lz_type::RGB32 | lz_type::RGBA => Unit::Rgb,
            lz_type::XXXA => Unit::Alpha,
            lz_type::A8 => Unit::A8,
            _ => return None,
        })
    }

    /// Output pixels per literal unit.
    pub fn scale(self) -> usize {
        match self {
            Unit::Plt(t) => plt_pixels_per_byte(t as u32).unwrap_or(1),
            _ => 1,
        }
    }

    /// Match-length bias after the raw length field (same net bias in LZ and GLZ).
    pub fn len_bias(self) -> usize {
        match self {
            Unit::Rgb16 => 1,
            Unit::Rgb => 0,
            _ => 2,
        }
    }
}

/// Where a match copies from.
pub enum Source {
    /// `dist` pixels back in the image being decoded (already bias-corrected, > 0)
    Back(usize),
    /// an earlier dictionary image, `image_dist` images back, starting at pixel `ofs`
    Window { image_dist: u32, ofs: usize },
}

/// Earlier images of a GLZ dictionary, as their stream-order words.
pub trait Window {
    fn image(&self, image_dist: u32) -> Result<&[u32]>;
}

/// Run one pass until `out` is full. `parse_match` reads what follows a match control byte and
/// returns (raw length incl. extension bytes, source) in stream units.
pub(crate) fn run_pass(
    r: &mut Reader,
    out: &mut [u32],
    unit: Unit,
    palette: &[u32],
    window: Option<&dyn Window>,
    parse_match: fn(u8, &mut Reader) -> Result<(usize, Source)>,
) -> Result<()> {
    let n = out.len();
    let scale = unit.scale();
    let alpha_only = unit == Unit::Alpha;
    let mut op = 0usize;
    while op < n {
        let ctrl = r.u8()?;
        if ctrl < 32 {
            let count = ctrl as usize + 1;
            if op + count * scale > n {
                return r.fail(format!("literal run of {count} overflows the image at pixel {op}"));
            }
            // whole-run fast paths for the common units
            match unit {
                Unit::Rgb => {
                    let src = r.bytes(count * 3)?;
                    for (o, p) in out[op..op + count].iter_mut().zip(src.chunks_exact(3)) {
                        *o = u32::from_le_bytes([p[0], p[1], p[2], 0]);
                    }
                    op += count;
                    continue;
                }
                Unit::Alpha => {
                    let src = r.bytes(count)?;
                    for (o, &a) in out[op..op + count].iter_mut().zip(src) {
                        *o = (*o & 0x00ff_ffff) | (a as u32) << 24;
                    }
                    op += count;
                    continue;
                }
                _ => {}
            }
            for _ in 0..count {
                match unit {
                    Unit::Rgb16 => {
                        let hi = r.u8()? as u16;
                        let lo = r.u8()? as u16;
                        out[op] = rgb555_to_word((hi << 8) | lo);
                    }
                    Unit::Rgb => {
                        let s = r.bytes(3)?;
                        out[op] = u32::from_le_bytes([s[0], s[1], s[2], 0]);
                    }
                    Unit::Plt(t) => {
                        let b = r.u8()?;
                        expand_palette_row(t, &[b], palette, &mut out[op..op + scale], r.codec)
                            .or_else(|_| r.fail(format!("palette index in byte {b:#04x} is outside the palette")))?;
                    }
                    Unit::Alpha => out[op] = (out[op] & 0x00ff_ffff) | ((r.u8()? as u32) << 24),
                    Unit::A8 => out[op] = (r.u8()? as u32) << 24,
                }
                op += scale;
            }
            continue;
        }
        let (raw_len, src) = parse_match(ctrl, r)?;
        let len = (raw_len + unit.len_bias()) * scale;
        if len > n - op {
            return r.fail(format!("match of {len} pixels overflows the image at pixel {op}"));
        }
        match src {
            Source::Back(dist) => {
                let dist = dist * scale;
                if dist > op {
                    return r.fail(format!("match reaches {dist} pixels back from pixel {op}"));
                }
                let from = op - dist;
                if alpha_only {
                    for i in 0..len {
                        out[op + i] = (out[op + i] & 0x00ff_ffff) | (out[from + i] & 0xff00_0000);
                    }
                } else if dist == 1 {
                    let v = out[from];
                    out[op..op + len].fill(v);
                } else {
                    // an overlapping match repeats a period of `dist`; copy whole periods,
                    // the copied span doubling each time
                    let mut done = 0;
                    while done < len {
                        let n = (len - done).min(op + done - from);
                        out.copy_within(from..from + n, op + done);
                        done += n;
                    }
                }
            }
            Source::Window { image_dist, ofs } => {
                let win = match window {
                    Some(w) => w,
                    None => return r.fail("reference to another image outside GLZ"),
                };
                let img = win.image(image_dist)?;
                let ofs = ofs * scale;
                if ofs > img.len() || img.len() - ofs < len {
                    return r.fail(format!(
                        "match of {len} pixels at pixel {ofs} of an earlier image of {} pixels",
                        img.len()
                    ));
                }
                let s = &img[ofs..ofs + len];
                if alpha_only {
                    for (o, &w) in out[op..op + len].iter_mut().zip(s) {
                        *o = (*o & 0x00ff_ffff) | (w & 0xff00_0000);
                    }
                } else {
                    out[op..op + len].copy_from_slice(s);
                }
            }
        }
        op += len;
    }
    Ok(())
}

/// Decode the body of an LZ or GLZ image after its header: the pass of `kind`, then for
/// RGBA the alpha pass over the same words. Returns (pixels per stored row, words).
pub(crate) fn decode_body(
    r: &mut Reader,
    kind: u32,
    (width, height, stride): (u32, u32, u32),
    palette: Option<&[u32]>,
    max_pixels: u64,
    window: Option<&dyn Window>,
    parse_match: fn(u8, &mut Reader) -> Result<(usize, Source)>,
) -> Result<(usize, Vec<u32>)> {
    let row = row_pixels(r, kind, width, height, stride, max_pixels)?;
    let unit = match Unit::for_type(kind) {
        Some(u) => u,
        None => return r.fail(format!("invalid image type {kind}")),
    };
    let pal: &[u32] = match (unit, palette) {
        (Unit::Plt(_), None) => return r.fail("palette image without a palette"),
        (_, p) => p.unwrap_or(&[]),
    };
    let mut words = vec![0u32; row * height as usize];
    run_pass(r, &mut words, unit, pal, window, parse_match)?;
    if kind == lz_type::RGBA {
        run_pass(r, &mut words, Unit::Alpha, pal, window, parse_match)?;
    }
    Ok((row, words))
}
