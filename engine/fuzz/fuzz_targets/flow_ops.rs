//! `flow_ops`: arbitrary bytes → a flow table's shape (capacity, hash mask, seed, start time)
//! and a sequence of operations (insert, lookup, burst lookup, remove, remove by index, touch,
//! class change, value change, clock advance, expire), each applied to the table and to the
//! `HashMap` model of `engine::flow::model`, which checks the table after every operation:
//! lookups and counters exactly, refusals against an exact placement oracle, reclaims and
//! expiry against the timeouts and the sweep bound. The property is "the table matches its
//! model, whatever the sequence".
//!
//! Run (from `engine/fuzz`, nightly features through RUSTC_BOOTSTRAP on the stable toolchain):
//!
//! ```sh
//! cargo install cargo-fuzz
//! cd engine/fuzz
//! RUSTC_BOOTSTRAP=1 cargo fuzz run flow_ops corpus/flow_ops -- -max_len=4096 -max_total_time=60
//! ```
//!
//! Ops are decoded by `Op::decode` (one tag byte, then little-endian `u16` arguments), so no
//! `arbitrary` dependency is needed; a few bytes already make a meaningful sequence.

#![no_main]

use engine::flow::model::{Checker, Op};
use libfuzzer_sys::fuzz_target;

/// Hash masks: all bits, then ever more collisions (see `FlowTable::with_hash_mask`).
const MASKS: [u64; 5] = [u64::MAX, 0x0007_0000_0000_0007, 0x0001_0000_0000_0003, 0x0003_0000_0000_0001, 0];

fuzz_target!(|data: &[u8]| {
    let Some((head, mut ops)) = data.split_first_chunk::<4>() else { return };
    let capacity = usize::from(head[0]) + 1;
    let mask = MASKS[usize::from(head[1]) % MASKS.len()];
    let seed = u64::from(head[2]);
    // Half the runs start just before the 32-bit tick counter wraps.
    let start_tick = if head[3] & 1 == 1 { u32::MAX - u32::from(head[3]) * 8 } else { 1 << 20 };
    let mut c = Checker::new(capacity, mask, seed, start_tick);
    while let Some(op) = Op::decode(&mut ops) {
        c.apply(&op);
    }
    c.check_all();
});
