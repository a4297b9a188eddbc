//! SPICE's LZ4 image framing: u8 top_down, u8 bitmap format, then {u32 BE length, LZ4 block}
//! repeated. Blocks are decoded as one stream: a match may reach back into earlier blocks'
//! output (LZ4_decompress_safe_continue semantics with a contiguous output buffer).
use crate::bitmap::{decode_bitmap, fmt};
use crate::error::Result;
use crate::image::{check_size, words_as_bytes_mut, Image};
use crate::reader::Reader;

const CODEC: &str = "lz4";

/// Decode one LZ4 block from `src` into `out[*pos..]`; `out[..*pos]` holds the earlier
/// blocks, which matches may reach into.
fn decode_block(src: &[u8], out: &mut [u8], pos: &mut usize, base: usize) -> Result<()> {
    let mut r = Reader::new(src, CODEC);
    let limit = out.len();
    let mut op = *pos;
    let fail = |at: usize, msg: String| crate::error::corrupt(CODEC, base + at, msg);
    loop {
        let token = r.u8()?;
        let mut lit = (token >> 4) as usize;
        if lit == 15 {
            loop {
                let c = r.u8()?;
                lit += c as usize;
                if c != 255 {
                    break;
                }
            }
        }
        if lit > limit - op {
            return fail(r.pos, format!("literals overflow the image ({op} + {lit} > {limit})"));
        }
        if src.len() - r.pos < lit {
            return fail(r.pos, "literals run past the block".into());
        }
        out[op..op + lit].copy_from_slice(&src[r.pos..r.pos + lit]);
        r.pos += lit;
        op += lit;
        if r.pos == src.len() {
            *pos = op;
            return Ok(()); // the last sequence of a block has literals only
        }
        let lo = r.u8()? as usize;
        let hi = r.u8()? as usize;
        let dist = lo | (hi << 8);
        if dist == 0 || dist > op {
            return fail(r.pos, format!("match distance {dist} with {op} bytes decoded"));
        }
        let mut len = (token & 15) as usize + 4;
        if token & 15 == 15 {
            loop {
                let c = r.u8()?;
                len += c as usize;
                if c != 255 {
                    break;
                }
            }
        }
        if len > limit - op {
            return fail(r.pos, format!("match overflows the image ({op} + {len} > {limit})"));
        }
        let from = op - dist;
        if dist == 1 {
            let b = out[from];
            out[op..op + len].fill(b);
        } else {
            // overlapping matches repeat with period `dist`: copy spans that double each time
            let mut done = 0;
            while done < len {
                let n = (len - done).min(op + done - from);
                out.copy_within(from..from + n, op + done);
                done += n;
            }
        }
        op += len;
    }
}

/// Decode an LZ4 image body (the bytes after data_size) of the given descriptor size.
pub fn decode_lz4(data: &[u8], width: usize, height: usize, max_pixels: u64) -> Result<Image> {
    check_size(CODEC, width as u64, height as u64, max_pixels)?;
    let mut r = Reader::new(data, CODEC);
    let top_down = r.u8()? != 0;
    let format = r.u8()?;
    let bpp = match format {
        fmt::SIXTEEN_BIT => 2,
        fmt::TWENTY_FOUR_BIT => 3,
        fmt::THIRTY_TWO_BIT | fmt::RGBA => 4,
        _ => return r.fail(format!("bitmap format {format} is not allowed with LZ4")),
    };
    let size = width * height * bpp;
    // 32-bit pixels are decoded straight into the output words
    let mut words: Vec<u32> = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    let out: &mut [u8] = if bpp == 4 {
        words = vec![0u32; width * height];
        words_as_bytes_mut(&mut words)
    } else {
        bytes = vec![0u8; size];
        &mut bytes
    };
    let mut pos = 0usize;
    while r.pos < data.len() {
        let n = r.be32()? as usize;
        let start = r.pos;
        let block = r.bytes(n)?;
        decode_block(block, out, &mut pos, start)?;
    }
    if pos != size {
        return r.fail(format!("{pos} bytes decoded, the {width}x{height} image needs {size}"));
    }
    if bpp == 4 {
        if cfg!(target_endian = "big") {
            for w in &mut words {
                *w = u32::from_le(*w);
            }
        }
        return Ok(Image::from_words(width, height, width, words, top_down, format == fmt::THIRTY_TWO_BIT));
    }
    decode_bitmap(format, width, height, width * bpp, top_down, &bytes, None, max_pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_reaches_into_previous_block() {
        // 2x2 32-bit: block 1 = 8 literal bytes, block 2 = a match of 8 at distance 8
        let mut s = vec![1u8, fmt::THIRTY_TWO_BIT];
        let b1 = [0x80u8, 1, 2, 3, 4, 5, 6, 7, 8];
        s.extend_from_slice(&(b1.len() as u32).to_be_bytes());
        s.extend_from_slice(&b1);
        let b2 = [0x04u8, 8, 0, 0x00];
        s.extend_from_slice(&(b2.len() as u32).to_be_bytes());
        s.extend_from_slice(&b2);
        let img = decode_lz4(&s, 2, 2, 100).unwrap();
        assert_eq!(&img.bgra()[8..12], &[1, 2, 3, 255]);
    }

    #[test]
    fn hostile_length_and_distance_are_errors() {
        let mut s = vec![1u8, fmt::THIRTY_TWO_BIT, 0xff, 0xff, 0xff, 0xff, 0];
        assert!(decode_lz4(&s, 2, 2, 100).is_err());
        s = vec![1u8, fmt::THIRTY_TWO_BIT, 0, 0, 0, 3, 0x00, 5, 0];
        assert!(decode_lz4(&s, 2, 2, 100).is_err());
    }
}
