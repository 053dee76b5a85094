//! Helpers of the fault-injection suite (`tests/tests/faults.rs`): a tiny
//! state directory, damage to records and pins, a simulated reboot, the
//! service's crash switch, and the views of the record, the kernel and the
//! bus that must agree after each fault.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use xdpd_client::LinkProxy;

use crate::service::Service as Fixture;

/// The id at the end of a program's object path.
pub fn id_of(path: &zbus::OwnedObjectPath) -> u64 {
    path.as_str().rsplit('/').next().and_then(|s| s.parse().ok()).expect("a program path ends in its id")
}

/// A tiny tmpfs mounted as the service's state directory; unmounted (lazily,
/// the service may still hold it) when dropped, also when a test fails.
pub struct TinyStateDir(pub PathBuf);

impl TinyStateDir {
    pub fn mount(f: &Fixture, size: &str) -> TinyStateDir {
        let dir = f.bus.dir.join("state");
        std::fs::create_dir_all(&dir).expect("state dir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "xdpd-faults", dir.to_str().unwrap()])
            .output()
            .expect("mount");
        assert!(out.status.success(), "mount tmpfs: {}", String::from_utf8_lossy(&out.stderr));
        TinyStateDir(dir)
    }

    /// Fills the file system to the last byte; returns the filler's path.
    pub fn fill(&self) -> PathBuf {
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        while file.write_all(&[0]).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for TinyStateDir {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// What the service shows of the chain: (kernel id, generation, program ids).
pub async fn view(link: &LinkProxy<'_>) -> (u32, u64, Vec<u64>) {
    let programs = link.programs().await.expect("Programs").iter().map(id_of).collect();
    (link.kernel_program_id().await.expect("KernelProgramId"), link.generation().await.expect("Generation"), programs)
}

/// Ids of the members the record of the interface names (empty without a record).
pub fn recorded(f: &Fixture) -> Vec<u64> {
    let path = f.bus.dir.join(format!("state/links/{}.json", f.ifindex));
    let Ok(bytes) = std::fs::read(path) else { return Vec::new() };
    let record: serde_json::Value = serde_json::from_slice(&bytes).expect("a readable record");
    record["members"].as_array().expect("members").iter().filter_map(|m| m["id"].as_u64()).collect()
}

pub fn objects(f: &Fixture) -> usize {
    std::fs::read_dir(f.bus.dir.join("state/objects")).map(|d| d.count()).unwrap_or(0)
}

pub fn assert_not_durable(err: zbus::Error) {
    assert!(err.to_string().contains("NotDurable"), "not a NotDurable error: {err}");
}

/// What a reboot does to the kernel's state: links and pins are gone.
pub fn reboot(f: &Fixture) {
    if f.link_pin().exists() {
        let out = Command::new("bpftool").args(["link", "detach", "pinned"]).arg(f.link_pin()).output().unwrap();
        assert!(out.status.success(), "bpftool: {}", String::from_utf8_lossy(&out.stderr));
    }
    remove_pins(&f.pins());
}

pub fn remove_pins(dir: &Path) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).expect("remove pins");
    }
}

/// The value of the first entry of the map of `program` whose name ends with `suffix`.
pub async fn map_value(f: &Fixture, program: &zbus::OwnedObjectPath, suffix: &str, size: usize) -> Vec<u8> {
    let maps = f.program(program).await.get_maps().await.unwrap();
    let (_, fd) =
        maps.iter().find(|(name, _)| name.ends_with(suffix)).unwrap_or_else(|| panic!("no {suffix} in {maps:?}"));
    crate::map_lookup(fd.as_fd(), 0, size)
}

/// The map names libbpf gives the maps of the test object `name`, sorted.
pub fn libbpf_map_names(name: &str) -> Vec<String> {
    let object = libbpf_rs::ObjectBuilder::default().open_file(xdpd_bpf::object_path(name)).expect("libbpf opens it");
    let mut names: Vec<String> = object.maps().map(|m| m.name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Damages the interface's record the way `how` says.
pub fn damage_record(f: &Fixture, how: &str) {
    let path = f.bus.dir.join(format!("state/links/{}.json", f.ifindex));
    let bytes = std::fs::read(&path).expect("a record to damage");
    match how {
        "truncated" => std::fs::write(&path, &bytes[..bytes.len() / 2]),
        "corrupt" => std::fs::write(&path, b"\x00\x13garbage{{"),
        "missing" => std::fs::remove_file(&path),
        "older" => std::fs::write(&path, format!(r#"{{"version":0,"ifindex":{},"programs":[1,2]}}"#, f.ifindex)),
        _ => unreachable!("no such damage"),
    }
    .expect("damage the record");
}

/// The IPv4 UDP count of proto_count's per-CPU `packets` map, summed over the CPUs.
pub fn udp_packets(fd: std::os::fd::BorrowedFd<'_>) -> u64 {
    // SAFETY: plain libbpf call without arguments.
    let cpus = unsafe { libbpf_sys::libbpf_num_possible_cpus() } as usize;
    let values = crate::map_lookup(fd, 3, 8 * cpus);
    values.chunks(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap())).sum()
}

/// Adds `prefix/len` to ip_blocklist's LPM trie, or reads its drop count.
pub fn blocklist(fd: std::os::fd::BorrowedFd<'_>, prefix: std::net::Ipv4Addr, len: u32, write: bool) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let mut key = len.to_ne_bytes().to_vec();
    key.extend_from_slice(&prefix.octets());
    let mut value = [0u8; 8];
    // SAFETY: key and value buffers of the trie's key (8) and value (8) sizes.
    let ret = unsafe {
        if write {
            libbpf_sys::bpf_map_update_elem(fd.as_raw_fd(), key.as_ptr().cast(), value.as_ptr().cast(), 0)
        } else {
            libbpf_sys::bpf_map_lookup_elem(fd.as_raw_fd(), key.as_ptr().cast(), value.as_mut_ptr().cast())
        }
    };
    (ret == 0).then(|| u64::from_ne_bytes(value))
}

pub async fn signals(conn: &zbus::Connection) -> zbus::MessageStream {
    let rule =
        zbus::MatchRule::builder().msg_type(zbus::message::Type::Signal).sender("org.xdp.Manager1").build().unwrap();
    zbus::MessageStream::for_match_rule(rule, conn, std::num::NonZeroUsize::new(64)).await.unwrap()
}

/// The next ChainChanged signal's generation, within 5 s.
pub async fn next_chain_changed(stream: &mut zbus::MessageStream) -> u64 {
    use futures_util::StreamExt;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let msg = tokio::time::timeout(left, stream.next()).await.expect("ChainChanged in time").unwrap().unwrap();
        if msg.header().member().is_some_and(|m| m.as_str() == "ChainChanged") {
            return msg.body().deserialize::<(u64, Vec<zbus::OwnedObjectPath>)>().unwrap().0;
        }
    }
}

/// Sets (or clears) the service's crash switch (`XDPD_TEST_CRASH_AT`) for its next start.
pub fn crash_at(f: &Fixture, step: Option<&str>) {
    let path = f.bus.dir.join("services/org.xdp.Manager1.service");
    let text = std::fs::read_to_string(&path).unwrap();
    let exec = text.lines().find_map(|l| l.strip_prefix("Exec=")).unwrap().to_string();
    let exec = exec.split(" --state-dir").nth(1).map(|rest| (exec.clone(), rest.to_string())).unwrap();
    let binary = exec.0.split_whitespace().find(|w| w.ends_with("/xdpd")).unwrap().to_string();
    let prefix = step.map(|s| format!("/usr/bin/env {}={s} ", xdpd::crash::ENV)).unwrap_or_default();
    let new_exec = format!("Exec={prefix}{binary} --state-dir{}", exec.1);
    let text: Vec<String> =
        text.lines().map(|l| if l.starts_with("Exec=") { new_exec.clone() } else { l.to_string() }).collect();
    std::fs::write(&path, text.join("\n") + "\n").unwrap();
    f.busctl(&["call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "ReloadConfig"]);
}

/// Record, kernel and bus agree: the record names the programs the bus shows,
/// the kernel runs the chain the bus names, and every pin belongs to a program.
pub async fn assert_agree(f: &Fixture, link: &LinkProxy<'_>, what: &str) -> (u32, u64, Vec<u64>) {
    let now = view(link).await;
    assert_eq!(recorded(f), now.2, "{what}: record and bus");
    assert_eq!(f.attached().native, now.0, "{what}: kernel and bus");
    let pins = f.pins().join(f.ifindex.to_string()).join("prog");
    let mut pinned: Vec<u64> = std::fs::read_dir(pins)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    pinned.sort();
    let mut shown = now.2.clone();
    shown.sort();
    assert_eq!(pinned, shown, "{what}: pins and bus");
    now
}
