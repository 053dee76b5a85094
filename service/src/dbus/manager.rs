//! `org.xdp.Manager1` at /org/xdp/Manager1: find links, and what this kernel allows.

use std::sync::Arc;

use zbus::interface;
use zbus::OwnedObjectPath;

use super::error::ServiceError;
use crate::activity::Activity;
use crate::links::Links;

pub struct Manager {
    pub links: Arc<Links>,
    pub activity: Activity,
    pub features: Vec<String>,
}

#[interface(name = "org.xdp.Manager1")]
impl Manager {
    /// The link object of the interface called `name`.
    #[zbus(out_args("link"))]
    async fn get_link_by_name(&self, name: String) -> Result<OwnedObjectPath, ServiceError> {
        let _busy = self.activity.begin();
        self.links
            .by_name(&name)
            .map(|h| super::link_path(h.ifindex))
            .ok_or_else(|| ServiceError::NoSuchLink(format!("no interface called '{name}'")))
    }

    /// The link object of the interface with index `index`.
    #[zbus(out_args("link"))]
    async fn get_link_by_index(&self, index: i32) -> Result<OwnedObjectPath, ServiceError> {
        let _busy = self.activity.begin();
        u32::try_from(index)
            .ok()
            .and_then(|i| self.links.get(i))
            .map(|h| super::link_path(h.ifindex))
            .ok_or_else(|| ServiceError::NoSuchLink(format!("no interface with index {index}")))
    }

    /// Version of the service.
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    /// What this kernel and service allow: `bpf-link` (the chain is held by a
    /// pinned bpf_link), `frags` (XDP multi-buffer), `freplace` (BPF_PROG_TYPE_EXT).
    #[zbus(property(emits_changed_signal = "const"))]
    fn features(&self) -> Vec<String> {
        self.features.clone()
    }
}
