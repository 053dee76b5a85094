//! XDP hints: programs that call the XDP metadata kfuncs
//! (`bpf_xdp_metadata_rx_timestamp`, `_rx_hash`, `_rx_vlan_tag`) read what
//! the device's driver knows of a packet. The kernel lets only programs
//! loaded bound to that device (`BPF_F_XDP_DEV_BOUND_ONLY`) call them, so
//! such a program is verified bound to its interface, and a chain holding
//! one is loaded bound too (and can run only in native mode, on that device).

use super::Error;
use crate::kernel::btf::Btf;
use crate::kernel::object::{Object, ProgramEntry};

/// The kfuncs that make a program device-bound.
pub const METADATA_KFUNCS: &[&str] =
    &["bpf_xdp_metadata_rx_timestamp", "bpf_xdp_metadata_rx_hash", "bpf_xdp_metadata_rx_vlan_tag"];

/// `BTF_KIND_FUNC`.
const KIND_FUNC: u32 = 12;

/// The first metadata kfunc the object declares, if any.
fn metadata_kfunc(btf: &Btf) -> Option<&'static str> {
    METADATA_KFUNCS.iter().copied().find(|k| btf.find(k, KIND_FUNC).is_some())
}

/// Binds `chosen` to the device `ifindex` when its object calls a metadata
/// kfunc; returns whether it did. Without a device, such a program is refused.
pub(super) fn bind_if_needed(object: &Object, chosen: &ProgramEntry, ifindex: Option<u32>) -> Result<bool, Error> {
    let Some(kfunc) = object.with_btf(metadata_kfunc).flatten() else { return Ok(false) };
    let Some(ifindex) = ifindex else {
        return Err(Error::InvalidObject(format!(
            "program '{}' calls {kfunc} (XDP hints): it runs only bound to a device, and this load names none",
            chosen.name
        )));
    };
    object.bind_to_device(chosen, ifindex)?;
    Ok(true)
}
