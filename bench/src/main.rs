//! xdpd benchmarks (not tests): print tables and write them as CSV.
//!
//! Run as root: `cargo run --release -p xdpd-bench -- [SECTION...] [--csv DIR]`
//! with SECTION among `dataplane`, `counting`, `verify`, `segments`, `katran`, `live`, `control`, `flood`, `scale`, `netns`, `compat`
//! (default: all).
//! See BENCHMARKS.md for what each measures and the numbers of one run.

mod compat;
mod control;
mod dataplane;
mod flood;
mod live;
mod netns;
mod scale;
mod segments;
mod table;

use clap::{Parser, ValueEnum};

/// xdpd benchmarks: data plane (inline vs call vs tail calls), verdict counting,
/// verification, segmented chains, live traffic, the control plane and many interfaces. Prints tables and writes
/// them as CSV. Needs root (BPF, network namespaces). See BENCHMARKS.md.
#[derive(Debug, Parser)]
#[command(name = "xdpd-bench", version, max_term_width = 100)]
struct Args {
    /// Sections to run (default: all)
    #[arg(value_enum, value_name = "SECTION")]
    sections: Vec<Section>,

    /// Interface counts of the scale section
    #[arg(long, value_name = "N,...", value_delimiter = ',', default_values_t = [100usize, 1000])]
    interfaces: Vec<usize>,

    /// Counts of followed network namespaces of the netns section (two veth interfaces each)
    #[arg(long, value_name = "N,...", value_delimiter = ',', default_values_t = [100usize])]
    namespaces: Vec<usize>,

    /// Directory for the CSV files
    #[arg(long, value_name = "DIR", default_value = "target/bench")]
    csv: std::path::PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Section {
    Dataplane,
    Counting,
    Hold,
    Verify,
    Segments,
    Katran,
    Live,
    Control,
    Flood,
    Scale,
    Netns,
    Compat,
}

fn main() {
    // --help and --version print and exit here, before anything runs.
    let args = Args::parse();
    let csv_dir = args.csv;
    let wants = |s: Section| args.sections.is_empty() || args.sections.contains(&s);
    if let Err(e) = std::fs::create_dir_all(&csv_dir) {
        eprintln!("cannot create {}: {e}", csv_dir.display());
    }
    xdpd_tests::require_root();
    if wants(Section::Dataplane) {
        for t in dataplane::run() {
            t.print_and_save(&csv_dir);
        }
    }
    if wants(Section::Counting) {
        dataplane::counting().print_and_save(&csv_dir);
    }
    if wants(Section::Hold) {
        dataplane::hold().print_and_save(&csv_dir);
    }
    if wants(Section::Verify) {
        dataplane::verification().print_and_save(&csv_dir);
    }
    if wants(Section::Segments) {
        segments::dataplane().print_and_save(&csv_dir);
        segments::changes().print_and_save(&csv_dir);
    }
    if wants(Section::Katran) {
        segments::katran().print_and_save(&csv_dir);
    }
    if wants(Section::Live) {
        live::run().print_and_save(&csv_dir);
    }
    if wants(Section::Flood) {
        flood::run().print_and_save(&csv_dir);
    }
    if wants(Section::Control) {
        for t in control::run() {
            t.print_and_save(&csv_dir);
        }
    }
    if wants(Section::Scale) {
        scale::run_all(&args.interfaces).print_and_save(&csv_dir);
    }
    if wants(Section::Netns) {
        netns::run_all(&args.namespaces).print_and_save(&csv_dir);
    }
    if wants(Section::Compat) {
        compat::run().print_and_save(&csv_dir);
    }
}
