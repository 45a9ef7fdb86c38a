//! The bounded expiry sweep.

use super::timeout::{is_expired, tick};
use super::{FlowKey, FlowTable};
use crate::time::Instant;

impl<V> FlowTable<V> {
    /// Hands back expired entries: moves them out of the table into `out`, and returns how many
    /// it moved.
    ///
    /// First the entries that inserts reclaimed since the last call (all of them, whatever the
    /// budget), then a sweep of at most `budget` consecutive entry slots from a cursor kept
    /// across calls (wrapping at `capacity`), taking every linked entry past its timeout at
    /// `now`. A full sweep of the table takes `ceil(capacity / budget)` calls.
    ///
    /// `out` is filled only up to its capacity: **the caller preallocates it**
    /// (`Vec::with_capacity`) and empties it after each call. When it is full, the call stops
    /// early (the cursor stays where it stopped; the rest comes next time), so nothing
    /// allocates. With a capacity of at least `budget`, plus the reclaimed entries
    /// ([`pending_reclaimed`](Self::pending_reclaimed)), a call never stops early.
    pub fn expire(&mut self, now: Instant, budget: usize, out: &mut Vec<(FlowKey, V)>) -> usize {
        let start = out.len();
        while out.len() < out.capacity() {
            let Some(ix) = self.reclaimed.pop() else { break };
            out.push(self.release(ix));
            self.counters.expired += 1;
        }
        let now = tick(now);
        let cap = self.entries.len();
        for _ in 0..budget.min(cap) {
            if out.len() == out.capacity() {
                break;
            }
            let ix = self.cursor;
            self.cursor = if ix + 1 == cap { 0 } else { ix + 1 };
            let expired = match &self.entries[ix] {
                Some(e) => e.linked && is_expired(e.last_seen, self.timeout_ticks[e.class as usize], now),
                None => false,
            };
            if expired {
                let key = self.entries[ix].as_ref().map(|e| e.key).expect("checked above");
                self.unlink(&key, ix as u32);
                out.push(self.release(ix as u32));
                self.counters.expired += 1;
            }
        }
        out.len() - start
    }

    /// The entry slot the next sweep starts at.
    pub fn sweep_cursor(&self) -> usize {
        self.cursor
    }
}
