//! The versions of a segmented chain: each version's program array is
//! pinned for an interface before the swap (`segments-new`) and renamed
//! into place after it, so the segments of the running version stay
//! reachable when the service exits, crashes or restarts; the version
//! swapped out last is kept until the next change, for packets still
//! running in it (the kernel empties a program array no one holds).

use std::os::fd::AsFd;

use super::{Chain, Running};
use crate::engine::linker::{LinkedChain, LinkedSegment};
use crate::engine::Error;
use crate::kernel::bpf;
use crate::kernel::prog_array::ProgArray;

impl Chain {
    /// Cuts the chain into segments of at most `members` members (a boundary
    /// costs one tail call; for benchmarks and tests of segment boundaries).
    pub fn with_segment_members(mut self, members: usize) -> Chain {
        self.segment_members = Some(members.max(1));
        self
    }

    /// The segments of the running chain in run order (one for a chain that
    /// fits one program); empty when nothing runs or an adopted chain runs.
    pub fn segments(&self) -> &[LinkedSegment] {
        self.program().map_or(&[], |linked| linked.segments.as_slice())
    }

    /// `segments-new` beside the pin (bpffs refuses dots in names).
    fn staged_pin(&self) -> Option<std::path::PathBuf> {
        self.segments_pin.as_ref().map(|p| p.with_file_name("segments-new"))
    }

    /// Keeps the version just swapped out until the next change when it is
    /// segmented: the kernel empties a program array no one holds, and
    /// packets may still run in it. A single program needs nothing: the
    /// kernel keeps it for the packets running in it.
    pub(super) fn retire(&mut self, old: Option<Running>) {
        self.retired = old.filter(Running::segmented);
    }

    /// Pins the new version's array under a temporary name before the swap.
    pub(super) fn stage_segments(&self, linked: &LinkedChain) -> Result<(), Error> {
        let (Some(array), Some(staged)) = (linked.array(), self.staged_pin()) else { return Ok(()) };
        Ok(array.pin(&staged)?)
    }

    /// The swap failed: the staged pin goes.
    pub(super) fn unstage_segments(&self) {
        if let Some(staged) = self.staged_pin() {
            let _ = std::fs::remove_file(staged);
        }
    }

    /// After the swap: the new version's array becomes the pinned one (or,
    /// for a chain of one program, no array stays pinned).
    pub(super) fn commit_segments(&self, linked: &LinkedChain) {
        let (Some(pin), Some(staged)) = (&self.segments_pin, self.staged_pin()) else { return };
        let done = if linked.array().is_some() { std::fs::rename(&staged, pin) } else { std::fs::remove_file(pin) };
        if let Err(e) = done.or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) }) {
            // The running version holds its array open: it stays filled while the service runs.
            tracing::warn!("pinning the chain's program array at {}: {e}", pin.display());
        }
    }

    /// Removes the array's pin (the chain is detached or gone).
    pub(super) fn unpin_segments(&self) {
        if let Some(pin) = &self.segments_pin {
            let _ = std::fs::remove_file(pin);
        }
        self.unstage_segments();
    }

    /// Whether the program `attached` to the hook runs the version whose
    /// record names program `recorded`: it is that program, or a segment in
    /// its program array (a change that replaced one segment records the
    /// new segment's id, so a record written before the kernel saw the
    /// change never matches the version that runs).
    pub(super) fn runs(&self, attached: u32, recorded: u32) -> bool {
        if attached == recorded {
            return true;
        }
        let array = bpf::prog_fd_by_id(attached).and_then(|fd| ProgArray::of_program(fd.as_fd()));
        matches!(array, Ok(Some(array)) if array.prog_ids().contains(&recorded))
    }

    /// The program `id` found running after a restart, with its program
    /// array when it is segmented (pinned again where it belongs).
    pub(super) fn adopt(&self, id: u32) -> Result<Running, Error> {
        let fd = bpf::prog_fd_by_id(id)?;
        let info = bpf::prog_info(fd.as_fd())?;
        let array = ProgArray::of_program(fd.as_fd())?;
        if let (Some(array), Some(pin)) = (&array, &self.segments_pin) {
            array.pin(pin)?;
        }
        Ok(Running::Adopted { fd, info, _array: array })
    }
}
