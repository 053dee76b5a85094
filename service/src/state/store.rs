//! The files of the service's durable state: per interface its record (see
//! [`super::record`]); the objects themselves, stored once by content; map
//! snapshots. Every write is atomic (write a
//! temporary file, fsync, rename, fsync the directory), so a crash leaves
//! either the old or the new record.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::record::IfaceRecord;
use super::snapshot::MapSnapshot;

/// The state directory: `objects/<sha256>.o`, `links/<ifindex>.json`,
/// `snapshots/<member id>.json`.
pub struct Store {
    dir: PathBuf,
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
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
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
        Ok(Store { dir: dir.to_path_buf(), _lock: lock })
    }

    fn object_path(&self, sha256: &str) -> PathBuf {
        self.dir.join("objects").join(format!("{sha256}.o"))
    }

    fn link_path(&self, ifindex: u32) -> PathBuf {
        self.dir.join("links").join(format!("{ifindex}.json"))
    }

    /// Keeps a copy of an object under its hash (once).
    pub fn save_object(&self, sha256: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.object_path(sha256);
        if path.exists() {
            return Ok(());
        }
        write_atomic(&path, bytes)
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
                tracing::error!(ifindex, "unreadable record {}: {e}", self.link_path(ifindex).display());
                None
            }
        }
    }

    pub fn remove_link(&self, ifindex: u32) {
        let _ = std::fs::remove_file(self.link_path(ifindex));
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
