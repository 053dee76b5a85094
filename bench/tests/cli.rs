//! The benchmark binary's command line: --help prints help and runs nothing
//! (no root needed, no CSV directory created, back at once).

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn help_prints_help_and_runs_nothing() {
    let dir = std::env::temp_dir().join(format!("xdpd-bench-help-{}", std::process::id()));
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_xdpd-bench"))
        .args(["--help", "--csv"])
        .arg(&dir)
        .output()
        .expect("run xdpd-bench");
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Usage: xdpd-bench") && help.contains("dataplane"), "{help}");
    assert!(!dir.exists(), "--help created {}", dir.display());
    assert!(started.elapsed() < Duration::from_secs(10), "--help took {:?}", started.elapsed());
    let bad = Command::new(env!("CARGO_BIN_EXE_xdpd-bench")).arg("nosuchsection").output().expect("run xdpd-bench");
    assert_eq!(bad.status.code(), Some(2), "an unknown section is a usage error: {bad:?}");
}
