//! The extension's allocator (its `#[global_allocator]`; the examples use it too): the system allocator, except that large blocks (decoded
//! images handed to numpy, encoder output and scratch, GLZ windows) are kept when freed
//! and handed out again, instead of going back to the kernel and being faulted in afresh,
//! page by page, by the next call. A decode or encode through the Python API then costs
//! what the codec costs, not ~1 minor fault per 4 KiB of output.
//!
//! Large sizes are rounded up to a class (quarter steps between powers of two, so at most
//! 25% of a block is slack, and that slack is never touched so never faulted in), and a
//! freed block is kept under its class, up to `KEEP_BYTES` in all; a request of the same
//! class takes it back. The class is a function of the requested size alone, so `dealloc`,
//! which is given the layout the block was asked with, finds it again.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;

/// Blocks from this size up are rounded to a class and kept when freed.
const LARGE: usize = 256 << 10;
/// The most bytes kept free at once (the oldest kept block goes back first).
const KEEP_BYTES: usize = 128 << 20;
/// The most blocks kept free at once.
const SLOTS: usize = 32;
/// Alignments above this go straight to the system allocator (up to it, System is malloc).
const MAX_ALIGN: usize = 16;

/// The class of a large size: the next of 4, 5, 6, 7 times a power of two at or above it.
fn class(size: usize) -> usize {
    let top = usize::BITS - 1 - size.leading_zeros(); // size >= 2^top
    let quarter = 1usize << (top - 2);
    size.div_ceil(quarter).saturating_mul(quarter)
}

struct Kept {
    /// (class, block) of the free blocks kept, oldest first; class 0 is an empty slot
    slots: [(usize, usize); SLOTS],
    bytes: usize,
}

pub struct KeepLarge {
    kept: Mutex<Kept>,
}

impl KeepLarge {
    pub const fn new() -> Self {
        KeepLarge { kept: Mutex::new(Kept { slots: [(0, 0); SLOTS], bytes: 0 }) }
    }

    fn is_large(layout: &Layout) -> bool {
        layout.size() >= LARGE && layout.align() <= MAX_ALIGN
    }

    /// A kept block of this class, if any.
    fn take(&self, class: usize) -> Option<*mut u8> {
        let mut k = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let i = k.slots.iter().position(|&(c, _)| c == class)?;
        let (_, p) = k.slots[i];
        k.slots.copy_within(i + 1.., i);
        k.slots[SLOTS - 1] = (0, 0);
        k.bytes -= class;
        Some(p as *mut u8)
    }

    /// Keep a freed block, giving back the oldest kept ones to make room; false when it
    /// is not kept (too big to keep): then the caller frees it.
    fn keep(&self, class: usize, p: *mut u8) -> bool {
        if class > KEEP_BYTES / 2 {
            return false;
        }
        let mut back = [(0usize, 0usize); SLOTS];
        let mut n_back = 0;
        {
            let mut k = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            while k.slots[SLOTS - 1].0 != 0 || k.bytes + class > KEEP_BYTES {
                let oldest = k.slots[0];
                k.slots.copy_within(1.., 0);
                k.slots[SLOTS - 1] = (0, 0);
                k.bytes -= oldest.0;
                back[n_back] = oldest;
                n_back += 1;
            }
            let free = k.slots.iter().position(|&(c, _)| c == 0).expect("a slot was made free");
            k.slots[free] = (class, p as usize);
            k.bytes += class;
        }
        for &(c, q) in &back[..n_back] {
            // SAFETY: each was allocated by System with this class size and an alignment
            // of at most MAX_ALIGN; System's dealloc ignores nothing but the size and align
            unsafe { System.dealloc(q as *mut u8, Layout::from_size_align_unchecked(c, MAX_ALIGN)) };
        }
        true
    }
}

impl Default for KeepLarge {
    fn default() -> Self {
        Self::new()
    }
}

// Blocks of the large classes are always allocated from System with MAX_ALIGN, whatever
// alignment (<= MAX_ALIGN) was asked, so that any kept block serves any such request.
unsafe impl GlobalAlloc for KeepLarge {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Self::is_large(&layout) {
            return System.alloc(layout);
        }
        let c = class(layout.size());
        match self.take(c) {
            Some(p) => p,
            None => System.alloc(Layout::from_size_align_unchecked(c, MAX_ALIGN)),
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Self::is_large(&layout) {
            return System.alloc_zeroed(layout);
        }
        let c = class(layout.size());
        match self.take(c) {
            Some(p) => {
                std::ptr::write_bytes(p, 0, layout.size());
                p
            }
            // fresh pages come zeroed from the kernel: calloc does not touch them
            None => System.alloc_zeroed(Layout::from_size_align_unchecked(c, MAX_ALIGN)),
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if !Self::is_large(&layout) {
            return System.dealloc(p, layout);
        }
        let c = class(layout.size());
        if !self.keep(c, p) {
            System.dealloc(p, Layout::from_size_align_unchecked(c, MAX_ALIGN));
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = Layout::from_size_align_unchecked(new_size, layout.align());
        match (Self::is_large(&layout), Self::is_large(&new)) {
            (false, false) => System.realloc(p, layout, new_size),
            (true, true) if class(layout.size()) == class(new_size) => p,
            _ => {
                let q = self.alloc(new);
                if !q.is_null() {
                    std::ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                    self.dealloc(p, layout);
                }
                q
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_their_sizes_with_at_most_a_quarter_of_slack() {
        for size in [LARGE, LARGE + 1, 3 << 20, (3 << 20) + 5, 1024 * 768 * 4, usize::MAX / 4] {
            let c = class(size);
            assert!(c >= size && c - size <= size / 4, "{size} -> {c}");
            assert_eq!(class(c), c);
        }
    }

    #[test]
    fn a_freed_block_is_handed_out_again_and_the_keep_is_bounded() {
        let a = KeepLarge::new();
        let l = Layout::from_size_align(3 << 20, 8).unwrap();
        unsafe {
            let p = a.alloc(l);
            p.write_bytes(7, l.size());
            a.dealloc(p, l);
            let q = a.alloc_zeroed(Layout::from_size_align(3 << 20, 16).unwrap());
            assert_eq!(p, q);
            assert!(std::slice::from_raw_parts(q, l.size()).iter().all(|&b| b == 0));
            let r = a.realloc(q, l, (3 << 20) - 100); // the same class
            assert_eq!(r, q);
            a.dealloc(r, Layout::from_size_align((3 << 20) - 100, 8).unwrap());
            // more than the keep holds: the oldest go back, the bound holds
            let big = Layout::from_size_align(40 << 20, 8).unwrap();
            let blocks: Vec<_> = (0..5).map(|_| a.alloc(big)).collect();
            for b in blocks {
                a.dealloc(b, big);
            }
            let k = a.kept.lock().unwrap();
            assert!(k.bytes <= KEEP_BYTES);
        }
    }
}
