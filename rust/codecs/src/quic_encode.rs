//! QUIC encoder: the mirror of `quic.rs`. The same model, schedule and run prediction run
//! on both sides, so every choice the decoder makes is made here first.
use crate::quic::{quic_type, QUIC_MAGIC};
use crate::quic_model::{low_mask, Family, Model, State, WMI_MAX};

/// MSB-first bits packed into little-endian 32-bit words.
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    #[inline]
    fn put(&mut self, bits: u32, len: u32) {
        self.acc = (self.acc << len) | bits as u64;
        self.n += len;
        if self.n >= 32 {
            self.n -= 32;
            self.out.extend_from_slice(&((self.acc >> self.n) as u32).to_le_bytes());
            self.acc &= (1u64 << self.n) - 1;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.put(0, 32 - self.n);
        }
        // the decoder looks one word ahead of the last code
        self.put(0, 32);
        self.out
    }
}

/// Channels coded together, pixels interleaved `[u8; N]` (the mirror of the decoder's group).
/// The bit accumulator of `BitWriter` as plain values, for the hot loops: a local that the
/// compiler keeps in registers (the writer's own fields would be stored and reloaded per code).
struct LocalWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    n: u32,
}

impl LocalWriter<'_> {
    #[inline(always)]
    fn put(&mut self, bits: u32, len: u32) {
        self.acc = (self.acc << len) | bits as u64;
        self.n += len;
        if self.n >= 32 {
            self.n -= 32;
            self.out.extend_from_slice(&((self.acc >> self.n) as u32).to_le_bytes());
            self.acc &= (1u64 << self.n) - 1;
        }
    }
}

struct EncGroup<const N: usize> {
    fam: Family,
    mask: u32,
    models: [Model; N],
    corr: Vec<[u8; N]>,
    cur: Vec<[u8; N]>,
    prev: Vec<[u8; N]>,
    state: State,
}

impl<const N: usize> EncGroup<N> {
    fn new(bpc: u32, width: usize) -> Self {
        EncGroup {
            fam: Family::new(bpc),
            mask: low_mask(bpc),
            models: std::array::from_fn(|_| Model::new(bpc)),
            corr: vec![[0; N]; width + 1],
            cur: vec![[0; N]; width],
            prev: vec![[0; N]; width],
            state: State::new(),
        }
    }

    /// Code pixel x; `ctx` is the residual of pixel x-1 (kept in a register by the caller).
    /// Returns the residuals of pixel x.
    #[inline(always)]
    fn pixel<const FIRST: bool>(&mut self, w: &mut LocalWriter, x: usize, ctx: [u8; N]) -> [u8; N] {
        let px = self.cur[x];
        let above = self.prev[x];
        let left = if x > 0 { self.cur[x - 1] } else { [0; N] };
        let mut res = [0u8; N];
        for c in 0..N {
            let pred = match (FIRST, x) {
                (true, 0) => 0,
                (true, _) => left[c] as u32,
                (false, 0) => above[c] as u32,
                (false, _) => (left[c] as u32 + above[c] as u32) >> 1,
            };
            let u = (px[c] as u32).wrapping_sub(pred) & self.mask;
            let v = self.fam.u_to_l[u as usize & 0xff];
            let code = self.models[c].best_code(ctx[c], self.mask);
            res[c] = v;
            let (bits, len) = self.fam.encode(code, v);
            w.put(bits, len);
        }
        self.corr[x + 1] = res;
        res
    }

    fn update(&mut self, x: usize) {
        let (ctx, v) = (self.corr[x], self.corr[x + 1]);
        for c in 0..N {
            self.models[c].update(&self.fam, ctx[c], v[c], self.state.trigger);
        }
    }

    fn run_length(&mut self, w: &mut LocalWriter, mut run: u32) {
        let mut hits = 0u32;
        while run >= self.state.melc_order {
            hits += 1;
            run -= self.state.melc_order;
            self.state.melc_up();
        }
        while hits >= 32 {
            w.put(u32::MAX, 32);
            hits -= 32;
        }
        if hits > 0 {
            w.put(low_mask(hits), hits);
        }
        w.put(run, self.state.melc_len + 1);
        self.state.melc_down();
    }

    fn row(&mut self, w: &mut BitWriter, first_row: bool) {
        let width = self.cur.len();
        self.corr[0] = if first_row { [0; N] } else { self.corr[1] };
        let (mut pos, mut left) = (0usize, width as u32);
        while self.state.wmidx < WMI_MAX && self.state.wmileft <= left {
            let n = self.state.wmileft;
            if n > 0 {
                self.segment(w, pos, pos + n as usize, low_mask(self.state.wmidx), first_row);
                pos += n as usize;
                left -= n;
            }
            self.state.next_wmi();
        }
        if left > 0 {
            self.segment(w, pos, pos + left as usize, low_mask(self.state.wmidx), first_row);
            if self.state.wmidx < WMI_MAX {
                self.state.wmileft -= left;
            }
        }
    }

    #[inline(always)]
    fn run_starts(&self, i: usize, run_index: usize) -> bool {
        self.prev[i - 1] == self.prev[i] && run_index != i && i > 2 && self.cur[i - 1] == self.cur[i - 2]
    }

    fn segment(&mut self, w: &mut BitWriter, i: usize, end: usize, waitmask: u32, first_row: bool) {
        let mut lw = LocalWriter { acc: w.acc, n: w.n, out: &mut w.out };
        if first_row {
            self.segment_in::<true>(&mut lw, i, end, waitmask)
        } else {
            self.segment_in::<false>(&mut lw, i, end, waitmask)
        }
        let (acc, n) = (lw.acc, lw.n);
        (w.acc, w.n) = (acc, n);
    }

    #[inline(always)]
    fn segment_in<const FIRST: bool>(&mut self, w: &mut LocalWriter, mut i: usize, end: usize, waitmask: u32) {
        assert!(end <= self.cur.len() && self.prev.len() == self.cur.len() && self.corr.len() == self.cur.len() + 1);
        if i == 0 {
            self.pixel::<FIRST>(w, 0, self.corr[0]);
            if self.state.wait > 0 {
                self.state.wait -= 1;
            } else {
                self.state.wait = self.state.rand() & waitmask;
                self.update(0);
            }
            i = 1;
        }
        let mut ctx = self.corr[i];
        let mut stop = i + self.state.wait as usize;
        let mut run_index = 0usize;
        loop {
            let mut ran = false;
            'coded: {
                while stop < end {
                    while i <= stop {
                        if !FIRST && self.run_starts(i, run_index) {
                            ran = true;
                            break 'coded;
                        }
                        ctx = self.pixel::<FIRST>(w, i, ctx);
                        i += 1;
                    }
                    self.update(stop);
                    stop = i + (self.state.rand() & waitmask) as usize;
                }
                while i < end {
                    if !FIRST && self.run_starts(i, run_index) {
                        ran = true;
                        break 'coded;
                    }
                    ctx = self.pixel::<FIRST>(w, i, ctx);
                    i += 1;
                }
            }
            if !ran {
                self.state.wait = (stop - end) as u32;
                return;
            }
            run_index = i;
            self.state.wait = (stop - i) as u32;
            let value = self.cur[i - 1];
            let run = self.cur[i..end].iter().take_while(|&&p| p == value).count();
            i += run;
            self.run_length(w, run as u32);
            if i == end {
                return;
            }
            ctx = self.corr[i];
            stop = i + self.state.wait as usize;
        }
    }
}

/// Fill a group's current row from the words and code it.
fn code_row<const N: usize>(g: &mut EncGroup<N>, bits: &mut BitWriter, row: &[u32], first_row: bool, pick: impl Fn(u32) -> [u8; N]) {
    for (c, &px) in g.cur.iter_mut().zip(row) {
        *c = pick(px);
    }
    g.row(bits, first_row);
    std::mem::swap(&mut g.cur, &mut g.prev);
}

/// Encode top-down 0xAARRGGBB words as a QUIC stream of `kind` (GRAY takes the blue byte,
/// RGB16 the top 5 bits of each colour). None for an unknown kind or an empty image.
pub fn encode_quic(words: &[u32], width: u32, height: u32, kind: u32) -> Option<Vec<u8>> {
    if !(1..=5).contains(&kind) || width == 0 || height == 0 || words.len() != (width as usize) * (height as usize) {
        return None;
    }
    let w = width as usize;
    let bpc = if kind == quic_type::RGB16 { 5 } else { 8 };
    let mut bits = BitWriter { out: Vec::with_capacity(words.len()), acc: 0, n: 0 };
    for v in [QUIC_MAGIC, 0, kind, width, height] {
        bits.put(v, 32);
    }
    let rgb = |px: u32| [(px >> 16) as u8, (px >> 8) as u8, px as u8];
    let rgb5 = |px: u32| [(px >> 19) as u8 & 31, (px >> 11) as u8 & 31, (px >> 3) as u8 & 31];
    let mut color = EncGroup::<3>::new(bpc, w);
    let mut gray = EncGroup::<1>::new(8, w);
    for (y, row) in words.chunks_exact(w).enumerate() {
        match kind {
            quic_type::GRAY => code_row(&mut gray, &mut bits, row, y == 0, |px| [px as u8]),
            quic_type::RGB16 => code_row(&mut color, &mut bits, row, y == 0, rgb5),
            _ => code_row(&mut color, &mut bits, row, y == 0, rgb),
        }
        if kind == quic_type::RGBA {
            // the alpha channel is a gray group of its own, after each colour row
            code_row(&mut gray, &mut bits, row, y == 0, |px| [(px >> 24) as u8]);
        }
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
