//! [`FlowCounters`]: what a flow table has done, as plain integers owned by the table's lcore.
//!
//! The fields are declared once, with their names, in the `counters!` invocation below; the
//! struct, [`FlowCounters::NAMES`] and [`FlowCounters::fields`] all come from it.

macro_rules! counters {
    ($(#[$meta:meta])* $name:ident { $($(#[doc = $doc:literal])+ $field:ident,)+ }) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[doc = $doc])+ pub $field: u64,)+
        }

        impl $name {
            /// Field names, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field)),+];

            /// `(name, value)` of every field, in declaration order (for reports).
            pub fn fields(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [$((stringify!($field), self.$field)),+].into_iter()
            }

            /// The same with every name prefixed `flow_`, for reports that list the table's
            /// counters beside their owner's.
            pub fn fields_prefixed(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [$((concat!("flow_", stringify!($field)), self.$field)),+].into_iter()
            }
        }
    };
}

counters! {
    /// Counters of one [`FlowTable`](super::FlowTable) (a copy, from
    /// [`FlowTable::counters`](super::FlowTable::counters)).
    ///
    /// They add up: `lookups == hits + misses`; every insert attempt is one of `inserts`,
    /// `exists` or `full`; and `inserts == len + removed + expired` (an entry leaves the table
    /// through `remove` or through `expire`'s output, nowhere else).
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    FlowCounters {
        /// Keys looked up (`lookup` and each key of `lookup_burst`).
        lookups,
        /// Lookups that found the key.
        hits,
        /// Lookups that did not.
        misses,
        /// Entries created by `insert`.
        inserts,
        /// Inserts refused because the key was already in the table.
        exists,
        /// Inserts refused for lack of room: no free entry (the table holds `capacity`), or
        /// both candidate buckets full with nothing expired in them and no displacement path
        /// found (that second case is also counted in `full_buckets`).
        full,
        /// Of `full`: refused with free entries left, for lack of a bucket slot.
        full_buckets,
        /// Entries moved to their other bucket to make room for an insert (cuckoo
        /// displacement; an entry's `FlowIx` does not change when it moves).
        displaced,
        /// Entries handed to the caller by `expire`: found past their timeout by the sweep, or
        /// reclaimed by an insert earlier (see `reclaimed`).
        expired,
        /// Entries past their timeout that an insert found in its full candidate buckets and
        /// unlinked on the spot to take their slot. Such an entry can no longer be looked up,
        /// but it keeps its `FlowIx` and value (`get` still works) until `expire` hands it to
        /// the caller (then it counts in `expired`) or the caller removes it (`removed`). No
        /// live entry is ever evicted.
        reclaimed,
        /// Entries removed by the caller (`remove`, `try_remove`).
        removed,
        /// Entries in use now (occupancy), including reclaimed ones not yet handed back.
        len,
    }
}
