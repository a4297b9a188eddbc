//! What the examples share.
use std::time::Instant;

/// Seconds of the fastest of `n` runs of `f` (robust on a busy machine).
pub fn best<T>(n: usize, mut f: impl FnMut() -> T) -> f64 {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}
