//! The publishing port: what an owner reports after a change, with the views
//! of `view`. `dbus::Publisher` implements it (exports objects, emits
//! signals); the owner never knows about object paths or the bus.

use super::handle::Handle;
pub use super::view::{IfaceView, ProgramView};
use crate::engine::MemberId;

/// A boxed future, so the port can be a trait object.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The properties of an interface that change, named once for the compiler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfaceProperty {
    Name,
    Mode,
    Generation,
    Programs,
    KernelProgramId,
    ForeignProgramId,
    Counting,
    Linking,
    Hold,
}

impl IfaceProperty {
    /// Everything a change of the chain may change.
    pub const CHAIN: [IfaceProperty; 8] = [
        IfaceProperty::Generation,
        IfaceProperty::Programs,
        IfaceProperty::KernelProgramId,
        IfaceProperty::Mode,
        IfaceProperty::ForeignProgramId,
        IfaceProperty::Counting,
        IfaceProperty::Linking,
        IfaceProperty::Hold,
    ];
}

/// Told by owners and the registry; each call returns once the change is
/// visible (an added program's object exists before its path is returned).
pub trait Publish: Send + Sync {
    fn interface_added<'a>(&'a self, handle: &'a Handle) -> BoxFuture<'a, ()>;
    fn interface_gone(&self, ifindex: u32) -> BoxFuture<'_, ()>;
    fn program_added<'a>(&'a self, handle: &'a Handle, view: ProgramView) -> BoxFuture<'a, ()>;
    fn program_removed(&self, ifindex: u32, id: MemberId) -> BoxFuture<'_, ()>;
    /// The chain changed: its properties, then ChainChanged.
    fn chain_changed<'a>(&'a self, view: &'a IfaceView) -> BoxFuture<'a, ()>;
    fn properties_changed<'a>(&'a self, view: &'a IfaceView, changed: &'a [IfaceProperty]) -> BoxFuture<'a, ()>;
    /// Someone else replaced or removed the chain: `id` is their program (0: none).
    fn foreign_detected<'a>(&'a self, view: &'a IfaceView, id: u32) -> BoxFuture<'a, ()>;
}
