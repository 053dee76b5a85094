//! Limits that keep one user or one client from exhausting the service:
//! programs, map memory and snapshot size per uid (across interfaces), and
//! requests in flight per client. Root has no per-uid limit.
//! (Object size and programs per interface are checked by the engine.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::engine::object::MapBudget;
use crate::error::ServiceError;

/// The per-uid limits, as configured.
#[derive(Debug, Clone, Copy)]
pub struct UidLimits {
    /// Programs on all interfaces together.
    pub programs: usize,
    /// Estimated kernel memory of all the uid's maps, in bytes.
    pub map_bytes: u64,
    /// Map memory of the uid's programs that keep snapshots, in bytes.
    pub snapshot_bytes: u64,
}

/// What one program costs its owner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Charge {
    /// Estimated kernel memory of the program's maps.
    pub map_bytes: u64,
    /// The same when the program keeps a snapshot of its maps, else 0.
    pub snapshot_bytes: u64,
}

impl std::iter::Sum for Charge {
    /// The charge of several programs together.
    fn sum<I: Iterator<Item = Charge>>(charges: I) -> Charge {
        charges.fold(Charge::default(), |sum, c| Charge {
            map_bytes: sum.map_bytes.saturating_add(c.map_bytes),
            snapshot_bytes: sum.snapshot_bytes.saturating_add(c.snapshot_bytes),
        })
    }
}

impl Charge {
    /// The charge of a program with maps of `map_bytes` that keeps a snapshot or not.
    pub fn new(map_bytes: u64, snapshot: bool) -> Charge {
        Charge { map_bytes, snapshot_bytes: if snapshot { map_bytes } else { 0 } }
    }
}

#[derive(Debug, Default)]
struct Usage {
    programs: usize,
    map_bytes: u64,
    snapshot_bytes: u64,
}

pub struct Limits {
    per_uid: UidLimits,
    /// Programs on all interfaces of all users together: what bounds the
    /// largest reply (introspection and GetManagedObjects grow with them,
    /// and the bus drops a sender of a message over its maximum size).
    max_programs: usize,
    max_requests_per_client: usize,
    usage: Mutex<HashMap<u32, Usage>>,
    requests: Mutex<HashMap<String, usize>>,
}

/// A request in flight; counted until dropped.
pub struct Request {
    limits: Arc<Limits>,
    client: String,
}

impl Limits {
    pub fn new(per_uid: UidLimits, max_programs: usize, max_requests_per_client: usize) -> Arc<Limits> {
        Arc::new(Limits {
            per_uid,
            max_programs,
            max_requests_per_client,
            usage: Mutex::new(HashMap::new()),
            requests: Mutex::new(HashMap::new()),
        })
    }

    /// Counts `programs` (1 for a new program, 0 for a replacement) and
    /// `charge` for `uid` if that stays within the uid's limits.
    pub fn reserve_program(&self, uid: u32, programs: usize, charge: Charge) -> Result<(), ServiceError> {
        self.reserve_program_freeing(uid, programs, charge, (0, Charge::default()))
    }

    /// Like `reserve_program`, for a change that also gives back `freed`
    /// (programs and charge of the uid's own that the change removes): the
    /// limits are checked as if they were gone already, but they stay
    /// counted until the change is made and the caller releases them.
    pub fn reserve_program_freeing(
        &self,
        uid: u32,
        programs: usize,
        charge: Charge,
        freed: (usize, Charge),
    ) -> Result<(), ServiceError> {
        let mut usage = self.usage.lock().map_err(|_| ServiceError::Failed("limits lock poisoned".into()))?;
        let total: usize = usage.values().map(|u| u.programs).sum::<usize>().saturating_sub(freed.0);
        if total + programs > self.max_programs {
            return Err(ServiceError::LimitExceeded(format!(
                "the service runs {total} programs, the most it may (--max-programs): every reply that lists them must fit one D-Bus message"
            )));
        }
        let counted = usage.entry(uid).or_default();
        if uid != 0 {
            let limit = &self.per_uid;
            let used = Usage {
                programs: counted.programs.saturating_sub(freed.0),
                map_bytes: counted.map_bytes.saturating_sub(freed.1.map_bytes),
                snapshot_bytes: counted.snapshot_bytes.saturating_sub(freed.1.snapshot_bytes),
            };
            if used.programs + programs > limit.programs {
                return Err(ServiceError::LimitExceeded(format!(
                    "uid {uid} already has {} programs, the most one user may have (--max-programs-per-uid)",
                    used.programs
                )));
            }
            if used.map_bytes.saturating_add(charge.map_bytes) > limit.map_bytes {
                return Err(ServiceError::LimitExceeded(format!(
                    "the program's maps need about {} bytes of kernel memory; uid {uid} uses {} of its {} (--max-map-memory-per-uid)",
                    charge.map_bytes, used.map_bytes, limit.map_bytes
                )));
            }
            if used.snapshot_bytes.saturating_add(charge.snapshot_bytes) > limit.snapshot_bytes {
                return Err(ServiceError::LimitExceeded(format!(
                    "a snapshot of the program's maps takes up to {} bytes; uid {uid} has {} of its {} in snapshots (--max-snapshot-bytes-per-uid)",
                    charge.snapshot_bytes, used.snapshot_bytes, limit.snapshot_bytes
                )));
            }
        }
        counted.programs += programs;
        counted.map_bytes = counted.map_bytes.saturating_add(charge.map_bytes);
        counted.snapshot_bytes = counted.snapshot_bytes.saturating_add(charge.snapshot_bytes);
        Ok(())
    }

    /// Forgets `programs` and `charge` of `uid` (removed, replaced, failed to add, interface gone).
    pub fn release_program(&self, uid: u32, programs: usize, charge: Charge) {
        if let Ok(mut usage) = self.usage.lock() {
            if let Some(used) = usage.get_mut(&uid) {
                used.programs = used.programs.saturating_sub(programs);
                used.map_bytes = used.map_bytes.saturating_sub(charge.map_bytes);
                used.snapshot_bytes = used.snapshot_bytes.saturating_sub(charge.snapshot_bytes);
            }
        }
    }

    /// Counts a program restored at start, whatever the limits.
    pub fn count_program(&self, uid: u32, charge: Charge) {
        if let Ok(mut usage) = self.usage.lock() {
            let used = usage.entry(uid).or_default();
            used.programs += 1;
            used.map_bytes = used.map_bytes.saturating_add(charge.map_bytes);
            used.snapshot_bytes = used.snapshot_bytes.saturating_add(charge.snapshot_bytes);
        }
    }

    /// The map memory `uid` may still use, for the intake to check before
    /// any map is created; `None` for root.
    pub fn map_budget(&self, uid: u32) -> Option<MapBudget> {
        if uid == 0 {
            return None;
        }
        let used = self.usage.lock().ok().and_then(|u| u.get(&uid).map(|u| u.map_bytes)).unwrap_or(0);
        Some(MapBudget { remaining: self.per_uid.map_bytes.saturating_sub(used), limit: self.per_uid.map_bytes })
    }

    /// Admits one more request from `client` (a unique bus name).
    pub fn begin_request(self: &Arc<Self>, client: &str) -> Result<Request, ServiceError> {
        let mut requests = self.requests.lock().map_err(|_| ServiceError::Failed("limits lock poisoned".into()))?;
        let count = requests.entry(client.to_string()).or_default();
        if *count >= self.max_requests_per_client {
            return Err(ServiceError::LimitExceeded(format!(
                "{client} already has {count} requests in flight, the most one client may have (--max-requests-per-client)"
            )));
        }
        *count += 1;
        Ok(Request { limits: self.clone(), client: client.to_string() })
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if let Ok(mut requests) = self.limits.requests.lock() {
            if let Some(count) = requests.get_mut(&self.client) {
                *count -= 1;
                if *count == 0 {
                    requests.remove(&self.client);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_per_uid_and_requests_per_client() {
        let limits = Limits::new(UidLimits { programs: 2, map_bytes: 1000, snapshot_bytes: 100 }, 6, 1);
        let none = Charge::default();
        limits.reserve_program(1000, 1, none).unwrap();
        limits.reserve_program(1000, 1, none).unwrap();
        assert!(matches!(limits.reserve_program(1000, 1, none), Err(ServiceError::LimitExceeded(_))));
        for _ in 0..3 {
            limits.reserve_program(0, 1, Charge::new(1 << 40, true)).unwrap();
        }
        limits.release_program(1000, 1, none);
        limits.reserve_program(1000, 1, none).unwrap();
        // Six programs in all is the service's own limit, root's included.
        limits.reserve_program(0, 1, none).unwrap();
        assert!(matches!(limits.reserve_program(0, 1, none), Err(ServiceError::LimitExceeded(_))));

        let first = limits.begin_request(":1.7").unwrap();
        assert!(matches!(limits.begin_request(":1.7"), Err(ServiceError::LimitExceeded(_))));
        limits.begin_request(":1.8").unwrap();
        drop(first);
        limits.begin_request(":1.7").unwrap();
    }

    #[test]
    fn a_change_may_use_what_it_frees() {
        let limits = Limits::new(UidLimits { programs: 2, map_bytes: 1000, snapshot_bytes: 0 }, 10, 1);
        limits.reserve_program(7, 2, Charge::new(900, false)).unwrap();
        // At the limit: a new program fits only where the change removes one of the uid's.
        let (one, big) = (Charge::new(500, false), Charge::new(900, false));
        assert!(matches!(limits.reserve_program(7, 1, one), Err(ServiceError::LimitExceeded(_))));
        assert!(matches!(limits.reserve_program_freeing(7, 1, one, (0, big)), Err(ServiceError::LimitExceeded(_))));
        limits.reserve_program_freeing(7, 1, one, (1, big)).unwrap();
        // Both stay counted until the change gives the freed ones back.
        assert!(matches!(limits.reserve_program_freeing(7, 1, one, (1, big)), Err(ServiceError::LimitExceeded(_))));
        limits.release_program(7, 1, big);
        limits.reserve_program(7, 0, Charge::new(400, false)).unwrap();
    }

    #[test]
    fn map_memory_and_snapshots_per_uid() {
        let limits = Limits::new(UidLimits { programs: 10, map_bytes: 1000, snapshot_bytes: 300 }, 100, 1);
        limits.reserve_program(7, 1, Charge::new(600, false)).unwrap();
        assert_eq!(limits.map_budget(7), Some(MapBudget { remaining: 400, limit: 1000 }));
        let err = limits.reserve_program(7, 1, Charge::new(500, false)).unwrap_err().to_string();
        assert!(err.contains("500") && err.contains("600") && err.contains("1000"), "{err}");
        assert!(limits.reserve_program(7, 1, Charge::new(301, true)).is_err(), "snapshot limit");
        limits.reserve_program(7, 0, Charge::new(300, true)).unwrap();
        limits.release_program(7, 1, Charge::new(600, false));
        assert_eq!(limits.map_budget(7).map(|b| b.remaining), Some(700));
        assert_eq!(limits.map_budget(0), None);
    }
}
