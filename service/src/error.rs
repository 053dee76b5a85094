//! The service's error vocabulary, which is the contract's:
//! `org.xdp.Manager1.Error.*` for the service's own failures, the standard
//! `org.freedesktop.DBus.Error.*` names for bad arguments and authorization.
//! Every layer below `dbus/` speaks it; `dbus/error.rs` only puts it on the wire.

use crate::engine;

/// One error of the contract; the text is the message the caller reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceError {
    NoSuchLink(String),
    NoSuchProgram(String),
    InvalidObject(String),
    /// The message carries the verifier's log.
    VerifierRejected(String),
    Conflict(String),
    Busy(String),
    LimitExceeded(String),
    Kernel(String),
    /// A change that could not be made durable (record, object, pins): nothing changed.
    NotDurable(String),
    InvalidArgs(String),
    AccessDenied(String),
    InteractiveAuthorizationRequired(String),
    Failed(String),
}

impl ServiceError {
    pub fn name(&self) -> &'static str {
        match self {
            ServiceError::NoSuchLink(_) => "org.xdp.Manager1.Error.NoSuchLink",
            ServiceError::NoSuchProgram(_) => "org.xdp.Manager1.Error.NoSuchProgram",
            ServiceError::InvalidObject(_) => "org.xdp.Manager1.Error.InvalidObject",
            ServiceError::VerifierRejected(_) => "org.xdp.Manager1.Error.VerifierRejected",
            ServiceError::Conflict(_) => "org.xdp.Manager1.Error.Conflict",
            ServiceError::Busy(_) => "org.xdp.Manager1.Error.Busy",
            ServiceError::LimitExceeded(_) => "org.xdp.Manager1.Error.LimitExceeded",
            ServiceError::Kernel(_) => "org.xdp.Manager1.Error.Kernel",
            ServiceError::NotDurable(_) => "org.xdp.Manager1.Error.NotDurable",
            ServiceError::InvalidArgs(_) => "org.freedesktop.DBus.Error.InvalidArgs",
            ServiceError::AccessDenied(_) => "org.freedesktop.DBus.Error.AccessDenied",
            ServiceError::InteractiveAuthorizationRequired(_) => {
                "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
            }
            ServiceError::Failed(_) => "org.freedesktop.DBus.Error.Failed",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            ServiceError::NoSuchLink(m)
            | ServiceError::NoSuchProgram(m)
            | ServiceError::InvalidObject(m)
            | ServiceError::VerifierRejected(m)
            | ServiceError::Conflict(m)
            | ServiceError::Busy(m)
            | ServiceError::LimitExceeded(m)
            | ServiceError::Kernel(m)
            | ServiceError::NotDurable(m)
            | ServiceError::InvalidArgs(m)
            | ServiceError::AccessDenied(m)
            | ServiceError::InteractiveAuthorizationRequired(m)
            | ServiceError::Failed(m) => m,
        }
    }
}

impl ServiceError {
    /// The same error with `prefix` before its message (which part of a request failed).
    pub fn context(self, prefix: &str) -> ServiceError {
        use ServiceError::*;
        let with = |m: String| format!("{prefix}{m}");
        match self {
            NoSuchLink(m) => NoSuchLink(with(m)),
            NoSuchProgram(m) => NoSuchProgram(with(m)),
            InvalidObject(m) => InvalidObject(with(m)),
            VerifierRejected(m) => VerifierRejected(with(m)),
            Conflict(m) => Conflict(with(m)),
            Busy(m) => Busy(with(m)),
            LimitExceeded(m) => LimitExceeded(with(m)),
            Kernel(m) => Kernel(with(m)),
            NotDurable(m) => NotDurable(with(m)),
            InvalidArgs(m) => InvalidArgs(with(m)),
            AccessDenied(m) => AccessDenied(with(m)),
            InteractiveAuthorizationRequired(m) => InteractiveAuthorizationRequired(with(m)),
            Failed(m) => Failed(with(m)),
        }
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name(), self.message())
    }
}

impl std::error::Error for ServiceError {}

impl From<engine::Error> for ServiceError {
    fn from(e: engine::Error) -> ServiceError {
        let text = e.to_string();
        match e {
            engine::Error::InvalidObject(_) => ServiceError::InvalidObject(text),
            engine::Error::VerifierRejected { log, .. } => ServiceError::VerifierRejected(format!("{text}\n\n{log}")),
            engine::Error::ChainRejected { log, .. } => ServiceError::VerifierRejected(format!("{text}\n\n{log}")),
            engine::Error::Busy(_) => ServiceError::Busy(text),
            engine::Error::Conflict(_) => ServiceError::Conflict(text),
            engine::Error::NoSuchProgram(_) => ServiceError::NoSuchProgram(text),
            engine::Error::LimitExceeded(_) => ServiceError::LimitExceeded(text),
            engine::Error::InvalidArgument(_) => ServiceError::InvalidArgs(text),
            engine::Error::Kernel(_) => ServiceError::Kernel(text),
            engine::Error::NotDurable(_) => ServiceError::NotDurable(text),
        }
    }
}
