//! Fingerprints of QUIC encoder output and decoder results (image or error message) for a
//! deterministic set of pictures and mutated streams, one line each: run it on two builds
//! and diff the outputs to show that a change keeps every result the same.
//! `cargo run --release --example quic_fingerprint -- [COUNT] [RAW:WxH ...]`
use spice_codecs::quic::decode_quic;
use spice_codecs::quic_encode::encode_quic;

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

fn fnv(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

fn mutate(rng: &mut Lcg, data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            2 => v.truncate(rng.below(v.len() + 1)),
            3 if v.len() > 20 => {
                // keep the header, cut the body
                let keep = 20 + rng.below(v.len() - 20);
                v.truncate(keep);
            }
            _ => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
        }
    }
    v
}

/// Flat runs, gradients, repeated rows and noise at random.
fn picture(rng: &mut Lcg, w: usize, h: usize) -> Vec<u32> {
    let mut p: Vec<u32> = Vec::with_capacity(w * h);
    for i in 0..w * h {
        let v = match rng.below(6) {
            0 | 1 => p.last().copied().unwrap_or(0xff20_4060),
            2 if i >= w => p[i - w],
            3 => 0x8000_0000 | ((i % w) as u32 * 0x010203),
            4 => p.last().copied().unwrap_or(0).wrapping_add(rng.next() & 0x0307_0301),
            _ => rng.next(),
        };
        p.push(v);
    }
    p
}

fn result_line(data: &[u8]) -> String {
    match decode_quic(data, 1 << 22) {
        Ok(img) => format!("ok {}x{} {:016x}", img.width, img.height, fnv(img.words.iter().flat_map(|w| w.to_le_bytes()))),
        Err(e) => format!("err {e}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let mut rng = Lcg(12345);
    let mut streams = Vec::new();
    for i in 1..=4 {
        if let Ok(d) = std::fs::read(format!("/work/shared/data/quic-seeds/test{i}.quic")) {
            println!("seed{i}: {}", result_line(&d));
            streams.push(d);
        }
    }
    for spec in args.iter().skip(1) {
        let (path, size) = spec.rsplit_once(':').expect("RAW:WxH");
        let (w, h) = size.split_once('x').expect("WxH");
        let (w, h): (u32, u32) = (w.parse().unwrap(), h.parse().unwrap());
        let words: Vec<u32> = std::fs::read(path).unwrap().chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        for kind in 1..=5 {
            let enc = encode_quic(&words, w, h, kind).unwrap();
            println!("{path} kind {kind}: enc {} {:016x} dec {}", enc.len(), fnv(enc.iter().copied()), result_line(&enc));
        }
    }
    for n in 0..60 {
        let (w, h) = (1 + rng.below(if n % 3 == 0 { 3000 } else { 90 }), 1 + rng.below(40));
        let pic = picture(&mut rng, w, h);
        for kind in 1..=5 {
            let enc = encode_quic(&pic, w as u32, h as u32, kind).unwrap();
            println!("pic{n} {w}x{h} kind {kind}: enc {} {:016x} dec {}", enc.len(), fnv(enc.iter().copied()), result_line(&enc));
            streams.push(enc);
        }
    }
    for n in 0..count {
        let pick = rng.below(streams.len());
        let m = mutate(&mut rng, &streams[pick]);
        println!("mut{n}: {}", result_line(&m));
    }
}
