//! xdpd benchmarks. Run as root: `cargo run --release -p xdpd-bench`.
//!
//! data plane: ns per packet of linked chains of trivially passing members,
//! measured with BPF_PROG_TEST_RUN on a 64-byte packet (the kernel's own
//! average over `repeat` runs), best of several rounds.

use xdpd::engine::object::{load, DEFAULT_MAX_OBJECT_SIZE};
use xdpd::engine::{AddOptions, Chain, LinkMode};

const REPEAT: u32 = 1_000_000;
const ROUNDS: usize = 5;

fn chain_of(members: usize, mode: LinkMode) -> Chain {
    let bytes = xdpd_bpf::object_bytes("basic");
    let mut chain = Chain::unattached().with_link_mode(mode);
    for i in 0..members {
        let program = load(&bytes, Some("xdp_pass"), DEFAULT_MAX_OBJECT_SIZE).expect("load xdp_pass");
        chain.add(program, AddOptions { priority: Some(i as i32), ..Default::default() }).expect("link");
    }
    chain
}

fn ns_per_packet(chain: &Chain) -> u32 {
    let packet = [0u8; 64];
    let program = chain.program().expect("loaded");
    (0..ROUNDS).map(|_| program.test_run(&packet, REPEAT).expect("BPF_PROG_TEST_RUN").duration_ns).min().unwrap_or(0)
}

fn main() {
    let sizes = [1usize, 2, 5, 10, 20, 50, 100];
    println!("data plane: chains of trivially passing members");
    println!("BPF_PROG_TEST_RUN, 64-byte packet, repeat {REPEAT}, best of {ROUNDS}");
    println!();
    println!("| members | inline ns/packet | inline marginal ns/member | call ns/packet | call marginal ns/member |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    let mut base = [None, None];
    for n in sizes {
        let mut row = format!("| {n} |");
        for (k, mode) in [LinkMode::Inline, LinkMode::Call].into_iter().enumerate() {
            let chain = chain_of(n, mode);
            let ns = ns_per_packet(&chain);
            let base_ns = *base[k].get_or_insert(ns);
            let marginal =
                if n > 1 { format!("{:.2}", (ns as f64 - base_ns as f64) / (n - 1) as f64) } else { "-".into() };
            row += &format!(" {ns} | {marginal} |");
        }
        println!("{row}");
    }
}
