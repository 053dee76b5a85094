//! Live traffic on a veth pair: a BPF_PROG_TEST_RUN live-frames generator in
//! one namespace transmits UDP frames out of veth-a; the chain on veth-b
//! (native XDP) ends in a member counting every packet. Packets per second
//! are counted at the receiver, never at the generator.

use std::os::fd::{AsFd, AsRawFd};
use std::time::Instant;

use xdpd::engine::object::{load, DEFAULT_MAX_OBJECT_SIZE};
use xdpd::engine::{AddOptions, Chain};
use xdpd_tests::netns::VethPair;

use crate::table::Table;

const FRAMES: u32 = 4_000_000;

fn mac(ns: &str, dev: &str) -> [u8; 6] {
    let text = std::fs::read_to_string(format!("/sys/class/net/{dev}/address")).ok();
    let text = text.unwrap_or_else(|| {
        let out = std::process::Command::new("ip").args(["-n", ns, "-br", "link", "show", dev]).output().expect("ip");
        String::from_utf8_lossy(&out.stdout).split_whitespace().nth(2).unwrap_or_default().to_string()
    });
    let mut m = [0u8; 6];
    for (i, part) in text.trim().split(':').take(6).enumerate() {
        m[i] = u8::from_str_radix(part, 16).unwrap_or(0);
    }
    m
}

fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]) as u32).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn frame(pair: &VethPair) -> Vec<u8> {
    let mut p = crate::dataplane::udp_packet();
    p[0..6].copy_from_slice(&VethPair::run_in(&pair.ns_b, || mac(&pair.ns_b, &pair.dev_b)));
    p[6..12].copy_from_slice(&VethPair::run_in(&pair.ns_a, || mac(&pair.ns_a, &pair.dev_a)));
    p[26..30].copy_from_slice(&pair.addr_a.octets());
    p[30..34].copy_from_slice(&pair.addr_b.octets());
    p[36..38].copy_from_slice(&9998u16.to_be_bytes());
    let sum = ipv4_checksum(&p[14..34]);
    p[24..26].copy_from_slice(&sum.to_be_bytes());
    p
}

/// Sends FRAMES copies of `frame` out of `dev` in `ns` with the live-frames mode.
fn generate(ns: &str, dev: &str, frame: &[u8]) {
    VethPair::run_in(ns, || {
        let mut open =
            libbpf_rs::ObjectBuilder::default().open_file(xdpd_bpf::object_path("bench")).expect("open bench.o");
        for mut p in open.progs_mut() {
            let keep = p.name() == "gen_tx";
            p.set_autoload(keep);
        }
        let object = open.load().expect("load generator");
        let prog = object.progs().find(|p| p.name() == "gen_tx").expect("gen_tx");
        let name = std::ffi::CString::new(dev).expect("name");
        // SAFETY: NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        let mut ctx =
            libbpf_sys::xdp_md { ingress_ifindex: ifindex, data_end: frame.len() as u32, ..Default::default() };
        let mut opts = libbpf_sys::bpf_test_run_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as _,
            data_in: frame.as_ptr().cast(),
            data_size_in: frame.len() as u32,
            ctx_in: (&mut ctx as *mut libbpf_sys::xdp_md).cast(),
            ctx_size_in: std::mem::size_of::<libbpf_sys::xdp_md>() as u32,
            repeat: FRAMES as i32,
            flags: libbpf_sys::BPF_F_TEST_XDP_LIVE_FRAMES,
            batch_size: 64,
            ..Default::default()
        };
        // SAFETY: every pointer in opts is valid for the call.
        let ret = unsafe { libbpf_sys::bpf_prog_test_run_opts(prog.as_fd().as_raw_fd(), &mut opts) };
        assert_eq!(ret, 0, "live-frames generator: {}", std::io::Error::last_os_error());
    });
}

pub fn run() -> Table {
    let mut t = Table::new(
        "live",
        format!("live traffic: {FRAMES} frames from a live-frames generator through the chain on a veth pair (native XDP), counted at the receiver"),
        &["members", "received", "seconds", "Mpps at the receiver"],
    );
    for n in [1usize, 10] {
        let pair = VethPair::new();
        let pins = xdpd_tests::PinDir::new(&format!("bench-live-{n}"));
        let ifindex = VethPair::ifindex(&pair.ns_b, &pair.dev_b);
        let frame = frame(&pair);
        let (received, seconds) = VethPair::run_in(&pair.ns_b, || {
            let mut chain = Chain::for_interface(ifindex, &pins.0);
            let bytes = xdpd_bpf::object_bytes("basic");
            for i in 0..n - 1 {
                let p = load(&bytes, Some("xdp_pass"), DEFAULT_MAX_OBJECT_SIZE).expect("load");
                chain.add(p, AddOptions { priority: Some(i as i32), ..Default::default() }).expect("add");
            }
            let counter =
                load(&xdpd_bpf::object_bytes("bench"), Some("count_all"), DEFAULT_MAX_OBJECT_SIZE).expect("load");
            let id = chain.add(counter, AddOptions { priority: Some(1000), ..Default::default() }).expect("add");
            let start = Instant::now();
            generate(&pair.ns_a, &pair.dev_a, &frame);
            std::thread::sleep(std::time::Duration::from_millis(100));
            let seconds = start.elapsed().as_secs_f64() - 0.1;
            let map = chain.member(id).and_then(|m| m.program.map("packets").map(|m| m.fd.try_clone())).expect("map");
            let received = u64::from_ne_bytes(
                xdpd_tests::map_lookup(map.expect("dup").as_fd(), 0, 8).try_into().expect("8 bytes"),
            );
            chain.clear().expect("detach");
            (received, seconds)
        });
        t.row(vec![
            n.to_string(),
            received.to_string(),
            format!("{seconds:.2}"),
            format!("{:.2}", received as f64 / seconds / 1e6),
        ]);
    }
    t
}
