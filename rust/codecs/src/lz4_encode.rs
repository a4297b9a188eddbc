//! LZ4 as spice-server frames it: u8 top_down, u8 bitmap format, then {u32 BE length,
//! LZ4 block}. Our blocks are independent (valid for a streaming decoder too) and keep the
//! LZ4 end-of-block rules (last 5 bytes literal, no match starting in the last 12).
use crate::bitmap::fmt;

const MIN_MATCH: usize = 4;
const LAST_LITERALS: usize = 5;
const MF_LIMIT: usize = 12;
const HASH_BITS: u32 = 14;
/// Uncompressed bytes per block.
const BLOCK: usize = 1 << 16;

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 255 {
        out.push(255);
        n -= 255;
    }
    out.push(n as u8);
}

fn sequence(out: &mut Vec<u8>, lits: &[u8], m: Option<(usize, usize)>) {
    let ml = m.map_or(0, |(_, len)| len - MIN_MATCH);
    let token = ((lits.len().min(15) as u8) << 4) | ml.min(15) as u8;
    out.push(token);
    if lits.len() >= 15 {
        put_len(out, lits.len() - 15);
    }
    out.extend_from_slice(lits);
    if let Some((dist, _)) = m {
        out.extend_from_slice(&(dist as u16).to_le_bytes());
        if ml >= 15 {
            put_len(out, ml - 15);
        }
    }
}

/// Compress one block.
pub fn compress_block(src: &[u8], out: &mut Vec<u8>) {
    let n = src.len();
    let mut table = vec![u32::MAX; 1 << HASH_BITS];
    let h = |i: usize| (u32::from_le_bytes([src[i], src[i + 1], src[i + 2], src[i + 3]]).wrapping_mul(2654435761) >> (32 - HASH_BITS)) as usize;
    let (mut i, mut anchor) = (0usize, 0usize);
    if n > MF_LIMIT {
        let match_limit = n - LAST_LITERALS;
        while i + MF_LIMIT < n {
            let k = h(i);
            let c = table[k];
            table[k] = i as u32;
            if c != u32::MAX && i - c as usize <= 65535 && src[c as usize..c as usize + 4] == src[i..i + 4] {
                let c = c as usize;
                let mut len = 4;
                while i + len < match_limit && src[c + len] == src[i + len] {
                    len += 1;
                }
                sequence(out, &src[anchor..i], Some((i - c, len)));
                i += len;
                anchor = i;
                continue;
            }
            i += 1;
        }
    }
    sequence(out, &src[anchor..], None);
}

/// Frame packed rows (`bytes`, top-down, `format` 16BIT/24BIT/32BIT/RGBA) as SPICE LZ4 data.
pub fn encode_lz4(bytes: &[u8], format: u8) -> Option<Vec<u8>> {
    if !matches!(format, fmt::SIXTEEN_BIT | fmt::TWENTY_FOUR_BIT | fmt::THIRTY_TWO_BIT | fmt::RGBA) {
        return None;
    }
    let mut out = vec![1u8, format];
    for chunk in bytes.chunks(BLOCK) {
        let mut block = Vec::with_capacity(chunk.len() / 2 + 16);
        compress_block(chunk, &mut block);
        out.extend_from_slice(&(block.len() as u32).to_be_bytes());
        out.extend_from_slice(&block);
    }
    Some(out)
}
