//! LZ4 encode and decode speed on raw 32-bit pictures, best of N runs (robust on a busy
//! machine): `cargo run --release --example lz4_bench -- [--runs N] RAW:WxH ...` where RAW
//! holds W*H B,G,R,A pixels. Each picture is encoded, decoded and checked, then both timed;
//! `--rgba` codes it as RGBA (no A=255 pass after the decode, which 32BIT needs). The C
//! figure to hold it against is liblz4's LZ4_compress_default / LZ4_decompress_safe on the
//! same file, built outside the tree with gcc -O3 -march=native, rounds alternating.
use spice_codecs::bitmap::fmt;
use spice_codecs::lz4::decode_lz4;
use spice_codecs::lz4_encode::encode_lz4;

#[global_allocator]
static ALLOC: spice_codecs::keep::KeepLarge = spice_codecs::keep::KeepLarge::new();

mod common;
use common::best;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut runs = 50usize;
    let mut format = fmt::THIRTY_TWO_BIT;
    let mut pictures = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().expect("--runs N").parse().expect("N"),
            "--rgba" => format = fmt::RGBA,
            _ => pictures.push(a),
        }
    }
    for spec in pictures {
        let (path, size) = spec.rsplit_once(':').expect("RAW:WxH");
        let (w, h) = size.split_once('x').expect("WxH");
        let (w, h): (usize, usize) = (w.parse().expect("W"), h.parse().expect("H"));
        let bytes = std::fs::read(path).expect("read");
        assert_eq!(bytes.len(), w * h * 4, "{path}: size");
        let enc = encode_lz4(&bytes, format).expect("encode");
        let dec = decode_lz4(&enc, w, h, 1 << 26).expect("decode");
        assert!(dec.words.iter().zip(bytes.chunks_exact(4)).all(|(a, b)| a & 0xff_ffff == u32::from_le_bytes([b[0], b[1], b[2], 0]) && (format != fmt::RGBA || a >> 24 == b[3] as u32)));
        let px = (w * h) as f64;
        let e = best(runs, || encode_lz4(&bytes, format).unwrap());
        let d = best(runs, || decode_lz4(&enc, w, h, 1 << 26).unwrap());
        println!("ours {path} {format} {} B: encode {:.0} Mpx/s decode {:.0} Mpx/s", enc.len(), px / e / 1e6, px / d / 1e6);
    }
}
