//! The one output form of every decoder: rows top-down, 4 bytes per pixel in B,G,R,A order
//! (the little-endian 32-bit xRGB/ARGB word of a SPICE surface). Formats without alpha get A=255.
use crate::error::{CodecError, Result};

/// Default ceiling on width x height: 64 Mpx (256 MiB of output).
pub const DEFAULT_MAX_PIXELS: u64 = 1 << 26;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    /// width * height words 0xAARRGGBB, top row first; in memory (little-endian) B,G,R,A.
    pub words: Vec<u32>,
}

/// Refuse sizes over the ceiling before anything is allocated.
pub fn check_size(codec: &'static str, width: u64, height: u64, max_pixels: u64) -> Result<usize> {
    let n = width.saturating_mul(height);
    if n > max_pixels || n > (isize::MAX as u64) / 8 {
        return Err(CodecError::TooLarge { codec, width, height, max_pixels });
    }
    Ok(n as usize)
}

/// The bytes of a word buffer, as they lie in memory.
pub fn words_as_bytes(words: &[u32]) -> &[u8] {
    // SAFETY: u8 has no alignment requirement and every byte of a u32 is initialised.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 4) }
}

/// Mutable byte view of a word buffer.
pub fn words_as_bytes_mut(words: &mut [u32]) -> &mut [u8] {
    // SAFETY: as above, and any byte pattern is a valid u32.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 4) }
}

impl Image {
    /// Build from packed words with `row_pixels` per stored row (>= width; the excess is
    /// cropped), rows bottom-up when `top_down` is false; `opaque` forces A=255. Reuses the
    /// buffer when it can (no crop).
    pub fn from_words(width: usize, height: usize, row_pixels: usize, mut words: Vec<u32>, top_down: bool, opaque: bool) -> Image {
        if row_pixels != width {
            let mut packed = Vec::with_capacity(width * height);
            for y in 0..height {
                packed.extend_from_slice(&words[y * row_pixels..y * row_pixels + width]);
            }
            words = packed;
        }
        words.truncate(width * height);
        if !top_down {
            for y in 0..height / 2 {
                let (upper, lower) = words.split_at_mut((height - 1 - y) * width);
                upper[y * width..(y + 1) * width].swap_with_slice(&mut lower[..width]);
            }
        }
        if opaque {
            for w in &mut words {
                *w |= 0xff00_0000;
            }
        }
        if cfg!(target_endian = "big") {
            for w in &mut words {
                *w = w.to_le();
            }
        }
        Image { width, height, words }
    }

    /// B,G,R,A bytes, rows top-down.
    pub fn bgra(&self) -> Vec<u8> {
        words_as_bytes(&self.words).to_vec()
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
