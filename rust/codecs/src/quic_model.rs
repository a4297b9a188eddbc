//! The adaptive model of QUIC, shared by decoder and encoder: Golomb code families,
//! per-context buckets that pick the cheapest code, wait-mask scheduling of model
//! updates, and the MELCODE state of run lengths.
use crate::quic_tables::{MELC_LEN, TABRAND, WM_TRIGGER};

/// Longest codeword the format allows.
const MAX_CODE_LEN: u32 = 26;
/// Wait-mask index at which scheduling stops slowing down.
pub(crate) const WMI_MAX: u32 = 6;
/// Symbols coded before the wait-mask index grows.
pub(crate) const WMI_NEXT: u32 = 2048;

#[inline]
pub(crate) fn low_mask(n: u32) -> u32 {
    if n >= 32 {
        u32::MAX
    } else {
        (1u32 << n) - 1
    }
}

fn ceil_log2(v: u32) -> u32 {
    if v <= 1 {
        0
    } else {
        32 - (v - 1).leading_zeros()
    }
}

/// Code tables for one bit depth (5 or 8 bits per channel). Built once per process
/// (`Family::get`): they only depend on the bit depth.
pub(crate) struct Family {
    /// count of plain Golomb-Rice codewords of code l; larger values use the escape form
    pub n_gr: [u32; 8],
    pub escape_len: [u32; 8],
    pub escape_suffix_len: [u32; 8],
    /// window values above this are Golomb-Rice codewords, others escapes
    pub escape_prefix_mask: [u32; 8],
    pub code_len: [[u32; 8]; 256],
    /// residual (folded, "L" distribution) to signed difference ("U"), mod 2^bpc
    pub l_to_u: [u8; 256],
    /// the inverse, for the encoder
    pub u_to_l: [u8; 256],
    /// encoder: `[code][value]` = bits << 5 | length
    pub codewords: [[u32; 256]; 8],
}

impl Family {
    /// The shared tables of a bit depth (5 or 8).
    pub fn get(bpc: u32) -> &'static Family {
        static F5: std::sync::OnceLock<Box<Family>> = std::sync::OnceLock::new();
        static F8: std::sync::OnceLock<Box<Family>> = std::sync::OnceLock::new();
        if bpc == 5 { F5.get_or_init(|| Family::new(5)) } else { F8.get_or_init(|| Family::new(8)) }
    }

    fn new(bpc: u32) -> Box<Family> {
        let mut f = Box::new(Family {
            n_gr: [0; 8],
            escape_len: [0; 8],
            escape_suffix_len: [0; 8],
            escape_prefix_mask: [0; 8],
            code_len: [[0; 8]; 256],
            l_to_u: [0; 256],
            u_to_l: [0; 256],
            codewords: [[0; 256]; 8],
        });
        let levels = 1u32 << bpc;
        for l in 0..bpc {
            let prefix = (MAX_CODE_LEN - bpc).min(low_mask(bpc - l));
            let escape_words = levels - (prefix << l);
            f.n_gr[l as usize] = prefix << l;
            f.escape_suffix_len[l as usize] = ceil_log2(escape_words);
            f.escape_len[l as usize] = prefix + f.escape_suffix_len[l as usize];
            f.escape_prefix_mask[l as usize] = low_mask(32 - prefix);
            for n in 0..256u32 {
                f.code_len[n as usize][l as usize] =
                    if n < f.n_gr[l as usize] { (n >> l) + l + 1 } else { f.escape_len[l as usize] };
            }
        }
        for l in 0..bpc {
            for v in 0..levels {
                let (bits, len) = f.encode(l, v as u8);
                f.codewords[l as usize][v as usize] = bits << 5 | len;
            }
        }
        let max = levels - 1;
        for s in 0..levels {
            f.u_to_l[s as usize] = if s <= max >> 1 { (s << 1) as u8 } else { (((max - s) << 1) + 1) as u8 };
            f.l_to_u[s as usize] = if s & 1 != 0 { (max - (s >> 1)) as u8 } else { (s >> 1) as u8 };
        }
        f
    }

    /// Decode one codeword of code `l` from the 32-bit window; returns (value, length).
    /// On hostile input the value can pass 2^bpc (an escape suffix past the last level);
    /// callers keep its low byte.
    #[inline(always)]
    pub fn decode(&self, l: u32, window: u32) -> (u32, u32) {
        let li = l as usize & 7;
        let l = li as u32;
        if window > self.escape_prefix_mask[li] {
            // a Golomb-Rice codeword: 31 - top zeros, a 1, then l bits (len <= 26 < 32);
            // the codeword read as a number is 2^l + the low bits. Written around the
            // window's top bit (`ilog2`, one instruction) for a short dependency chain.
            let top = window.ilog2();
            let len = (32 + l) - top;
            let word = window >> ((top - l) & 31);
            (word.wrapping_add(30u32.wrapping_sub(top) << l), len)
        } else {
            // an escape: the prefix of zeros, then the suffix (the window's top `prefix` bits
            // are zero, so the codeword read as a number is the suffix)
            let len = self.escape_len[li];
            (self.n_gr[li] + (window >> ((32 - len) & 31)), len)
        }
    }

    /// Encode `n` with code `l`: (bits, length).
    #[inline]
    pub fn encode(&self, l: u32, n: u8) -> (u32, u32) {
        let li = l as usize;
        if (n as u32) < self.n_gr[li] {
            ((1 << l) | (n as u32 & low_mask(l)), (n as u32 >> l) + l + 1)
        } else {
            (n as u32 - self.n_gr[li], self.escape_len[li])
        }
    }
}

/// Context model of one channel: residual contexts grouped into buckets of doubling size
/// (at most 8), each with the running cost of coding its values with each code.
#[derive(Clone)]
pub(crate) struct Model {
    pub bucket_of: [u8; 256],
    /// per bucket, the total length of its values coded with each code (0 past bpc)
    counters: [[u32; 8]; 8],
    /// per bucket, its cheapest code
    best: [u8; 8],
    /// first and last context of each bucket
    spans: [(u16, u16); 8],
    pub n_buckets: usize,
    /// the best code of each context's bucket, kept in step for the hot path
    best_of: [u8; 256],
}

impl Model {
    pub fn new(bpc: u32) -> Model {
        let levels = 1u32 << bpc;
        let mut m = Model {
            bucket_of: [0; 256],
            counters: [[0; 8]; 8],
            best: [(bpc - 1) as u8; 8],
            spans: [(0, 0); 8],
            n_buckets: 0,
            best_of: [(bpc - 1) as u8; 256],
        };
        // sizes 1, 2, 4, 8...; a bucket that would leave a smaller remainder swallows it
        let (mut start, mut size) = (0u32, 1u32);
        loop {
            let mut end = start + size - 1;
            if end + size >= levels {
                end = levels - 1;
            }
            for v in start..=end {
                m.bucket_of[v as usize] = m.n_buckets as u8;
            }
            m.spans[m.n_buckets] = (start as u16, end as u16);
            m.n_buckets += 1;
            if end >= levels - 1 {
                break;
            }
            start = end + 1;
            size *= 2;
        }
        m
    }

    #[inline(always)]
    pub fn best_code(&self, ctx: u8, mask: u32) -> u32 {
        self.best_of[(ctx as u32 & mask) as usize] as u32
    }

    /// Account `value` coded in context `ctx`; re-pick the cheapest code (the highest of
    /// equally cheap ones), halve the counts when the cheapest passes `trigger`.
    /// `bpc` is the family's, passed as the caller's constant so that the code is folded.
    #[inline(always)]
    pub fn update(&mut self, fam: &Family, bpc: u32, ctx: u8, value: u8, trigger: u32) {
        let bi = self.bucket_of[(ctx as u32 & low_mask(bpc)) as usize] as usize & 7;
        let lens = &fam.code_len[value as usize];
        let c = &mut self.counters[bi];
        for i in 0..8 {
            c[i] += lens[i];
        }
        // one key per code: its count, then the higher code first. Counts stay far below
        // 2^29: every update adds at least 1 to each code, so the cheapest passes the
        // trigger (< 1000) and all are halved within 1000 updates of at most 26 each.
        let key = |i: usize| if (i as u32) < bpc { c[i] << 3 | (7 - i as u32) } else { u32::MAX };
        let k = (key(0).min(key(1))).min(key(2).min(key(3))).min((key(4).min(key(5))).min(key(6).min(key(7))));
        let best = (7 - (k & 7)) as u8;
        if k >> 3 > trigger {
            for v in c.iter_mut() {
                *v >>= 1;
            }
        }
        if self.best[bi] != best {
            self.best[bi] = best;
            let (lo, hi) = self.spans[bi];
            self.best_of[lo as usize..=hi as usize].fill(best);
        }
    }
}

/// Scheduling and run-length state shared by the channels coded together.
pub(crate) struct State {
    pub wait: u32,
    seed: u32,
    pub trigger: u32,
    pub wmidx: u32,
    pub wmileft: u32,
    pub melc_state: usize,
    pub melc_len: u32,
    pub melc_order: u32,
}

impl State {
    pub fn new() -> State {
        State {
            wait: 0,
            seed: 0xff,
            trigger: WM_TRIGGER[0],
            wmidx: 0,
            wmileft: WMI_NEXT,
            melc_state: 0,
            melc_len: MELC_LEN[0],
            melc_order: 1 << MELC_LEN[0],
        }
    }

    #[inline]
    pub fn rand(&mut self) -> u32 {
        self.seed = self.seed.wrapping_add(1);
        TABRAND[(self.seed & 0xff) as usize]
    }

    /// After a row's first pixel: counts down to the next model update; true when it is due
    /// now (the wait until the one after is drawn then). Encoder and decoder keep the same
    /// schedule, so both call this.
    #[inline]
    pub fn update_due(&mut self, waitmask: u32) -> bool {
        if self.wait > 0 {
            self.wait -= 1;
            false
        } else {
            self.wait = self.rand() & waitmask;
            true
        }
    }

    pub fn next_wmi(&mut self) {
        self.wmidx += 1;
        self.trigger = WM_TRIGGER[self.wmidx.min(10) as usize];
        self.wmileft = WMI_NEXT;
    }

    pub fn melc_up(&mut self) {
        if self.melc_state < 31 {
            self.melc_state += 1;
            self.melc_len = MELC_LEN[self.melc_state];
            self.melc_order = 1 << self.melc_len;
        }
    }

    pub fn melc_down(&mut self) {
        if self.melc_state > 0 {
            self.melc_state -= 1;
            self.melc_len = MELC_LEN[self.melc_state];
            self.melc_order = 1 << self.melc_len;
        }
    }
}

/// Where the channels of a group sit in a 0xAARRGGBB pixel word: the encoder reads them
/// from the caller's words, the decoder writes its output words and reads back the rows it
/// wrote, so neither side copies pixels into rows of its own.
pub(crate) trait Layout<const N: usize> {
    /// bits per channel (5 or 8)
    const BPC: u32;
    /// position of each channel's value in the word
    const SHIFT: [u32; N];
    /// the bits of the word that two pixels must share to be the same pixel for run prediction
    const SAME: u32;

    /// The value of channel `c` of `px`.
    #[inline(always)]
    fn get(px: u32, c: usize) -> u32 {
        (px >> Self::SHIFT[c]) & low_mask(Self::BPC)
    }

    #[inline(always)]
    fn same(a: u32, b: u32) -> bool {
        (a ^ b) & Self::SAME == 0
    }

    /// The decoder's output word for channel values `ch` over the word `old` already there.
    fn put(old: u32, ch: [u32; N]) -> u32;

    /// The output word of a pixel repeating `left` (a word `put` made) over `old`.
    #[inline(always)]
    fn repeat(_old: u32, left: u32) -> u32 {
        left
    }
}

/// R, G, B of 8 bits (RGB24, RGB32 and the colour of RGBA); opaque output.
pub(crate) struct Rgb8;
impl Layout<3> for Rgb8 {
    const BPC: u32 = 8;
    const SHIFT: [u32; 3] = [16, 8, 0];
    const SAME: u32 = 0x00ff_ffff;
    #[inline(always)]
    fn put(_old: u32, ch: [u32; 3]) -> u32 {
        0xff00_0000 | ch[0] << 16 | ch[1] << 8 | ch[2]
    }
}

/// R, G, B of 5 bits (RGB16): the top 5 bits of each byte; the output repeats the top bits
/// into the low ones, so reading back gives the 5-bit values again.
pub(crate) struct Rgb5;
impl Layout<3> for Rgb5 {
    const BPC: u32 = 5;
    const SHIFT: [u32; 3] = [19, 11, 3];
    const SAME: u32 = 0x00f8_f8f8;
    #[inline(always)]
    fn put(_old: u32, ch: [u32; 3]) -> u32 {
        let e = |v: u32| (v << 3) | (v >> 2);
        0xff00_0000 | e(ch[0]) << 16 | e(ch[1]) << 8 | e(ch[2])
    }
}

/// One 8-bit gray channel: the blue byte of the input; output as opaque gray.
pub(crate) struct Gray;
impl Layout<1> for Gray {
    const BPC: u32 = 8;
    const SHIFT: [u32; 1] = [0];
    const SAME: u32 = 0xff;
    #[inline(always)]
    fn put(_old: u32, ch: [u32; 1]) -> u32 {
        0xff00_0000 | (ch[0] * 0x01_0101)
    }
}

/// The alpha byte of RGBA, coded after the colour of each row: the output keeps the colour.
pub(crate) struct Alpha;
impl Layout<1> for Alpha {
    const BPC: u32 = 8;
    const SHIFT: [u32; 1] = [24];
    const SAME: u32 = 0xff00_0000;
    #[inline(always)]
    fn put(old: u32, ch: [u32; 1]) -> u32 {
        (old & 0x00ff_ffff) | ch[0] << 24
    }
    #[inline(always)]
    fn repeat(old: u32, left: u32) -> u32 {
        (old & 0x00ff_ffff) | (left & 0xff00_0000)
    }
}

/// Adapt every channel's model to the packed residuals `v` of a pixel in the context of the
/// residuals `ctx` of the pixel before.
#[inline]
pub(crate) fn update_models<const N: usize, L: Layout<N>>(models: &mut [Model; N], fam: &Family, ctx: u32, v: u32, trigger: u32) {
    for (c, m) in models.iter_mut().enumerate() {
        m.update(fam, L::BPC, (ctx >> (8 * c)) as u8, (v >> (8 * c)) as u8, trigger);
    }
}

/// The state of channels coded together (RGB, or one alpha or gray channel), the same on
/// both sides: code tables, one model per channel, the scheduling state, and the residuals
/// of the last row that reached each column (packed, channel c in byte c).
pub(crate) struct Group<const N: usize> {
    pub fam: &'static Family,
    pub models: [Model; N],
    /// residuals, index x+1 (index 0 is the context of pixel 0); persists across rows
    pub corr: Vec<u32>,
    pub state: State,
}

impl<const N: usize> Group<N> {
    pub fn new(bpc: u32, width: usize) -> Self {
        Group {
            fam: Family::get(bpc),
            models: std::array::from_fn(|_| Model::new(bpc)),
            corr: vec![0; width + 1],
            state: State::new(),
        }
    }

    /// Code one row of `width` pixels as segments of one wait mask each: `seg(self, start,
    /// end, waitmask)`. The state moves on between segments, so that the model updates of a
    /// segment use that segment's counter-halving threshold.
    #[inline]
    pub fn row<E>(&mut self, width: usize, first_row: bool, mut seg: impl FnMut(&mut Self, usize, usize, u32) -> std::result::Result<(), E>) -> std::result::Result<(), E> {
        // the context of pixel 0 is pixel 0's residual of the row above (0 on the first row)
        self.corr[0] = if first_row { 0 } else { self.corr[1] };
        let (mut pos, mut left) = (0usize, width as u32);
        while self.state.wmidx < WMI_MAX && self.state.wmileft <= left {
            let n = self.state.wmileft;
            if n > 0 {
                seg(self, pos, pos + n as usize, low_mask(self.state.wmidx))?;
                pos += n as usize;
                left -= n;
            }
            self.state.next_wmi();
        }
        if left > 0 {
            seg(self, pos, pos + left as usize, low_mask(self.state.wmidx))?;
            if self.state.wmidx < WMI_MAX {
                self.state.wmileft -= left;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_double() {
        let m = Model::new(8);
        // 1, 2, 4, ... 64, then the last bucket swallows the remaining 129 values
        assert_eq!(m.n_buckets, 8);
        assert_eq!(m.bucket_of[2], 1);
        assert_eq!(m.bucket_of[3], 2);
        assert_eq!(m.bucket_of[126], 6);
        assert_eq!(m.bucket_of[127], 7);
        assert_eq!(m.bucket_of[255], 7);
    }

    #[test]
    fn golomb_round_trip() {
        for bpc in [5u32, 8] {
            let f = Family::get(bpc);
            for l in 0..bpc {
                for n in 0..(1u32 << bpc) {
                    let (bits, len) = f.encode(l, n as u8);
                    assert_eq!(len, f.code_len[n as usize][l as usize]);
                    let window = bits << (32 - len);
                    assert_eq!(f.decode(l, window), (n, len), "bpc {bpc} l {l} n {n}");
                }
            }
        }
    }

    #[test]
    fn folding_is_a_bijection() {
        let f = Family::new(8);
        for s in 0..256usize {
            assert_eq!(f.l_to_u[f.u_to_l[s] as usize] as usize, s);
        }
    }
}
