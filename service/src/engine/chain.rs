//! One interface's chain: its members in run order, the linked program that
//! runs them, and the hook it is attached to. Every change builds a new
//! program and swaps it in atomically; a failed change leaves the running
//! program, the member list and every map exactly as they were.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::actions::ActionSet;
use super::linker::{self, LinkInput, LinkMode, LinkTarget, LinkedChain};
use super::object::{LoadedProgram, Privilege};
use super::stats::{CounterTable, Stats, VerdictCounters};
use super::Error;
use crate::kernel::bpf;
use crate::kernel::hook::{AttachMode, Hook};

/// Identifies a member for its whole life; never reused within a process.
pub type MemberId = u64;

static NEXT_MEMBER_ID: AtomicU64 = AtomicU64::new(1);

/// Default cap on the members of one chain.
pub const DEFAULT_MAX_MEMBERS: usize = 1024;

/// One program in a chain.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: MemberId,
    pub program: Arc<LoadedProgram>,
    pub priority: i32,
    pub proceed_on: ActionSet,
    /// The application's name for itself.
    pub tag: String,
    /// Order of addition, the tie-break between equal priorities.
    seq: u64,
    /// Verdict counters, created when counting is first switched on.
    stats: Option<Arc<VerdictCounters>>,
    /// Whose program it is: a user's makes the whole chain verified as a user's.
    privilege: Privilege,
}

impl Member {
    /// The member's verdict counters, once counting was switched on.
    pub fn counters(&self) -> Option<Arc<VerdictCounters>> {
        self.stats.clone()
    }

    /// Verdicts counted for this member (all zero while counting is off).
    pub fn stats(&self) -> Stats {
        self.stats.as_ref().map(|s| s.read()).unwrap_or_default()
    }

    /// Position among members of equal priority (order of addition).
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// A member as recorded before a restart.
#[derive(Debug)]
pub struct RestoredMember {
    pub id: MemberId,
    pub program: LoadedProgram,
    pub priority: i32,
    pub proceed_on: ActionSet,
    pub tag: String,
    pub seq: u64,
    pub privilege: Privilege,
}

/// Makes sure ids handed out from now on are above `id` (after a restart).
pub fn reserve_member_ids(id: MemberId) {
    NEXT_MEMBER_ID.fetch_max(id + 1, Ordering::Relaxed);
}

/// The id the next new member will get (every id below it was handed out).
pub fn next_member_id() -> MemberId {
    NEXT_MEMBER_ID.load(Ordering::Relaxed)
}

/// What a change is about to make of the chain, shown to its [`Gate`].
pub struct Proposal<'a> {
    /// The members in run order.
    pub members: &'a [Member],
    /// The kernel id of the new program (0: the chain becomes empty).
    pub program_id: u32,
    pub generation: u64,
    pub counting: bool,
}

/// Runs once in the next change, after its program is loaded and before it
/// is swapped in: the caller makes the change durable there, and an error
/// cancels the change with the kernel untouched.
pub type Gate = Box<dyn FnOnce(&Proposal<'_>) -> Result<(), Error> + Send>;

/// The gate of the next change, if any.
#[derive(Default)]
struct GateSlot(Option<Gate>);

impl std::fmt::Debug for GateSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "GateSlot(set)" } else { "GateSlot(none)" })
    }
}

/// What a restored chain's counting was: on or off, and each member's slot
/// in the counter table pinned for the interface.
#[derive(Debug, Clone, Default)]
pub struct CounterResume {
    pub counting: bool,
    pub slots: Vec<(MemberId, usize)>,
}

/// How a program joins a chain; unset fields come from the object's run config.
#[derive(Debug, Clone, Default)]
pub struct AddOptions {
    pub priority: Option<i32>,
    pub proceed_on: Option<ActionSet>,
    pub tag: String,
    /// Only for the first program of an interface. `None`: native, falling
    /// back to generic where the driver has no native XDP.
    pub mode: Option<AttachMode>,
    /// Take the interface over from a program attached by someone else.
    pub force: bool,
    /// A user's program: the chain is verified as an unprivileged loader's.
    pub privilege: Privilege,
}

#[derive(Debug)]
pub struct Chain {
    hook: Option<Hook>,
    members: Vec<Member>,
    running: Option<LinkedChain>,
    generation: u64,
    next_seq: u64,
    max_members: usize,
    link_mode: LinkMode,
    counting: bool,
    counter_table: Option<Arc<CounterTable>>,
    /// Where the counter table is pinned (interfaces only), so counts outlive the process.
    counter_pin: Option<std::path::PathBuf>,
    gate: GateSlot,
}

impl Chain {
    /// A chain that is linked and loaded but attached nowhere (for
    /// BPF_PROG_TEST_RUN and benchmarks).
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
        }
    }

    /// Starts the generation count at `generation` (the high-water mark of
    /// the interface: a generation is never handed out twice).
    pub fn with_generation(mut self, generation: u64) -> Chain {
        self.generation = self.generation.max(generation);
        self
    }

    /// Sets the gate the next change passes before its swap (see [`Gate`]).
    pub fn gate_next_change(&mut self, gate: Gate) {
        self.gate.0 = Some(gate);
    }

    /// Takes back a gate no change used (the call changed nothing).
    pub fn take_gate(&mut self) -> Option<Gate> {
        self.gate.0.take()
    }

    /// The chain of interface `ifindex`, its link pinned under `bpffs_dir`.
    pub fn for_interface(ifindex: u32, bpffs_dir: &Path) -> Chain {
        let counter_pin = Some(bpffs_dir.join(ifindex.to_string()).join("stats"));
        Chain { hook: Some(Hook::new(ifindex, bpffs_dir)), counter_pin, ..Chain::unattached() }
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
        Chain::restore_counting(ifindex, bpffs_dir, members, generation, running_id, &CounterResume::default())
    }

    /// [`Chain::restore`], taking back the pinned counter table and each
    /// member's recorded slot first, so counts go on and a chain that ran
    /// with counting on is adopted as it runs.
    pub fn restore_counting(
        ifindex: u32,
        bpffs_dir: &Path,
        members: Vec<RestoredMember>,
        generation: u64,
        running_id: u32,
        resume: &CounterResume,
    ) -> Result<Chain, Error> {
        let mut chain = Chain::for_interface(ifindex, bpffs_dir);
        chain.generation = generation;
        chain.members = members
            .into_iter()
            .map(|m| {
                reserve_member_ids(m.id);
                Member {
                    id: m.id,
                    program: Arc::new(m.program),
                    priority: m.priority,
                    proceed_on: m.proceed_on,
                    tag: m.tag,
                    seq: m.seq,
                    stats: None,
                    privilege: m.privilege,
                }
            })
            .collect();
        chain.members.sort_by_key(|m| (m.priority, m.seq));
        chain.next_seq = chain.members.iter().map(|m| m.seq).max().unwrap_or(0);
        chain.resume_counters(resume);
        let attached = chain.hook.as_ref().and_then(Hook::attached_prog_id);
        if chain.members.is_empty() {
            return Ok(chain);
        }
        if running_id != 0 && attached == Some(running_id) {
            let fd = bpf::prog_fd_by_id(running_id)?;
            let info = bpf::prog_info(std::os::fd::AsFd::as_fd(&fd))?;
            let frags = chain.members.iter().all(|m| m.program.frags);
            chain.running = Some(LinkedChain { fd, info, layout: Vec::new(), insn_count: 0, frags, inlined: 0 });
            return Ok(chain);
        }
        let members = std::mem::take(&mut chain.members);
        chain.commit(members, &AddOptions::default())?;
        Ok(chain)
    }

    /// Takes back the pinned counter table and the members' slots (see [`CounterResume`]).
    fn resume_counters(&mut self, resume: &CounterResume) {
        let Some(pin) = self.counter_pin.as_ref().filter(|p| p.exists()) else { return };
        let table = match CounterTable::open_pinned(pin) {
            Ok(table) => Arc::new(table),
            Err(e) => return tracing::warn!("verdict counts start again: {e}"),
        };
        for m in &mut self.members {
            let slot = resume.slots.iter().find(|(id, _)| *id == m.id).map(|&(_, slot)| slot);
            m.stats = slot.and_then(|slot| VerdictCounters::resume(table.clone(), slot)).map(Arc::new);
        }
        // Counting stays on only if every member has its counts back.
        self.counting = resume.counting && self.members.iter().all(|m| m.stats.is_some());
        self.counter_table = Some(table);
    }

    /// How members are placed in the linked program (inline by default).
    pub fn with_link_mode(mut self, mode: LinkMode) -> Chain {
        self.link_mode = mode;
        self
    }

    pub fn with_max_members(mut self, max: usize) -> Chain {
        self.max_members = max;
        self
    }

    /// Members in run order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn member(&self, id: MemberId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The linked program currently loaded (and attached, for an interface).
    pub fn program(&self) -> Option<&LinkedChain> {
        self.running.as_ref()
    }

    /// +1 on every change.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn hook(&self) -> Option<&Hook> {
        self.hook.as_ref()
    }

    /// Adds `program`; returns its member id.
    pub fn add(&mut self, program: LoadedProgram, options: AddOptions) -> Result<MemberId, Error> {
        if self.members.len() >= self.max_members {
            return Err(Error::LimitExceeded(format!(
                "the chain already has {} programs, the maximum",
                self.members.len()
            )));
        }
        let member = self.new_member(program, &options, None);
        let id = member.id;
        let mut candidate = self.members.clone();
        candidate.push(member);
        self.commit(candidate, &options)?;
        Ok(id)
    }

    /// Atomically replaces member `id` with `program`, keeping its place
    /// among equal priorities; returns the new member's id.
    pub fn replace(&mut self, id: MemberId, program: LoadedProgram, options: AddOptions) -> Result<MemberId, Error> {
        let old = self.member(id).ok_or(Error::NoSuchProgram(id))?;
        let member = self.new_member(program, &options, Some(old.seq));
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

    /// Removes every member and detaches the chain.
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
        if hook.attached_prog_id() == Some(running.info.id) && hook.foreign()?.is_none() {
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
        self.running = None;
        self.members.clear();
        self.generation += 1;
    }

    fn new_member(&mut self, program: LoadedProgram, options: &AddOptions, seq: Option<u64>) -> Member {
        let seq = seq.unwrap_or_else(|| {
            self.next_seq += 1;
            self.next_seq
        });
        Member {
            id: NEXT_MEMBER_ID.fetch_add(1, Ordering::Relaxed),
            priority: options.priority.unwrap_or(program.run_config.priority),
            proceed_on: options.proceed_on.unwrap_or(program.run_config.proceed_on),
            tag: options.tag.clone(),
            program: Arc::new(program),
            seq,
            stats: None,
            privilege: options.privilege,
        }
    }

    fn pass_gate(&self, gate: Option<Gate>, members: &[Member], program_id: u32) -> Result<(), Error> {
        let Some(gate) = gate else { return Ok(()) };
        gate(&Proposal { members, program_id, generation: self.generation + 1, counting: self.counting })
    }

    /// Links `candidate`, swaps it in, and only then makes it the chain.
    fn commit(&mut self, mut candidate: Vec<Member>, options: &AddOptions) -> Result<(), Error> {
        let gate = self.gate.0.take();
        candidate.sort_by_key(|m| (m.priority, m.seq));
        if self.counting {
            let table = match &self.counter_table {
                Some(t) => t.clone(),
                None => {
                    let table = CounterTable::create(self.max_members)?;
                    if let Some(pin) = &self.counter_pin {
                        table.pin(pin)?;
                    }
                    self.counter_table.insert(Arc::new(table)).clone()
                }
            };
            // A free slot is one neither the running chain nor the new one uses.
            let mut used: Vec<bool> = vec![false; table.slots()];
            for m in self.members.iter().chain(candidate.iter()) {
                if let Some(c) = &m.stats {
                    used[c.slot()] = true;
                }
            }
            for m in candidate.iter_mut().filter(|m| m.stats.is_none()) {
                let slot = used.iter().position(|u| !u).ok_or_else(|| {
                    Error::LimitExceeded("no free verdict counter slot; switch counting off and on again".into())
                })?;
                used[slot] = true;
                m.stats = Some(Arc::new(VerdictCounters::new(table.clone(), slot)));
            }
        }
        if let (Some(mode), Some(hook)) = (options.mode, &self.hook) {
            if hook.is_attached() && hook.mode().is_some_and(|m| m != mode) {
                return Err(Error::Conflict(format!(
                    "the chain runs in {} mode; the mode can only be chosen for an interface's first program",
                    hook.mode().map_or("another", AttachMode::name)
                )));
            }
        }
        if candidate.is_empty() {
            self.pass_gate(gate, &candidate, 0)?;
            if let Some(hook) = &mut self.hook {
                hook.detach()?;
            }
            // No member, no counts to keep: the next chain counts in a new table.
            if let Some(pin) = &self.counter_pin {
                let _ = std::fs::remove_file(pin);
                self.counter_table = None;
            }
            self.running = None;
            self.members = candidate;
            self.generation += 1;
            return Ok(());
        }

        let offload = options.mode == Some(AttachMode::Offload);
        let privilege =
            if candidate.iter().any(|m| m.privilege == Privilege::User) { Privilege::User } else { Privilege::Full };
        let target = LinkTarget {
            offload_ifindex: self.hook.as_ref().filter(|_| offload).map(Hook::ifindex),
            mode: self.link_mode,
            privilege,
        };
        let counting = self.counting;
        let inputs: Vec<LinkInput<'_>> = candidate
            .iter()
            .map(|m| LinkInput {
                id: m.id,
                program: &m.program,
                proceed_on: m.proceed_on,
                counters: m.stats.as_deref().filter(|_| counting),
            })
            .collect();
        let linked = linker::link(&inputs, target)?;
        drop(inputs);
        self.pass_gate(gate, &candidate, linked.info.id)?;

        if let Some(hook) = &mut self.hook {
            if hook.is_attached() {
                match &self.running {
                    Some(running) => hook.replace(linked.as_fd(), running.as_fd())?,
                    None => {
                        // A link adopted from an earlier run: expect the program it runs now.
                        let current = hook.attached_prog_id().ok_or_else(|| {
                            Error::Conflict(format!(
                                "xdpd's link on interface {} was detached behind its back; call Reclaim to take the interface back",
                                hook.ifindex()
                            ))
                        })?;
                        let expected = bpf::prog_fd_by_id(current)?;
                        hook.replace(linked.as_fd(), std::os::fd::AsFd::as_fd(&expected))?;
                    }
                }
            } else {
                let mode = options.mode.unwrap_or(AttachMode::Native);
                hook.attach(linked.as_fd(), mode, options.mode.is_none(), options.force)?;
            }
        }
        self.running = Some(linked);
        self.members = candidate;
        self.generation += 1;
        Ok(())
    }
}
