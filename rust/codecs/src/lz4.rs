//! SPICE's LZ4 image framing: u8 top_down, u8 bitmap format, then {u32 BE length, LZ4 block}
//! repeated. Blocks are decoded as one stream: a match may reach back into earlier blocks'
//! output (LZ4_decompress_safe_continue semantics with a contiguous output buffer, as
//! spice-gtk decodes). The blocks are decoded by liblz4's safe decoder (lz4_block.rs),
//! which holds the block format's end-of-block rules as spice-gtk does.
use crate::bitmap::{decode_bitmap, fmt};
use crate::error::Result;
use crate::image::{check_size, Image};
use std::mem::MaybeUninit;
use crate::lz4_block::decompress_into;
use crate::reader::Reader;

const CODEC: &str = "lz4";

/// Decode the blocks of `r` into `out`, which they must fill exactly.
fn decode_blocks(r: &mut Reader, data: &[u8], out: &mut [MaybeUninit<u8>], width: usize, height: usize) -> Result<()> {
    let mut pos = 0;
    while r.pos < data.len() {
        let n = r.be32()? as usize;
        let start = r.pos;
        let block = r.bytes(n)?;
        match decompress_into(block, out, pos) {
            Some(k) => pos += k,
            None => {
                return crate::error::corrupt(
                    CODEC,
                    start,
                    format!("corrupt LZ4 block of {n} bytes ({pos} of {} image bytes decoded before it)", out.len()),
                )
            }
        }
    }
    if pos != out.len() {
        return r.fail(format!("{pos} bytes decoded, the {width}x{height} image needs {}", out.len()));
    }
    Ok(())
}

/// Decode an LZ4 image body (the bytes after data_size) of the given descriptor size.
pub fn decode_lz4(data: &[u8], width: usize, height: usize, max_pixels: u64) -> Result<Image> {
    let pixels = check_size(CODEC, width as u64, height as u64, max_pixels)?;
    let mut r = Reader::new(data, CODEC);
    let top_down = r.u8()? != 0;
    let format = r.u8()?;
    let bpp = match format {
        fmt::SIXTEEN_BIT => 2,
        fmt::TWENTY_FOUR_BIT => 3,
        fmt::THIRTY_TWO_BIT | fmt::RGBA => 4,
        _ => return r.fail(format!("bitmap format {format} is not allowed with LZ4")),
    };
    let size = pixels * bpp;
    if bpp == 4 {
        // 32-bit pixels are decoded straight into the output words (not zeroed first:
        // the blocks must fill them all)
        let mut words: Vec<u32> = Vec::with_capacity(pixels);
        let spare = &mut words.spare_capacity_mut()[..pixels];
        // SAFETY: the same memory as bytes; MaybeUninit<u8> has no alignment or validity needs
        let out = unsafe { std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<MaybeUninit<u8>>(), size) };
        decode_blocks(&mut r, data, out, width, height)?;
        // SAFETY: decode_blocks initialised all `size` bytes: `pixels` words
        unsafe { words.set_len(pixels) };
        if cfg!(target_endian = "big") {
            for w in &mut words {
                *w = u32::from_le(*w);
            }
        }
        return Ok(Image::from_words(width, height, width, words, top_down, format == fmt::THIRTY_TWO_BIT));
    }
    let mut bytes: Vec<u8> = Vec::with_capacity(size);
    decode_blocks(&mut r, data, &mut bytes.spare_capacity_mut()[..size], width, height)?;
    // SAFETY: decode_blocks initialised all `size` bytes
    unsafe { bytes.set_len(size) };
    decode_bitmap(format, width, height, width * bpp, top_down, &bytes, None, max_pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_reaches_into_previous_block() {
        // 8x1 32-bit (32 bytes): block 1 = 8 literal bytes; block 2 = a match of 8 at
        // distance 8 into block 1, then 16 literal bytes (the format's last 5 bytes are
        // literals, and its last match starts 12 bytes before the end at the latest)
        let mut s = vec![1u8, fmt::THIRTY_TWO_BIT];
        let b1 = [0x80u8, 1, 2, 3, 4, 5, 6, 7, 8];
        s.extend_from_slice(&(b1.len() as u32).to_be_bytes());
        s.extend_from_slice(&b1);
        let mut b2 = vec![0x04u8, 8, 0, 0xf0, 1];
        b2.extend(40..56u8);
        s.extend_from_slice(&(b2.len() as u32).to_be_bytes());
        s.extend_from_slice(&b2);
        let img = decode_lz4(&s, 8, 1, 100).unwrap();
        assert_eq!(&img.bgra()[8..16], &[1, 2, 3, 255, 5, 6, 7, 255]);
        assert_eq!(&img.bgra()[16..20], &[40, 41, 42, 255]);
    }

    #[test]
    fn hostile_length_and_distance_are_errors() {
        let mut s = vec![1u8, fmt::THIRTY_TWO_BIT, 0xff, 0xff, 0xff, 0xff, 0];
        assert!(decode_lz4(&s, 2, 2, 100).is_err());
        s = vec![1u8, fmt::THIRTY_TWO_BIT, 0, 0, 0, 3, 0x00, 5, 0];
        assert!(decode_lz4(&s, 2, 2, 100).is_err());
    }
}
