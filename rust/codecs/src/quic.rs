//! QUIC decoder: per-channel residuals of a (left + above)/2 predictor, coded with adaptive
//! Golomb codes chosen per context bucket; repeated pixels on rows after the first are
//! coded as MELCODE run lengths.
use crate::error::{corrupt, Result};
use crate::image::{check_size, Image};
use crate::quic_model::{low_mask, update_models, Alpha, Family, Gray, Group, Layout, Model, Rgb5, Rgb8, State};

pub const QUIC_MAGIC: u32 = 0x4349_5551;
const CODEC: &str = "quic";

pub mod quic_type {
    pub const GRAY: u32 = 1;
    pub const RGB16: u32 = 2;
    pub const RGB24: u32 = 3;
    pub const RGB32: u32 = 4;
    pub const RGBA: u32 = 5;
}

/// The stream as MSB-first bytes: each little-endian 32-bit word byte-swapped, then zero
/// padding, so that the reader loads 8 bytes at any position it reaches before the end.
fn swizzle(data: &[u8], max_words: usize) -> Vec<u8> {
    let n = (data.len() / 4).min(max_words);
    let mut out = Vec::with_capacity(n * 4 + PADDING);
    for w in data[..n * 4].chunks_exact(4) {
        out.extend_from_slice(&[w[3], w[2], w[1], w[0]]);
    }
    out.resize(n * 4 + PADDING, 0);
    out
}

const PADDING: usize = 16;

/// MSB-first bit window over the swizzled stream (`swizzle`). The hot loops refill it
/// without a branch (8 bytes loaded, as many whole bytes kept as fit), which gives at
/// least 56 bits, enough for two codewords (at most 26 bits each). Past the end it reads
/// zeros instead of failing, so that the pixel loops carry no error paths: `overrun` tells
/// whether the bits read so far went past the stream's words (as a reader of whole words
/// would: the stream must hold the word after the last bit read), and every place that ends
/// decoding (the end of a row segment, an error) asks it first, so a short stream still
/// fails as "stream ends too early". `Copy`, so that the hot loops work on a copy held in
/// registers and store it back once per segment.
#[derive(Clone, Copy)]
struct BitReader<'a> {
    bytes: &'a [u8],
    /// whole words in the input
    words: usize,
    /// length of the whole input, for the error message
    data_len: usize,
    /// the next bits of the stream in the top `n` bits; below them, zeros or the bits after
    acc: u64,
    /// valid bits in `acc`
    n: u32,
    /// the byte of `bytes` at position `n` of `acc`
    p: usize,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8], data: &[u8]) -> Result<Self> {
        let r = BitReader { bytes, words: data.len() / 4, data_len: data.len(), acc: 0, n: 0, p: 0 };
        if r.words == 0 {
            return r.too_short();
        }
        Ok(r)
    }

    /// Fill `acc` to at least 56 valid bits.
    #[inline(always)]
    fn refill(&mut self) {
        let x = match self.bytes.get(self.p..self.p + 8) {
            Some(b) => u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            None => 0,
        };
        self.acc |= x >> self.n;
        self.p += ((63 - self.n) >> 3) as usize;
        self.n |= 56;
    }

    #[inline(always)]
    fn window(&self) -> u32 {
        (self.acc >> 32) as u32
    }

    /// Drop `len` bits (no more than the `n` valid ones).
    #[inline(always)]
    fn eat(&mut self, len: u32) {
        self.acc <<= len;
        self.n -= len;
    }

    /// Bits read so far.
    #[inline(always)]
    fn consumed(&self) -> u64 {
        self.p as u64 * 8 - self.n as u64
    }

    /// Whether the bits read so far needed a word the stream does not have (the word after
    /// the last bit read must exist).
    #[inline(always)]
    fn overrun(&self) -> bool {
        self.consumed() > 32 * (self.words as u64 - 1)
    }

    #[inline(always)]
    fn check(&self) -> Result<()> {
        if self.overrun() {
            return self.too_short();
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn too_short<T>(&self) -> Result<T> {
        corrupt(CODEC, self.data_len, "stream ends too early")
    }

    /// An error at the current position, unless the stream ran out before it (that error then).
    #[cold]
    #[inline(never)]
    fn fail<T>(&self, msg: String) -> Result<T> {
        self.check()?;
        corrupt(CODEC, self.offset(), msg)
    }

    fn word(&mut self) -> Result<u32> {
        self.refill();
        let w = self.window();
        self.eat(32);
        self.check()?;
        Ok(w)
    }

    /// Byte offset of the word being read, for error messages.
    fn offset(&self) -> usize {
        // a reader of whole words holds the word after the last bit read: it is at word
        // ceil(bits / 32) + 1, and the offset names the one before it
        (self.consumed().div_ceil(32) as usize).saturating_sub(1) * 4
    }

    /// Decode one codeword of code `l` (the caller has refilled since the last two).
    #[inline(always)]
    fn symbol(&mut self, fam: &Family, l: u32) -> u32 {
        let (v, len) = fam.decode(l, self.window());
        self.eat(len);
        v
    }

    /// MELCODE run length; the reader comes back by value (it stays in registers).
    #[inline(never)]
    fn run_length(mut self, st: &mut State) -> Result<(Self, u64)> {
        let mut run = 0u64;
        loop {
            self.refill();
            let ones = (!(self.window() >> 24) as u8).leading_zeros();
            for _ in 0..ones {
                run += st.melc_order as u64;
                st.melc_up();
            }
            if ones != 8 {
                self.eat(ones + 1);
                break;
            }
            self.eat(8);
            if run > u32::MAX as u64 {
                return self.fail("run length without end".into());
            }
        }
        if st.melc_len > 0 {
            self.refill();
            run += (self.window() >> (32 - st.melc_len)) as u64;
            self.eat(st.melc_len);
        }
        st.melc_down();
        Ok((self, run))
    }
}

/// How pixel x is predicted from its left and above neighbours.
const PRED_NONE: u8 = 0; // first pixel of the first row
const PRED_LEFT: u8 = 1; // first row
const PRED_ABOVE: u8 = 2; // first pixel of a row
const PRED_BOTH: u8 = 3; // (left + above) / 2

/// Decode one pixel of every channel of the group: the codes come from the residuals
/// `ctx` of the pixel before. Returns (output word over `old`, packed residuals).
#[inline(always)]
fn pixel<const N: usize, L: Layout<N>, const PRED: u8>(
    fam: &Family,
    models: &[Model; N],
    bits: &mut BitReader,
    ctx: u32,
    left: u32,
    above: u32,
    old: u32,
) -> (u32, u32) {
    // the refills below serve three codewords at most (a constant test, compiled away)
    assert!(N <= 3);
    let mask = low_mask(L::BPC);
    let mut ch = [0u32; N];
    let mut res = 0u32;
    for c in 0..N {
        if c == 0 {
            // room for this codeword and the next
            bits.refill();
        } else if c == 2 && bits.n < 26 {
            // rarely: only after two long codewords
            bits.refill();
        }
        let code = models[c].best_code((ctx >> (8 * c)) as u8, mask);
        let v = bits.symbol(fam, code);
        res |= (v & 0xff) << (8 * c);
        let pred = match PRED {
            PRED_NONE => 0,
            PRED_LEFT => L::get(left, c),
            PRED_ABOVE => L::get(above, c),
            _ => (L::get(left, c) + L::get(above, c)) >> 1,
        };
        ch[c] = (fam.l_to_u[v as usize & 0xff] as u32 + pred) & mask;
    }
    (L::put(old, ch), res)
}

/// Decode pixels `i..end` of a row into `cur` (`prev`: the row above, unused on the first row).
fn segment<const N: usize, L: Layout<N>>(
    g: &mut Group<N>,
    bits: &mut BitReader,
    prev: &[u32],
    cur: &mut [u32],
    i: usize,
    end: usize,
    waitmask: u32,
    first_row: bool,
) -> Result<()> {
    // the bit reader lives in registers for the segment
    let mut b = *bits;
    let r = if first_row {
        segment_in::<N, L, true>(g, &mut b, prev, cur, i, end, waitmask)
    } else {
        segment_in::<N, L, false>(g, &mut b, prev, cur, i, end, waitmask)
    };
    *bits = b;
    r?;
    b.check()
}

#[inline(always)]
fn segment_in<const N: usize, L: Layout<N>, const FIRST: bool>(
    g: &mut Group<N>,
    b: &mut BitReader,
    prev: &[u32],
    cur: &mut [u32],
    mut i: usize,
    end: usize,
    waitmask: u32,
) -> Result<()> {
    let Group { fam, models, corr, state } = g;
    assert!(end <= cur.len() && corr.len() == cur.len() + 1 && (FIRST || prev.len() == cur.len()));
    let cur = &mut cur[..end];
    let corr = &mut corr[..end + 1];
    let prev = if FIRST { prev } else { &prev[..end] };
    if i == 0 {
        let (px, res) = if FIRST {
            pixel::<N, L, PRED_NONE>(fam, models, b, corr[0], 0, 0, cur[0])
        } else {
            pixel::<N, L, PRED_ABOVE>(fam, models, b, corr[0], 0, prev[0], cur[0])
        };
        cur[0] = px;
        corr[1] = res;
        if state.update_due(waitmask) {
            update_models::<N, L>(models, fam, corr[0], corr[1], state.trigger);
        }
        i = 1;
    }
    // registers: the context of pixel i, pixels i-1 and i-2 of this row and pixel i-1 of
    // the row above (pixel i-2 only matters for i > 2)
    let mut ctx = corr[i];
    let mut left = cur[i - 1];
    let mut left2 = if i >= 2 { cur[i - 2] } else { 0 };
    let mut above_left = if FIRST { 0 } else { prev[i - 1] };
    let mut stop = i + state.wait as usize;
    let mut run_index = 0usize;
    loop {
        // code up to the next model update (pixel `stop`) or to the end of the segment
        let lim = if stop < end { stop + 1 } else { end };
        let mut ran = false;
        while i < lim {
            let above = if FIRST { 0 } else { prev[i] };
            // runs are predicted where the row above repeats and this row just did
            if !FIRST && L::same(above_left, above) && L::same(left, left2) && i > 2 && run_index != i {
                ran = true;
                break;
            }
            let (px, res) = if FIRST {
                pixel::<N, L, PRED_LEFT>(fam, models, b, ctx, left, above, cur[i])
            } else {
                pixel::<N, L, PRED_BOTH>(fam, models, b, ctx, left, above, cur[i])
            };
            cur[i] = px;
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
            return Ok(());
        }
        state.wait = (stop - i) as u32;
        run_index = i;
        let run;
        (*b, run) = b.run_length(state)?;
        if run > (end - i) as u64 {
            return b.fail(format!("run of {run} pixels passes the end of the row ({} left)", end - i));
        }
        if run > 0 {
            let to = i + run as usize;
            for p in &mut cur[i..to] {
                *p = L::repeat(*p, left);
            }
            i = to;
            left2 = left;
            // the residuals under a run are not rewritten: the context is the stored one
            ctx = corr[i];
            if !FIRST {
                above_left = prev[i - 1];
            }
        }
        if i == end {
            return Ok(());
        }
        stop = i + state.wait as usize;
    }
}

/// Decode the rows of one group (and of the alpha group after each of its rows, for RGBA)
/// straight into the output words.
fn decode_rows<const N: usize, L: Layout<N>>(bits: &mut BitReader, out: &mut [u32], w: usize, with_alpha: bool) -> Result<()> {
    let mut g = Group::<N>::new(L::BPC, w);
    let mut alpha = if with_alpha { Some(Group::<1>::new(8, w)) } else { None };
    for (y, start) in (0..out.len()).step_by(w).enumerate() {
        let (done, rest) = out.split_at_mut(start);
        let prev = if y > 0 { &done[start - w..] } else { &[][..] };
        let cur = &mut rest[..w];
        g.row(w, y == 0, |g, s, e, wm| segment::<N, L>(g, bits, prev, cur, s, e, wm, y == 0))?;
        if let Some(a) = alpha.as_mut() {
            a.row(w, y == 0, |a, s, e, wm| segment::<1, Alpha>(a, bits, prev, cur, s, e, wm, y == 0))?;
        }
    }
    Ok(())
}

/// The 5-word header: (type, width, height).
pub fn read_header(data: &[u8]) -> Result<(u32, u32, u32)> {
    let bytes = swizzle(data, 8);
    let mut bits = BitReader::new(&bytes, data)?;
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
    let bytes = swizzle(data, usize::MAX);
    let mut bits = BitReader::new(&bytes, data)?;
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
    let mut words = vec![0u32; w * h];
    match kind {
        quic_type::GRAY => decode_rows::<1, Gray>(&mut bits, &mut words, w, false)?,
        quic_type::RGB16 => decode_rows::<3, Rgb5>(&mut bits, &mut words, w, false)?,
        _ => decode_rows::<3, Rgb8>(&mut bits, &mut words, w, kind == quic_type::RGBA)?,
    }
    Ok(Image::from_words(w, h, w, words, true, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_needs_the_word_after_it() {
        let words = [0u32, 0x1234, 0x5678, 0x9abc];
        let enc = crate::quic_encode::encode_quic(&words, 2, 2, quic_type::RGB32).unwrap();
        assert_eq!(read_header(&enc).unwrap(), (quic_type::RGB32, 2, 2));
        for cut in 0..28 {
            // five header words, then the word after the last bit read
            assert_eq!(read_header(&enc[..cut]).is_ok(), cut >= 24, "cut {cut}");
        }
    }

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
