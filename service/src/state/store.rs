//! The files of the service's durable state: per interface its record (see
//! [`super::record`]); the objects themselves, stored once by content; map
//! snapshots; the high-water marks of ids and generations. Every write is
//! atomic (write a temporary file, fsync, rename, fsync the directory), so a
//! crash leaves either the old or the new record. A change of a chain writes
//! its record in two steps around the kernel swap: [`Store::prepare_link`]
//! (the new record, durable under a temporary name: this is where a full disk
//! fails the request) and [`Store::commit_link`] (a rename, which needs no space).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::ids::HighWater;
use super::record::IfaceRecord;
use super::snapshot::MapSnapshot;

/// The state directory: `objects/<sha256>.o`, `links/<ifindex>.json`,
/// `snapshots/<member id>.json`, `ids.json`.
pub struct Store {
    dir: PathBuf,
    high_water: Mutex<HighWater>,
    /// Objects stored for requests under way (not yet named by a record): not garbage.
    holds: Mutex<HashMap<String, usize>>,
    /// Held while the service runs: one instance per state directory.
    _lock: std::fs::File,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| std::io::Error::other("no parent directory"))?;
    // A name of its own per write: concurrent requests may store the same object.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("record");
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    write_durable(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` and waits until they are on disk.
fn write_durable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Takes `<dir>/lock` (an empty file) for this process: released when the
/// process ends, however it ends.
fn lock_dir(dir: &Path) -> std::io::Result<std::fs::File> {
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(std::io::Error::new(
            std::io::ErrorKind::ResourceBusy,
            "another xdpd uses this state directory; only one may run",
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

impl Store {
    /// Opens the state directory for this process alone: a second instance
    /// (another xdpd on the same directory) is refused before it changes anything.
    pub fn open(dir: &Path) -> std::io::Result<Store> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let lock = lock_dir(dir)?;
        for sub in ["", "objects", "links", "snapshots"] {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir.join(sub))?;
            // Temporary files are writes a crash interrupted.
            for entry in std::fs::read_dir(dir.join(sub))?.filter_map(Result::ok) {
                if entry.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let high_water = match std::fs::read(dir.join("ids.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::error!("unreadable ids.json ({e}): ids and generations continue above the records' own");
                HighWater::default()
            }),
            Err(_) => HighWater::default(),
        };
        let store = Store {
            dir: dir.to_path_buf(),
            high_water: Mutex::new(high_water),
            holds: Default::default(),
            _lock: lock,
        };
        // The records say what was handed out too (ids.json may be older or lost).
        for record in store.links() {
            let next = record.members.iter().map(|m| m.id + 1).max().unwrap_or(0);
            store.lock_high_water().raise(next, &record.name, record.generation);
        }
        Ok(store)
    }

    fn lock_high_water(&self) -> std::sync::MutexGuard<'_, HighWater> {
        self.high_water.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What was handed out so far.
    pub fn high_water(&self) -> HighWater {
        self.lock_high_water().clone()
    }

    /// Makes `next_program_id` and `generation` (of interface `name`)
    /// durable high-water marks, before anyone is told about them.
    pub fn raise_high_water(&self, next_program_id: u64, name: &str, generation: u64) -> std::io::Result<()> {
        let mut hw = self.lock_high_water();
        let mut raised = hw.clone();
        if !raised.raise(next_program_id, name, generation) {
            return Ok(());
        }
        let json = serde_json::to_vec_pretty(&raised).map_err(std::io::Error::other)?;
        write_atomic(&self.dir.join("ids.json"), &json)?;
        *hw = raised;
        Ok(())
    }

    fn object_path(&self, sha256: &str) -> PathBuf {
        self.dir.join("objects").join(format!("{sha256}.o"))
    }

    fn link_path(&self, ifindex: u32) -> PathBuf {
        self.dir.join("links").join(format!("{ifindex}.json"))
    }

    /// Keeps a copy of an object under its hash (once), durably, and holds
    /// it until [`Store::release_object`]: a request stores its object
    /// before the chain changes, so a full disk refuses the request.
    pub fn hold_object(&self, sha256: &str, bytes: &[u8]) -> std::io::Result<()> {
        let mut holds = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.object_path(sha256);
        if !path.exists() {
            write_atomic(&path, bytes)?;
        }
        *holds.entry(sha256.to_string()).or_insert(0) += 1;
        Ok(())
    }

    /// Ends a request's hold on an object; collects it if nothing needs it.
    pub fn release_object(&self, sha256: &str) {
        let mut holds = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = holds.get_mut(sha256) {
            *n -= 1;
            if *n == 0 {
                holds.remove(sha256);
            }
        }
        self.collect_object(&holds, sha256);
    }

    /// Deletes an object no record names and no request holds (a program
    /// was removed or replaced, or a request failed).
    pub fn drop_object_if_unused(&self, sha256: &str) {
        let holds = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        self.collect_object(&holds, sha256);
    }

    fn collect_object(&self, holds: &HashMap<String, usize>, sha256: &str) {
        if holds.contains_key(sha256) || self.links().iter().any(|r| r.members.iter().any(|m| m.spec.sha256 == sha256))
        {
            return;
        }
        match std::fs::remove_file(self.object_path(sha256)) {
            Ok(()) => tracing::debug!(sha256, "object no longer used: deleted"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(sha256, "cannot delete an unused object: {e}"),
        }
    }

    pub fn object(&self, sha256: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.object_path(sha256))
    }

    pub fn save_link(&self, record: &IfaceRecord) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        write_atomic(&self.link_path(record.ifindex), &json)
    }

    pub fn link(&self, ifindex: u32) -> Option<IfaceRecord> {
        let bytes = std::fs::read(self.link_path(ifindex)).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(record) => Some(record),
            Err(e) => {
                // Kept aside for the administrator; recovery shows what runs without it.
                let path = self.link_path(ifindex);
                let aside = path.with_extension("json.unreadable");
                let _ = std::fs::rename(&path, &aside);
                tracing::error!(ifindex, "unreadable record ({e}): kept as {}", aside.display());
                None
            }
        }
    }

    pub fn remove_link(&self, ifindex: u32) {
        let _ = std::fs::remove_file(self.link_path(ifindex));
    }

    fn pending_path(&self, ifindex: u32) -> PathBuf {
        self.dir.join("links").join(format!(".{ifindex}.json.pending.tmp"))
    }

    /// First step of a change: the interface's next record (`None`: the
    /// chain becomes empty and its record goes) is written and synced under
    /// a temporary name. Fails when the state directory is full.
    pub fn prepare_link(&self, ifindex: u32, record: Option<&IfaceRecord>) -> std::io::Result<()> {
        let pending = self.pending_path(ifindex);
        let _ = std::fs::remove_file(&pending);
        let Some(record) = record else { return Ok(()) };
        let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        write_durable(&pending, &json).inspect_err(|_| {
            let _ = std::fs::remove_file(&pending);
        })
    }

    /// Last step of a change, after the kernel swap: the prepared record
    /// becomes the record (a rename: no space needed), or the record goes.
    pub fn commit_link(&self, ifindex: u32) -> std::io::Result<()> {
        let (pending, path) = (self.pending_path(ifindex), self.link_path(ifindex));
        match std::fs::rename(&pending, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            },
            Err(e) => return Err(e),
        }
        std::fs::File::open(self.dir.join("links"))?.sync_all()
    }

    /// A change that did not happen: its prepared record goes.
    pub fn discard_link(&self, ifindex: u32) {
        let _ = std::fs::remove_file(self.pending_path(ifindex));
    }

    pub fn links(&self) -> Vec<IfaceRecord> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("links")) else { return Vec::new() };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse::<u32>().ok())
            .filter_map(|i| self.link(i))
            .collect()
    }

    fn snapshot_path(&self, id: u64) -> PathBuf {
        self.dir.join("snapshots").join(format!("{id}.json"))
    }

    /// Saves the contents of a program's maps (map name → entries).
    pub fn save_snapshot(&self, id: u64, maps: &MapSnapshot) -> std::io::Result<()> {
        let json = serde_json::to_vec(maps).map_err(std::io::Error::other)?;
        write_atomic(&self.snapshot_path(id), &json)
    }

    /// A removed program's snapshot goes with it.
    pub fn remove_snapshot(&self, id: u64) {
        let _ = std::fs::remove_file(self.snapshot_path(id));
    }

    pub fn snapshot(&self, id: u64) -> Option<MapSnapshot> {
        serde_json::from_slice(&std::fs::read(self.snapshot_path(id)).ok()?).ok()
    }

    /// Deletes objects and snapshots no record refers to.
    pub fn collect_garbage(&self) {
        let records = self.links();
        let ids: std::collections::HashSet<String> =
            records.iter().flat_map(|l| l.members.iter().map(|m| format!("{}.json", m.id))).collect();
        if let Ok(entries) = std::fs::read_dir(self.dir.join("snapshots")) {
            for entry in entries.filter_map(Result::ok) {
                if !ids.contains(&*entry.file_name().to_string_lossy()) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let used: std::collections::HashSet<String> =
            records.into_iter().flat_map(|l| l.members.into_iter().map(|m| m.spec.sha256)).collect();
        let Ok(entries) = std::fs::read_dir(self.dir.join("objects")) else { return };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let sha = name.strip_suffix(".o").unwrap_or(&name);
            if !used.contains(sha) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::ProgramSpec;
    use crate::state::MemberRecord;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xdpd-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn record(sha256: &str) -> IfaceRecord {
        let spec = ProgramSpec { sha256: sha256.into(), ..Default::default() };
        IfaceRecord {
            ifindex: 3,
            name: "eth0".into(),
            generation: 5,
            kernel_program_id: 9,
            counting: false,
            hold: false,
            members: vec![MemberRecord::new(7, &spec)],
        }
    }

    #[test]
    fn a_record_changes_only_at_commit() {
        let dir = scratch("commit");
        let store = Store::open(&dir).unwrap();
        store.prepare_link(3, Some(&record("a"))).unwrap();
        assert!(store.link(3).is_none(), "prepared is not yet the record");
        store.commit_link(3).unwrap();
        assert_eq!(store.link(3), Some(record("a")));
        store.prepare_link(3, Some(&record("b"))).unwrap();
        store.discard_link(3);
        assert_eq!(store.link(3), Some(record("a")), "a discarded change leaves the record");
        store.prepare_link(3, None).unwrap();
        store.commit_link(3).unwrap();
        assert!(store.link(3).is_none(), "an empty chain has no record");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn objects_go_when_nothing_needs_them() {
        let dir = scratch("objects");
        let store = Store::open(&dir).unwrap();
        store.hold_object("a", b"object a").unwrap();
        store.hold_object("b", b"object b").unwrap();
        store.save_link(&record("a")).unwrap();
        store.release_object("a");
        store.release_object("b");
        assert!(store.object("a").is_ok(), "named by a record");
        assert!(store.object("b").is_err(), "named by nothing, held by nobody");
        store.remove_link(3);
        store.drop_object_if_unused("a");
        assert!(store.object("a").is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn high_water_marks_survive_and_follow_the_records() {
        let dir = scratch("ids");
        let store = Store::open(&dir).unwrap();
        store.raise_high_water(12, "eth1", 4).unwrap();
        store.save_link(&record("a")).unwrap();
        drop(store);
        let again = Store::open(&dir).unwrap().high_water();
        assert_eq!((again.next_program_id, again.generation("eth1"), again.generation("eth0")), (12, 4, 5));
        let _ = std::fs::remove_dir_all(dir);
    }
}
