//! `apps`: the xskd apps and the daemon.
#![forbid(unsafe_code)]
