//! The headers of LZ and GLZ streams (both big-endian inside the stream): read with checks
//! by the decoders, written by the encoders. They share the magic and version; LZ then has
//! u32 type, width, height, stride, top_down, GLZ a byte of type | top_down << 4, u32 width,
//! height, stride, u64 image id and u32 win_head_dist.
use crate::error::Result;
use crate::image::check_size;
use crate::lz_core::plt_pixels_per_byte;
use crate::reader::Reader;

pub const LZ_MAGIC: u32 = 0x2020_5a4c;
pub const LZ_VERSION: u32 = 0x0001_0001;

/// The parsed 28-byte LZ header.
#[derive(Debug, Clone, Copy)]
pub struct LzHeader {
    pub kind: u32,
    pub width: u32,
    pub height: u32,
    pub stride: u32,
    pub top_down: bool,
}

/// The parsed 33-byte GLZ header.
#[derive(Debug, Clone, Copy)]
pub struct GlzHeader {
    pub kind: u32,
    pub top_down: bool,
    pub width: u32,
    pub height: u32,
    pub stride: u32,
    pub id: u64,
    pub win_head_dist: u32,
}

fn read_magic_version(r: &mut Reader) -> Result<()> {
    let magic = r.be32()?;
    if magic != LZ_MAGIC {
        return r.fail(format!("bad magic {magic:#010x}"));
    }
    let version = r.be32()?;
    if version != LZ_VERSION {
        return r.fail(format!("unsupported version {version:#010x}"));
    }
    Ok(())
}

pub(crate) fn read_lz_header(r: &mut Reader) -> Result<LzHeader> {
    read_magic_version(r)?;
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

pub(crate) fn read_glz_header(r: &mut Reader) -> Result<GlzHeader> {
    read_magic_version(r)?;
    let t = r.u8()?;
    let kind = (t & 0x0f) as u32;
    if !(1..=9).contains(&kind) {
        return r.fail(format!("invalid GLZ image type {kind}"));
    }
    Ok(GlzHeader {
        kind,
        top_down: t >> 4 != 0,
        width: r.be32()?,
        height: r.be32()?,
        stride: r.be32()?,
        id: r.be64()?,
        win_head_dist: r.be32()?,
    })
}

impl LzHeader {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        for v in [LZ_MAGIC, LZ_VERSION, self.kind, self.width, self.height, self.stride, self.top_down as u32] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

impl GlzHeader {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&LZ_MAGIC.to_be_bytes());
        out.extend_from_slice(&LZ_VERSION.to_be_bytes());
        out.push(self.kind as u8 | (self.top_down as u8) << 4);
        for v in [self.width, self.height, self.stride] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.win_head_dist.to_be_bytes());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_read_back_what_is_written() {
        let lz = LzHeader { kind: 9, width: 3, height: 70000, stride: 12, top_down: true };
        let mut v = Vec::new();
        lz.write(&mut v);
        assert_eq!(v.len(), 28);
        let back = read_lz_header(&mut Reader::new(&v, "lz")).unwrap();
        assert_eq!((back.kind, back.width, back.height, back.stride, back.top_down), (9, 3, 70000, 12, true));
        let glz = GlzHeader { kind: 8, top_down: true, width: 5, height: 6, stride: 20, id: 1 << 40, win_head_dist: 7 };
        let mut v = Vec::new();
        glz.write(&mut v);
        assert_eq!(v.len(), 33);
        let b = read_glz_header(&mut Reader::new(&v, "glz")).unwrap();
        assert_eq!((b.kind, b.top_down, b.width, b.height, b.stride, b.id, b.win_head_dist), (8, true, 5, 6, 20, 1 << 40, 7));
        v[8] = 0x1a; // type 10 is not a GLZ type
        assert!(read_glz_header(&mut Reader::new(&v, "glz")).is_err());
        v[0] ^= 1;
        assert!(read_glz_header(&mut Reader::new(&v, "glz")).is_err());
    }
}
