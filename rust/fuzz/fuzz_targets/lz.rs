//! Any bytes as an LZ stream, with and without a palette.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let palette: Vec<u32> = (0..16).map(|i| i * 0x111111).collect();
    let _ = spice_codecs::lz::decode_lz(data, None, 1 << 20);
    let _ = spice_codecs::lz::decode_lz(data, Some(&palette), 1 << 20);
});
