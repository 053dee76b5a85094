//! Failures and their exit statuses. Every D-Bus error the service (or the
//! bus) can answer is mapped to one of a few stable exit statuses scripts can
//! test, and to one line telling what went wrong and what to do.

use std::fmt;

/// The exit statuses of the contract (documented in `--help`, EXIT STATUS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Failure = 1,
    Usage = 2,
    NotFound = 3,
    Denied = 4,
    Invalid = 5,
    Conflict = 6,
    Unreachable = 7,
    /// apply --dry-run: something would change (not an error).
    WouldChange = 10,
}

#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    /// Printed after "xdpctl: "; one line, except a verifier rejection followed by its log.
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure { exit, message: message.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "xdpctl: {}", self.message)
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

/// What xdpctl was doing when a call failed: the hint depends on it.
#[derive(Debug, Clone)]
pub enum Doing<'a> {
    Connect(&'a str),
    /// Reading properties or the service's objects.
    Read,
    /// Finding the link object of an interface by name.
    Lookup(&'a str),
    /// Reading a program's properties.
    ReadProgram {
        iface: &'a str,
        program: &'a str,
    },
    Add {
        iface: &'a str,
        object: &'a str,
    },
    Remove {
        iface: &'a str,
        program: &'a str,
    },
    /// Several adds and removals as one change (apply).
    Change {
        iface: &'a str,
    },
    Reclaim {
        iface: &'a str,
    },
    Counting {
        iface: &'a str,
    },
    Hold {
        iface: &'a str,
    },
    GetMaps {
        iface: &'a str,
        program: &'a str,
    },
}

impl Doing<'_> {
    /// The polkit action the request most likely needed, for the hint when the
    /// service's message does not name one.
    fn action(&self) -> &'static str {
        match self {
            Doing::Add { .. } | Doing::Change { .. } => "org.xdp.manager1.add-program",
            Doing::Remove { .. } => "org.xdp.manager1.remove-program",
            _ => "org.xdp.manager1.manage",
        }
    }

    /// The interface the request was about, if one.
    fn iface(&self) -> Option<&str> {
        match self {
            Doing::Lookup(iface)
            | Doing::ReadProgram { iface, .. }
            | Doing::Add { iface, .. }
            | Doing::Remove { iface, .. }
            | Doing::Change { iface }
            | Doing::Reclaim { iface }
            | Doing::Counting { iface }
            | Doing::Hold { iface }
            | Doing::GetMaps { iface, .. } => Some(iface),
            _ => None,
        }
    }

    fn what(&self) -> String {
        match self {
            Doing::Connect(bus) => format!("cannot connect to {bus}"),
            Doing::Read => "cannot read the service's state".into(),
            Doing::Lookup(iface) => format!("cannot find interface {iface}"),
            Doing::ReadProgram { iface, program } => format!("cannot read program {program} on {iface}"),
            Doing::Add { iface, object } => format!("cannot add {object} to {iface}"),
            Doing::Remove { iface, program } => format!("cannot remove program {program} from {iface}"),
            Doing::Change { iface } => format!("cannot change the chain of {iface}"),
            Doing::Reclaim { iface } => format!("cannot reclaim {iface}"),
            Doing::Counting { iface } => format!("cannot switch verdict counting on {iface}"),
            Doing::Hold { iface } => format!("cannot switch the hold of {iface}"),
            Doing::GetMaps { iface, program } => format!("cannot get the maps of program {program} on {iface}"),
        }
    }
}

/// The D-Bus error name and message of an error reply, if it is one.
pub fn dbus_error(e: &zbus::Error) -> Option<(String, String)> {
    use zbus::DBusError;
    match e {
        zbus::Error::MethodError(name, message, _) => Some((name.to_string(), message.clone().unwrap_or_default())),
        zbus::Error::FDO(fdo) => match &**fdo {
            zbus::fdo::Error::ZBus(inner) => dbus_error(inner),
            other => Some((other.name().to_string(), other.description().unwrap_or_default().to_string())),
        },
        zbus::Error::DBus(err) => Some((err.name().to_string(), err.description().unwrap_or_default().to_string())),
        _ => None,
    }
}

/// The first `org.xdp.manager1.*` action id in the service's message.
fn action_in(message: &str) -> Option<&str> {
    let start = message.find("org.xdp.manager1.")?;
    let rest = &message[start..];
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-')).unwrap_or(rest.len());
    Some(rest[..end].trim_end_matches('.'))
}

/// The service's message in the command line's words: advice phrased for
/// D-Bus callers ("pass force", "call again allowing interactive
/// authorization", "call Reclaim") is dropped, as xdpctl's hint says it
/// again in its own terms; "interface 11" becomes the interface's name.
pub fn humanize(message: &str, iface: Option<&str>) -> String {
    let mut text = message.to_string();
    // The error's name already says it is a conflict.
    if let Some(rest) = text.strip_prefix("conflict: ") {
        text = rest.to_string();
    }
    for clause in [
        "; pass force to take the interface over",
        "; call again allowing interactive authorization",
        "; call Reclaim to take the interface back",
    ] {
        text = text.replace(clause, "");
    }
    let Some(iface) = iface else { return text };
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("interface ") {
        let (before, after) = rest.split_at(at + "interface ".len());
        out.push_str(before);
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        let next = after[digits..].chars().next();
        if digits > 0 && next.is_none_or(|c| !c.is_alphanumeric()) {
            out.push_str(iface);
            rest = &after[digits..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Maps a failed call to an exit status and a message with a hint.
pub fn classify(e: zbus::Error, doing: &Doing<'_>) -> Failure {
    let what = doing.what();
    let Some((name, message)) = dbus_error(&e) else {
        return transport(&e, doing);
    };
    let message = humanize(&message, doing.iface());
    // org.freedesktop.DBus.Error.Spawn.* name failed activations.
    let short = if name.contains(".Error.Spawn.") {
        "Spawn".to_string()
    } else {
        name.rsplit('.').next().unwrap_or(&name).to_string()
    };
    let unreachable_hint = "is xdpd installed with its D-Bus activation file? See systemctl status xdpd \
                            and journalctl -u xdpd";
    match short.as_str() {
        "NoSuchLink" => Failure::new(
            Exit::NotFound,
            format!("{what}: {message}; ip link lists the interfaces of the service's network namespace"),
        ),
        "NoSuchProgram" | "UnknownObject" => {
            Failure::new(Exit::NotFound, format!("{what}: no such program; xdpctl status lists the programs"))
        }
        "AccessDenied" | "AuthFailed" => {
            let hint = if message.contains("cannot be reached") {
                "start polkitd (systemctl status polkit), or run as root".to_string()
            } else if action_in(&message).is_some() {
                // The message names the action already.
                "run as root or ask an administrator for that authorization".to_string()
            } else {
                format!("run as root or ask an administrator for the {} authorization", doing.action())
            };
            Failure::new(Exit::Denied, format!("{what}: {message}; {hint}"))
        }
        "InteractiveAuthorizationRequired" => Failure::new(
            Exit::Denied,
            format!("{what}: {message}; run it without --no-ask-password to authenticate, or as root"),
        ),
        "InvalidObject" => match invalid_object_hint(&message) {
            Some(hint) => Failure::new(Exit::Invalid, format!("{what}: {message}; {hint}")),
            None => Failure::new(Exit::Invalid, format!("{what}: {message}")),
        },
        // The message carries the verifier's log: print it whole.
        "VerifierRejected" => Failure::new(
            Exit::Invalid,
            format!("{what}: the kernel verifier rejected it; fix the program (its log follows)\n{message}"),
        ),
        "LimitExceeded" => {
            Failure::new(Exit::Invalid, format!("{what}: {message}; use a smaller object or remove programs first"))
        }
        "Conflict" => Failure::new(Exit::Conflict, format!("{what}: {message}; {}", conflict_hint(&message, doing))),
        "Busy" => Failure::new(
            Exit::Conflict,
            format!("{what}: {message}; add --force to take the interface over (needs org.xdp.manager1.manage)"),
        ),
        "InvalidArgs" => Failure::new(Exit::Usage, format!("{what}: {message}; see xdpctl help for the valid options")),
        "Kernel" => {
            Failure::new(Exit::Failure, format!("{what}: {message}; the service's log (journalctl -u xdpd) has more"))
        }
        "ServiceUnknown" | "NameHasNoOwner" | "NoServer" | "Disconnected" | "NoReply" => Failure::new(
            Exit::Unreachable,
            format!("{what}: the service org.xdp.Manager1 is not available ({message}); {unreachable_hint}"),
        ),
        "Spawn" => Failure::new(
            Exit::Unreachable,
            format!("{what}: the service org.xdp.Manager1 could not be started ({message}); {unreachable_hint}"),
        ),
        _ => Failure::new(Exit::Failure, format!("{what}: {name}: {message}")),
    }
}

/// What to do about an object the service refused, unless its message says it already.
fn invalid_object_hint(message: &str) -> Option<&'static str> {
    if message.contains("the object has") || message.contains("clang") {
        None
    } else if message.contains("name the one") || message.contains("no program named") {
        Some("--program NAME picks one of the object's XDP programs")
    } else {
        Some("give an XDP ELF object (clang -target bpf -c prog.c) and, if it has several programs, --program NAME")
    }
}

/// What to do about a conflict, by what the service said it was about.
fn conflict_hint(message: &str, doing: &Doing<'_>) -> String {
    let iface = match doing {
        Doing::Add { iface, .. } | Doing::Remove { iface, .. } | Doing::Change { iface } | Doing::Reclaim { iface } => {
            iface
        }
        _ => "IFACE",
    };
    if message.contains("carried over") {
        "give --fresh-maps to start the new program with its own empty maps (the old one's state is not kept)".into()
    } else if message.contains(" mode") {
        "leave out --mode (a chain keeps the mode of its first program), or remove all its programs first".into()
    } else if message.contains("generation") {
        format!("the chain changed meanwhile: read its generation again (xdpctl status {iface} --json) and retry")
    } else if message.contains("no chain") {
        format!("xdpctl add {iface} OBJECT attaches a chain (with --force over a program someone else attached)")
    } else if message.contains("behind") || message.contains("eclaim") || message.contains("foreign") {
        format!("xdpctl reclaim {iface} takes the interface back first")
    } else {
        format!("check the chain with xdpctl status {iface} and try again")
    }
}

/// Errors that are not replies: the connection itself failed.
fn transport(e: &zbus::Error, doing: &Doing<'_>) -> Failure {
    let what = doing.what();
    match e {
        zbus::Error::Connection(..)
        | zbus::Error::InputOutput(_)
        | zbus::Error::Handshake(_)
        | zbus::Error::Address(_) => {
            let hint = match doing {
                Doing::Connect(_) => "is D-Bus running? --address or DBUS_SYSTEM_BUS_ADDRESS choose another bus",
                _ => "the connection to the bus was lost; try again",
            };
            // zbus names the address again ("failed to connect to `ADDR`: why"): once is enough.
            let text = e.to_string();
            let why = match text.split_once("`: ") {
                Some((head, why)) if head.starts_with("failed to connect to") => why.to_string(),
                _ => text,
            };
            Failure::new(Exit::Unreachable, format!("{what}: {why}; {hint}"))
        }
        _ => Failure::new(Exit::Failure, format!("{what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_ids_are_found_in_messages() {
        assert_eq!(
            action_in("org.xdp.manager1.add-program is not allowed: polkit said no"),
            Some("org.xdp.manager1.add-program")
        );
        assert_eq!(action_in("needs org.xdp.manager1.manage."), Some("org.xdp.manager1.manage"));
        assert_eq!(action_in("nothing"), None);
    }

    #[test]
    fn messages_speak_the_command_line() {
        assert_eq!(
            humanize(
                "interface 11 already runs XDP program 'x' (id 7) attached by someone else; pass force to take the interface over",
                Some("eth0")
            ),
            "interface eth0 already runs XDP program 'x' (id 7) attached by someone else"
        );
        assert_eq!(
            humanize(
                "org.xdp.manager1.manage needs authentication; call again allowing interactive authorization",
                None
            ),
            "org.xdp.manager1.manage needs authentication"
        );
        assert_eq!(humanize("interface 3x and interface 4", Some("u")), "interface 3x and interface u");
        assert_eq!(
            humanize("conflict: interface 2 has no chain attached", Some("lo")),
            "interface lo has no chain attached"
        );
    }

    #[test]
    fn service_errors_get_their_exit_status() {
        let cases = [
            ("org.xdp.Manager1.Error.NoSuchLink", Exit::NotFound),
            ("org.xdp.Manager1.Error.NoSuchProgram", Exit::NotFound),
            ("org.xdp.Manager1.Error.InvalidObject", Exit::Invalid),
            ("org.xdp.Manager1.Error.VerifierRejected", Exit::Invalid),
            ("org.xdp.Manager1.Error.LimitExceeded", Exit::Invalid),
            ("org.xdp.Manager1.Error.Conflict", Exit::Conflict),
            ("org.xdp.Manager1.Error.Busy", Exit::Conflict),
            ("org.xdp.Manager1.Error.Kernel", Exit::Failure),
            ("org.xdp.Manager1.Error.NotDurable", Exit::Failure),
            ("org.freedesktop.DBus.Error.AccessDenied", Exit::Denied),
            ("org.freedesktop.DBus.Error.InteractiveAuthorizationRequired", Exit::Denied),
            ("org.freedesktop.DBus.Error.InvalidArgs", Exit::Usage),
            ("org.freedesktop.DBus.Error.UnknownObject", Exit::NotFound),
            ("org.freedesktop.DBus.Error.ServiceUnknown", Exit::Unreachable),
            ("org.freedesktop.DBus.Error.Spawn.ChildExited", Exit::Unreachable),
            ("org.freedesktop.DBus.Error.Failed", Exit::Failure),
        ];
        for (name, exit) in cases {
            let msg = zbus::Message::method_call("/", "Ping")
                .build(&())
                .and_then(|call| zbus::Message::error(&call.header(), name).build(&("why",)));
            let Ok(reply) = msg else { panic!("cannot build a test message") };
            let error = zbus::Error::from(reply);
            assert_eq!(classify(error, &Doing::Read).exit, exit, "{name}");
        }
    }
}
