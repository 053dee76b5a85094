//! What interfaces and programs show (without object paths: those are the
//! bus's business), and how an interface's view is read from its chain and
//! the kernel.

use std::collections::HashMap;
use std::sync::Arc;

use crate::engine::stats::VerdictCounters;
use crate::engine::{Chain, MemberId};
use crate::kernel::hook::attached;
use crate::program::ProgramSpec;

/// What an interface shows; replaced after every change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IfaceView {
    pub index: u32,
    pub name: String,
    /// Attach mode name ("native", "generic", "offload"); "" when nothing is attached.
    pub mode: String,
    pub generation: u64,
    /// Member ids in run order.
    pub programs: Vec<MemberId>,
    pub kernel_program_id: u32,
    pub foreign_program_id: u32,
    pub counting: bool,
    /// How each member runs: "inline", "call", "not-linked"; empty when not known.
    pub linking: Vec<(MemberId, String)>,
    /// A pass-through program stays attached without members.
    pub hold: bool,
}

/// What a program shows; fixed for the program's life.
#[derive(Debug, Clone)]
pub struct ProgramView {
    pub ifindex: u32,
    pub id: MemberId,
    pub spec: ProgramSpec,
    /// Map name → kernel map id.
    pub map_ids: HashMap<String, u32>,
}

impl IfaceView {
    /// Says loudly that the chain was detached or replaced behind the service's
    /// back, or that a foreign program holds the interface.
    pub fn log_foreign(&self) {
        let (ifindex, name, foreign) = (self.index, &self.name, self.foreign_program_id);
        let message_id = crate::log::message_id::FOREIGN_PROGRAM;
        if !self.programs.is_empty() && self.kernel_program_id == 0 {
            match foreign {
                0 => {
                    tracing::warn!(message_id, ifindex, interface = %name, "the chain was detached behind xdpd's back; Reclaim takes the interface back")
                }
                id => {
                    tracing::warn!(message_id, ifindex, interface = %name, foreign = id, "the chain was replaced by a foreign program; Reclaim takes the interface back")
                }
            }
        } else if foreign != 0 {
            tracing::warn!(message_id, ifindex, interface = %name, foreign, "a foreign XDP program is attached");
        }
    }
}

/// What the chain and the kernel say now: the changing part of an [`IfaceView`],
/// and the members' counters.
pub struct Observed {
    generation: u64,
    programs: Vec<MemberId>,
    kernel_program_id: u32,
    foreign_program_id: u32,
    mode: String,
    counting: bool,
    linking: Vec<(MemberId, String)>,
    hold: bool,
    pub counters: HashMap<MemberId, Arc<VerdictCounters>>,
}

impl Observed {
    /// Reads `chain` and asks the kernel about its hook: the link's info (one
    /// bpf call) and the interface's XDP program ids (one rtnetlink request
    /// for this interface, not a dump). No program is looked at beyond its
    /// id. Blocking: call it on the blocking pool.
    pub fn of(chain: &Chain) -> Observed {
        let hook = chain.hook();
        let kernel_program_id = hook.and_then(|h| h.attached_prog_id()).unwrap_or(0);
        let foreign_program_id = hook
            .and_then(|h| attached(h.ifindex()).ok())
            .and_then(|a| a.ids().find(|&id| id != kernel_program_id))
            .unwrap_or(0);
        // A mode only while the chain runs: a detached chain runs nowhere.
        let mode = hook.and_then(|h| h.mode()).filter(|_| kernel_program_id != 0);
        Observed {
            generation: chain.generation(),
            programs: chain.members().iter().map(|m| m.id).collect(),
            kernel_program_id,
            foreign_program_id,
            mode: mode.map_or("", |m| m.name()).to_string(),
            counting: chain.counting(),
            linking: chain.linking().into_iter().map(|(id, how)| (id, how.to_string())).collect(),
            hold: chain.hold(),
            counters: chain.members().iter().filter_map(|m| Some((m.id, m.counters()?))).collect(),
        }
    }

    /// Updates `view` (its index and name stay).
    pub fn apply(self, view: &mut IfaceView) {
        view.generation = self.generation;
        view.programs = self.programs;
        view.kernel_program_id = self.kernel_program_id;
        view.foreign_program_id = self.foreign_program_id;
        view.mode = self.mode;
        view.counting = self.counting;
        view.linking = self.linking;
        view.hold = self.hold;
    }
}
