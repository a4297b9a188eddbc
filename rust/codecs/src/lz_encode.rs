//! LZ and GLZ encoders: a greedy hash-chain-free matcher over pixel units, then the two
//! formats' ways of writing literals and matches. GLZ may also match into earlier images.
use crate::lz::{LZ_MAGIC, LZ_VERSION};
use crate::lz_core::lz_type;

/// How a unit is written as a literal.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum EncUnit {
    /// b, g, r bytes; unit value = b | g << 8 | r << 16
    Rgb,
    /// big-endian x555
    Rgb16,
    /// one byte (alpha, A8, palette indices)
    Byte,
}

impl EncUnit {
    /// Match-length bias of the format (a match field of 1 means bias + 1 units).
    fn bias(self) -> usize {
        match self {
            EncUnit::Rgb => 0,
            EncUnit::Rgb16 => 1,
            EncUnit::Byte => 2,
        }
    }

    fn put(self, v: u32, out: &mut Vec<u8>) {
        match self {
            EncUnit::Rgb => out.extend_from_slice(&[v as u8, (v >> 8) as u8, (v >> 16) as u8]),
            EncUnit::Rgb16 => out.extend_from_slice(&[(v >> 8) as u8, v as u8]),
            EncUnit::Byte => out.push(v as u8),
        }
    }
}

const HASH_BITS: u32 = 14;
const MIN_MATCH: usize = 3;
/// Positions at the end of a match that are entered in the hash table.
const INDEX_TAIL: usize = 2;

#[inline]
fn hash3(u: &[u32], i: usize) -> usize {
    let h = u[i].wrapping_mul(0x9E37_79B1) ^ u[i + 1].wrapping_mul(0x85EB_CA77).rotate_left(11) ^ u[i + 2].wrapping_mul(0xC2B2_AE3D).rotate_left(22);
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
pub(crate) type EarlierLookup<'f, 'a> = &'f dyn Fn(usize) -> Option<(u32, &'a [u32], usize)>;

fn match_len(a: &[u32], ai: usize, b: &[u32], bi: usize, max: usize) -> usize {
    let mut n = 0;
    while n < max && a[ai + n] == b[bi + n] {
        n += 1;
    }
    n
}

/// Greedy parse of `units` into literal runs and matches; `write_match` writes a match.
pub(crate) fn compress<'a>(
    units: &[u32],
    unit: EncUnit,
    max_dist: usize,
    earlier: Option<EarlierLookup<'_, 'a>>,
    out: &mut Vec<u8>,
    write_match: &dyn Fn(&mut Vec<u8>, usize, Src),
) -> Vec<u32> {
    let n = units.len();
    let mut table = vec![u32::MAX; 1 << HASH_BITS];
    let mut lit_start = 0usize;
    let mut i = 0usize;
    let flush_literals = |out: &mut Vec<u8>, from: usize, to: usize| {
        let mut s = from;
        while s < to {
            let count = (to - s).min(32);
            out.push((count - 1) as u8);
            let run = &units[s..s + count];
            if unit == EncUnit::Rgb {
                // the common case in one piece: 3 bytes a pixel
                let mut buf = [0u8; 96];
                for (b, &v) in buf.chunks_exact_mut(3).zip(run) {
                    b.copy_from_slice(&[v as u8, (v >> 8) as u8, (v >> 16) as u8]);
                }
                out.extend_from_slice(&buf[..3 * count]);
            } else {
                for &v in run {
                    unit.put(v, out);
                }
            }
            s += count;
        }
    };
    while i + MIN_MATCH <= n {
        let h = hash3(units, i);
        let cand = table[h];
        table[h] = i as u32;
        let mut best: Option<(usize, Src)> = None;
        if cand != u32::MAX {
            let c = cand as usize;
            if i - c <= max_dist {
                let len = match_len(units, c, units, i, n - i);
                if len >= MIN_MATCH {
                    best = Some((len, Src::Back(i - c)));
                }
            }
        }
        if let Some((image_dist, e_units, c)) = earlier.and_then(|f| f(h)) {
            let len = match_len(e_units, c, units, i, (n - i).min(e_units.len() - c));
            if len >= MIN_MATCH && best.is_none_or(|(l, _)| len > l) {
                best = Some((len, Src::Image { image_dist, ofs: c }));
            }
        }
        match best {
            Some((len, src)) if len > unit.bias() => {
                flush_literals(out, lit_start, i);
                write_match(out, len - unit.bias(), src);
                // index the last positions the match covers (not all of them: on long runs
                // and repeats that would cost a hash per pixel), so later repeats find them
                let end = i + len;
                for j in (i + 1).max(end.saturating_sub(INDEX_TAIL))..end.min(n.saturating_sub(MIN_MATCH - 1)) {
                    table[hash3(units, j)] = j as u32;
                }
                i = end;
                lit_start = i;
            }
            _ => i += 1,
        }
    }
    flush_literals(out, lit_start, n);
    table
}

/// Write the length field (raw >= 1) into `ctrl`'s top bits and the extension bytes.
fn length_field(raw: usize) -> (u8, Vec<u8>) {
    if raw < 7 {
        ((raw as u8) << 5, Vec::new())
    } else {
        let mut ext = Vec::new();
        let mut rem = raw - 7;
        while rem >= 255 {
            ext.push(255);
            rem -= 255;
        }
        ext.push(rem as u8);
        (7 << 5, ext)
    }
}

/// Longest distance an LZ match can express.
pub(crate) const LZ_MAX_DIST: usize = 8191 + 65535 + 1;

fn lz_match(out: &mut Vec<u8>, raw: usize, src: Src) {
    let Src::Back(dist) = src else { unreachable!("LZ has no other images") };
    let (ctrl, ext) = length_field(raw);
    let d = dist - 1;
    if d < 8191 {
        out.push(ctrl | (d >> 8) as u8);
        out.extend_from_slice(&ext);
        out.push(d as u8);
    } else {
        let far = d - 8191;
        out.push(ctrl | 31);
        out.extend_from_slice(&ext);
        out.extend_from_slice(&[255, (far >> 8) as u8, far as u8]);
    }
}

pub(crate) const GLZ_MAX_OFS: usize = (1 << 25) - 1;

fn glz_match(out: &mut Vec<u8>, raw: usize, src: Src) {
    let (ofs, image_dist) = match src {
        Src::Back(dist) => (dist - 1, 0u32),
        Src::Image { image_dist, ofs } => (ofs, image_dist),
    };
    let (ctrl, ext) = length_field(raw);
    if ofs < 1 << 12 {
        out.push(ctrl | (ofs & 0x0f) as u8);
        out.extend_from_slice(&ext);
        out.push((ofs >> 4) as u8);
        let extra = (image_dist >> 6).to_le_bytes();
        let nbytes = extra.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        out.push(((nbytes as u8) << 6) | (image_dist & 0x3f) as u8);
        out.extend_from_slice(&extra[..nbytes]);
    } else {
        out.push(ctrl | 0x10 | (ofs & 0x0f) as u8);
        out.extend_from_slice(&ext);
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

/// Units of an image for a pass: `words` are 0xAARRGGBB.
pub(crate) fn rgb_units(words: &[u32]) -> Vec<u32> {
    words.iter().map(|w| w & 0x00ff_ffff).collect()
}

pub(crate) fn rgb16_units(words: &[u32]) -> Vec<u32> {
    words.iter().map(|w| ((w >> 9) & 0x7c00) | ((w >> 6) & 0x03e0) | ((w >> 3) & 0x001f)).collect()
}

pub(crate) fn alpha_units(words: &[u32]) -> Vec<u32> {
    words.iter().map(|w| w >> 24).collect()
}

/// The unit passes of an LZ/GLZ image type: (units, how written) in stream order.
pub(crate) fn passes(kind: u32, words: &[u32]) -> Option<Vec<(Vec<u32>, EncUnit)>> {
    Some(match kind {
        lz_type::RGB16 => vec![(rgb16_units(words), EncUnit::Rgb16)],
        lz_type::RGB24 | lz_type::RGB32 => vec![(rgb_units(words), EncUnit::Rgb)],
        lz_type::RGBA => vec![(rgb_units(words), EncUnit::Rgb), (alpha_units(words), EncUnit::Byte)],
        lz_type::XXXA | lz_type::A8 => vec![(alpha_units(words), EncUnit::Byte)],
        _ => return None,
    })
}

pub(crate) fn bytes_per_pixel(kind: u32) -> u32 {
    match kind {
        lz_type::RGB16 => 2,
        lz_type::RGB24 => 3,
        lz_type::A8 => 1,
        _ => 4,
    }
}

/// Encode top-down B,G,R,A words (row-major, `width` per row) as an LZ stream of `kind`
/// (RGB16, RGB24, RGB32, RGBA, XXXA or A8). None for other kinds.
pub fn encode_lz(words: &[u32], width: u32, height: u32, kind: u32) -> Option<Vec<u8>> {
    let passes = passes(kind, words)?;
    let mut out = Vec::with_capacity(words.len() + 64);
    for v in [LZ_MAGIC, LZ_VERSION, kind, width, height, width * bytes_per_pixel(kind), 1] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    for (units, unit) in passes {
        let _ = compress(&units, unit, LZ_MAX_DIST, None, &mut out, &lz_match);
    }
    Some(out)
}

type GlzWindow = std::collections::VecDeque<(u64, [Vec<u32>; 2])>;

/// The earlier-image lookup of pass kind `k` (0 colour, 1 alpha) while image `id` is coded.
fn window_lookup<'a>(
    window: &'a GlzWindow,
    table: &'a [(u64, u32)],
    k: usize,
    oldest: u64,
    id: u64,
) -> impl Fn(usize) -> Option<(u32, &'a [u32], usize)> + 'a {
    move |h| {
        let &(wid, pos) = table.get(h)?;
        if wid < oldest || wid >= id {
            return None;
        }
        let units = &window.get((wid - oldest) as usize)?.1[k];
        ((pos as usize) < units.len()).then_some(((id - wid) as u32, units.as_slice(), pos as usize))
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
    /// (id, [rgb units, alpha units]), oldest first; ids are consecutive. Alpha units are
    /// kept for RGBA images only (the alpha pass matches into earlier alpha).
    window: GlzWindow,
    window_pixels: usize,
    /// per pass kind (rgb, alpha): hash -> (image id, position); entries of images that
    /// left the window are stale
    tables: [Vec<(u64, u32)>; 2],
    max_images: usize,
}

impl GlzEncoder {
    /// `max_images`: how many earlier images matches may reach into.
    pub fn new(max_images: usize) -> Self {
        GlzEncoder { next_id: 0, window: Default::default(), window_pixels: 0, tables: Default::default(), max_images }
    }

    /// Encode one image (RGB16, RGB24, RGB32 or RGBA) and add it to the window.
    pub fn encode(&mut self, words: &[u32], width: u32, height: u32, kind: u32) -> Option<Vec<u8>> {
        let passes = passes(kind, words)?;
        if kind == lz_type::XXXA || kind == lz_type::A8 {
            return None;
        }
        while self.window.len() > self.max_images || (self.window_pixels > GLZ_WINDOW_PIXELS && !self.window.is_empty()) {
            let (_, u) = self.window.pop_front().expect("not empty");
            self.window_pixels -= u[0].len() + u[1].len();
        }
        let id = self.next_id;
        self.next_id += 1;
        let oldest = self.window.front().map_or(id, |w| w.0);
        let mut out = Vec::with_capacity(words.len() + 64);
        out.extend_from_slice(&LZ_MAGIC.to_be_bytes());
        out.extend_from_slice(&LZ_VERSION.to_be_bytes());
        out.push(kind as u8 | 0x10);
        for v in [width, height, width * bytes_per_pixel(kind)] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&((id - oldest) as u32).to_be_bytes());
        // earlier images hold whole pixels: the colour pass of b,g,r units (x555 images are
        // compared in their own unit space) reaches into their colours, the alpha pass into
        // the alpha of earlier RGBA images
        let lookups = [0, 1].map(|k| window_lookup(&self.window, &self.tables[k], k, oldest, id));
        // per pass kind: (units, the pass's own hash table: the positions later images find)
        let mut kept: [(Vec<u32>, Vec<u32>); 2] = Default::default();
        for (pi, (units, unit)) in passes.into_iter().enumerate() {
            let k = pi.min(1);
            let usable = (pi == 0 && unit == EncUnit::Rgb) || (pi == 1 && kind == lz_type::RGBA);
            let earlier: Option<EarlierLookup> = (usable && self.max_images > 0).then_some(&lookups[k]);
            let own = compress(&units, unit, GLZ_MAX_OFS, earlier, &mut out, &glz_match);
            if usable {
                kept[k] = (units, own);
            }
        }
        drop(lookups);
        for (k, (units, own)) in kept.iter().enumerate() {
            if units.is_empty() {
                continue;
            }
            let table = &mut self.tables[k];
            if table.is_empty() {
                *table = vec![(u64::MAX, 0); 1 << HASH_BITS];
            }
            for (slot, &pos) in table.iter_mut().zip(own) {
                if pos != u32::MAX {
                    *slot = (id, pos);
                }
            }
        }
        let [(rgb, _), (alpha, _)] = kept;
        self.window_pixels += rgb.len() + alpha.len();
        self.window.push_back((id, [rgb, alpha]));
        Some(out)
    }
}
