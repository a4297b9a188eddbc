//! LZ4 as spice-server frames it: u8 top_down, u8 bitmap format, then {u32 BE length,
//! LZ4 block} repeated. spice-gtk decodes the blocks in turn with
//! LZ4_decompress_safe_continue into one buffer, allowing the rest of the image as output,
//! so a block may hold any number of rows and may refer back into the previous blocks.
//! The blocks are made by liblz4 (lz4_block.rs), as spice-server makes them; an image is
//! one block unless it is larger than `BLOCK`.
use crate::bitmap::fmt;
use crate::lz4_block::compress_into;

/// Uncompressed bytes per block: a whole image of any usual size (a 4096x4096 32-bit
/// surface is 64 MiB: four blocks, each seeing the 64 KiB before it).
const BLOCK: usize = 1 << 24;

/// Frame packed rows (`bytes`, top-down, `format` 16BIT/24BIT/32BIT/RGBA) as SPICE LZ4 data.
pub fn encode_lz4(bytes: &[u8], format: u8) -> Option<Vec<u8>> {
    if !matches!(format, fmt::SIXTEEN_BIT | fmt::TWENTY_FOUR_BIT | fmt::THIRTY_TWO_BIT | fmt::RGBA) {
        return None;
    }
    // room for the worst case at once (incompressible blocks grow by 1/255)
    let mut out = Vec::with_capacity(2 + bytes.len() + bytes.len() / 255 + 32 * (bytes.len() / BLOCK + 1));
    out.extend_from_slice(&[1u8, format]);
    for start in (0..bytes.len()).step_by(BLOCK) {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        // the decoder keeps what it decoded: a later block may match into the last 64 KiB
        let n = compress_into(bytes, start, (start + BLOCK).min(bytes.len()), &mut out);
        out[at..at + 4].copy_from_slice(&(n as u32).to_be_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lz4::decode_lz4;

    fn round_trip(bytes: &[u8], format: u8, w: usize, h: usize) -> Vec<u8> {
        let s = encode_lz4(bytes, format).unwrap();
        let img = decode_lz4(&s, w, h, 1 << 26).unwrap();
        assert_eq!((img.width, img.height), (w, h));
        img.bgra()
    }

    #[test]
    fn round_trips_small_and_empty_and_noisy() {
        for (w, h) in [(1, 1), (3, 1), (5, 3), (64, 64)] {
            let mut x = 12345u32;
            let bytes: Vec<u8> = (0..w * h * 4)
                .map(|i| {
                    x = x.wrapping_mul(1103515245).wrapping_add(12345);
                    if i % 64 < 32 { (x >> 16) as u8 } else { 7 }
                })
                .collect();
            let out = round_trip(&bytes, fmt::RGBA, w, h);
            assert_eq!(out, bytes);
        }
        assert_eq!(encode_lz4(&[], fmt::THIRTY_TWO_BIT).unwrap(), vec![1, fmt::THIRTY_TWO_BIT]);
        assert!(encode_lz4(&[0; 4], fmt::EIGHT_BIT).is_none());
    }

    #[test]
    fn blocks_past_the_first_refer_back() {
        // 2 blocks and a bit: a repeating pattern, so later blocks are references only
        let n = BLOCK * 2 + 4 * 1000;
        let bytes: Vec<u8> = (0..n).map(|i| (i % 4093) as u8 | 3).collect();
        let s = encode_lz4(&bytes, fmt::RGBA).unwrap();
        assert!(s.len() < n / 100, "{}", s.len());
        let img = decode_lz4(&s, n / 4, 1, 1 << 26).unwrap();
        assert_eq!(img.bgra(), bytes);
    }
}
