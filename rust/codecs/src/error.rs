//! Errors of every decoder: always a value, never a panic.
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The stream is corrupt, truncated or inconsistent; `offset` is the byte position in the input.
    Corrupt { codec: &'static str, offset: usize, msg: String },
    /// The declared image is larger than the caller's ceiling (checked before allocating).
    TooLarge { codec: &'static str, width: u64, height: u64, max_pixels: u64 },
    /// A GLZ image refers to a dictionary image we do not hold (capture started mid-session, or evicted).
    MissingReference { image_id: u64, wanted_id: u64 },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Corrupt { codec, offset, msg } => write!(f, "{codec}: {msg} (at byte {offset})"),
            CodecError::TooLarge { codec, width, height, max_pixels } => write!(
                f,
                "{codec}: image {width}x{height} exceeds the ceiling of {max_pixels} pixels"
            ),
            CodecError::MissingReference { image_id, wanted_id } => write!(
                f,
                "glz: image {image_id} refers to dictionary image {wanted_id}, which is not in the window"
            ),
        }
    }
}

impl std::error::Error for CodecError {}

pub type Result<T> = std::result::Result<T, CodecError>;

pub(crate) fn corrupt<T>(codec: &'static str, offset: usize, msg: impl Into<String>) -> Result<T> {
    Err(CodecError::Corrupt { codec, offset, msg: msg.into() })
}
