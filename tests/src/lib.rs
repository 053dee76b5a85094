//! Shared fixtures of the end-to-end tests: test objects, packets for the
//! instrumented probe programs, BPF map access, and network namespaces with
//! veth pairs that are removed again even when a test fails.

pub mod bus;
pub mod compat;
pub mod craft;
pub mod faults;
pub mod netns;
pub mod packet;
pub mod polkit;
pub mod service;

use std::os::fd::{AsRawFd, BorrowedFd};

use xdpd::engine::object::{self, DEFAULT_MAX_OBJECT_SIZE};
use xdpd::engine::LoadedProgram;

/// Tests need root (BPF, namespaces): fail loudly, never skip silently.
pub fn require_root() {
    // SAFETY: geteuid has no failure mode.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the xdpd test suite runs as root (BPF, network namespaces)");
    ensure_bpffs();
}

/// Mounts bpffs on /sys/fs/bpf if nothing is mounted there.
pub fn ensure_bpffs() {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if !mounts.lines().any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.contains(" bpf ")) {
        let status = std::process::Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]).status();
        assert!(status.is_ok_and(|s| s.success()), "cannot mount bpffs on /sys/fs/bpf");
    }
}

/// Loads program `function` of the test object `object` (e.g. "probe", "probe3").
pub fn load(object: &str, function: &str) -> LoadedProgram {
    object::load(&xdpd_bpf::object_bytes(object), Some(function), DEFAULT_MAX_OBJECT_SIZE)
        .unwrap_or_else(|e| panic!("loading {object}:{function}: {e}"))
}

/// Reads the value of `key` in the map `fd` (a single-CPU map).
pub fn map_lookup(fd: BorrowedFd<'_>, key: u32, value_size: usize) -> Vec<u8> {
    let mut value = vec![0u8; value_size];
    // SAFETY: key and value buffers have the sizes the map was created with (checked by the kernel).
    let ret = unsafe {
        libbpf_sys::bpf_map_lookup_elem(fd.as_raw_fd(), (&key as *const u32).cast(), value.as_mut_ptr().cast())
    };
    assert_eq!(ret, 0, "map lookup failed: {}", std::io::Error::last_os_error());
    value
}

pub fn map_update(fd: BorrowedFd<'_>, key: u32, value: &[u8]) {
    // SAFETY: as above.
    let ret = unsafe {
        libbpf_sys::bpf_map_update_elem(fd.as_raw_fd(), (&key as *const u32).cast(), value.as_ptr().cast(), 0)
    };
    assert_eq!(ret, 0, "map update failed: {}", std::io::Error::last_os_error());
}

/// The u64 at `offset` of the value of key 0 in `map` of `program`.
pub fn map_u64(program: &LoadedProgram, map_suffix: &str, offset: usize, value_size: usize) -> u64 {
    let map = program
        .maps
        .iter()
        .find(|m| m.name.ends_with(map_suffix))
        .unwrap_or_else(|| panic!("no map ending in {map_suffix} in {}", program.name));
    let value = map_lookup(std::os::fd::AsFd::as_fd(&map.fd), 0, value_size);
    u64::from_ne_bytes(value[offset..offset + 8].try_into().expect("8 bytes"))
}

/// A private directory in bpffs for one test's pins, removed on drop.
pub struct PinDir(pub std::path::PathBuf);

impl PinDir {
    pub fn new(test: &str) -> PinDir {
        ensure_bpffs();
        let dir = std::path::PathBuf::from(format!("/sys/fs/bpf/xdpd-test-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create pin dir in bpffs");
        PinDir(dir)
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Value size of a map, from the kernel.
pub fn map_value_size(fd: BorrowedFd<'_>) -> usize {
    let mut info = libbpf_sys::bpf_map_info::default();
    let mut len = std::mem::size_of_val(&info) as u32;
    // SAFETY: info is a valid bpf_map_info of `len` bytes.
    let ret = unsafe { libbpf_sys::bpf_map_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    assert_eq!(ret, 0, "map info: {}", std::io::Error::last_os_error());
    info.value_size as usize
}

/// A small deterministic generator for randomized tests. The seed comes from
/// XDPD_TEST_SEED or the clock, and is printed so a failure can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> Rng {
        let seed = std::env::var("XDPD_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
        });
        eprintln!("seed {seed} (XDPD_TEST_SEED={seed} replays it)");
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A memfd holding `bytes`, its position left at the end (the service reads
/// from offset 0 whatever the position).
pub fn memfd_with(bytes: &[u8]) -> std::fs::File {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    // SAFETY: memfd_create with a static name; the result is checked.
    let fd = unsafe { libc::memfd_create(c"xdpd-test".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor we own.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(bytes).expect("write the memfd");
    file
}
