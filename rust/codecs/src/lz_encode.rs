//! LZ and GLZ encoders: a greedy hash-chain-free matcher over pixel units, then the two
//! formats' ways of writing literals and matches. GLZ may also match into earlier images.
use crate::lz_header::{GlzHeader, LzHeader};
use crate::lz_core::lz_type;

/// What a pass's units are and how one is written as a literal. A unit is the bits
/// `MASK` of a `u32`: the pixel words themselves for colour (b | g << 8 | r << 16) and
/// alpha (a << 24) passes, so that nothing is converted before matching, or x555 values
/// made beforehand for RGB16. Monomorphised: each kind gets its own matcher.
pub(crate) trait UnitKind {
    const MASK: u32;
    /// Shift that brings a masked unit down to bit 0 (for hashing).
    const SHIFT: u32 = 0;
    /// Match-length bias of the format (a match field of 1 means bias + 1 units).
    const BIAS: usize;
    /// Append a literal run (at most 32 units) without its control byte.
    fn put_run(run: &[u32], out: &mut Vec<u8>);
}

/// b, g, r bytes of a word
pub(crate) struct RgbUnit;
/// big-endian x555 of a prepared 15-bit value
pub(crate) struct Rgb16Unit;
/// the alpha byte of a word (alpha passes, XXXA, A8)
pub(crate) struct AlphaUnit;

impl UnitKind for RgbUnit {
    const MASK: u32 = 0x00ff_ffff;
    const BIAS: usize = 0;
    #[inline]
    fn put_run(run: &[u32], out: &mut Vec<u8>) {
        // 4 bytes written per unit at a 3-byte step: the last one spills into the spare byte
        let mut buf = [0u8; 32 * 3 + 1];
        for (k, &v) in run.iter().take(32).enumerate() {
            buf[3 * k..3 * k + 4].copy_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&buf[..3 * run.len().min(32)]);
    }
}

impl UnitKind for Rgb16Unit {
    const MASK: u32 = 0x7fff;
    const BIAS: usize = 1;
    #[inline]
    fn put_run(run: &[u32], out: &mut Vec<u8>) {
        for &v in run {
            out.extend_from_slice(&(v as u16).to_be_bytes());
        }
    }
}

impl UnitKind for AlphaUnit {
    const MASK: u32 = 0xff00_0000;
    const SHIFT: u32 = 24;
    const BIAS: usize = 2;
    #[inline]
    fn put_run(run: &[u32], out: &mut Vec<u8>) {
        out.extend(run.iter().map(|&v| (v >> 24) as u8));
    }
}

const HASH_BITS: u32 = 14;
const MIN_MATCH: usize = 3;
/// Positions at the end of a match that are entered in the hash table.
const INDEX_TAIL: usize = 2;

#[inline(always)]
fn hash3<K: UnitKind>(u: &[u32]) -> usize {
    let unit = |v: u32| (v & K::MASK) >> K::SHIFT;
    let (a, b, c) = (unit(u[0]), unit(u[1]), unit(u[2]));
    let h = a.wrapping_mul(0x9E37_79B1) ^ b.wrapping_mul(0x85EB_CA77).rotate_left(11) ^ c.wrapping_mul(0xC2B2_AE3D).rotate_left(22);
    (h >> (32 - HASH_BITS)) as usize
}

/// Where a match comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Src {
    Back(usize),
    Image { image_dist: u32, ofs: usize },
}

/// Where a GLZ match may copy from earlier images: given the hash of the 3 units at a
/// position, the latest earlier position with that hash still in the window, as
/// (image distance, that image's units, offset).
pub(crate) trait Earlier {
    /// `first`: the unit at the position being coded; a candidate whose first unit is
    /// another is not returned.
    fn lookup(&self, h: usize, first: u32) -> Option<(u32, &[u32], usize)>;
}

/// No earlier images (LZ, or a GLZ image with an empty window).
pub(crate) struct NoEarlier;

impl Earlier for NoEarlier {
    #[inline(always)]
    fn lookup(&self, _h: usize, _first: u32) -> Option<(u32, &[u32], usize)> {
        None
    }
}

/// Two units as one u64 (the compiler makes one load of it).
#[inline(always)]
fn pair(s: &[u32]) -> u64 {
    s[0] as u64 | (s[1] as u64) << 32
}

/// How many leading units of `a` and `b` are equal (under the kind's mask), compared
/// four at a time.
#[inline(always)]
fn common<K: UnitKind>(a: &[u32], b: &[u32]) -> usize {
    let m = a.len().min(b.len());
    let (a, b) = (&a[..m], &b[..m]);
    let mask = K::MASK as u64 | (K::MASK as u64) << 32;
    let mut n = 0;
    let (mut ca, mut cb) = (a.chunks_exact(4), b.chunks_exact(4));
    for (x, y) in (&mut ca).zip(&mut cb) {
        let lo = (pair(&x[..2]) ^ pair(&y[..2])) & mask;
        if lo != 0 {
            return n + (lo.trailing_zeros() / 32) as usize;
        }
        let hi = (pair(&x[2..]) ^ pair(&y[2..])) & mask;
        if hi != 0 {
            return n + 2 + (hi.trailing_zeros() / 32) as usize;
        }
        n += 4;
    }
    for (&x, &y) in ca.remainder().iter().zip(cb.remainder()) {
        if (x ^ y) & K::MASK != 0 {
            break;
        }
        n += 1;
    }
    n
}

/// How a format writes a match of `raw` (length field >= 1).
pub(crate) trait MatchCode {
    fn put(out: &mut Vec<u8>, raw: usize, src: Src);
}

/// Append the literal runs of `units` (control byte, then at most 32 units each).
#[inline]
fn put_literals<K: UnitKind>(units: &[u32], out: &mut Vec<u8>) {
    for run in units.chunks(32) {
        out.push((run.len() - 1) as u8);
        K::put_run(run, out);
    }
}

/// A pass's hash table: hash of 3 units -> (latest position, the unit there), so that a
/// candidate whose first unit differs is passed over without reading the image there (on
/// noisy pictures most candidates are hash collisions, and each read would be a cache miss).
/// Tables are reused from image to image without being cleared: positions are stored
/// plus the image's `base`, which grows by each image's length, so entries below it are
/// another image's (clearing and allocating cost as much as coding a small image).
#[derive(Default)]
pub(crate) struct Table {
    slots: Vec<(u32, u32)>,
    /// stored positions of the image being (or last) coded start here
    base: u32,
    next: u32,
}

impl Table {
    /// Make the entries of earlier images invalid for an image of `n` units.
    fn start(&mut self, n: usize) {
        if self.slots.is_empty() || u32::MAX - self.next <= n as u32 {
            self.slots.clear();
            self.slots.resize(1 << HASH_BITS, (0, 0));
            self.next = 1;
        }
        self.base = self.next;
        self.next += n as u32;
    }

    /// The position (in the last image) stored in slot `h`, if one of its positions is.
    #[inline]
    fn own(&self, h: usize) -> Option<(u32, u32)> {
        let (g, unit) = *self.slots.get(h)?;
        (g >= self.base).then(|| (g - self.base, unit))
    }
}

/// Greedy parse of `units` into literal runs and matches (the latest earlier position of
/// each 3-unit hash, and the earlier image's one if there is a window: the longer wins).
/// Leaves in `table` the positions of this image that later images can find.
pub(crate) fn compress<K: UnitKind, M: MatchCode, E: Earlier>(units: &[u32], max_dist: usize, earlier: &E, table: &mut Table, out: &mut Vec<u8>) {
    let n = units.len();
    assert!(n < (u32::MAX / 2) as usize, "image too large");
    table.start(n);
    let base = table.base;
    let table = &mut table.slots[..1 << HASH_BITS];
    let mut lit_start = 0usize;
    let mut i = 0usize;
    while i + MIN_MATCH <= n {
        let here = &units[i..];
        let h = hash3::<K>(&here[..3]);
        let (cand, first) = table[h];
        table[h] = (base + i as u32, here[0]);
        let mut best = 0usize;
        let mut src = Src::Back(0);
        if cand >= base && (first ^ here[0]) & K::MASK == 0 {
            let c = (cand - base) as usize;
            if i - c <= max_dist {
                best = common::<K>(&units[c..], here);
                src = Src::Back(i - c);
            }
        }
        if let Some((image_dist, e_units, c)) = earlier.lookup(h, here[0]) {
            let len = common::<K>(&e_units[c..], here);
            if len >= MIN_MATCH && len > best {
                best = len;
                src = Src::Image { image_dist, ofs: c };
            }
        }
        if best >= MIN_MATCH && best > K::BIAS {
            put_literals::<K>(&units[lit_start..i], out);
            M::put(out, best - K::BIAS, src);
            // index the last positions the match covers (not all of them: on long runs
            // and repeats that would cost a hash per pixel), so later repeats find them
            let end = i + best;
            for j in (i + 1).max(end.saturating_sub(INDEX_TAIL))..end.min(n.saturating_sub(MIN_MATCH - 1)) {
                table[hash3::<K>(&units[j..j + 3])] = (base + j as u32, units[j]);
            }
            i = end;
            lit_start = i;
        } else {
            i += 1;
        }
    }
    put_literals::<K>(&units[lit_start..], out);
}

/// Write the length field (raw >= 1): its top bits in the control byte, which is pushed
/// with `low` in the other bits, then the extension bytes.
#[inline]
fn put_ctrl_len(out: &mut Vec<u8>, raw: usize, low: u8) {
    if raw < 7 {
        out.push(((raw as u8) << 5) | low);
    } else {
        out.push((7 << 5) | low);
        let mut rem = raw - 7;
        while rem >= 255 {
            out.push(255);
            rem -= 255;
        }
        out.push(rem as u8);
    }
}

/// Longest distance an LZ match can express.
pub(crate) const LZ_MAX_DIST: usize = 8191 + 65535 + 1;

pub(crate) struct LzCode;

impl MatchCode for LzCode {
    #[inline]
    fn put(out: &mut Vec<u8>, raw: usize, src: Src) {
        let Src::Back(dist) = src else { unreachable!("LZ has no other images") };
        let d = dist - 1;
        if d < 8191 {
            put_ctrl_len(out, raw, (d >> 8) as u8);
            out.push(d as u8);
        } else {
            let far = d - 8191;
            put_ctrl_len(out, raw, 31);
            out.extend_from_slice(&[255, (far >> 8) as u8, far as u8]);
        }
    }
}

pub(crate) const GLZ_MAX_OFS: usize = (1 << 25) - 1;

pub(crate) struct GlzCode;

impl MatchCode for GlzCode {
    #[inline]
    fn put(out: &mut Vec<u8>, raw: usize, src: Src) {
        let (ofs, image_dist) = match src {
            Src::Back(dist) => (dist - 1, 0u32),
            Src::Image { image_dist, ofs } => (ofs, image_dist),
        };
        if ofs < 1 << 12 {
            put_ctrl_len(out, raw, (ofs & 0x0f) as u8);
            out.push((ofs >> 4) as u8);
            let extra = (image_dist >> 6).to_le_bytes();
            let nbytes = extra.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            out.push(((nbytes as u8) << 6) | (image_dist & 0x3f) as u8);
            out.extend_from_slice(&extra[..nbytes]);
        } else {
            put_ctrl_len(out, raw, 0x10 | (ofs & 0x0f) as u8);
            out.push((ofs >> 4) as u8);
            let very_long = ofs >= 1 << 17;
            let bytes = image_dist.to_le_bytes();
            let nbytes = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            out.push(((nbytes as u8) << 6) | ((very_long as u8) << 5) | ((ofs >> 12) & 0x1f) as u8);
            out.extend_from_slice(&bytes[..nbytes]);
            if very_long {
                out.push((ofs >> 17) as u8);
            }
        }
    }
}

/// x555 units of an RGB16 pass (the one kind whose units are not bits of the word).
pub(crate) fn rgb16_units(words: &[u32]) -> Vec<u32> {
    words.iter().map(|w| ((w >> 9) & 0x7c00) | ((w >> 6) & 0x03e0) | ((w >> 3) & 0x001f)).collect()
}

pub(crate) fn bytes_per_pixel(kind: u32) -> u32 {
    match kind {
        lz_type::RGB16 => 2,
        lz_type::RGB24 => 3,
        lz_type::A8 => 1,
        _ => 4,
    }
}

/// Output bytes of `n` units written as literals only (matches only make it smaller), plus
/// the header: reserved up front so that the output never moves. Pages not written are
/// never touched.
fn literal_bound(kind: u32, n: usize) -> usize {
    let unit_bytes = match kind {
        lz_type::RGB16 => 2,
        lz_type::RGB24 | lz_type::RGB32 => 3,
        lz_type::RGBA => 4,
        _ => 1,
    };
    let runs = n.div_ceil(32) * if kind == lz_type::RGBA { 2 } else { 1 };
    n * unit_bytes + runs + 64
}

/// The passes of an image of `kind` in stream order: colour (RGB16 or b,g,r), then alpha.
/// `earlier` is used by the b,g,r pass and by the alpha pass of RGBA, and `tables` are
/// theirs; returns which of them this image filled. None for kinds without an encoder here.
fn encode_passes<M: MatchCode, E0: Earlier, E1: Earlier>(
    words: &[u32],
    kind: u32,
    max_dist: usize,
    earlier: (&E0, &E1),
    tables: &mut [Table; 2],
    out: &mut Vec<u8>,
) -> Option<[bool; 2]> {
    let [t0, t1] = tables;
    Some(match kind {
        lz_type::RGB16 => {
            compress::<Rgb16Unit, M, NoEarlier>(&rgb16_units(words), max_dist, &NoEarlier, t0, out);
            [false, false]
        }
        lz_type::RGB24 | lz_type::RGB32 => {
            compress::<RgbUnit, M, E0>(words, max_dist, earlier.0, t0, out);
            [true, false]
        }
        lz_type::RGBA => {
            compress::<RgbUnit, M, E0>(words, max_dist, earlier.0, t0, out);
            compress::<AlphaUnit, M, E1>(words, max_dist, earlier.1, t1, out);
            [true, true]
        }
        lz_type::XXXA | lz_type::A8 => {
            compress::<AlphaUnit, M, NoEarlier>(words, max_dist, &NoEarlier, t0, out);
            [false, false]
        }
        _ => return None,
    })
}

thread_local! {
    /// The LZ encoder's hash tables, kept per thread.
    static LZ_TABLES: std::cell::RefCell<[Table; 2]> = Default::default();
}

/// Encode top-down B,G,R,A words (row-major, `width` per row) as an LZ stream of `kind`
/// (RGB16, RGB24, RGB32, RGBA, XXXA or A8). None for other kinds.
pub fn encode_lz(words: &[u32], width: u32, height: u32, kind: u32) -> Option<Vec<u8>> {
    if !matches!(kind, lz_type::RGB16 | lz_type::RGB24 | lz_type::RGB32 | lz_type::RGBA | lz_type::XXXA | lz_type::A8) {
        return None;
    }
    let mut out = Vec::with_capacity(literal_bound(kind, words.len()));
    LzHeader { kind, width, height, stride: width * bytes_per_pixel(kind), top_down: true }.write(&mut out);
    LZ_TABLES.with_borrow_mut(|tables| {
        encode_passes::<LzCode, NoEarlier, NoEarlier>(words, kind, LZ_MAX_DIST, (&NoEarlier, &NoEarlier), tables, &mut out)
    })?;
    Some(out)
}

/// Run `f` on the 0xAARRGGBB words of `width` x `height` B,G,R,A bytes: the bytes
/// themselves where they can be read as words (little-endian, 4-byte aligned, as a Python
/// bytes object's are), else a converted copy. None when the length does not fit the size.
pub(crate) fn with_bgra_words<R>(bgra: &[u8], width: u32, height: u32, f: impl FnOnce(&[u32]) -> R) -> Option<R> {
    if (width as usize).checked_mul(height as usize).and_then(|n| n.checked_mul(4)) != Some(bgra.len()) {
        return None;
    }
    // SAFETY: every bit pattern is a valid u32; align_to only splits off what is unaligned.
    let (head, words, tail) = unsafe { bgra.align_to::<u32>() };
    if cfg!(target_endian = "little") && head.is_empty() && tail.is_empty() {
        return Some(f(words));
    }
    let copy: Vec<u32> = bgra.chunks_exact(4).map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]])).collect();
    Some(f(&copy))
}

/// [`encode_lz`] of B,G,R,A bytes (width * height * 4 of them), without converting them
/// first where they can be read as words.
pub fn encode_lz_bgra(bgra: &[u8], width: u32, height: u32, kind: u32) -> Option<Vec<u8>> {
    with_bgra_words(bgra, width, height, |words| encode_lz(words, width, height, kind))?
}

/// An earlier image of the GLZ window: its id and pixel words (empty when it offers
/// nothing to match into: RGB16), and whether its alpha is matched into (RGBA).
struct Kept {
    id: u64,
    words: Vec<u32>,
    alpha: bool,
}

/// The window's table of one pass kind: hash -> (image id, position, the unit there).
type WindowTable = Vec<(u64, u32, u32)>;

/// The earlier-image lookup of one pass kind while image `id` is coded; `images` are the
/// window's words, oldest first.
struct WindowLookup<'a, K> {
    table: &'a WindowTable,
    images: Vec<&'a [u32]>,
    oldest: u64,
    id: u64,
    kind: std::marker::PhantomData<K>,
}

impl<K: UnitKind> Earlier for WindowLookup<'_, K> {
    #[inline(always)]
    fn lookup(&self, h: usize, first: u32) -> Option<(u32, &[u32], usize)> {
        let &(wid, pos, unit) = self.table.get(h)?;
        if wid < self.oldest || wid >= self.id || (unit ^ first) & K::MASK != 0 {
            return None;
        }
        let units = *self.images.get((wid - self.oldest) as usize)?;
        // the 3 units hashed lie inside the image
        ((pos as usize) + MIN_MATCH <= units.len()).then_some(((self.id - wid) as u32, units, pos as usize))
    }
}

/// Units (colour and alpha) of earlier images the GLZ encoder keeps to match into, besides
/// the image count limit: 4 Mi units, 16 MiB.
pub const GLZ_WINDOW_PIXELS: usize = 1 << 22;

/// The GLZ side of a server: numbers images and keeps a window of earlier ones to match into,
/// with one hash table over the whole window (the latest position of each 3-unit hash), so
/// that a match may reach any image still in the window, as spice-server's dictionary does.
pub struct GlzEncoder {
    next_id: u64,
    /// oldest first; ids are consecutive
    window: std::collections::VecDeque<Kept>,
    /// colour units, plus alpha units of RGBA images, in the window
    window_pixels: usize,
    /// per pass kind (colour, alpha): hash -> (image id, position); entries of images that
    /// left the window are stale
    tables: [WindowTable; 2],
    /// the passes' own tables, reused
    scratch: [Table; 2],
    max_images: usize,
}

impl GlzEncoder {
    /// `max_images`: how many earlier images matches may reach into.
    pub fn new(max_images: usize) -> Self {
        GlzEncoder { next_id: 0, window: Default::default(), window_pixels: 0, tables: Default::default(), scratch: Default::default(), max_images }
    }

    /// [`GlzEncoder::encode`] of B,G,R,A bytes (width * height * 4 of them).
    pub fn encode_bgra(&mut self, bgra: &[u8], width: u32, height: u32, kind: u32) -> Option<Vec<u8>> {
        with_bgra_words(bgra, width, height, |words| self.encode(words, width, height, kind))?
    }

    /// Encode one image (RGB16, RGB24, RGB32 or RGBA) and add it to the window.
    pub fn encode(&mut self, words: &[u32], width: u32, height: u32, kind: u32) -> Option<Vec<u8>> {
        if !matches!(kind, lz_type::RGB16 | lz_type::RGB24 | lz_type::RGB32 | lz_type::RGBA) {
            return None;
        }
        // the words of an image leaving the window hold this one's copy (no fresh buffer)
        let mut spare = Vec::new();
        while self.window.len() > self.max_images || (self.window_pixels > GLZ_WINDOW_PIXELS && !self.window.is_empty()) {
            let old = self.window.pop_front().expect("not empty");
            self.window_pixels -= old.words.len() * (1 + old.alpha as usize);
            if old.words.capacity() > spare.capacity() {
                spare = old.words;
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let oldest = self.window.front().map_or(id, |w| w.id);
        let mut out = Vec::with_capacity(literal_bound(kind, words.len()));
        let stride = width * bytes_per_pixel(kind);
        GlzHeader { kind, top_down: true, width, height, stride, id, win_head_dist: (id - oldest) as u32 }.write(&mut out);
        // earlier images hold whole pixels: the colour pass of b,g,r units (x555 images are
        // compared in their own unit space) reaches into their colours, the alpha pass into
        // the alpha of earlier RGBA images
        let scratch = &mut self.scratch;
        let filled = if self.max_images == 0 || self.window.is_empty() || self.tables[0].is_empty() && self.tables[1].is_empty() {
            encode_passes::<GlzCode, NoEarlier, NoEarlier>(words, kind, GLZ_MAX_OFS, (&NoEarlier, &NoEarlier), scratch, &mut out)?
        } else {
            let images: Vec<&[u32]> = self.window.iter().map(|k| k.words.as_slice()).collect();
            let alpha_images = self.window.iter().map(|k| if k.alpha { k.words.as_slice() } else { &[][..] }).collect();
            let rgb = WindowLookup::<RgbUnit> { table: &self.tables[0], images, oldest, id, kind: Default::default() };
            let alpha = WindowLookup::<AlphaUnit> { table: &self.tables[1], images: alpha_images, oldest, id, kind: Default::default() };
            encode_passes::<GlzCode, _, _>(words, kind, GLZ_MAX_OFS, (&rgb, &alpha), scratch, &mut out)?
        };
        for (k, _) in filled.iter().enumerate().filter(|(_, &f)| f) {
            let table = &mut self.tables[k];
            if table.is_empty() {
                *table = vec![(u64::MAX, 0, 0); 1 << HASH_BITS];
            }
            let own = &self.scratch[k];
            if words.len() < (1 << HASH_BITS) / 2 {
                // a small image: find its entries by hashing its positions again rather
                // than by reading the whole table
                for j in 0..words.len().saturating_sub(MIN_MATCH - 1) {
                    let u = &words[j..j + 3];
                    let h = if k == 0 { hash3::<RgbUnit>(u) } else { hash3::<AlphaUnit>(u) };
                    if own.own(h).is_some_and(|(pos, _)| pos as usize == j) {
                        table[h] = (id, j as u32, words[j]);
                    }
                }
            } else {
                for (h, slot) in table.iter_mut().enumerate() {
                    if let Some((pos, unit)) = own.own(h) {
                        *slot = (id, pos, unit);
                    }
                }
            }
        }
        let usable = kind != lz_type::RGB16;
        let alpha = kind == lz_type::RGBA;
        let kept = if usable {
            spare.clear();
            spare.extend_from_slice(words);
            spare
        } else {
            Vec::new()
        };
        self.window_pixels += kept.len() * (1 + alpha as usize);
        self.window.push_back(Kept { id, words: kept, alpha });
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glz::GlzDictionary;
    use crate::lz::decode_lz;

    /// Words with runs, repeats near and far (past LZ's 13-bit distances) and noise.
    fn picture(w: usize, h: usize, seed: u32) -> Vec<u32> {
        let mut s = seed.wrapping_mul(2654435761) | 1;
        let mut noise = move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        let mut v = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                let p = match (y / 7) % 4 {
                    0 => 0xff20_4060,
                    1 => (((x / 3) as u32 * 0x010203) & 0x00ff_ffff) | ((y as u32 & 3) << 24),
                    2 => noise(),
                    _ => v[(y % 7) * w + x],
                };
                v.push(p);
            }
        }
        v
    }

    fn check_lz(words: &[u32], w: usize, h: usize) {
        for kind in [lz_type::RGB16, lz_type::RGB24, lz_type::RGB32, lz_type::RGBA, lz_type::XXXA, lz_type::A8] {
            let s = encode_lz(words, w as u32, h as u32, kind).unwrap();
            let img = decode_lz(&s, None, 1 << 26).unwrap();
            for (i, (&a, &b)) in words.iter().zip(&img.words).enumerate() {
                let want = match kind {
                    lz_type::RGB16 => {
                        let u = rgb16_units(&[a])[0] as u16;
                        crate::image::rgb555_to_word(u) | 0xff00_0000
                    }
                    lz_type::RGB24 | lz_type::RGB32 => a | 0xff00_0000,
                    lz_type::RGBA => a,
                    _ => b & 0x00ff_ffff | a & 0xff00_0000,
                };
                assert_eq!(b, want, "kind {kind} pixel {i}");
            }
        }
    }

    #[test]
    fn lz_round_trips_every_kind() {
        check_lz(&picture(61, 40, 1), 61, 40);
        check_lz(&picture(1, 1, 2), 1, 1);
        check_lz(&picture(2, 1, 3), 2, 1);
        check_lz(&picture(5, 1, 3), 5, 1);
        // distances past 8191 (far matches) and long runs
        check_lz(&picture(1500, 60, 4), 1500, 60);
        check_lz(&vec![0x0012_3456; 5000], 100, 50);
    }

    #[test]
    fn bgra_bytes_encode_as_their_words() {
        let words = picture(30, 7, 3);
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        for kind in [lz_type::RGB16, lz_type::RGB32, lz_type::RGBA, lz_type::A8] {
            let want = encode_lz(&words, 30, 7, kind);
            assert_eq!(encode_lz_bgra(&bytes, 30, 7, kind), want);
            // unaligned bytes are converted first, to the same stream
            let mut shifted = vec![0u8];
            shifted.extend_from_slice(&bytes);
            assert_eq!(encode_lz_bgra(&shifted[1..], 30, 7, kind), want);
            assert_eq!(GlzEncoder::new(1).encode_bgra(&shifted[1..], 30, 7, kind), GlzEncoder::new(1).encode(&words, 30, 7, kind));
        }
        assert_eq!(encode_lz_bgra(&bytes[4..], 30, 7, lz_type::RGB32), None);
        assert_eq!(GlzEncoder::new(1).encode_bgra(&bytes, 31, 7, lz_type::RGB32), None);
    }

    #[test]
    fn reused_tables_forget_earlier_images_and_wrap() {
        let mut t = Table::default();
        let a = picture(40, 10, 1);
        let mut first = Vec::new();
        compress::<RgbUnit, LzCode, NoEarlier>(&a, LZ_MAX_DIST, &NoEarlier, &mut t, &mut first);
        // the same units again: nothing of the first image is a candidate, same output
        let mut again = Vec::new();
        compress::<RgbUnit, LzCode, NoEarlier>(&a, LZ_MAX_DIST, &NoEarlier, &mut t, &mut again);
        assert_eq!(first, again);
        // positions about to overflow: the table is cleared and starts over
        t.next = u32::MAX - 100;
        let mut wrapped = Vec::new();
        compress::<RgbUnit, LzCode, NoEarlier>(&a, LZ_MAX_DIST, &NoEarlier, &mut t, &mut wrapped);
        assert_eq!((t.base, wrapped), (1, first));
    }

    #[test]
    fn glz_round_trips_across_images() {
        for max_images in [0, 3, 8] {
            glz_round_trip(max_images);
        }
    }

    fn glz_round_trip(max_images: usize) {
        let mut enc = GlzEncoder::new(max_images);
        let mut dec = GlzDictionary::new(1 << 28, 1 << 26);
        let pics: Vec<(u32, u32, u32, u32)> = vec![
            (80, 30, 1, lz_type::RGB32),
            (80, 30, 1, lz_type::RGBA),
            (80, 30, 2, lz_type::RGBA),
            (80, 30, 1, lz_type::RGB16),
            (80, 30, 1, lz_type::RGB32),
            (1500, 60, 5, lz_type::RGB24),
            (80, 30, 2, lz_type::RGBA),
        ];
        let mut sizes = Vec::new();
        for &(w, h, seed, kind) in &pics {
            let p = picture(w as usize, h as usize, seed);
            let s = enc.encode(&p, w, h, kind).unwrap();
            sizes.push(s.len());
            let img = dec.decode(&s, None).unwrap();
            for (i, (&a, &b)) in p.iter().zip(&img.words).enumerate() {
                let want = match kind {
                    lz_type::RGBA => a,
                    lz_type::RGB16 => crate::image::rgb555_to_word(rgb16_units(&[a])[0] as u16) | 0xff00_0000,
                    _ => a | 0xff00_0000,
                };
                assert_eq!(b, want, "kind {kind} pixel {i}");
            }
        }
        // a repeated image is a few references into the earlier one
        assert!(max_images < 8 || sizes[4] < sizes[0] / 4, "{sizes:?}");
    }
}
