//! XDP actions and the "proceed-on" sets that decide whether a chain continues.

use std::fmt;

/// The verdicts an XDP program returns (values of `enum xdp_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// `XDP_ABORTED`: a program error; the packet is dropped and a tracepoint fires.
    Aborted = 0,
    /// `XDP_DROP`: the packet is dropped.
    Drop = 1,
    /// `XDP_PASS`: the packet goes on to the network stack.
    Pass = 2,
    /// `XDP_TX`: the packet is sent back out of the interface it came in on.
    Tx = 3,
    /// `XDP_REDIRECT`: the packet goes where the program redirected it.
    Redirect = 4,
}

impl Action {
    /// Every action, in value order (the order of the verdict counters too).
    pub const ALL: [Action; 5] = [Action::Aborted, Action::Drop, Action::Pass, Action::Tx, Action::Redirect];

    /// The name used on D-Bus and the command line: `aborted`, `drop`, `pass`, `tx`, `redirect`.
    pub fn name(self) -> &'static str {
        match self {
            Action::Aborted => "aborted",
            Action::Drop => "drop",
            Action::Pass => "pass",
            Action::Tx => "tx",
            Action::Redirect => "redirect",
        }
    }

    /// The action of a D-Bus / command-line name (see [`Action::name`]).
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The member name libxdp's run config uses: `XDP_PASS`, ...
    pub fn from_libxdp_name(name: &str) -> Option<Action> {
        let lower = name.strip_prefix("XDP_")?.to_ascii_lowercase();
        Action::from_name(&lower)
    }

    /// The action of a program result; `None` for values beyond `XDP_REDIRECT`.
    pub fn from_value(value: u32) -> Option<Action> {
        Action::ALL.get(value as usize).copied()
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of actions, stored as the bit mask the dispatcher tests
/// (bit `n` set: a result of `n` lets the chain proceed to the next member).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ActionSet(u32);

impl ActionSet {
    /// No action proceeds: a member with this set ends the chain.
    pub const EMPTY: ActionSet = ActionSet(0);

    /// The set of `actions`.
    pub fn of(actions: &[Action]) -> ActionSet {
        actions.iter().fold(ActionSet::EMPTY, |set, &a| set.with(a))
    }

    /// This set plus `action`.
    pub fn with(self, action: Action) -> ActionSet {
        ActionSet(self.0 | 1 << action as u32)
    }

    /// This set minus `action`.
    pub fn without(self, action: Action) -> ActionSet {
        ActionSet(self.0 & !(1 << action as u32))
    }

    /// Whether `action` lets the chain proceed.
    pub fn contains(self, action: Action) -> bool {
        self.0 & (1 << action as u32) != 0
    }

    /// Whether a program result lets the chain proceed: results of 32 and
    /// more are always verdicts.
    pub fn proceeds(self, result: u32) -> bool {
        result < 32 && self.0 & (1 << result) != 0
    }

    /// Bit `n` set for action value `n`: what the dispatcher's proceed-on test checks.
    pub fn mask(self) -> u32 {
        self.0
    }

    /// The actions of the set, in value order.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |&a| self.contains(a))
    }

    /// The names of the actions, in value order (for D-Bus and the command line).
    pub fn names(self) -> Vec<String> {
        self.iter().map(|a| a.name().to_string()).collect()
    }

    /// Parses action names; an unknown name is returned as the error.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<ActionSet, String> {
        names.iter().try_fold(ActionSet::EMPTY, |set, name| {
            Action::from_name(name.as_ref()).map(|a| set.with(a)).ok_or_else(|| name.as_ref().to_string())
        })
    }
}

impl fmt::Display for ActionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_of_32_and_more_never_proceed() {
        let all = ActionSet::of(&Action::ALL);
        assert!(all.proceeds(2));
        assert!(!all.proceeds(5));
        assert!(!all.proceeds(32));
        assert!(!all.proceeds(u32::MAX));
    }

    #[test]
    fn names_round_trip() {
        let set = ActionSet::from_names(&["drop", "pass"]).unwrap();
        assert_eq!(set.names(), ["drop", "pass"]);
        assert_eq!(ActionSet::from_names(&["pass", "bogus"]), Err("bogus".to_string()));
        assert_eq!(Action::from_libxdp_name("XDP_REDIRECT"), Some(Action::Redirect));
        assert_eq!(Action::from_libxdp_name("XDP_BOGUS"), None);
    }

    #[test]
    fn sets_are_the_dispatchers_bit_masks() {
        let set = ActionSet::EMPTY.with(Action::Pass).with(Action::Drop);
        assert_eq!(set.mask(), 0b110);
        assert!(set.contains(Action::Drop) && !set.contains(Action::Tx));
        assert_eq!(set.without(Action::Drop), ActionSet::of(&[Action::Pass]));
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![Action::Drop, Action::Pass]);
        assert_eq!(set.to_string(), "drop,pass");
        assert_eq!(ActionSet::EMPTY.mask(), 0, "an empty set ends the chain");
    }

    #[test]
    fn values_and_names_of_actions() {
        assert_eq!(Action::from_value(3), Some(Action::Tx));
        assert_eq!(Action::from_value(5), None);
        for a in Action::ALL {
            assert_eq!(Action::from_name(a.name()), Some(a));
            assert_eq!(Action::from_value(a as u32), Some(a));
        }
        assert_eq!(Action::from_libxdp_name("pass"), None, "libxdp's names carry the XDP_ prefix");
    }
}
