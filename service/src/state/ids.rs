//! High-water marks of what was handed out: the next program id and, per
//! interface name, the last generation. Kept in their own file because
//! records go away (a chain's last program removed, a corrupt file) while a
//! program id or a generation, once handed out, must never come back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the service handed out so far (`ids.json` in the state directory).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HighWater {
    /// Every program id below this one was handed out (or skipped).
    pub next_program_id: u64,
    /// Per interface name: the highest generation its chain reached.
    #[serde(default)]
    pub generations: BTreeMap<String, u64>,
}

impl HighWater {
    /// Raises the marks to `next_program_id` and `generation` (for `name`);
    /// returns whether anything changed (and must be written).
    pub fn raise(&mut self, next_program_id: u64, name: &str, generation: u64) -> bool {
        let mut changed = false;
        if next_program_id > self.next_program_id {
            self.next_program_id = next_program_id;
            changed = true;
        }
        let floor = self.generations.entry(name.to_string()).or_insert(0);
        if generation > *floor {
            *floor = generation;
            changed = true;
        }
        changed
    }

    /// The generation a chain of interface `name` starts from.
    pub fn generation(&self, name: &str) -> u64 {
        self.generations.get(name).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_only_rise() {
        let mut hw = HighWater::default();
        assert!(hw.raise(5, "eth0", 3));
        assert!(!hw.raise(4, "eth0", 2), "lower values change nothing");
        assert!(hw.raise(5, "eth1", 1));
        assert_eq!((hw.next_program_id, hw.generation("eth0"), hw.generation("eth1")), (5, 3, 1));
        assert_eq!(hw.generation("wlan0"), 0);
    }
}
