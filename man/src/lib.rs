//! Where the build put the generated man pages and completions: `make` copies
//! them from here, and the tests read them.

/// The directory holding `man/*.8`, `man/*.5` and `completions/{xdpctl.bash,_xdpctl}`.
pub const OUT_DIR: &str = env!("OUT_DIR");

/// The path of a generated file, e.g. `generated("man/xdpctl.8")`.
pub fn generated(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(OUT_DIR).join(relative)
}
