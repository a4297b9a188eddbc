//! The one output form of every decoder: rows top-down, 4 bytes per pixel in B,G,R,A order
//! (the little-endian 32-bit xRGB/ARGB word of a SPICE surface). Formats without alpha get A=255.
use crate::error::{CodecError, Result};

/// Default ceiling on width x height: 64 Mpx (256 MiB of output).
pub const DEFAULT_MAX_PIXELS: u64 = 1 << 26;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    /// width * height * 4 bytes, B,G,R,A, top row first.
    pub bgra: Vec<u8>,
}

/// Refuse sizes over the ceiling before anything is allocated.
pub fn check_size(codec: &'static str, width: u64, height: u64, max_pixels: u64) -> Result<usize> {
    let n = width.checked_mul(height).unwrap_or(u64::MAX);
    if n > max_pixels || n > (isize::MAX as u64) / 8 {
        return Err(CodecError::TooLarge { codec, width, height, max_pixels });
    }
    Ok(n as usize)
}

impl Image {
    /// Build from packed u32 pixels (0xAARRGGBB), `row_pixels` per stored row (>= width,
    /// the excess is cropped); rows bottom-up when `top_down` is false.
    pub fn from_words(width: usize, height: usize, row_pixels: usize, words: &[u32], top_down: bool, opaque: bool) -> Image {
        let mut bgra = vec![0u8; width * height * 4];
        for y in 0..height {
            let src_row = if top_down { y } else { height - 1 - y };
            let src = &words[src_row * row_pixels..src_row * row_pixels + width];
            let dst = &mut bgra[y * width * 4..(y + 1) * width * 4];
            for (d, &w) in dst.chunks_exact_mut(4).zip(src) {
                let w = if opaque { w | 0xff00_0000 } else { w };
                d.copy_from_slice(&w.to_le_bytes());
            }
        }
        Image { width, height, bgra }
    }
}

/// x555 (bit 15 unused) to a packed 0xAARRGGBB word, replicating the top bits into the low ones.
#[inline]
pub fn rgb555_to_word(v: u16) -> u32 {
    let expand = |c: u32| (c << 3) | (c >> 2);
    let r = expand(((v >> 10) & 31) as u32);
    let g = expand(((v >> 5) & 31) as u32);
    let b = expand((v & 31) as u32);
    (r << 16) | (g << 8) | b
}
