//! What an intake child sends back, as JSON in a memfd: the program's
//! description (instructions as little-endian words, func and line info, BTF,
//! maps without their descriptors, which travel beside it) or the engine's
//! error. The service rebuilds a `LoadedProgram` only after checking every
//! reference against what was sent.

use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize};

use crate::engine::actions::{Action, ActionSet};
use crate::engine::object::{LoadedProgram, ProgramMap};
use crate::engine::run_config::RunConfig;
use crate::engine::Error;
use crate::kernel::btf::{FuncInfo, LineInfo};
use crate::kernel::insn::Insn;
use crate::kernel::KernelError;

#[derive(Serialize, Deserialize)]
pub(super) struct WireMap {
    name: String,
    id: u32,
    map_type: u32,
    shared: bool,
    bytes: u64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct WireProgram {
    #[serde(default)]
    object: String,
    name: String,
    section: String,
    priority: i32,
    proceed_on: u32,
    frags: bool,
    #[serde(default)]
    dev_bound: Option<u32>,
    license: String,
    sha256: String,
    kernel_tag: String,
    maps: Vec<WireMap>,
    insns: Vec<u64>,
    map_refs: Vec<(usize, usize)>,
    #[serde(default)]
    type_id_refs: Vec<usize>,
    btf: Option<Vec<u8>>,
    func_info: Vec<(u32, u32)>,
    line_info: Vec<(u32, u32, u32, u32)>,
}

/// `struct bpf_insn` as one little-endian 64-bit word.
fn insn_to_word(i: &Insn) -> u64 {
    u64::from(i.code) | u64::from(i.regs) << 8 | u64::from(i.off as u16) << 16 | u64::from(i.imm as u32) << 32
}

fn insn_from_word(w: u64) -> Insn {
    Insn { code: w as u8, regs: (w >> 8) as u8, off: (w >> 16) as u16 as i16, imm: (w >> 32) as u32 as i32 }
}

fn action_set(mask: u32) -> ActionSet {
    ActionSet::of(&Action::ALL.into_iter().filter(|&a| mask & (1 << a as u32) != 0).collect::<Vec<_>>())
}

impl WireProgram {
    pub(super) fn from_loaded(p: LoadedProgram) -> (WireProgram, Vec<OwnedFd>) {
        let mut fds = Vec::with_capacity(p.maps.len());
        let maps = p
            .maps
            .into_iter()
            .map(|m| {
                fds.push(m.fd);
                WireMap { name: m.name, id: m.id, map_type: m.map_type, shared: m.shared, bytes: m.bytes }
            })
            .collect();
        let wire = WireProgram {
            object: p.object,
            name: p.name,
            section: p.section,
            priority: p.run_config.priority,
            proceed_on: p.run_config.proceed_on.mask(),
            frags: p.frags,
            dev_bound: p.dev_bound,
            license: p.license,
            sha256: p.sha256,
            kernel_tag: p.kernel_tag,
            maps,
            insns: p.insns.iter().map(insn_to_word).collect(),
            map_refs: p.map_refs,
            type_id_refs: p.type_id_refs,
            btf: p.btf,
            func_info: p.func_info.iter().map(|f| (f.insn_off, f.type_id)).collect(),
            line_info: p.line_info.iter().map(|l| (l.insn_off, l.file_name_off, l.line_off, l.line_col)).collect(),
        };
        (wire, fds)
    }

    /// Rebuilds the program around the received descriptors, checking that
    /// every reference stays inside what the child described.
    pub(super) fn into_loaded(self, fds: Vec<OwnedFd>) -> Result<LoadedProgram, Error> {
        let bad = |why: String| Error::InvalidObject(format!("the intake process described {why}"));
        if fds.len() != self.maps.len() {
            return Err(bad(format!("{} maps but sent {} descriptors", self.maps.len(), fds.len())));
        }
        if let Some(&(at, map)) = self.map_refs.iter().find(|&&(at, map)| at >= self.insns.len() || map >= fds.len()) {
            return Err(bad(format!("a map reference out of range (instruction {at}, map {map})")));
        }
        if let Some(at) = self.type_id_refs.iter().find(|&&at| at >= self.insns.len()) {
            return Err(bad(format!("a type id reference out of range (instruction {at})")));
        }
        let maps = self
            .maps
            .into_iter()
            .zip(fds)
            .map(|(m, fd)| ProgramMap {
                name: m.name,
                id: m.id,
                map_type: m.map_type,
                fd,
                shared: m.shared,
                bytes: m.bytes,
            })
            .collect();
        Ok(LoadedProgram {
            object: self.object,
            name: self.name,
            section: self.section,
            run_config: RunConfig { priority: self.priority, proceed_on: action_set(self.proceed_on) },
            frags: self.frags,
            dev_bound: self.dev_bound,
            license: self.license,
            sha256: self.sha256,
            kernel_tag: self.kernel_tag,
            maps,
            insns: self.insns.into_iter().map(insn_from_word).collect(),
            map_refs: self.map_refs,
            type_id_refs: self.type_id_refs,
            btf: self.btf,
            func_info: self.func_info.into_iter().map(|(insn_off, type_id)| FuncInfo { insn_off, type_id }).collect(),
            line_info: self
                .line_info
                .into_iter()
                .map(|(insn_off, file_name_off, line_off, line_col)| LineInfo {
                    insn_off,
                    file_name_off,
                    line_off,
                    line_col,
                })
                .collect(),
        })
    }
}

/// The engine's errors that an intake can end with, as the child sends them.
#[derive(Serialize, Deserialize)]
pub(super) enum WireError {
    InvalidObject(String),
    VerifierRejected { program: String, summary: String, log: String },
    LimitExceeded(String),
    InvalidArgument(String),
    Kernel { op: String, errno: i32 },
}

impl From<Error> for WireError {
    fn from(e: Error) -> WireError {
        match e {
            Error::VerifierRejected { program, summary, log } => WireError::VerifierRejected { program, summary, log },
            Error::LimitExceeded(m) => WireError::LimitExceeded(m),
            Error::InvalidArgument(m) => WireError::InvalidArgument(m),
            Error::Kernel(k) => WireError::Kernel { errno: k.errno(), op: k.op },
            Error::InvalidObject(m) => WireError::InvalidObject(m),
            other => WireError::InvalidObject(other.to_string()),
        }
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Error {
        match e {
            WireError::InvalidObject(m) => Error::InvalidObject(m),
            WireError::VerifierRejected { program, summary, log } => Error::VerifierRejected { program, summary, log },
            WireError::LimitExceeded(m) => Error::LimitExceeded(m),
            WireError::InvalidArgument(m) => Error::InvalidArgument(m),
            WireError::Kernel { op, errno } => Error::Kernel(KernelError::new(op, errno)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_survive_the_wire() {
        for insn in [
            Insn { code: 0x18, regs: 0x12, off: -1, imm: -7 },
            Insn { code: 0x95, regs: 0, off: 0, imm: 0 },
            Insn { code: 0x85, regs: 0x20, off: i16::MIN, imm: i32::MAX },
        ] {
            assert_eq!(insn_from_word(insn_to_word(&insn)), insn);
        }
    }

    #[test]
    fn action_sets_survive_the_wire() {
        let set = ActionSet::of(&[Action::Pass, Action::Drop]);
        assert_eq!(action_set(set.mask()), set);
        assert_eq!(action_set(0), ActionSet::EMPTY);
    }
}
