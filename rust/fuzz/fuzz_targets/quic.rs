//! Any bytes as a QUIC stream: Ok or Err, never a crash.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = spice_codecs::quic::decode_quic(data, 1 << 20);
});
