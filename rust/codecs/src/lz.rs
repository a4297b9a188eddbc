//! SPICE LZ (LZ_RGB, LZ_PLT, and the XXXA alpha plane of JPEG_ALPHA).
use crate::error::Result;
use crate::image::{check_size, Image};
use crate::lz_core::{lz_type, plt_pixels_per_byte, run_pass, Source, Unit};
use crate::reader::Reader;

pub const LZ_MAGIC: u32 = 0x2020_5a4c;
pub const LZ_VERSION: u32 = 0x0001_0001;
const CODEC: &str = "lz";

/// Read what follows an LZ match control byte: (raw length, distance).
fn parse_lz_match(ctrl: u8, r: &mut Reader) -> Result<(usize, Source)> {
    let mut len = (ctrl >> 5) as usize;
    if len == 7 {
        loop {
            let c = r.u8()?;
            len += c as usize;
            if c != 255 {
                break;
            }
        }
    }
    let hi = (ctrl & 31) as usize;
    let c = r.u8()?;
    let mut ofs = (hi << 8) | c as usize;
    if c == 255 && hi == 31 {
        // far match: 16-bit distance beyond the 13-bit range
        let a = r.u8()? as usize;
        let b = r.u8()? as usize;
        ofs = ((a << 8) | b) + 8191;
    }
    // the distance is stored minus one; the engine adds the per-unit length bias
    Ok((len, Source::Back(ofs + 1)))
}

/// The parsed 28-byte header.
#[derive(Debug, Clone, Copy)]
pub struct LzHeader {
    pub kind: u32,
    pub width: u32,
    pub height: u32,
    pub stride: u32,
    pub top_down: bool,
}

pub(crate) fn read_header(r: &mut Reader) -> Result<LzHeader> {
    let magic = r.be32()?;
    if magic != LZ_MAGIC {
        return r.fail(format!("bad magic {magic:#010x}"));
    }
    let version = r.be32()?;
    if version != LZ_VERSION {
        return r.fail(format!("unsupported version {version:#010x}"));
    }
    let kind = r.be32()?;
    if !(1..=11).contains(&kind) {
        return r.fail(format!("invalid image type {kind}"));
    }
    let width = r.be32()?;
    let height = r.be32()?;
    let stride = r.be32()?;
    let top_down = r.be32()? != 0;
    Ok(LzHeader { kind, width, height, stride, top_down })
}

/// Parse only the header of an LZ stream.
pub fn peek_header(data: &[u8]) -> Result<LzHeader> {
    read_header(&mut Reader::new(data, CODEC))
}

/// Pixels per stored row (stride-wide for palette images) after checking the sizes.
pub(crate) fn row_pixels(r: &Reader, kind: u32, width: u32, height: u32, stride: u32, max_pixels: u64) -> Result<usize> {
    if width == 0 || height == 0 {
        return r.fail(format!("empty image {width}x{height}"));
    }
    check_size(r.codec, width as u64, height as u64, max_pixels)?;
    match plt_pixels_per_byte(kind) {
        Some(ppb) => {
            let row = stride as u64 * ppb as u64;
            if row < width as u64 {
                return r.fail(format!("stride {stride} too small for width {width}"));
            }
            check_size(r.codec, row, height as u64, max_pixels)?;
            Ok(row as usize)
        }
        None => Ok(width as usize),
    }
}

/// Decode an LZ stream. `palette` (0x00RRGGBB entries) is needed for the PLT types.
pub fn decode_lz(data: &[u8], palette: Option<&[u32]>, max_pixels: u64) -> Result<Image> {
    let mut r = Reader::new(data, CODEC);
    let h = read_header(&mut r)?;
    let row = row_pixels(&r, h.kind, h.width, h.height, h.stride, max_pixels)?;
    let unit = Unit::for_type(h.kind).expect("type range checked");
    let pal: &[u32] = match (unit, palette) {
        (Unit::Plt(_), None) => return r.fail("palette image without a palette"),
        (_, p) => p.unwrap_or(&[]),
    };
    let mut words = vec![0u32; row * h.height as usize];
    run_pass(&mut r, &mut words, unit, pal, None, parse_lz_match)?;
    if h.kind == lz_type::RGBA {
        run_pass(&mut r, &mut words, Unit::Alpha, pal, None, parse_lz_match)?;
    }
    let has_alpha = matches!(h.kind, lz_type::RGBA | lz_type::XXXA | lz_type::A8);
    Ok(Image::from_words(h.width as usize, h.height as usize, row, words, h.top_down, !has_alpha))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u32, w: u32, h: u32, stride: u32, top_down: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [LZ_MAGIC, LZ_VERSION, kind, w, h, stride, top_down] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v
    }

    #[test]
    fn literal_then_run_rgb32() {
        // one literal pixel, then a match of 3 at distance 1
        let mut s = header(lz_type::RGB32, 4, 1, 16, 1);
        s.extend_from_slice(&[0, 10, 20, 30]); // literal run of 1: b g r
        s.extend_from_slice(&[3 << 5, 0]); // length field 3 (RGB bias 0), distance 0+1
        let img = decode_lz(&s, None, 100).unwrap();
        assert_eq!(img.bgra(), [10, 20, 30, 255].repeat(4));
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let mut s = header(lz_type::RGB32, 4, 1, 16, 1);
        s.extend_from_slice(&[3, 1, 2, 3]);
        assert!(decode_lz(&s, None, 100).is_err());
        assert!(decode_lz(&s[..10], None, 100).is_err());
    }

    #[test]
    fn match_before_start_is_an_error() {
        let mut s = header(lz_type::RGB32, 4, 1, 16, 1);
        s.extend_from_slice(&[4 << 5, 0]);
        assert!(decode_lz(&s, None, 100).is_err());
    }
}
