//! Any bytes as LZ4 image data; the first two bytes choose the descriptor size.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (w, h) = (data[0] as usize + 1, data[1] as usize + 1);
    let _ = spice_codecs::lz4::decode_lz4(&data[2..], w, h, 1 << 20);
});
