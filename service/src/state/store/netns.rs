//! The part of the [`Store`] about other network namespaces: each named
//! namespace's records (`links/netns/<name>/`), the namespaces callers
//! designated (`netns-designated.json`), and the records of interfaces that
//! move between namespaces (`links/netns/.moving/<chain program id>.json`).

use std::path::PathBuf;

use super::{write_atomic, IfaceRecord, Store};

impl Store {
    /// The store of the records of named network namespace `name` (its
    /// file name, see `kernel::netns::file_name`), sharing ids, objects and
    /// snapshots with this one.
    pub fn for_netns(&self, name: &str) -> std::io::Result<Store> {
        use std::os::unix::fs::DirBuilderExt;
        let links_dir = self.dir.join("links").join("netns").join(name);
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&links_dir)?;
        // Temporary files are writes a crash interrupted (nobody writes here before this).
        for entry in std::fs::read_dir(&links_dir)?.filter_map(Result::ok) {
            if entry.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Store { dir: self.dir.clone(), links_dir, shared: self.shared.clone() })
    }

    /// Removes this store's records directory when it holds none (a
    /// namespace's, once the namespace went without persistent programs).
    pub fn remove_links_dir_if_empty(&self) {
        if self.links_dir != self.dir.join("links") {
            let _ = std::fs::remove_dir(&self.links_dir);
        }
    }

    fn designated_path(&self) -> PathBuf {
        self.dir.join("netns-designated.json")
    }

    /// The namespaces callers designated, as (path, inode): followed again
    /// after a restart while that path still is that namespace.
    pub fn designated(&self) -> Vec<(PathBuf, u64)> {
        let Ok(bytes) = std::fs::read(self.designated_path()) else { return Vec::new() };
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::error!("unreadable netns-designated.json ({e}): designated namespaces are not followed again");
            Vec::new()
        })
    }

    pub fn save_designated(&self, designated: &[(PathBuf, u64)]) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(designated).map_err(std::io::Error::other)?;
        write_atomic(&self.designated_path(), &json)
    }

    fn moving_path(&self, prog_id: u32) -> PathBuf {
        self.dir.join("links").join("netns").join(".moving").join(format!("{prog_id}.json"))
    }

    /// Keeps the record of an interface that moves to another namespace, by
    /// the id of its chain program, until that namespace takes it ([`Store::take_moving`]).
    pub fn save_moving(&self, prog_id: u32, record: &IfaceRecord) -> std::io::Result<()> {
        let path = self.moving_path(prog_id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        write_atomic(&path, &json)
    }

    /// The record of a moving interface whose chain program is `prog_id`, removed from where it waited.
    pub fn take_moving(&self, prog_id: u32) -> Option<IfaceRecord> {
        let path = self.moving_path(prog_id);
        let record = serde_json::from_slice(&std::fs::read(&path).ok()?).ok();
        let _ = std::fs::remove_file(&path);
        record
    }

    /// Chain program ids of moving interfaces whose record waited longer than `age`.
    pub fn stale_moving(&self, age: std::time::Duration) -> Vec<u32> {
        let dir = self.dir.join("links").join("netns").join(".moving");
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        let old = |e: &std::fs::DirEntry| {
            e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|d| d > age))
        };
        entries
            .filter_map(Result::ok)
            .filter(old)
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
            .collect()
    }

    /// Removes every record of namespace `name` (its file name): it is gone for good.
    pub fn remove_netns(&self, name: &str) {
        let _ = std::fs::remove_dir_all(self.dir.join("links").join("netns").join(name));
    }

    /// The namespaces (their file names) with records of persistent
    /// programs: they come back when a namespace of that name appears.
    pub fn netns_with_persistent(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("links").join("netns")) else { return Vec::new() };
        let at = |dir: PathBuf| Store { dir: self.dir.clone(), links_dir: dir, shared: self.shared.clone() };
        entries
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter(|e| at(e.path()).links().iter().any(|r| r.members.iter().any(|m| m.spec.persist)))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }

    /// The records of every namespace (for ids and garbage).
    pub(super) fn all_links(&self) -> Vec<IfaceRecord> {
        let root = self.dir.join("links");
        let mut dirs = vec![root.clone()];
        if let Ok(entries) = std::fs::read_dir(root.join("netns")) {
            dirs.extend(entries.filter_map(Result::ok).map(|e| e.path()));
        }
        let at = |dir: PathBuf| Store { dir: self.dir.clone(), links_dir: dir, shared: self.shared.clone() };
        dirs.into_iter().flat_map(|d| at(d).links()).collect()
    }
}
