//! A test-only crash switch: with `XDPD_TEST_CRASH_AT=<step>` in its
//! environment the service kills itself with SIGKILL when a change reaches
//! that step, so the fault-injection tests can prove that a crash at every
//! step of a change leaves the record, the kernel and the bus in agreement.
//! Unset (always, outside tests) it does nothing. The steps of a change, in order:
//!
//! - `stored`: the object is in the state directory, nothing else happened;
//! - `pinned`: the new program's maps are pinned (before the record);
//! - `prepared`: the next record is written under its temporary name;
//! - `swapped`: the kernel runs the new chain, the record is still the old one;
//! - `committed`: the record names the new chain, the caller has no answer yet.

use std::sync::OnceLock;

/// The environment variable naming the step to crash at.
pub const ENV: &str = "XDPD_TEST_CRASH_AT";

/// Dies with SIGKILL if the crash switch names `step`.
pub fn at(step: &str) {
    static STEP: OnceLock<Option<String>> = OnceLock::new();
    if STEP.get_or_init(|| std::env::var(ENV).ok()).as_deref() != Some(step) {
        return;
    }
    tracing::warn!(step, "{ENV}: killing the service");
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
    // kill(1) missing: still no orderly exit.
    std::process::abort();
}
