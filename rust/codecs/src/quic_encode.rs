//! QUIC encoder: the mirror of `quic.rs`. The same model, schedule and run prediction run
//! on both sides, so every choice the decoder makes is made here first.
use crate::quic::{quic_type, QUIC_MAGIC};
use crate::quic_model::{low_mask, update_models, Alpha, Family, Gray, Group, Layout, Model, Rgb5, Rgb8, State};

/// MSB-first bits packed into little-endian 32-bit words, into a zero-filled buffer that
/// grows ahead of the writes (`reserve`), so that a write is a plain store.
struct BitWriter {
    buf: Vec<u8>,
    /// bytes written
    p: usize,
    /// the last `n` bits put are the low bits of `acc` (above them: bits already written)
    acc: u64,
    /// always < 32 between calls
    n: u32,
}

impl BitWriter {
    /// Room for `bytes` more bytes.
    fn reserve(&mut self, bytes: usize) {
        if self.buf.len() - self.p < bytes {
            let size = (self.buf.len() * 2).max(self.p + bytes);
            self.buf.resize(size, 0);
        }
    }

    #[inline(always)]
    fn put(&mut self, bits: u32, len: u32) {
        let mut w = self.hot();
        w.put(bits, len);
        (self.p, self.acc, self.n) = (w.p, w.acc, w.n);
    }

    /// The writer as plain values with a reference to the buffer, for the hot loops: its
    /// accumulator stays in registers as long as nothing takes its address.
    #[inline(always)]
    fn hot(&mut self) -> Hot<'_> {
        Hot { buf: &mut self.buf, p: self.p, acc: self.acc, n: self.n }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.put(0, 32 - self.n);
        }
        // the decoder looks one word ahead of the last code
        self.put(0, 32);
        self.buf.truncate(self.p);
        self.buf
    }
}

/// `BitWriter` in locals (see `BitWriter::hot`); handed by value to the functions that
/// are not inlined, so that it never lives in memory.
struct Hot<'a> {
    buf: &'a mut Vec<u8>,
    p: usize,
    acc: u64,
    n: u32,
}

impl Hot<'_> {
    /// Put the low `len` <= 32 bits of `bits`. Without a branch on whether a word is full
    /// (that depends on the data, so it would be mispredicted often): the word at `p` is
    /// always stored, and `p` only moves on past a full one.
    #[inline(always)]
    fn put(&mut self, bits: u32, len: u32) {
        self.acc = (self.acc << len) | bits as u64;
        self.n += len;
        self.flush();
    }

    /// Store the word that `n` (< 64) bits may have filled.
    #[inline(always)]
    fn flush(&mut self) {
        let full = self.n >> 5;
        self.n &= 31;
        let word = ((self.acc >> self.n) as u32).to_le_bytes();
        match self.buf.get_mut(self.p..self.p + 4) {
            Some(dst) => dst.copy_from_slice(&word),
            None => grow_put(self.buf, self.p, word),
        }
        self.p += (full as usize) << 2;
    }
}

/// A write past the room reserved (never, with the per-row reservation).
#[cold]
#[inline(never)]
fn grow_put(buf: &mut Vec<u8>, p: usize, word: [u8; 4]) {
    buf.resize((buf.len() * 2).max(p + 4), 0);
    buf[p..p + 4].copy_from_slice(&word);
}

/// Code one pixel of every channel of the group with the codes picked by the residuals
/// `ctx` of the pixel before; returns the packed residuals.
#[inline(always)]
fn pixel<const N: usize, L: Layout<N>, const PRED: u8>(
    fam: &Family,
    models: &[Model; N],
    w: &mut Hot,
    ctx: u32,
    px: u32,
    left: u32,
    above: u32,
) -> u32 {
    let mask = low_mask(L::BPC);
    let mut res = 0u32;
    let mut cw = [0u32; N];
    for c in 0..N {
        let pred = match PRED {
            PRED_NONE => 0,
            PRED_LEFT => L::get(left, c),
            PRED_ABOVE => L::get(above, c),
            _ => (L::get(left, c) + L::get(above, c)) >> 1,
        };
        let u = L::get(px, c).wrapping_sub(pred) & mask;
        let v = fam.u_to_l[u as usize & 0xff] as u32;
        let code = models[c].best_code((ctx >> (8 * c)) as u8, mask);
        cw[c] = fam.codewords[code as usize & 7][v as usize];
        res |= v << (8 * c);
    }
    // the pixel's codewords at once when they fit the accumulator (nearly always), so that
    // one word at most fills up
    let total: u32 = cw.iter().map(|&x| x & 31).sum();
    if w.n + total < 64 {
        for x in cw {
            w.acc = (w.acc << (x & 31)) | (x >> 5) as u64;
        }
        w.n += total;
        w.flush();
    } else {
        for x in cw {
            w.put(x >> 5, x & 31);
        }
    }
    res
}

/// MELCODE run length.
#[inline(never)]
fn run_length<'a>(mut w: Hot<'a>, st: &mut State, mut run: u32) -> Hot<'a> {
    let mut hits = 0u32;
    while run >= st.melc_order {
        hits += 1;
        run -= st.melc_order;
        st.melc_up();
    }
    while hits >= 32 {
        w.put(u32::MAX, 32);
        hits -= 32;
    }
    if hits > 0 {
        w.put(low_mask(hits), hits);
    }
    w.put(run, st.melc_len + 1);
    st.melc_down();
    w
}

const PRED_NONE: u8 = 0; // first pixel of the first row
const PRED_LEFT: u8 = 1; // first row
const PRED_ABOVE: u8 = 2; // first pixel of a row
const PRED_BOTH: u8 = 3; // (left + above) / 2

/// Code pixels `i..end` of row `cur` (`prev`: the row above, unused on the first row).
#[allow(clippy::too_many_arguments)]
fn segment<const N: usize, L: Layout<N>>(
    g: &mut Group<N>,
    w: &mut BitWriter,
    prev: &[u32],
    cur: &[u32],
    i: usize,
    end: usize,
    waitmask: u32,
    first_row: bool,
) {
    if first_row {
        segment_in::<N, L, true>(g, w, prev, cur, i, end, waitmask)
    } else {
        segment_in::<N, L, false>(g, w, prev, cur, i, end, waitmask)
    }
}

/// The mirror of the decoder's segment: the same schedule, the same run prediction.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn segment_in<const N: usize, L: Layout<N>, const FIRST: bool>(
    g: &mut Group<N>,
    bw: &mut BitWriter,
    prev: &[u32],
    cur: &[u32],
    mut i: usize,
    end: usize,
    waitmask: u32,
) {
    let Group { fam, models, corr, state } = g;
    assert!(end <= cur.len() && corr.len() == cur.len() + 1 && (FIRST || prev.len() == cur.len()));
    let cur = &cur[..end];
    let corr = &mut corr[..end + 1];
    let prev = if FIRST { prev } else { &prev[..end] };
    // the writer lives in registers for the segment
    let mut w = bw.hot();
    if i == 0 {
        corr[1] = if FIRST {
            pixel::<N, L, PRED_NONE>(fam, models, &mut w, corr[0], cur[0], 0, 0)
        } else {
            pixel::<N, L, PRED_ABOVE>(fam, models, &mut w, corr[0], cur[0], 0, prev[0])
        };
        if state.update_due(waitmask) {
            update_models::<N, L>(models, fam, corr[0], corr[1], state.trigger);
        }
        i = 1;
    }
    let mut ctx = corr[i];
    let mut left = cur[i - 1];
    let mut left2 = if i >= 2 { cur[i - 2] } else { 0 };
    let mut above_left = if FIRST { 0 } else { prev[i - 1] };
    let mut stop = i + state.wait as usize;
    let mut run_index = 0usize;
    loop {
        let lim = if stop < end { stop + 1 } else { end };
        let mut ran = false;
        while i < lim {
            let px = cur[i];
            let above = if FIRST { 0 } else { prev[i] };
            if !FIRST && L::same(above_left, above) && L::same(left, left2) && i > 2 && run_index != i {
                ran = true;
                break;
            }
            let res = if FIRST {
                pixel::<N, L, PRED_LEFT>(fam, models, &mut w, ctx, px, left, above)
            } else {
                pixel::<N, L, PRED_BOTH>(fam, models, &mut w, ctx, px, left, above)
            };
            corr[i + 1] = res;
            (ctx, left2, left, above_left) = (res, left, px, above);
            i += 1;
        }
        if !ran {
            if stop < end {
                update_models::<N, L>(models, fam, corr[stop], corr[stop + 1], state.trigger);
                stop = i + (state.rand() & waitmask) as usize;
                continue;
            }
            state.wait = (stop - end) as u32;
            break;
        }
        run_index = i;
        state.wait = (stop - i) as u32;
        let run = cur[i..].iter().take_while(|&&p| L::same(p, left)).count();
        w = run_length(w, state, run as u32);
        if run > 0 {
            i += run;
            left2 = left;
            ctx = corr[i];
            if !FIRST {
                above_left = prev[i - 1];
            }
        }
        if i == end {
            break;
        }
        stop = i + state.wait as usize;
    }
    (bw.p, bw.acc, bw.n) = (w.p, w.acc, w.n);
}

/// Code the rows of one group (and of the alpha group after each of its rows, for RGBA).
fn encode_rows<const N: usize, L: Layout<N>>(words: &[u32], w: usize, bits: &mut BitWriter, with_alpha: bool) {
    let mut g = Group::<N>::new(L::BPC, w);
    let mut alpha = if with_alpha { Some(Group::<1>::new(8, w)) } else { None };
    // the most a row can take: every pixel coded with the longest codes, or starting a run
    let row_bytes = w * (N + 1) * 32 / 8 + 64;
    for (y, cur) in words.chunks_exact(w).enumerate() {
        let prev = if y > 0 { &words[(y - 1) * w..y * w] } else { &[][..] };
        bits.reserve(row_bytes);
        g.row(w, y == 0, |g, s, e, wm| {
            segment::<N, L>(g, bits, prev, cur, s, e, wm, y == 0);
            Ok::<(), ()>(())
        })
        .ok();
        if let Some(a) = alpha.as_mut() {
            bits.reserve(w * 8 + 64);
            a.row(w, y == 0, |a, s, e, wm| {
                segment::<1, Alpha>(a, bits, prev, cur, s, e, wm, y == 0);
                Ok::<(), ()>(())
            })
            .ok();
        }
    }
}

/// [`encode_quic`] of B,G,R,A bytes (width * height * 4 of them), read in place as words
/// where they are aligned.
pub fn encode_quic_bgra(bgra: &[u8], width: u32, height: u32, kind: u32) -> Option<Vec<u8>> {
    crate::lz_encode::with_bgra_words(bgra, width, height, |words| encode_quic(words, width, height, kind))?
}

/// Encode top-down 0xAARRGGBB words as a QUIC stream of `kind` (GRAY takes the blue byte,
/// RGB16 the top 5 bits of each colour). None for an unknown kind or an empty image.
pub fn encode_quic(words: &[u32], width: u32, height: u32, kind: u32) -> Option<Vec<u8>> {
    if !(1..=5).contains(&kind) || width == 0 || height == 0 || words.len() != (width as usize) * (height as usize) {
        return None;
    }
    let w = width as usize;
    let mut bits = BitWriter { buf: Vec::new(), p: 0, acc: 0, n: 0 };
    bits.reserve(words.len() + 64);
    for v in [QUIC_MAGIC, 0, kind, width, height] {
        bits.put(v, 32);
    }
    match kind {
        quic_type::GRAY => encode_rows::<1, Gray>(words, w, &mut bits, false),
        quic_type::RGB16 => encode_rows::<3, Rgb5>(words, w, &mut bits, false),
        _ => encode_rows::<3, Rgb8>(words, w, &mut bits, kind == quic_type::RGBA),
    }
    Some(bits.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quic::decode_quic;

    fn noise(n: usize, seed: u32) -> Vec<u32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                s
            })
            .collect()
    }

    #[test]
    fn round_trips_every_kind() {
        for (w, h) in [(1u32, 1u32), (3, 2), (70, 40), (300, 20)] {
            let n = (w * h) as usize;
            // half noise, half flat runs, so both codes and runs are exercised
            let mut words = noise(n, w * 7 + h);
            for p in words.iter_mut().skip(n / 2) {
                *p = 0x80123456;
            }
            for kind in 1..=5u32 {
                let enc = encode_quic(&words, w, h, kind).unwrap();
                let dec = decode_quic(&enc, 1 << 24).unwrap();
                let expect: Vec<u32> = words
                    .iter()
                    .map(|&p| match kind {
                        quic_type::GRAY => 0xff00_0000 | ((p & 0xff) * 0x01_0101),
                        quic_type::RGB16 => {
                            let e = |c: u32| ((c >> 3) << 3) | (c >> 5);
                            0xff00_0000 | e((p >> 16) & 255) << 16 | e((p >> 8) & 255) << 8 | e(p & 255)
                        }
                        quic_type::RGBA => p,
                        _ => p | 0xff00_0000,
                    })
                    .collect();
                assert_eq!(dec.words, expect, "kind {kind} {w}x{h}");
            }
        }
    }
}
