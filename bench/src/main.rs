//! xdpd benchmarks (not tests): print tables and write them as CSV.
//!
//! Run as root: `cargo run --release -p xdpd-bench -- [SECTION...] [--csv DIR]`
//! with SECTION among `dataplane`, `counting`, `verify`, `live`, `control` (default: all).
//! See BENCHMARKS.md for what each measures and the numbers of one run.

mod control;
mod dataplane;
mod live;
mod table;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let csv_dir = args
        .iter()
        .position(|a| a == "--csv")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("target/bench"));
    let sections: Vec<&str> =
        args.iter().map(String::as_str).filter(|a| !a.starts_with("--") && Some(*a) != csv_dir.to_str()).collect();
    let all = sections.is_empty();
    let wants = |name: &str| all || sections.contains(&name);
    if let Err(e) = std::fs::create_dir_all(&csv_dir) {
        eprintln!("cannot create {}: {e}", csv_dir.display());
    }
    xdpd_tests::require_root();
    if wants("dataplane") {
        for t in dataplane::run() {
            t.print_and_save(&csv_dir);
        }
    }
    if wants("counting") {
        dataplane::counting().print_and_save(&csv_dir);
    }
    if wants("verify") {
        dataplane::verification().print_and_save(&csv_dir);
    }
    if wants("live") {
        live::run().print_and_save(&csv_dir);
    }
    if wants("control") {
        for t in control::run() {
            t.print_and_save(&csv_dir);
        }
    }
}
