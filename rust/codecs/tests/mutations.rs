//! Stable-Rust fuzzing: thousands of mutated real and generated streams through every
//! decoder. Each must come back Ok or Err; a panic fails the test.
use spice_codecs::glz::GlzDictionary;
use spice_codecs::lz_core::lz_type;
use spice_codecs::{jpeg, lz, lz4, lz4_encode, lz_encode, quic, quic_encode};

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() as usize) % n.max(1)
    }
}

fn mutate(rng: &mut Lcg, data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(4) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            2 => v.truncate(rng.below(v.len() + 1)),
            _ => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
        }
    }
    v
}

/// A picture with flat runs, repeats and noise.
fn picture(w: usize, h: usize, seed: u64) -> Vec<u32> {
    let mut rng = Lcg(seed);
    (0..w * h)
        .map(|i| match (i / 7) % 3 {
            0 => 0xff20_4060,
            1 => 0xff00_0000 | ((i % w) as u32 * 0x010101),
            _ => rng.next(),
        })
        .collect()
}

const LIMIT: u64 = 1 << 20;

#[test]
fn mutated_quic_never_panics() {
    let mut streams: Vec<Vec<u8>> = (1..=4)
        .filter_map(|i| std::fs::read(format!("/work/shared/data/quic-seeds/test{i}.quic")).ok())
        .collect();
    let pic = picture(40, 30, 1);
    for kind in 1..=5 {
        streams.push(quic_encode::encode_quic(&pic, 40, 30, kind).unwrap());
    }
    let mut rng = Lcg(7);
    for _ in 0..3000 {
        let pick = rng.below(streams.len());
        let _ = quic::decode_quic(&mutate(&mut rng, &streams[pick]), LIMIT);
    }
}

#[test]
fn mutated_lz_glz_lz4_never_panic() {
    let pic = picture(50, 20, 2);
    let mut lzs = Vec::new();
    for kind in [lz_type::RGB16, lz_type::RGB24, lz_type::RGB32, lz_type::RGBA, lz_type::XXXA, lz_type::A8] {
        lzs.push(lz_encode::encode_lz(&pic, 50, 20, kind).unwrap());
    }
    let mut enc = lz_encode::GlzEncoder::new(4);
    let glzs: Vec<Vec<u8>> = (0..4).map(|_| enc.encode(&pic, 50, 20, lz_type::RGB32).unwrap()).collect();
    let bytes: Vec<u8> = pic.iter().flat_map(|w| w.to_le_bytes()).collect();
    let lz4s = lz4_encode::encode_lz4(&bytes, 8).unwrap();
    let palette: Vec<u32> = (0..256).map(|i| i * 0x010101).collect();
    let mut rng = Lcg(11);
    for _ in 0..3000 {
        let pick = rng.below(lzs.len());
        let s = mutate(&mut rng, &lzs[pick]);
        let _ = lz::decode_lz(&s, Some(&palette), LIMIT);
        let mut dict = GlzDictionary::new(1 << 20, LIMIT);
        for g in &glzs[..rng.below(glzs.len())] {
            dict.decode(g, None).unwrap();
        }
        let pick = rng.below(glzs.len());
        let _ = dict.decode(&mutate(&mut rng, &glzs[pick]), Some(&palette));
        let _ = lz4::decode_lz4(&mutate(&mut rng, &lz4s), 50, 20, LIMIT);
    }
}

#[test]
fn mutated_jpeg_never_panics() {
    // a JPEG is made of markers; mutate a minimal but complete stream header
    let mut rng = Lcg(3);
    let base: Vec<u8> = vec![
        0xff, 0xd8, 0xff, 0xdb, 0x00, 0x43, 0x00, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x08, 0x00, 0x08, 0x01, 0x01, 0x11, 0x00, 0xff, 0xda, 0x00, 0x08, 0x01,
        0x01, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x00, 0xff, 0xd9,
    ];
    for _ in 0..2000 {
        let _ = jpeg::decode_jpeg(&mutate(&mut rng, &base), LIMIT);
        let s = mutate(&mut rng, &base);
        let cut = rng.below(s.len() + 2);
        let _ = jpeg::decode_jpeg_alpha(&s, cut, rng.below(2) == 0, LIMIT);
    }
}
