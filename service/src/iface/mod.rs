//! One owner task per network interface. `watch` follows the interfaces and
//! tells the `registry`, which restores an appearing interface's chain
//! (`restore`, after `state::recovery` decided what comes back) and starts
//! its `owner`. Clients hold a `handle` and send `command`s; the owner
//! changes the chain, pins, records, and reports through the `publish` port,
//! which `dbus/` implements. Nothing here knows the bus.

pub mod command;
mod durable;
pub mod handle;
pub mod map_access;
pub mod netns;
pub mod owner;
pub mod publish;
pub mod registry;
pub mod restore;
pub mod shared_maps;
pub mod view;
pub mod watch;

pub use command::AddRequest;
pub use handle::Handle;
pub use publish::{BoxFuture, IfaceProperty, IfaceView, ProgramView, Publish};
pub use registry::Registry;
pub use view::NetnsTag;
