//! Durability: what the service writes down and what comes back from it.
//! `store` is the files (atomic writes, garbage collection), `record` what a
//! record says, `recovery` what to make of a record after a restart or a
//! reboot (pure decisions), `snapshot` the saved contents of maps.

pub mod ids;
pub mod record;
pub mod recovery;
pub mod snapshot;
pub mod store;

pub use ids::HighWater;
pub use record::{IfaceRecord, MemberRecord};
pub use recovery::RecoveryPlan;
pub use snapshot::MapSnapshot;
pub use store::Store;
