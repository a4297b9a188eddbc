//! SPICE image codecs over untrusted bytes. Pure Rust; the Python binding lives in
//! the sibling `python` crate.

/// Version of the codec library.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod tests {
    #[test]
    fn version_is_set() {
        assert!(!super::VERSION.is_empty());
    }
}
