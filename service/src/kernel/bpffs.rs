//! xdpd's layout in bpffs, in one place:
//!
//! ```text
//! <root>/<ifindex>/link                    the interface's bpf_link (the chain survives the service)
//! <root>/<ifindex>/prog/<member id>/<map>  a member's maps by pin name (its state survives a restart)
//! <root>/<ifindex>/stats                   the chain's verdict counter table (counts survive a restart)
//! <root>/<ifindex>/segments                the program array of a segmented chain (its segments stay reachable)
//! <root>/owner/<uid>/<map>                 maps an owner's objects pin by name, shared by that owner's programs
//! <root>/netns/<name>/...                  the same per-interface layout for another network namespace
//! <root>/moving/<chain program id>/...     an interface's pins while it moves between namespaces
//! ```

use std::path::{Path, PathBuf};

/// The root of xdpd's pins (`/sys/fs/bpf/xdpd` in production, a scratch
/// directory under bpffs in tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bpffs {
    root: PathBuf,
}

impl Bpffs {
    /// The layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Bpffs {
        Bpffs { root: root.into() }
    }

    /// The root itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Maps pinned by name for the programs of `uid`: shared between them,
    /// and never seen by another owner's objects.
    pub fn owner_dir(&self, uid: u32) -> PathBuf {
        self.root.join("owner").join(uid.to_string())
    }

    /// An interface's pins while it moves between namespaces, by the id of
    /// the chain program that runs on it.
    pub fn moving_dir(&self, prog_id: u32) -> PathBuf {
        self.root.join("moving").join(prog_id.to_string())
    }

    /// Everything pinned for interface `ifindex`.
    pub fn iface_dir(&self, ifindex: u32) -> PathBuf {
        self.root.join(ifindex.to_string())
    }

    /// The pin of the interface's bpf_link.
    pub fn link_pin(&self, ifindex: u32) -> PathBuf {
        self.iface_dir(ifindex).join("link")
    }

    /// The directory holding one directory of maps per member.
    pub fn maps_root(&self, ifindex: u32) -> PathBuf {
        self.iface_dir(ifindex).join("prog")
    }

    /// The pin of the chain's verdict counter table.
    pub fn counter_pin(&self, ifindex: u32) -> PathBuf {
        self.iface_dir(ifindex).join("stats")
    }

    /// The pin of a segmented chain's program array.
    pub fn segments_pin(&self, ifindex: u32) -> PathBuf {
        self.iface_dir(ifindex).join("segments")
    }

    /// The maps of member `id`, pinned by [`pin_name`].
    pub fn maps_dir(&self, ifindex: u32, id: u64) -> PathBuf {
        self.maps_root(ifindex).join(id.to_string())
    }
}

/// The file name a map is pinned under: its name with `.` spelled `-`, because
/// bpffs refuses dots (`x.data`) and a map name cannot contain `-`, so no two
/// maps share a pin.
pub fn pin_name(map_name: &str) -> String {
    map_name.replace('.', "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout() {
        let fs = Bpffs::new("/sys/fs/bpf/xdpd");
        assert_eq!(fs.link_pin(3), Path::new("/sys/fs/bpf/xdpd/3/link"));
        assert_eq!(fs.maps_dir(3, 42), Path::new("/sys/fs/bpf/xdpd/3/prog/42"));
        assert_eq!(fs.maps_root(3), Path::new("/sys/fs/bpf/xdpd/3/prog"));
        assert_eq!(fs.counter_pin(3), Path::new("/sys/fs/bpf/xdpd/3/stats"));
        assert_eq!(fs.segments_pin(3), Path::new("/sys/fs/bpf/xdpd/3/segments"));
        assert_eq!(pin_name("globalda.data"), "globalda-data");
    }
}
