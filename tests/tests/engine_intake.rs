//! Intake of application objects: what is accepted, and a precise error for
//! everything else, with the running chain untouched.

use std::io::{Seek, SeekFrom};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use xdpd::engine::object::{load, load_fd, read_fd, DEFAULT_MAX_OBJECT_SIZE};
use xdpd::engine::{AddOptions, Chain, Error};
use xdpd_tests::memfd_with;
use xdpd_tests::packet::{probe_packet, trace};
use xdpd_tests::require_root;

/// A chain with one member and a way to check it did not change.
struct Witness {
    chain: Chain,
}

impl Witness {
    fn new() -> Witness {
        let mut chain = Chain::unattached();
        chain.add(xdpd_tests::load("probe", "probe0"), AddOptions::default()).unwrap();
        Witness { chain }
    }

    fn state(&self) -> (u64, u32, Vec<u64>, Vec<u8>) {
        let prog = self.chain.program().unwrap();
        let out = prog.test_run(&probe_packet(&[]), 1).unwrap();
        (self.chain.generation(), prog.info.id, self.chain.members().iter().map(|m| m.id).collect(), trace(&out.data))
    }

    /// Feeds `result` to the chain the way a caller would; checks nothing changed.
    fn refuse(&mut self, result: Result<xdpd::engine::LoadedProgram, Error>) -> Error {
        let before = self.state();
        let err = match result {
            Ok(program) => self.chain.add(program, AddOptions::default()).expect_err("must be refused"),
            Err(e) => e,
        };
        assert_eq!(self.state(), before, "a refused request changed the chain");
        err
    }
}

fn invalid(err: &Error, needle: &str) {
    assert!(
        matches!(err, Error::InvalidObject(m) if m.contains(needle)),
        "expected InvalidObject with '{needle}', got: {err}"
    );
}

const CAP: usize = DEFAULT_MAX_OBJECT_SIZE;

#[test]
fn malformed_objects_get_precise_errors() {
    require_root();
    let mut w = Witness::new();
    let probe = xdpd_bpf::object_bytes("probe");

    invalid(&w.refuse(load(b"", None, CAP)), "empty");
    invalid(&w.refuse(load(b"hello, I am not an object", None, CAP)), "not an ELF file");
    invalid(&w.refuse(load(&probe[..40], None, CAP)), "truncated ELF header");
    invalid(&w.refuse(load(&probe[..probe.len() / 2], Some("probe0"), CAP)), "truncated");
    let mut garbage_sections = probe.clone();
    garbage_sections[40..48].copy_from_slice(&u64::MAX.to_le_bytes()); // e_shoff
    invalid(&w.refuse(load(&garbage_sections, Some("probe0"), CAP)), "section headers");
    let native = std::fs::read("/bin/true").unwrap();
    invalid(&w.refuse(load(&native, None, CAP)), "x86-64");
    invalid(&w.refuse(load(&xdpd_bpf::object_bytes("tc"), None, CAP)), "no XDP program");
    invalid(&w.refuse(load(&xdpd_bpf::object_bytes("tc"), Some("tc_pass"), CAP)), "not an XDP program");
    invalid(&w.refuse(load(&probe, Some("nope"), CAP)), "no program named 'nope'");
    invalid(&w.refuse(load(&probe, None, CAP)), "16 XDP programs");
    invalid(&w.refuse(load(&xdpd_bpf::object_bytes("badconfig"), None, CAP)), "XDP_BOGUS");
    let err = w.refuse(load(&probe, Some("probe0"), 1000));
    assert!(matches!(err, Error::LimitExceeded(_)), "{err}");
}

#[test]
fn a_program_the_verifier_refuses_returns_its_own_log() {
    require_root();
    let mut w = Witness::new();
    let err = w.refuse(load(&xdpd_bpf::object_bytes("unverifiable"), None, CAP));
    match err {
        Error::VerifierRejected { program, summary, log } => {
            assert_eq!(program, "unchecked_read");
            assert!(summary.contains("outside of the packet"), "{summary}");
            // Instruction numbers are the program's own: it is 3 instructions long.
            assert!(log.contains("1: (71) r0 = *(u8 *)(r1 +20)"), "{log}");
        }
        other => panic!("expected VerifierRejected, got {other}"),
    }
}

#[test]
fn descriptors_regular_files_and_memfds_only() {
    require_root();
    let mut w = Witness::new();
    let probe = xdpd_bpf::object_bytes("probe");

    // A memfd whose position is at its end: read from offset 0 all the same.
    let mut memfd = memfd_with(&probe);
    memfd.seek(SeekFrom::End(0)).unwrap();
    let program = load_fd(memfd.as_fd(), Some("probe3"), CAP).unwrap();
    assert_eq!(program.name, "probe3");

    let dir = tempdir();
    let fifo = dir.join("fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo/open on a path we own; O_NONBLOCK so opening never waits.
    let fifo_fd = unsafe {
        assert_eq!(libc::mkfifo(path.as_ptr(), 0o600), 0);
        OwnedFd::from_raw_fd(libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK))
    };
    invalid(&w.refuse(load_fd(fifo_fd.as_fd(), None, CAP)), "pipe or FIFO");
    let (sock, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    invalid(&w.refuse(load_fd(sock.as_fd(), None, CAP)), "socket");
    let d = std::fs::File::open(&dir).unwrap();
    invalid(&w.refuse(load_fd(d.as_fd(), None, CAP)), "directory");
    let zero = std::fs::File::open("/dev/zero").unwrap();
    invalid(&w.refuse(load_fd(zero.as_fd(), None, CAP)), "character device");

    // Over the cap: refused from its size, before reading.
    let big = memfd_with(&vec![0u8; 4096]);
    let err = w.refuse(read_fd(big.as_fd(), 1000).map(|_| unreachable!()));
    assert!(matches!(err, Error::LimitExceeded(_)), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("xdpd-intake-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn intake_reports_what_the_program_is() {
    require_root();
    let program = xdpd_tests::load("features", "subprogs");
    assert_eq!(program.section, "xdp");
    assert_eq!(program.license, "GPL");
    assert_eq!(program.sha256.len(), 64);
    assert_eq!(program.kernel_tag.len(), 16);
    assert!(!program.frags);
    assert!(xdpd_tests::load("basic", "xdp_pass_frags").frags);
    let spin = xdpd_tests::load("features", "spinlock");
    assert!(spin.map("locked").is_some());
}

#[test]
fn users_programs_are_verified_without_the_services_privileges() {
    use xdpd::engine::object::{load_with, Privilege};
    require_root();
    let leak = xdpd_bpf::object_bytes("leak");
    // The service's own privileges would let a kernel address into a map...
    assert!(load_with(&leak, None, CAP, None, Privilege::Full).is_ok());
    // ...a user's program may not store one where GetMaps hands it out.
    let err = load_with(&leak, None, CAP, None, Privilege::User).unwrap_err();
    assert!(matches!(&err, Error::VerifierRejected { summary, .. } if summary.contains("leaks addr")), "{err}");
    // Programs an unprivileged loader may load verify as users' programs, and
    // a chain holding one is verified the same way (with Spectre hardening).
    let mut chain = Chain::unattached();
    let counter = load_with(&xdpd_bpf::object_bytes("udp"), Some("udp_count"), CAP, None, Privilege::User).unwrap();
    chain.add(counter, AddOptions { privilege: Privilege::User, ..Default::default() }).unwrap();
    chain.add(xdpd_tests::load("basic", "xdp_pass"), AddOptions::default()).unwrap();
    let out = chain.program().unwrap().test_run(&probe_packet(&[]), 1).unwrap();
    assert_eq!(out.retval, 2);
}

#[test]
fn legacy_section_names_load_as_xdp_the_way_libxdp_loads_them() {
    require_root();
    let legacy = xdpd_bpf::object_bytes("legacy");
    // SEC("prog") and SEC("xdp_drop_all"): libbpf knows neither; libxdp,
    // xdp-loader and `ip link` load both as XDP, and so does xdpd.
    let counted = load(&legacy, Some("legacy_prog"), CAP).unwrap();
    assert_eq!(counted.section, "prog");
    let drop = load(&legacy, Some("legacy_drop"), CAP).unwrap();
    assert_eq!(drop.section, "xdp_drop_all");
    // Two XDP programs now: one must be named, as for any object.
    invalid(&load(&legacy, None, CAP).unwrap_err(), "2 XDP programs (legacy_prog, legacy_drop)");
    let mut chain = Chain::unattached();
    chain.add(counted, AddOptions::default()).unwrap();
    let out = chain.program().unwrap().test_run(&probe_packet(&[]), 3).unwrap();
    assert_eq!(out.retval, 2, "XDP_PASS");
    let member = &chain.members()[0];
    assert_eq!(xdpd_tests::map_u64(&member.program, ".bss", 0, 8), 3, "the legacy program ran as a chain member");
    chain.add(drop, AddOptions::default()).unwrap();
    assert_eq!(chain.program().unwrap().test_run(&probe_packet(&[]), 1).unwrap().retval, 1, "XDP_DROP");
    // A section libbpf knows as another type stays refused, saying why.
    let err = load(&xdpd_bpf::object_bytes("tc"), Some("tc_pass"), CAP).unwrap_err();
    invalid(&err, "libbpf loads section 'tc' as sched_cls");
}

fn configured(globals: &[(&str, &str)], sizes: &[(&str, u32)]) -> Result<xdpd::engine::LoadedProgram, Error> {
    use xdpd::engine::object::{load_opts, LoadOptions};
    let config = xdpd::program::ObjectConfig {
        globals: globals.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        map_sizes: sizes.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        object_name: None,
    };
    let bytes = xdpd_bpf::object_bytes("skelconfig");
    load_opts(
        &bytes,
        &LoadOptions { max_size: CAP, config: Some(&config), object_name: Some("skelconfig"), ..Default::default() },
    )
}

/// `(key, value)` of every map entry is too much here: the max_entries the kernel gave the map.
fn max_entries(program: &xdpd::engine::LoadedProgram, map: &str) -> u32 {
    use std::os::fd::AsRawFd;
    let fd = program.map(map).unwrap_or_else(|| panic!("map {map}")).fd.as_raw_fd();
    let mut info = libbpf_sys::bpf_map_info::default();
    let mut len = std::mem::size_of::<libbpf_sys::bpf_map_info>() as u32;
    // SAFETY: a properly sized buffer.
    assert_eq!(unsafe { libbpf_sys::bpf_map_get_info_by_fd(fd, &mut info, &mut len) }, 0);
    info.max_entries
}

fn udp_to(port: u16) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 8];
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[14 + 9] = 17;
    f[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&port.to_be_bytes());
    f
}

#[test]
fn objects_are_configured_before_loading_as_skeletons_do() {
    require_root();
    let globals = [("enabled", "true"), ("drop_port", "9000"), ("bias", "-3"), ("mode", "2"), ("data_limit", "0x10")];
    let program = configured(&globals, &[("flows", 4096)]).unwrap();
    assert_eq!(max_entries(&program, "flows"), 4096);
    let mut chain = Chain::unattached();
    let id = chain.add(program, AddOptions::default()).unwrap();
    let run = |port| chain.program().unwrap().test_run(&udp_to(port), 1).unwrap().retval;
    assert_eq!((run(9000), run(9001)), (1, 2), "the configured port is dropped (XDP_DROP), others pass");
    let member = &chain.member(id).unwrap().program;
    let seen: Vec<u64> = (0..5).map(|k| xdpd_tests::map_u64(member, ".bss", 8 * k, 40)).collect();
    assert_eq!(seen, vec![1, 9000, (-3i64) as u64, 2, 16], "what the program was configured with");
    // Unconfigured: the object's own values.
    let plain = configured(&[], &[]).unwrap();
    assert_eq!(max_entries(&plain, "flows"), 16);
}

#[test]
fn a_configuration_the_object_cannot_take_is_refused_naming_the_variable_or_map() {
    require_root();
    let mut w = Witness::new();
    let refused = |w: &mut Witness, globals: &[(&str, &str)], sizes: &[(&str, u32)], needle: &str| match w
        .refuse(configured(globals, sizes))
    {
        Error::InvalidArgument(m) => assert!(m.contains(needle), "expected '{needle}' in: {m}"),
        other => panic!("expected InvalidArgument with '{needle}', got {other}"),
    };
    refused(&mut w, &[("drop_prt", "1")], &[], "no variable 'drop_prt' in .rodata, .data or .bss (the object has: ");
    refused(&mut w, &[("drop_port", "70000")], &[], "variable 'drop_port': 70000 is out of range for u16 (0..=65535)");
    refused(&mut w, &[("bias", "200")], &[], "variable 'bias': 200 is out of range for s8");
    refused(&mut w, &[("enabled", "2")], &[], "out of range for bool");
    refused(&mut w, &[("drop_port", "http")], &[], "variable 'drop_port': 'http' is not a number");
    refused(&mut w, &[("not_a_scalar", "1")], &[], "variable 'not_a_scalar' cannot be set: it is a struct");
    refused(&mut w, &[], &[("flow", 8)], "no map 'flow' to size (the object has: ");
    refused(&mut w, &[], &[("flows", 0)], "map 'flows': a map needs at least one entry");
    refused(&mut w, &[], &[("skelconf.bss", 8)], "map 'skelconf.bss' holds global variables");
}

#[test]
fn configured_map_sizes_count_against_the_callers_map_budget() {
    use xdpd::engine::object::{load_opts, LoadOptions, MapBudget};
    require_root();
    let mut w = Witness::new();
    let bytes = xdpd_bpf::object_bytes("skelconfig");
    let config = |entries: u32| xdpd::program::ObjectConfig {
        map_sizes: [("flows".to_string(), entries)].into(),
        ..Default::default()
    };
    let budget = Some(MapBudget { remaining: 1 << 20, limit: 1 << 20 });
    let load = |c: &xdpd::program::ObjectConfig| {
        load_opts(&bytes, &LoadOptions { max_size: CAP, config: Some(c), budget, ..Default::default() })
    };
    // 1,000 entries of 12 bytes fit in 1 MiB; 1,000,000 do not, and nothing is created.
    assert!(load(&config(1000)).is_ok());
    let err = w.refuse(load(&config(1_000_000)));
    assert!(matches!(&err, Error::LimitExceeded(m) if m.contains("flows")), "{err}");
}
