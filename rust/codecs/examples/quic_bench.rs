//! QUIC decode and encode speed on raw pictures, best of N runs (robust on a busy machine):
//! `cargo run --release --example quic_bench -- [--runs N] [--kind K] RAW:WxH ...` where RAW
//! holds W*H little-endian 0xAARRGGBB words (B,G,R,A bytes). Each picture is encoded,
//! the stream decoded and checked against the picture, then both are timed.
use spice_codecs::quic::decode_quic;
use spice_codecs::quic_encode::encode_quic;

mod common;
use common::best;

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut runs, mut kind) = (20usize, 4u32);
    let mut pictures = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().expect("--runs N").parse().expect("N"),
            "--kind" => kind = args.next().expect("--kind K").parse().expect("K"),
            _ => pictures.push(a),
        }
    }
    for spec in pictures {
        let (path, size) = spec.rsplit_once(':').expect("RAW:WxH");
        let (w, h) = size.split_once('x').expect("WxH");
        let (w, h): (u32, u32) = (w.parse().expect("W"), h.parse().expect("H"));
        let bytes = std::fs::read(path).expect("read");
        let words: Vec<u32> = bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        assert_eq!(words.len(), (w * h) as usize, "{path}: size");
        let enc = encode_quic(&words, w, h, kind).expect("encode");
        let dec = decode_quic(&enc, 1 << 26).expect("decode");
        if kind == 3 || kind == 4 {
            assert!(dec.words.iter().zip(&words).all(|(a, b)| (a ^ b) & 0xff_ffff == 0), "{path}: round trip");
        }
        let px = (w * h) as f64;
        let d = best(runs, || decode_quic(&enc, 1 << 26).unwrap());
        let e = best(runs, || encode_quic(&words, w, h, kind).unwrap());
        let hash = enc.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        println!(
            "{path}: {} B (fnv {hash:016x}) decode {:.0} Mpx/s, encode {:.0} Mpx/s",
            enc.len(),
            px / d / 1e6,
            px / e / 1e6
        );
    }
}
