//! QUIC decoder: per-channel residuals of a (left + above)/2 predictor, coded with adaptive
//! Golomb codes chosen per context bucket; repeated pixels on rows after the first are
//! coded as MELCODE run lengths.
use crate::error::{corrupt, Result};
use crate::image::{check_size, Image};
use crate::quic_model::{low_mask, Family, Model, State, WMI_MAX};

pub const QUIC_MAGIC: u32 = 0x4349_5551;
const CODEC: &str = "quic";

pub mod quic_type {
    pub const GRAY: u32 = 1;
    pub const RGB16: u32 = 2;
    pub const RGB24: u32 = 3;
    pub const RGB32: u32 = 4;
    pub const RGBA: u32 = 5;
}

/// MSB-first bit window over little-endian 32-bit words. `Copy`, so that the hot loops
/// work on a copy held in registers and store it back once per segment.
#[derive(Clone, Copy)]
struct BitReader<'a> {
    data: &'a [u8],
    next_word: usize,
    acc: u64,
    /// valid bits in `acc`, left-aligned; always >= 32 between calls
    n: u32,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Result<Self> {
        let mut r = BitReader { data, next_word: 0, acc: 0, n: 0 };
        r.refill()?;
        Ok(r)
    }

    #[inline(always)]
    fn refill(&mut self) -> Result<()> {
        let at = self.next_word * 4;
        let Some(b) = self.data.get(at..at + 4) else {
            return self.too_short();
        };
        let w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        self.acc |= (w as u64) << (32 - self.n);
        self.n += 32;
        self.next_word += 1;
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn too_short(&self) -> Result<()> {
        corrupt(CODEC, self.data.len(), "stream ends too early")
    }

    #[inline(always)]
    fn window(&self) -> u32 {
        (self.acc >> 32) as u32
    }

    #[inline(always)]
    fn eat(&mut self, len: u32) -> Result<()> {
        self.acc <<= len;
        self.n -= len;
        if self.n < 32 {
            self.refill()?;
        }
        Ok(())
    }

    fn word(&mut self) -> Result<u32> {
        let w = self.window();
        self.eat(32)?;
        Ok(w)
    }

    /// Byte offset of the word being read, for error messages.
    fn offset(&self) -> usize {
        (self.next_word.saturating_sub(2)) * 4
    }

    /// MELCODE run length.
    fn run_length(&mut self, st: &mut State) -> Result<u64> {
        let mut run = 0u64;
        loop {
            let ones = (!(self.window() >> 24) as u8).leading_zeros();
            for _ in 0..ones {
                run += st.melc_order as u64;
                st.melc_up();
            }
            if ones != 8 {
                self.eat(ones + 1)?;
                break;
            }
            self.eat(8)?;
            if run > u32::MAX as u64 {
                return corrupt(CODEC, self.offset(), "run length without end");
            }
        }
        if st.melc_len > 0 {
            run += (self.window() >> (32 - st.melc_len)) as u64;
            self.eat(st.melc_len)?;
        }
        st.melc_down();
        Ok(run)
    }
}

/// Channels coded together (RGB, or one alpha/gray channel) with their shared state.
/// Pixels are stored interleaved, `[u8; N]` per pixel.
struct Group<const N: usize> {
    fam: Family,
    mask: u32,
    models: [Model; N],
    /// residuals, index x+1 (index 0 is the context of pixel 0); persists across rows
    corr: Vec<[u8; N]>,
    cur: Vec<[u8; N]>,
    prev: Vec<[u8; N]>,
    state: State,
}

impl<const N: usize> Group<N> {
    fn new(bpc: u32, width: usize) -> Self {
        Group {
            fam: Family::new(bpc),
            mask: low_mask(bpc),
            models: std::array::from_fn(|_| Model::new(bpc)),
            corr: vec![[0; N]; width + 1],
            cur: vec![[0; N]; width],
            prev: vec![[0; N]; width],
            state: State::new(),
        }
    }

    /// Decode one pixel of every channel from its contexts and predictions; returns
    /// (pixel, residuals).
    #[inline(always)]
    fn code(&self, bits: &mut BitReader, ctx: [u8; N], pred: [u32; N]) -> Result<([u8; N], [u8; N])> {
        let mask = self.mask;
        let mut px = [0u8; N];
        let mut res = [0u8; N];
        for c in 0..N {
            let code = self.models[c].best_code(ctx[c], mask);
            let (v, len) = self.fam.decode(code, bits.window());
            bits.eat(len)?;
            res[c] = v as u8;
            px[c] = ((self.fam.l_to_u[v as usize & 0xff] as u32 + pred[c]) & mask) as u8;
        }
        Ok((px, res))
    }

    /// Decode pixel x of every channel; `FIRST` (first row) selects the left-only predictor.
    /// The context (the residual of pixel x-1) and the left pixel come in registers, not
    /// reloaded from the rows just written; returns (pixel, residuals), also stored.
    #[inline(always)]
    fn pixel<const FIRST: bool>(&mut self, bits: &mut BitReader, x: usize, ctx: [u8; N], left: [u8; N]) -> Result<([u8; N], [u8; N])> {
        let mut pred = [0u32; N];
        let above = self.prev[x];
        for c in 0..N {
            pred[c] = match (FIRST, x) {
                (true, 0) => 0,
                (true, _) => left[c] as u32,
                (false, 0) => above[c] as u32,
                (false, _) => (left[c] as u32 + above[c] as u32) >> 1,
            };
        }
        let (px, res) = self.code(bits, ctx, pred)?;
        self.corr[x + 1] = res;
        self.cur[x] = px;
        Ok((px, res))
    }

    fn update(&mut self, x: usize) {
        let (ctx, v) = (self.corr[x], self.corr[x + 1]);
        for c in 0..N {
            self.models[c].update(&self.fam, ctx[c], v[c], self.state.trigger);
        }
    }

    fn row(&mut self, bits: &mut BitReader, first_row: bool) -> Result<()> {
        let width = self.cur.len();
        // the context of pixel 0 is pixel 0's residual of the row above (0 on the first row)
        self.corr[0] = if first_row { [0; N] } else { self.corr[1] };
        // segments of one wait mask each; the state moves on between them, so that the
        // model updates of a segment use that segment's counter-halving threshold
        let (mut pos, mut left) = (0usize, width as u32);
        while self.state.wmidx < WMI_MAX && self.state.wmileft <= left {
            let n = self.state.wmileft;
            if n > 0 {
                self.segment(bits, pos, pos + n as usize, low_mask(self.state.wmidx), first_row)?;
                pos += n as usize;
                left -= n;
            }
            self.state.next_wmi();
        }
        if left > 0 {
            self.segment(bits, pos, pos + left as usize, low_mask(self.state.wmidx), first_row)?;
            if self.state.wmidx < WMI_MAX {
                self.state.wmileft -= left;
            }
        }
        Ok(())
    }

    fn segment(&mut self, bits: &mut BitReader, i: usize, end: usize, waitmask: u32, first_row: bool) -> Result<()> {
        // the bit reader lives in registers for the segment
        let mut b = *bits;
        let r = if first_row { self.segment_in::<true>(&mut b, i, end, waitmask) } else { self.segment_in::<false>(&mut b, i, end, waitmask) };
        *bits = b;
        r
    }

    #[inline(always)]
    fn segment_in<const FIRST: bool>(&mut self, bits: &mut BitReader, mut i: usize, end: usize, waitmask: u32) -> Result<()> {
        assert!(end <= self.cur.len() && self.prev.len() == self.cur.len() && self.corr.len() == self.cur.len() + 1);
        if i == 0 {
            self.pixel::<FIRST>(bits, 0, self.corr[0], [0; N])?;
            if self.state.wait > 0 {
                self.state.wait -= 1;
            } else {
                self.state.wait = self.state.rand() & waitmask;
                self.update(0);
            }
            i = 1;
        }
        // registers: the context of pixel i, pixels i-1 and i-2 (pixel i-2 only matters for i > 2)
        let mut ctx = self.corr[i];
        let mut left = self.cur[i - 1];
        let mut left2 = if i >= 2 { self.cur[i - 2] } else { [0; N] };
        let mut stop = i + self.state.wait as usize;
        let mut run_index = 0usize;
        loop {
            let mut ran = false;
            'coded: {
                while stop < end {
                    while i <= stop {
                        if !FIRST && self.run_starts(i, run_index, left, left2) {
                            ran = true;
                            break 'coded;
                        }
                        let (px, res) = self.pixel::<FIRST>(bits, i, ctx, left)?;
                        (ctx, left2, left) = (res, left, px);
                        i += 1;
                    }
                    self.update(stop);
                    stop = i + (self.state.rand() & waitmask) as usize;
                }
                while i < end {
                    if !FIRST && self.run_starts(i, run_index, left, left2) {
                        ran = true;
                        break 'coded;
                    }
                    let (px, res) = self.pixel::<FIRST>(bits, i, ctx, left)?;
                    (ctx, left2, left) = (res, left, px);
                    i += 1;
                }
            }
            if !ran {
                self.state.wait = (stop - end) as u32;
                return Ok(());
            }
            self.state.wait = (stop - i) as u32;
            run_index = i;
            let run = bits.run_length(&mut self.state)?;
            if run > (end - i) as u64 {
                return corrupt(CODEC, bits.offset(), format!("run of {run} pixels passes the end of the row ({} left)", end - i));
            }
            if run > 0 {
                self.cur[i..i + run as usize].fill(left);
                i += run as usize;
                left2 = left;
                // the residuals under a run are not rewritten: the context is the stored one
                ctx = self.corr[i];
            }
            if i == end {
                return Ok(());
            }
            stop = i + self.state.wait as usize;
        }
    }

    /// Runs are predicted where the row above repeats and the current row just did
    /// (`left`, `left2`: pixels i-1 and i-2 of the current row).
    #[inline(always)]
    fn run_starts(&self, i: usize, run_index: usize, left: [u8; N], left2: [u8; N]) -> bool {
        self.prev[i - 1] == self.prev[i] && run_index != i && i > 2 && left == left2
    }

    fn next_row(&mut self) {
        std::mem::swap(&mut self.cur, &mut self.prev);
    }
}

/// The 5-word header: (type, width, height).
pub fn read_header(data: &[u8]) -> Result<(u32, u32, u32)> {
    let mut bits = BitReader::new(data)?;
    let magic = bits.word()?;
    if magic != QUIC_MAGIC {
        return corrupt(CODEC, 0, format!("bad magic {magic:#010x}"));
    }
    let version = bits.word()?;
    if version != 0 {
        return corrupt(CODEC, 4, format!("unsupported version {version:#010x}"));
    }
    let kind = bits.word()?;
    let width = bits.word()?;
    let height = bits.word()?;
    Ok((kind, width, height))
}

/// Decode a QUIC stream (the bytes after the image's data_size field).
pub fn decode_quic(data: &[u8], max_pixels: u64) -> Result<Image> {
    let mut bits = BitReader::new(data)?;
    let magic = bits.word()?;
    if magic != QUIC_MAGIC {
        return corrupt(CODEC, 0, format!("bad magic {magic:#010x}"));
    }
    let version = bits.word()?;
    if version != 0 {
        return corrupt(CODEC, 4, format!("unsupported version {version:#010x}"));
    }
    let kind = bits.word()?;
    let width = bits.word()?;
    let height = bits.word()?;
    if !(1..=5).contains(&kind) {
        return corrupt(CODEC, 8, format!("invalid image type {kind}"));
    }
    if width == 0 || height == 0 || width > i32::MAX as u32 || height > i32::MAX as u32 {
        return corrupt(CODEC, 12, format!("invalid size {width}x{height}"));
    }
    check_size(CODEC, width as u64, height as u64, max_pixels)?;
    let (w, h) = (width as usize, height as usize);
    // filled row by row (no zeroing pass over a buffer about to be overwritten)
    let mut words: Vec<u32> = Vec::with_capacity(w * h);
    let expand5 = |v: u8| ((v << 3) | (v >> 2)) as u32;
    if kind == quic_type::GRAY {
        let mut gray = Group::<1>::new(8, w);
        for y in 0..h {
            gray.row(&mut bits, y == 0)?;
            words.extend(gray.cur.iter().map(|g| 0xff00_0000 | ((g[0] as u32) * 0x01_0101)));
            gray.next_row();
        }
    } else {
        let bpc = if kind == quic_type::RGB16 { 5 } else { 8 };
        let mut color = Group::<3>::new(bpc, w);
        let mut alpha = if kind == quic_type::RGBA { Some(Group::<1>::new(8, w)) } else { None };
        for y in 0..h {
            color.row(&mut bits, y == 0)?;
            if let Some(a) = alpha.as_mut() {
                a.row(&mut bits, y == 0)?;
            }
            if kind == quic_type::RGB16 {
                words.extend(color.cur.iter().map(|p| 0xff00_0000 | expand5(p[0]) << 16 | expand5(p[1]) << 8 | expand5(p[2])));
            } else if let Some(a) = alpha.as_ref() {
                words.extend(color.cur.iter().zip(&a.cur).map(|(p, a)| {
                    (a[0] as u32) << 24 | (p[0] as u32) << 16 | (p[1] as u32) << 8 | p[2] as u32
                }));
            } else {
                words.extend(color.cur.iter().map(|p| 0xff00_0000 | (p[0] as u32) << 16 | (p[1] as u32) << 8 | p[2] as u32));
            }
            color.next_row();
            if let Some(a) = alpha.as_mut() {
                a.next_row();
            }
        }
    }
    Ok(Image::from_words(w, h, w, words, true, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_never_panic() {
        let dir = std::path::Path::new("/work/shared/data/quic-seeds");
        for name in ["test1.quic", "test2.quic", "test3.quic", "test4.quic"] {
            let Ok(data) = std::fs::read(dir.join(name)) else { continue };
            let res = decode_quic(&data, 1 << 24);
            eprintln!("{name}: {:?}", res.as_ref().map(|i| (i.width, i.height)).map_err(|e| e.to_string()));
            for cut in [0, 3, 20, data.len() / 2] {
                assert!(decode_quic(&data[..cut], 1 << 24).is_err());
            }
        }
    }
}
