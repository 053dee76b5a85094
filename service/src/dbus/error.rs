//! Puts the service's errors ([`ServiceError`]) on the wire, under their contract names.

use zbus::message::{Header, Message};
use zbus::names::ErrorName;

pub use crate::error::ServiceError;

impl zbus::DBusError for ServiceError {
    fn create_reply(&self, call: &Header<'_>) -> zbus::Result<Message> {
        Message::error(call, self.name()).build(&(self.message(),))
    }

    fn name(&self) -> ErrorName<'_> {
        ErrorName::from_static_str_unchecked(ServiceError::name(self))
    }

    fn description(&self) -> Option<&str> {
        Some(self.message())
    }
}

impl From<zbus::Error> for ServiceError {
    fn from(e: zbus::Error) -> ServiceError {
        ServiceError::Failed(e.to_string())
    }
}
