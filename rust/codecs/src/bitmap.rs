//! Uncompressed SPICE bitmaps (SpiceBitmapFmt) to B,G,R,A.
use crate::error::{corrupt, Result};
use crate::image::{check_size, rgb555_to_word, Image};

pub mod fmt {
    pub const ONE_BIT_LE: u8 = 1;
    pub const ONE_BIT_BE: u8 = 2;
    pub const FOUR_BIT_LE: u8 = 3;
    pub const FOUR_BIT_BE: u8 = 4;
    pub const EIGHT_BIT: u8 = 5;
    pub const SIXTEEN_BIT: u8 = 6;
    pub const TWENTY_FOUR_BIT: u8 = 7;
    pub const THIRTY_TWO_BIT: u8 = 8;
    pub const RGBA: u8 = 9;
    pub const EIGHT_BIT_A: u8 = 10;
}

/// Bits per pixel of a bitmap format, or None if the format number is not one.
pub fn bits_per_pixel(format: u8) -> Option<usize> {
    Some(match format {
        fmt::ONE_BIT_LE | fmt::ONE_BIT_BE => 1,
        fmt::FOUR_BIT_LE | fmt::FOUR_BIT_BE => 4,
        fmt::EIGHT_BIT | fmt::EIGHT_BIT_A => 8,
        fmt::SIXTEEN_BIT => 16,
        fmt::TWENTY_FOUR_BIT => 24,
        fmt::THIRTY_TWO_BIT | fmt::RGBA => 32,
        _ => return None,
    })
}

/// Palette entry `i` as an opaque word; a missing entry is an error, not a read past the end.
fn palette_word(palette: &[u32], i: usize, what: &'static str) -> Result<u32> {
    match palette.get(i) {
        Some(&w) => Ok(w | 0xff00_0000),
        None => corrupt(what, 0, format!("palette index {i} but the palette has {} entries", palette.len())),
    }
}

/// Expand one row of palette indices (`row` holds the packed bytes) into `out`.
pub(crate) fn expand_palette_row(format: u8, row: &[u8], palette: &[u32], out: &mut [u32], what: &'static str) -> Result<()> {
    let width = out.len();
    match format {
        fmt::ONE_BIT_LE | fmt::ONE_BIT_BE => {
            let (back, fore) = (palette_word(palette, 0, what)?, palette_word(palette, 1, what)?);
            for (x, o) in out.iter_mut().enumerate() {
                let byte = row[x / 8];
                let bit = if format == fmt::ONE_BIT_LE { x % 8 } else { 7 - x % 8 };
                *o = if (byte >> bit) & 1 != 0 { fore } else { back };
            }
        }
        fmt::FOUR_BIT_LE | fmt::FOUR_BIT_BE => {
            if palette.is_empty() {
                return corrupt(what, 0, "4-bit image without a palette");
            }
            for (x, o) in out.iter_mut().enumerate() {
                let byte = row[x / 2];
                let first = x % 2 == 0;
                let nib = if (format == fmt::FOUR_BIT_LE) == first { byte & 15 } else { byte >> 4 };
                // upstream wraps 4-bit indices modulo the palette size
                *o = palette[nib as usize % palette.len()] | 0xff00_0000;
            }
        }
        fmt::EIGHT_BIT => {
            for (o, &b) in out.iter_mut().zip(&row[..width]) {
                *o = palette_word(palette, b as usize, what)?;
            }
        }
        _ => return corrupt(what, 0, format!("format {format} is not a palette format")),
    }
    Ok(())
}

/// Decode an uncompressed bitmap. `palette` holds 0x00RRGGBB entries (needed for 1/4/8-bit).
pub fn decode_bitmap(
    format: u8,
    width: usize,
    height: usize,
    stride: usize,
    top_down: bool,
    data: &[u8],
    palette: Option<&[u32]>,
    max_pixels: u64,
) -> Result<Image> {
    const W: &str = "bitmap";
    let bpp = match bits_per_pixel(format) {
        Some(b) => b,
        None => return corrupt(W, 0, format!("unknown bitmap format {format}")),
    };
    check_size(W, width as u64, height as u64, max_pixels)?;
    let row_bytes = (width * bpp).div_ceil(8);
    if stride < row_bytes {
        return corrupt(W, 0, format!("stride {stride} is less than the {row_bytes} bytes of a {width}-pixel row"));
    }
    let needed = if height == 0 { Some(0) } else { stride.checked_mul(height - 1).and_then(|n| n.checked_add(row_bytes)) };
    let Some(needed) = needed else {
        return corrupt(W, 0, format!("stride {stride} x {height} rows is past any buffer"));
    };
    if data.len() < needed {
        return corrupt(W, data.len(), format!("{} bytes of pixel data, {needed} needed", data.len()));
    }
    let mut words = vec![0u32; width * height];
    for y in 0..height {
        let row = &data[y * stride..y * stride + row_bytes];
        let out = &mut words[y * width..(y + 1) * width];
        match format {
            fmt::ONE_BIT_LE | fmt::ONE_BIT_BE | fmt::FOUR_BIT_LE | fmt::FOUR_BIT_BE | fmt::EIGHT_BIT => {
                let pal = match palette {
                    Some(p) => p,
                    None => return corrupt(W, 0, "palette format without a palette"),
                };
                expand_palette_row(format, row, pal, out, W)?;
            }
            fmt::EIGHT_BIT_A => {
                for (o, &a) in out.iter_mut().zip(row) {
                    *o = (a as u32) << 24;
                }
            }
            fmt::SIXTEEN_BIT => {
                for (o, p) in out.iter_mut().zip(row.chunks_exact(2)) {
                    *o = rgb555_to_word(u16::from_le_bytes([p[0], p[1]])) | 0xff00_0000;
                }
            }
            fmt::TWENTY_FOUR_BIT => {
                for (o, p) in out.iter_mut().zip(row.chunks_exact(3)) {
                    *o = u32::from_le_bytes([p[0], p[1], p[2], 0xff]);
                }
            }
            fmt::THIRTY_TWO_BIT => {
                for (o, p) in out.iter_mut().zip(row.chunks_exact(4)) {
                    *o = u32::from_le_bytes([p[0], p[1], p[2], 0xff]);
                }
            }
            _ => {
                for (o, p) in out.iter_mut().zip(row.chunks_exact(4)) {
                    *o = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
                }
            }
        }
    }
    Ok(Image::from_words(width, height, width, words, top_down, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bit_orders_differ() {
        let pal = [0x000000u32, 0xffffff];
        let le = decode_bitmap(fmt::ONE_BIT_LE, 8, 1, 1, true, &[0x01], Some(&pal), 100).unwrap();
        let be = decode_bitmap(fmt::ONE_BIT_BE, 8, 1, 1, true, &[0x01], Some(&pal), 100).unwrap();
        assert_eq!(&le.bgra()[0..4], &[255, 255, 255, 255]);
        assert_eq!(&be.bgra()[28..32], &[255, 255, 255, 255]);
        assert_eq!(&be.bgra()[0..4], &[0, 0, 0, 255]);
    }

    #[test]
    fn bottom_up_rows_are_flipped_and_stride_skipped() {
        let data = [1, 2, 3, 9, 4, 5, 6, 9];
        let img = decode_bitmap(fmt::TWENTY_FOUR_BIT, 1, 2, 4, false, &data, None, 100).unwrap();
        assert_eq!(img.bgra(), vec![4, 5, 6, 255, 1, 2, 3, 255]);
    }

    #[test]
    fn x555_expands_full_scale() {
        let img = decode_bitmap(fmt::SIXTEEN_BIT, 1, 1, 2, true, &0x7fffu16.to_le_bytes(), None, 100).unwrap();
        assert_eq!(img.bgra(), vec![255, 255, 255, 255]);
    }

    #[test]
    fn short_data_and_bad_palette_are_errors() {
        assert!(decode_bitmap(fmt::THIRTY_TWO_BIT, 2, 2, 8, true, &[0; 15], None, 100).is_err());
        assert!(decode_bitmap(fmt::EIGHT_BIT, 1, 1, 1, true, &[7], Some(&[0, 1]), 100).is_err());
        assert!(decode_bitmap(fmt::THIRTY_TWO_BIT, 20, 20, 80, true, &[0; 1600], None, 100).is_err());
        assert!(decode_bitmap(fmt::THIRTY_TWO_BIT, 2, 3, usize::MAX / 2, true, &[0; 16], None, 100).is_err());
    }
}
