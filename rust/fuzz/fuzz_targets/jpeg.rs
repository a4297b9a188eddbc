//! Any bytes as JPEG and as JPEG_ALPHA data (first byte: where the JPEG ends, in 1/256ths).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = spice_codecs::jpeg::decode_jpeg(data, 1 << 20);
    if let Some((&cut, rest)) = data.split_first() {
        let jpeg_size = rest.len() * cut as usize / 256;
        let _ = spice_codecs::jpeg::decode_jpeg_alpha(rest, jpeg_size, cut & 1 == 0, 1 << 20);
    }
});
