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

struct EncGroup {
    fam: Family,
    mask: u32,
    models: Vec<Model>,
    corr: Vec<Vec<u8>>,
    cur: Vec<Vec<u8>>,
    prev: Vec<Vec<u8>>,
    state: State,
}

impl EncGroup {
    fn new(channels: usize, bpc: u32, width: usize) -> Self {
        EncGroup {
            fam: Family::new(bpc),
            mask: low_mask(bpc),
            models: vec![Model::new(bpc); channels],
            corr: vec![vec![0; width + 1]; channels],
            cur: vec![vec![0; width]; channels],
            prev: vec![vec![0; width]; channels],
            state: State::new(),
        }
    }

    #[inline]
    fn same(rows: &[Vec<u8>], a: usize, b: usize) -> bool {
        rows.iter().all(|r| r[a] == r[b])
    }

    fn pixel(&mut self, w: &mut BitWriter, x: usize, first_row: bool) {
        for c in 0..self.cur.len() {
            let pred = match (first_row, x) {
                (true, 0) => 0,
                (true, _) => self.cur[c][x - 1] as u32,
                (false, 0) => self.prev[c][0] as u32,
                (false, _) => (self.cur[c][x - 1] as u32 + self.prev[c][x] as u32) >> 1,
            };
            let u = (self.cur[c][x] as u32).wrapping_sub(pred) & self.mask;
            let v = self.fam.u_to_l[u as usize];
            let code = self.models[c].best_code(self.corr[c][x], self.mask);
            self.corr[c][x + 1] = v;
            let (bits, len) = self.fam.encode(code, v);
            w.put(bits, len);
        }
    }

    fn update(&mut self, x: usize) {
        for c in 0..self.models.len() {
            let (ctx, v) = (self.corr[c][x], self.corr[c][x + 1]);
            self.models[c].update(&self.fam, ctx, v, self.state.trigger);
        }
    }

    fn run_length(&mut self, w: &mut BitWriter, mut run: u32) {
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
        let width = self.cur[0].len();
        for c in 0..self.corr.len() {
            self.corr[c][0] = if first_row { 0 } else { self.corr[c][1] };
        }
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

    fn run_starts(&self, i: usize, run_index: usize) -> bool {
        Self::same(&self.prev, i - 1, i) && run_index != i && i > 2 && Self::same(&self.cur, i - 1, i - 2)
    }

    fn segment(&mut self, w: &mut BitWriter, mut i: usize, end: usize, waitmask: u32, first_row: bool) {
        if i == 0 {
            self.pixel(w, 0, first_row);
            if self.state.wait > 0 {
                self.state.wait -= 1;
            } else {
                self.state.wait = self.state.rand() & waitmask;
                self.update(0);
            }
            i = 1;
        }
        let mut stop = i + self.state.wait as usize;
        let mut run_index = 0usize;
        loop {
            let mut ran = false;
            'coded: {
                while stop < end {
                    while i <= stop {
                        if !first_row && self.run_starts(i, run_index) {
                            ran = true;
                            break 'coded;
                        }
                        self.pixel(w, i, first_row);
                        i += 1;
                    }
                    self.update(stop);
                    stop = i + (self.state.rand() & waitmask) as usize;
                }
                while i < end {
                    if !first_row && self.run_starts(i, run_index) {
                        ran = true;
                        break 'coded;
                    }
                    self.pixel(w, i, first_row);
                    i += 1;
                }
            }
            if !ran {
                self.state.wait = (stop - end) as u32;
                return;
            }
            run_index = i;
            self.state.wait = (stop - i) as u32;
            let mut run = 0u32;
            while Self::same(&self.cur, i, i - 1) {
                run += 1;
                i += 1;
                if i == end {
                    self.run_length(w, run);
                    return;
                }
            }
            self.run_length(w, run);
            stop = i + self.state.wait as usize;
        }
    }
}

/// Encode top-down 0xAARRGGBB words as a QUIC stream of `kind` (GRAY takes the blue byte,
/// RGB16 the top 5 bits of each colour). None for an unknown kind or an empty image.
pub fn encode_quic(words: &[u32], width: u32, height: u32, kind: u32) -> Option<Vec<u8>> {
    if !(1..=5).contains(&kind) || width == 0 || height == 0 || words.len() != (width as usize) * (height as usize) {
        return None;
    }
    let w = width as usize;
    let (channels, bpc) = match kind {
        quic_type::GRAY => (1, 8),
        quic_type::RGB16 => (3, 5),
        _ => (3, 8),
    };
    let mut bits = BitWriter { out: Vec::with_capacity(words.len()), acc: 0, n: 0 };
    for v in [QUIC_MAGIC, 0, kind, width, height] {
        bits.put(v, 32);
    }
    let mut color = EncGroup::new(channels, bpc, w);
    let mut alpha = if kind == quic_type::RGBA { Some(EncGroup::new(1, 8, w)) } else { None };
    for (y, row) in words.chunks_exact(w).enumerate() {
        for (x, &px) in row.iter().enumerate() {
            let (r, g, b) = ((px >> 16) as u8, (px >> 8) as u8, px as u8);
            match kind {
                quic_type::GRAY => color.cur[0][x] = b,
                quic_type::RGB16 => {
                    color.cur[0][x] = r >> 3;
                    color.cur[1][x] = g >> 3;
                    color.cur[2][x] = b >> 3;
                }
                _ => {
                    color.cur[0][x] = r;
                    color.cur[1][x] = g;
                    color.cur[2][x] = b;
                }
            }
            if let Some(a) = alpha.as_mut() {
                a.cur[0][x] = (px >> 24) as u8;
            }
        }
        color.row(&mut bits, y == 0);
        std::mem::swap(&mut color.cur, &mut color.prev);
        if let Some(a) = alpha.as_mut() {
            a.row(&mut bits, y == 0);
            std::mem::swap(&mut a.cur, &mut a.prev);
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
