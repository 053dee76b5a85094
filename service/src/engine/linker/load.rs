//! Loading a linked image into the kernel: the license of the program (GPL
//! only when every member's is), frags only when every member of the chain
//! declares them, the privileges of its segment.

use std::ffi::CStr;
use std::os::fd::OwnedFd;

use super::{LinkInput, ProgramTarget};
use crate::engine::elf::is_gpl_compatible;
use crate::engine::object::Privilege;
use crate::engine::Error;
use crate::kernel::insn::Insn;
use crate::kernel::prog::{self, DebugInfo, Image};
use crate::kernel::KernelError;

/// Name of the linked program as the kernel shows it.
const NAME: &CStr = c"xdpd_chain";

/// What loading can end in besides a descriptor.
pub enum Refusal {
    /// The verifier refused the image; its log and the first errno.
    Verifier {
        /// errno of the first attempt.
        errno: i32,
        /// The log of the second attempt.
        log: String,
    },
    /// Anything else, already an engine error.
    Other(Error),
}

/// Whether the chain may use XDP frags: only when every member declares them.
pub fn frags(members: &[LinkInput<'_>]) -> bool {
    members.iter().all(|m| m.program.frags)
}

/// Loads `insns` with `debug` as the chain of `members`.
pub fn load(
    insns: &[Insn],
    debug: Option<DebugInfo>,
    members: &[LinkInput<'_>],
    target: &ProgramTarget,
) -> Result<OwnedFd, Refusal> {
    let gpl = members.iter().all(|m| is_gpl_compatible(&m.program.license));
    let image = Image {
        name: NAME,
        license: if gpl { c"GPL" } else { c"Proprietary" },
        insns,
        frags: target.frags,
        offload_ifindex: target.target.offload_ifindex,
        dev_bound_ifindex: target.target.dev_bound_ifindex,
        as_user: target.privilege == Privilege::User,
    };
    prog::load(&image, debug).map_err(|refused| match refused.log {
        Some(log) => Refusal::Verifier { errno: refused.errno, log },
        None => Refusal::Other(Error::Kernel(KernelError::new("loading the linked chain", refused.errno))),
    })
}
