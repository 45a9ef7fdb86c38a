//! `engine`: typed wire views, batches and verdicts, the App trait, the pinned poll-mode loop.
#![forbid(unsafe_code)]

pub mod wire;
