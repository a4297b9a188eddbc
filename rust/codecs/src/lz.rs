//! SPICE LZ (LZ_RGB, LZ_PLT, and the XXXA alpha plane of JPEG_ALPHA).
use crate::error::Result;
use crate::image::Image;
use crate::lz_core::{decode_body, lz_type, Source};
use crate::lz_header::read_lz_header;
pub use crate::lz_header::{LzHeader, LZ_MAGIC, LZ_VERSION};
use crate::reader::Reader;
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

/// Parse only the header of an LZ stream.
pub fn peek_header(data: &[u8]) -> Result<LzHeader> {
    read_lz_header(&mut Reader::new(data, CODEC))
}

/// Decode an LZ stream. `palette` (0x00RRGGBB entries) is needed for the PLT types.
pub fn decode_lz(data: &[u8], palette: Option<&[u32]>, max_pixels: u64) -> Result<Image> {
    let mut r = Reader::new(data, CODEC);
    let h = read_lz_header(&mut r)?;
    let (row, words) = decode_body(&mut r, h.kind, (h.width, h.height, h.stride), palette, max_pixels, None, parse_lz_match)?;
    let has_alpha = matches!(h.kind, lz_type::RGBA | lz_type::XXXA | lz_type::A8);
    Ok(Image::from_words(h.width as usize, h.height as usize, row, words, h.top_down, !has_alpha))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u32, width: u32, height: u32, stride: u32, top_down: u32) -> Vec<u8> {
        let mut v = Vec::new();
        LzHeader { kind, width, height, stride, top_down: top_down != 0 }.write(&mut v);
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
