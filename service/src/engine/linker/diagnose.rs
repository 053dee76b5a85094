//! Diagnosis of a chain the verifier refused: the member, and its own
//! instruction index, that the verifier stopped at; or, for a limit checked
//! before any instruction (call depth, ...), the member that fails even
//! alone behind the dispatcher.

use super::{LinkInput, Segment};
use crate::engine::member::MemberId;
use crate::engine::object::verifier_summary;
use crate::engine::Error;

/// The last instruction the verifier looked at: a log line starting "N: ".
pub fn failing_insn(log: &str) -> Option<usize> {
    log.lines().rev().find_map(|l| l.split_once(": ").and_then(|(n, _)| n.trim().parse::<usize>().ok()))
}

/// The member and member-local instruction of instruction `at` of the linked program.
pub fn locate(layout: &[Segment], at: usize) -> Option<(MemberId, usize)> {
    let segment = layout.iter().find(|s| s.range.contains(&at))?;
    Some((segment.id, at - segment.range.start + segment.member_offset))
}

/// Turns the verifier's verdict on a linked chain into an error that names
/// the member and its own instruction index. `alone` links one member
/// behind the dispatcher and returns its error (for the bisection).
pub fn rejection(
    log: &str,
    layout: &[Segment],
    members: &[LinkInput<'_>],
    errno: i32,
    alone: impl Fn(&LinkInput<'_>) -> Option<Error>,
) -> Error {
    let summary = if log.trim().is_empty() {
        format!("the kernel refused the linked chain ({})", std::io::Error::from_raw_os_error(errno))
    } else {
        verifier_summary(log)
    };
    let rejected = |member_id: Option<MemberId>, member: String, insn: Option<usize>, summary: String| {
        Error::ChainRejected { member_id, member, insn, summary, log: log.to_string() }
    };
    let located = failing_insn(log).and_then(|at| {
        let (id, local) = locate(layout, at)?;
        Some((id, members.iter().find(|m| m.id == id)?, local))
    });
    match located {
        Some((id, m, local)) => rejected(Some(id), m.program.name.clone(), Some(local), summary),
        None if members.len() > 1 => {
            let culprit = members.iter().find_map(alone);
            match culprit {
                Some(e @ Error::ChainRejected { .. }) => e,
                _ => rejected(None, "(the chain as a whole)".into(), None, summary),
            }
        }
        None => rejected(
            members.first().map(|m| m.id),
            members.first().map_or_else(String::new, |m| m.program.name.clone()),
            None,
            summary,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_numbered_line_is_the_failing_instruction() {
        let log = "0: (b7) r0 = 0\n1: (85) call 7\n12: (95) exit\nR0 invalid mem access\nprocessed 3 insns";
        assert_eq!(failing_insn(log), Some(12));
        assert_eq!(failing_insn("no numbers here"), None);
    }

    #[test]
    fn instructions_map_back_to_members() {
        let layout = [
            Segment { id: 1, range: 1..5, member_offset: 0 },
            Segment { id: 2, range: 9..12, member_offset: 0 },
            Segment { id: 1, range: 20..25, member_offset: 4 },
        ];
        assert_eq!(locate(&layout, 3), Some((1, 2)));
        assert_eq!(locate(&layout, 21), Some((1, 5)));
        assert_eq!(locate(&layout, 9), Some((2, 0)));
        assert_eq!(locate(&layout, 6), None, "the dispatcher's own instructions");
    }
}
