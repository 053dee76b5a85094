//! xdpd's layout in bpffs, in one place:
//!
//! ```text
//! <root>/<ifindex>/link                    the interface's bpf_link (the chain survives the service)
//! <root>/<ifindex>/prog/<member id>/<map>  a member's maps by name (its state survives a restart)
//! <root>/owner/<uid>/<map>                 maps an owner's objects pin by name, shared by that owner's programs
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

    /// The maps of member `id`, pinned by map name.
    pub fn maps_dir(&self, ifindex: u32, id: u64) -> PathBuf {
        self.maps_root(ifindex).join(id.to_string())
    }
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
    }
}
