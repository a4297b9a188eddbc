//! The LZ4 block format through liblz4 itself (the lz4-sys crate builds and links it): the
//! code spice-gtk and spice-server run, at its speed. Only these two safe functions reach
//! it. Decoding uses liblz4's safe decoder, the one meant for untrusted input: it never
//! reads outside the block and the 64 KiB before the output position, and never writes
//! outside the room it is given; a corrupt block is a negative return, not a crash.
use std::mem::MaybeUninit;
use std::os::raw::{c_char, c_int};

use lz4_sys::{LZ4StreamEncode, LZ4_compressBound, LZ4_compress_default, LZ4_createStream, LZ4_freeStream};

/// How far back an LZ4 match reaches.
pub const WINDOW: usize = 1 << 16;

extern "C" {
    // in liblz4 (lz4.h), linked by lz4-sys, which does not declare these
    fn LZ4_decompress_safe_usingDict(
        src: *const c_char,
        dst: *mut c_char,
        src_size: c_int,
        dst_capacity: c_int,
        dict_start: *const c_char,
        dict_size: c_int,
    ) -> c_int;
    fn LZ4_loadDict(stream: *mut LZ4StreamEncode, dict: *const c_char, dict_size: c_int) -> c_int;
    fn LZ4_compress_fast_continue(
        stream: *mut LZ4StreamEncode,
        src: *const c_char,
        dst: *mut c_char,
        src_size: c_int,
        dst_capacity: c_int,
        acceleration: c_int,
    ) -> c_int;
}

/// Decode one block into `out[pos..]`, matches reaching back into `out[..pos]` (which is
/// initialised; at most [`WINDOW`] of it is read); at most `out.len() - pos` bytes are
/// written. How many were (now initialised), or None for a corrupt block.
pub fn decompress_into(block: &[u8], out: &mut [MaybeUninit<u8>], pos: usize) -> Option<usize> {
    let room = out.len().checked_sub(pos)?.min(c_int::MAX as usize);
    let src_size = c_int::try_from(block.len()).ok()?;
    let dict = pos.min(WINDOW);
    let base = out.as_mut_ptr().cast::<u8>();
    // SAFETY: the destination is the `room` bytes of `out` after `pos`; the dictionary
    // the `dict` initialised bytes just before them; liblz4's safe decoder stays inside
    // both and inside `block`, and returns how many bytes it wrote, or < 0.
    let n = unsafe {
        LZ4_decompress_safe_usingDict(
            block.as_ptr().cast(),
            base.add(pos).cast(),
            src_size,
            room as c_int,
            base.add(pos - dict).cast(),
            dict as c_int,
        )
    };
    usize::try_from(n).ok().filter(|&n| n <= room)
}

/// Compress `data[start..end]` as one block appended to `out`, matches reaching back into
/// the (at most [`WINDOW`]) bytes of `data` before `start`, which the decoder will have
/// decoded just before this block; the block's length is returned. At most 2^30 bytes.
pub fn compress_into(data: &[u8], start: usize, end: usize, out: &mut Vec<u8>) -> usize {
    let src = &data[start..end];
    let prefix = start.min(WINDOW);
    assert!(src.len() <= 1 << 30);
    // SAFETY: LZ4_compressBound is a pure function of its argument
    let bound = unsafe { LZ4_compressBound(src.len() as c_int) } as usize;
    out.reserve(bound);
    let pos = out.len();
    let dst = out.as_mut_ptr().wrapping_add(pos).cast::<c_char>();
    // SAFETY: the destination is `bound` bytes of spare capacity, enough for any input
    // (LZ4_compressBound); the dictionary, when there is one, is the `prefix` bytes the
    // bytes of `data` just before `src`.
    let n = unsafe {
        if prefix == 0 {
            LZ4_compress_default(src.as_ptr().cast(), dst, src.len() as c_int, bound as c_int)
        } else {
            let stream = LZ4_createStream();
            assert!(!stream.is_null(), "liblz4: no memory for a stream");
            LZ4_loadDict(stream, src.as_ptr().sub(prefix).cast(), prefix as c_int);
            let n = LZ4_compress_fast_continue(stream, src.as_ptr().cast(), dst, src.len() as c_int, bound as c_int, 1);
            LZ4_freeStream(stream);
            n
        }
    };
    let n = usize::try_from(n).ok().filter(|&n| n <= bound).expect("liblz4 compresses into its bound");
    // SAFETY: liblz4 wrote these n bytes
    unsafe { out.set_len(pos + n) };
    n
}
