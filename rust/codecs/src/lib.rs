//! SPICE image codecs over untrusted bytes. Rust, but for LZ4 blocks, which liblz4 codes
//! (lz4_block.rs); the Python binding lives in
//! the sibling `python` crate. Every decoder returns an [`Image`] (B,G,R,A rows, top-down)
//! or a [`CodecError`]; none panics on bad input.

pub mod bitmap;
pub mod error;
pub mod image;
pub mod jpeg;
pub mod keep;
pub mod glz;
pub mod lz;
pub mod lz4;
mod lz4_block;
pub mod lz4_encode;
pub mod lz_encode;
pub mod quic;
pub mod quic_encode;
mod quic_model;
mod quic_tables;
pub mod lz_core;
mod lz_header;
mod reader;

pub use error::{CodecError, Result};
pub use image::{Image, DEFAULT_MAX_PIXELS};

/// Version of the codec library.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod tests {
    #[test]
    fn version_is_set() {
        assert!(!super::VERSION.is_empty());
    }
}
