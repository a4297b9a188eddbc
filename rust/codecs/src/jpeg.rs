//! JPEG (through the zune-jpeg crate) and JPEG_ALPHA (JPEG colour + an LZ XXXA alpha plane).
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::error::{corrupt, CodecError, Result};
use crate::image::{check_size, Image};
use crate::lz::decode_lz;
use crate::lz_core::lz_type;

/// True when the header segments before the scan define no Huffman table, as in MJPEG
/// frames, which rely on the standard tables (libjpeg fills them in; so must we).
fn lacks_huffman_tables(data: &[u8]) -> bool {
    let mut pos = 2;
    while pos + 4 <= data.len() && data[pos] == 0xff {
        let marker = data[pos + 1];
        if marker == 0xc4 {
            return false;
        }
        if marker == 0xda {
            return true;
        }
        pos += 2 + u16::from_be_bytes([data[pos + 2], data[pos + 3]]) as usize;
    }
    false
}

/// Decode a baseline/progressive JFIF image to opaque B,G,R,A.
pub fn decode_jpeg(data: &[u8], max_pixels: u64) -> Result<Image> {
    if data.len() >= 2 && data[..2] == [0xff, 0xd8] && lacks_huffman_tables(data) {
        // an "AVI1" APP0 segment makes the library use the standard MJPEG tables
        let mut fixed = Vec::with_capacity(data.len() + 9);
        fixed.extend_from_slice(&[0xff, 0xd8, 0xff, 0xe0, 0x00, 0x07, b'A', b'V', b'I', b'1', 0x00]);
        fixed.extend_from_slice(&data[2..]);
        return decode_jfif(&fixed, max_pixels);
    }
    decode_jfif(data, max_pixels)
}

fn decode_jfif(data: &[u8], max_pixels: u64) -> Result<Image> {
    let opts = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::BGRA);
    let mut dec = JpegDecoder::new_with_options(ZCursor::new(data), opts);
    let jerr = |e: String| CodecError::Corrupt { codec: "jpeg", offset: 0, msg: e };
    // a library panic on hostile input must still come back as an error
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<Image> {
        dec.decode_headers().map_err(|e| jerr(format!("{e:?}")))?;
        let (w, h) = dec.dimensions().ok_or_else(|| jerr("no frame header".into()))?;
        check_size("jpeg", w as u64, h as u64, max_pixels)?;
        let bgra = dec.decode().map_err(|e| jerr(format!("{e:?}")))?;
        if bgra.len() != w * h * 4 {
            return corrupt("jpeg", 0, format!("decoder gave {} bytes for {w}x{h}", bgra.len()));
        }
        let words = bgra.chunks_exact(4).map(|p| u32::from_le_bytes([p[0], p[1], p[2], 255])).collect();
        Ok(Image { width: w, height: h, words })
    }));
    run.unwrap_or_else(|_| corrupt("jpeg", 0, "the JPEG library rejected the stream"))
}

/// JPEG_ALPHA body data: `jpeg_size` bytes of JPEG, then an LZ XXXA stream of the alpha
/// plane, rows bottom-up unless `top_down`.
pub fn decode_jpeg_alpha(data: &[u8], jpeg_size: usize, top_down: bool, max_pixels: u64) -> Result<Image> {
    if jpeg_size > data.len() {
        return corrupt("jpeg_alpha", data.len(), format!("jpeg_size {jpeg_size} is past the {} bytes of data", data.len()));
    }
    let mut img = decode_jpeg(&data[..jpeg_size], max_pixels)?;
    let alpha_stream = &data[jpeg_size..];
    let hdr = crate::lz::peek_header(alpha_stream)
        .map_err(|e| relocate(e, jpeg_size))?;
    if hdr.kind != lz_type::XXXA || hdr.width as usize != img.width || hdr.height as usize != img.height || hdr.top_down != top_down {
        return corrupt(
            "jpeg_alpha",
            jpeg_size,
            format!(
                "alpha plane is LZ type {} {}x{} top_down={}, expected XXXA {}x{} top_down={top_down}",
                hdr.kind, hdr.width, hdr.height, hdr.top_down, img.width, img.height
            ),
        );
    }
    let alpha = decode_lz(alpha_stream, None, max_pixels).map_err(|e| relocate(e, jpeg_size))?;
    for (px, a) in img.words.iter_mut().zip(&alpha.words) {
        *px = (*px & 0x00ff_ffff) | (a & 0xff00_0000);
    }
    Ok(img)
}

/// Report offsets of the embedded LZ stream relative to the whole body.
fn relocate(e: CodecError, base: usize) -> CodecError {
    match e {
        CodecError::Corrupt { codec, offset, msg } => CodecError::Corrupt { codec, offset: offset + base, msg },
        other => other,
    }
}
