//! One interface's chain: its members in run order, the linked program that
//! runs them, and the hook it is attached to. Every change builds a new
//! program and swaps it in atomically; a failed change leaves the running
//! program, the member list and every map exactly as they were.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

mod change;
mod commit;
mod gate;
mod incremental;
mod plan;
mod versions;
use super::linker::{self, LinkInput, LinkMode, LinkTarget, LinkedChain};
use super::member::{AddOptions, Member, MemberId, RestoredMember};
use super::object::LoadedProgram;
use super::report::{self, ChainReport};
use super::segments::Budget;
pub use super::stats::CounterResume;
use super::stats::VerdictCounters;
use super::Error;
use crate::kernel::bpf::{self, ProgInfo};
use crate::kernel::bpffs::Bpffs;
use crate::kernel::counter_table::CounterTable;
use crate::kernel::hook::{AttachMode, Hook};
use crate::kernel::netns::Netns;
use gate::GateSlot;
pub use gate::{Gate, Proposal};

/// Default cap on the members of one chain.
pub const DEFAULT_MAX_MEMBERS: usize = 1024;

/// The program running for the chain.
#[derive(Debug)]
enum Running {
    /// Linked by this process.
    Linked(LinkedChain),
    /// Linked by an earlier run of the service, found attached after a
    /// restart and kept as it is (no relink, no traffic gap).
    Adopted {
        /// Our descriptor of it, the expected program of the next swap.
        fd: OwnedFd,
        /// What the kernel reports about it.
        info: ProgInfo,
        /// Its program array, when it is segmented (kept filled while it runs).
        _array: Option<crate::kernel::prog_array::ProgArray>,
    },
}

impl Running {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Running::Linked(linked) => linked.as_fd(),
            Running::Adopted { fd, .. } => fd.as_fd(),
        }
    }

    fn id(&self) -> u32 {
        match self {
            Running::Linked(linked) => linked.info.id,
            Running::Adopted { info, .. } => info.id,
        }
    }

    /// Runs through a program array (several segments).
    fn segmented(&self) -> bool {
        match self {
            Running::Linked(linked) => linked.array().is_some(),
            Running::Adopted { _array, .. } => _array.is_some(),
        }
    }
}

/// Where a chain is attached.
pub struct At<'a> {
    /// The interface's network namespace (None: the service's own).
    pub netns: Option<Netns>,
    /// The interface, by its index in that namespace.
    pub ifindex: u32,
    /// The root of its pins.
    pub bpffs_dir: &'a Path,
}

/// One interface's chain (or an unattached one, for tests and benchmarks):
/// the members in run order and the program that runs them. Every change
/// is linked and swapped in before it becomes the chain, so a failed change
/// leaves everything as it was.
#[derive(Debug)]
pub struct Chain {
    hook: Option<Hook>,
    members: Vec<Member>,
    running: Option<Running>,
    generation: u64,
    next_seq: u64,
    max_members: usize,
    link_mode: LinkMode,
    counting: bool,
    counter_table: Option<Arc<CounterTable>>,
    /// Where the counter table is pinned (interfaces only), so counts outlive the process.
    counter_pin: Option<std::path::PathBuf>,
    gate: GateSlot,
    /// Cut the chain after this many members at most (benchmarks, tests).
    segment_members: Option<usize>,
    /// Where a segmented chain's program array is pinned (interfaces only).
    segments_pin: Option<std::path::PathBuf>,
    /// The segmented version swapped out last: its segments stay filled until the
    /// next change, for packets still running in it.
    retired: Option<Running>,
    /// Keep a pass-through program attached while the chain has no member
    /// (see [`Chain::set_hold`]).
    hold: bool,
}

impl Chain {
    /// A chain that is linked and loaded but attached nowhere (for
    /// BPF_PROG_TEST_RUN and benchmarks); it does not count verdicts until
    /// [`Chain::set_counting`].
    pub fn unattached() -> Chain {
        Chain {
            hook: None,
            members: Vec::new(),
            running: None,
            generation: 0,
            next_seq: 0,
            max_members: DEFAULT_MAX_MEMBERS,
            link_mode: LinkMode::Inline,
            counting: false,
            counter_table: None,
            counter_pin: None,
            gate: GateSlot::default(),
            segment_members: None,
            segments_pin: None,
            retired: None,
            hold: false,
        }
    }

    /// The chain of interface `ifindex`, its link pinned under `bpffs_dir`;
    /// it counts verdicts (see [`Chain::set_counting`]).
    pub fn for_interface(ifindex: u32, bpffs_dir: &Path) -> Chain {
        Chain::for_interface_in(None, ifindex, bpffs_dir)
    }

    /// [`Chain::for_interface`] for interface `ifindex` of namespace `netns`
    /// (None: the service's own).
    pub fn for_interface_in(netns: Option<Netns>, ifindex: u32, bpffs_dir: &Path) -> Chain {
        let layout = Bpffs::new(bpffs_dir);
        let (counter_pin, segments_pin) = (Some(layout.counter_pin(ifindex)), Some(layout.segments_pin(ifindex)));
        Chain {
            hook: Some(Hook::new_in(netns, ifindex, bpffs_dir)),
            counter_pin,
            segments_pin,
            counting: true,
            ..Chain::unattached()
        }
    }

    /// Rebuilds the chain of `ifindex` from recorded members after a restart.
    /// When the link pinned for the interface runs the program `running_id`,
    /// that program is adopted as it is (no relink, no traffic gap); otherwise
    /// the members are linked and swapped in (or attached, if nothing is).
    pub fn restore(
        ifindex: u32,
        bpffs_dir: &Path,
        members: Vec<RestoredMember>,
        generation: u64,
        running_id: u32,
    ) -> Result<Chain, Error> {
        let at = At { netns: None, ifindex, bpffs_dir };
        Chain::restore_counting(at, members, generation, running_id, &CounterResume::default())
    }

    /// [`Chain::restore`], taking back the pinned counter table and each
    /// member's recorded slot first, so counts go on and a chain that ran
    /// with counting on is adopted as it runs.
    pub fn restore_counting(
        at: At<'_>,
        members: Vec<RestoredMember>,
        generation: u64,
        running_id: u32,
        resume: &CounterResume,
    ) -> Result<Chain, Error> {
        let mut chain = Chain::for_interface_in(at.netns, at.ifindex, at.bpffs_dir);
        chain.generation = generation;
        chain.members = members.into_iter().map(Member::from).collect();
        chain.members.sort_by_key(|m| (m.priority, m.seq));
        chain.next_seq = chain.members.iter().map(|m| m.seq).max().unwrap_or(0);
        chain.resume_counters(resume);
        chain.hold = resume.hold;
        let attached = chain.hook.as_ref().and_then(Hook::attached_prog_id);
        // A recorded chain without members is a held pass-through: adopted
        // as it runs, or attached again (after a reboot).
        if chain.members.is_empty() && !(chain.hold && running_id == 0) {
            if running_id != 0 && attached == Some(running_id) {
                chain.running = Some(chain.adopt(running_id)?);
            }
            return Ok(chain);
        }
        if let Some(id) = attached.filter(|&a| running_id != 0 && chain.runs(a, running_id)) {
            chain.running = Some(chain.adopt(id)?);
            return Ok(chain);
        }
        let members = std::mem::take(&mut chain.members);
        chain.commit(members, &AddOptions::default())?;
        Ok(chain)
    }

    /// How members are placed in the linked program (inline by default).
    pub fn with_link_mode(mut self, mode: LinkMode) -> Chain {
        self.link_mode = mode;
        self
    }

    /// Caps the members of the chain (the counter table is sized for it).
    pub fn with_max_members(mut self, max: usize) -> Chain {
        self.max_members = max;
        self
    }

    /// Members in run order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member `id`, if it is in the chain.
    pub fn member(&self, id: MemberId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The program this process linked and loaded (and attached, for an
    /// interface); `None` also while an adopted program runs (see [`Chain::restore`]).
    pub fn program(&self) -> Option<&LinkedChain> {
        match &self.running {
            Some(Running::Linked(linked)) => Some(linked),
            _ => None,
        }
    }

    /// How each member runs in the linked program: "inline", "call" or
    /// "not-linked" (an earlier member ends the chain). Empty when not known:
    /// no chain, or a chain adopted after a restart and not relinked since.
    pub fn linking(&self) -> Vec<(MemberId, &'static str)> {
        let Some(Running::Linked(linked)) = &self.running else { return Vec::new() };
        self.members.iter().map(|m| (m.id, linked.linking_of(m.id))).collect()
    }

    /// Kernel id of the running chain program, if any.
    pub fn running_prog_id(&self) -> Option<u32> {
        self.running.as_ref().map(Running::id)
    }

    /// +1 on every change.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The interface's hook, for what the kernel shows (mode, attached program, foreign programs).
    pub fn hook(&self) -> Option<&Hook> {
        self.hook.as_ref()
    }

    /// Refuses a new member when the chain is full.
    fn check_room(&self) -> Result<(), Error> {
        if self.members.len() >= self.max_members {
            return Err(Error::LimitExceeded(format!(
                "the chain already has {} programs, the maximum",
                self.members.len()
            )));
        }
        Ok(())
    }

    /// Adds `program`; returns its member id.
    pub fn add(&mut self, program: LoadedProgram, options: AddOptions) -> Result<MemberId, Error> {
        self.check_room()?;
        let member = self.new_member(program, &options, None);
        let id = member.id;
        let mut candidate = self.members.clone();
        candidate.push(member);
        self.commit(candidate, &options)?;
        Ok(id)
    }

    /// Atomically replaces member `id` with `program`, keeping its place
    /// among equal priorities; returns the new member's id.
    /// Unless `options.fresh_maps`, the new program takes over the replaced
    /// one's maps of the same name and definition (see [`Member::carried_maps`]).
    pub fn replace(
        &mut self,
        id: MemberId,
        mut program: LoadedProgram,
        options: AddOptions,
    ) -> Result<MemberId, Error> {
        let old = self.member(id).ok_or(Error::NoSuchProgram(id))?;
        let (seq, running) = (old.seq, old.program.clone());
        let carried = if options.fresh_maps { Vec::new() } else { super::carry::carry_maps(&running, &mut program)? };
        let mut member = self.new_member(program, &options, Some(seq));
        member.carried_maps = carried;
        let new_id = member.id;
        let candidate = self.members.iter().map(|m| if m.id == id { member.clone() } else { m.clone() }).collect();
        self.commit(candidate, &options)?;
        Ok(new_id)
    }

    /// Removes member `id`; removing the last member detaches the chain.
    pub fn remove(&mut self, id: MemberId) -> Result<(), Error> {
        if self.member(id).is_none() {
            return Err(Error::NoSuchProgram(id));
        }
        let candidate = self.members.iter().filter(|m| m.id != id).cloned().collect();
        self.commit(candidate, &AddOptions::default())
    }

    /// Whether the dispatcher counts every member's verdicts.
    pub fn counting(&self) -> bool {
        self.counting
    }

    /// Switches per-member verdict counting on or off (a relink). Counts are
    /// kept while it is off and go on from there when it is on again.
    pub fn set_counting(&mut self, on: bool) -> Result<(), Error> {
        if on == self.counting {
            return Ok(());
        }
        let previous = self.counting;
        self.counting = on;
        let members = self.members.clone();
        if members.is_empty() {
            return Ok(());
        }
        self.commit(members, &AddOptions::default()).inspect_err(|_| self.counting = previous)
    }

    /// Whether a pass-through program stays attached while the chain has no member.
    pub fn hold(&self) -> bool {
        self.hold
    }

    /// Holds the hook (or lets it go): with `on`, removing the last member
    /// swaps a pass-through program in through the link instead of
    /// detaching, and an interface without members gets one attached now, so
    /// that after its first attach the interface only ever sees
    /// replacements (attaching and detaching reconfigure some NICs). With
    /// `off`, an interface without members is detached. A change (a relink
    /// when members run), so the next record says it.
    pub fn set_hold(&mut self, on: bool) -> Result<(), Error> {
        if on == self.hold {
            return Ok(());
        }
        let previous = self.hold;
        self.hold = on;
        let members = self.members.clone();
        self.commit(members, &AddOptions::default()).inspect_err(|_| self.hold = previous)
    }

    /// Removes every member and detaches the chain (held: swaps the pass-through in).
    pub fn clear(&mut self) -> Result<(), Error> {
        self.commit(Vec::new(), &AddOptions::default())
    }

    /// Takes the interface back after someone detached or replaced the chain
    /// behind our back: re-attaches the running program, evicting whatever
    /// holds the hook now.
    pub fn reclaim(&mut self) -> Result<(), Error> {
        let (Some(hook), Some(running)) = (&mut self.hook, &self.running) else {
            return Err(Error::Conflict("there is no chain on this interface to reclaim".into()));
        };
        if hook.attached_prog_id() == Some(running.id()) && hook.foreign()?.is_none() {
            return Ok(());
        }
        let mode = hook.mode().unwrap_or(AttachMode::Native);
        hook.detach()?;
        hook.attach(running.as_fd(), mode, true, true)?;
        self.generation += 1;
        Ok(())
    }

    /// Drops everything without touching the kernel's hook: for an interface
    /// that no longer exists (its links went with it). Pins are removed.
    pub fn forget(&mut self) {
        if let Some(hook) = &mut self.hook {
            hook.forget();
        }
        if let Some(pin) = &self.counter_pin {
            let _ = std::fs::remove_file(pin);
        }
        self.unpin_segments();
        self.running = None;
        self.retired = None;
        self.members.clear();
        self.generation += 1;
    }
}
