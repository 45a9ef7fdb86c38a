//! Ctrl-C and SIGTERM during a benchmark: the first one asks the harness to stop at the next
//! trial boundary, where [`check`] returns an error that unwinds through the trial's guards —
//! namespaces, veths and sysctls are put back by their `Drop`s (a process killed by the default
//! action would leave them). A second signal ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Result};

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs the handlers (once; later calls do nothing). Errors name the signal.
pub fn install() -> Result<()> {
    let flag = Arc::new(AtomicBool::new(false));
    if STOP.set(flag.clone()).is_err() {
        return Ok(());
    }
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Order matters: the conditional shutdown sees the flag as it was before this signal.
        signal_hook::flag::register_conditional_shutdown(sig, 1, flag.clone())
            .and_then(|_| signal_hook::flag::register(sig, flag.clone()))
            .map_err(|e| anyhow::anyhow!("installing the handler of signal {sig}: {e}"))?;
    }
    Ok(())
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    STOP.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

/// An error once a stop was asked for: call it where a trial begins.
pub fn check() -> Result<()> {
    if requested() {
        bail!("interrupted (SIGINT/SIGTERM): stopped between trials, everything this run set up is removed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_turns_into_an_error_at_the_next_check() {
        install().unwrap();
        install().unwrap();
        assert!(check().is_ok());
        // A real SIGTERM to this process: the handler records it instead of ending the process.
        signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
        let e = check().unwrap_err().to_string();
        assert!(e.contains("interrupted"), "{e}");
        STOP.get().unwrap().store(false, Ordering::Relaxed);
    }
}
