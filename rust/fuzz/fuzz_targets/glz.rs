//! A run of GLZ images through one dictionary: the input is split at "  ZL" magics, so
//! later images can refer to earlier ones.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spice_codecs::glz::GlzDictionary;

fuzz_target!(|data: &[u8]| {
    let mut dict = GlzDictionary::new(1 << 22, 1 << 20);
    let magic = b"  ZL";
    let mut starts: Vec<usize> = data.windows(4).enumerate().filter(|(_, w)| *w == magic).map(|(i, _)| i).collect();
    starts.push(data.len());
    for pair in starts.windows(2) {
        let _ = dict.decode(&data[pair[0]..pair[1]], Some(&[0, 0xffffff]));
    }
});
