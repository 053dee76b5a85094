//! Maps an owner's objects pin by name (`LIBBPF_PIN_BY_NAME`, as xdp-filter
//! and L3AF do): shared between that owner's programs on every interface
//! through `<bpffs root>/owner/<uid>/<map>`, never with another owner, never
//! outside the service's root. A pin goes when no chain the service runs uses
//! its map any more; the kernel's view of the running chains is the truth.

use std::collections::HashSet;
use std::os::fd::AsFd;
use std::path::Path;

use crate::kernel::bpf;
use crate::kernel::bpffs::Bpffs;
use crate::kernel::hook;

/// Ids of every map used by a chain attached through a link pinned under
/// `bpffs`, for the service's own namespace and every other (`netns/<name>`).
fn maps_in_use(bpffs: &Bpffs) -> HashSet<u32> {
    let mut used = HashSet::new();
    let mut roots = vec![bpffs.root().to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(bpffs.root().join("netns")) {
        roots.extend(entries.filter_map(Result::ok).map(|e| e.path()));
    }
    for root in roots {
        let Ok(entries) = std::fs::read_dir(&root) else { continue };
        for ifindex in entries.filter_map(Result::ok).filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()) {
            let Some(prog) = hook::pinned_prog_id(ifindex, &root) else { continue };
            if let Ok(ids) = bpf::prog_fd_by_id(prog).and_then(|fd| bpf::prog_map_ids(fd.as_fd())) {
                used.extend(ids);
            }
        }
    }
    used
}

fn pinned_map_id(pin: &Path) -> Option<u32> {
    let path = crate::kernel::path_cstring(pin).ok()?;
    bpf::obj_get(&path).ok().and_then(|fd| bpf::map_info(fd.as_fd()).ok()).map(|info| info.id)
}

/// Removes the pins in `uid`'s directory whose maps no running chain uses.
pub fn collect(bpffs: &Bpffs, uid: u32) {
    let dir = bpffs.owner_dir(uid);
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    let used = maps_in_use(bpffs);
    for pin in entries.filter_map(Result::ok).map(|e| e.path()) {
        if pinned_map_id(&pin).is_none_or(|id| !used.contains(&id)) {
            if let Err(e) = std::fs::remove_file(&pin) {
                tracing::warn!(uid, pin = %pin.display(), "cannot remove an unused shared map pin: {e}");
            }
        }
    }
    // Only when empty: another program of the owner may have pinned meanwhile.
    let _ = std::fs::remove_dir(&dir);
    let _ = dir.parent().map(std::fs::remove_dir);
}
