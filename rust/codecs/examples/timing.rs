//! Quick timing of the decoders on files: `cargo run --release --example timing -- KIND FILE [W H]`.
use std::time::Instant;

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
    let n = 50;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(run().unwrap());
    }
    let s = t.elapsed().as_secs_f64() / n as f64;
    println!("{}: {:.2} ms, {:.0} Mpx/s", args[1], s * 1e3, px / s / 1e6);
}
