//! A counting global allocator for tests and benchmarks that must prove the hot path does not
//! allocate. It forwards to the system allocator and counts, per thread, how many allocations
//! (and reallocations) the thread made.
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: nic::alloc_count::CountingAlloc = nic::alloc_count::CountingAlloc;
//! let before = nic::alloc_count::thread_allocations();
//! hot_loop();
//! assert_eq!(nic::alloc_count::thread_allocations() - before, 0);
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

/// Counts allocations of the current thread, delegating to [`System`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

#[inline]
fn bump() {
    // `try_with`: during thread teardown the slot may be gone; then we simply do not count.
    let _ = COUNT.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the same arguments, which upholds the
// GlobalAlloc contract; counting touches only a const-initialised thread-local (no allocation).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations (including reallocations) made so far by the calling thread, when
/// [`CountingAlloc`] is the global allocator (always 0 otherwise).
pub fn thread_allocations() -> u64 {
    COUNT.with(|c| c.get())
}
