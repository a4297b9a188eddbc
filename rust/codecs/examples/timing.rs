//! Quick timing of the codecs on files, best of N runs (robust on a busy machine):
//! `cargo run --release --example timing -- KIND FILE [W H]`; KIND quic also times the
//! QUIC encoder on the decoded picture.

mod common;
use common::best;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = std::fs::read(&args[2]).expect("read");
    let run = || match args[1].as_str() {
        "quic" => spice_codecs::quic::decode_quic(&data, 1 << 26),
        "lz" => spice_codecs::lz::decode_lz(&data, None, 1 << 26),
        _ => spice_codecs::lz4::decode_lz4(&data, args[3].parse().unwrap(), args[4].parse().unwrap(), 1 << 26),
    };
    let img = run().expect("decode");
    let px = (img.width * img.height) as f64;
    let s = best(30, || run().unwrap());
    println!("{} decode: {:.2} ms, {:.0} Mpx/s", args[1], s * 1e3, px / s / 1e6);
    if args[1] == "quic" {
        let (w, h) = (img.width as u32, img.height as u32);
        let enc = || spice_codecs::quic_encode::encode_quic(&img.words, w, h, 4).unwrap();
        let s = best(30, enc);
        println!("quic encode: {:.2} ms, {:.0} Mpx/s ({} B)", s * 1e3, px / s / 1e6, enc().len());
    }
}
