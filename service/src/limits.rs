//! Limits that keep one user or one client from exhausting the service:
//! programs per uid (across interfaces) and requests in flight per client.
//! (Object size and programs per interface are checked by the engine.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::ServiceError;

pub struct Limits {
    max_programs_per_uid: usize,
    max_requests_per_client: usize,
    programs: Mutex<HashMap<u32, usize>>,
    requests: Mutex<HashMap<String, usize>>,
}

/// A request in flight; counted until dropped.
pub struct Request {
    limits: Arc<Limits>,
    client: String,
}

impl Limits {
    pub fn new(max_programs_per_uid: usize, max_requests_per_client: usize) -> Arc<Limits> {
        Arc::new(Limits {
            max_programs_per_uid,
            max_requests_per_client,
            programs: Mutex::new(HashMap::new()),
            requests: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a program for `uid` if the uid is below its limit (root has none).
    pub fn reserve_program(&self, uid: u32) -> Result<(), ServiceError> {
        let mut programs = self.programs.lock().map_err(|_| ServiceError::Failed("limits lock poisoned".into()))?;
        let count = programs.entry(uid).or_default();
        if uid != 0 && *count >= self.max_programs_per_uid {
            return Err(ServiceError::LimitExceeded(format!(
                "uid {uid} already has {count} programs, the most one user may have (--max-programs-per-uid)"
            )));
        }
        *count += 1;
        Ok(())
    }

    /// Forgets one program of `uid` (removed, replaced, failed to add, interface gone).
    pub fn release_program(&self, uid: u32) {
        if let Ok(mut programs) = self.programs.lock() {
            if let Some(count) = programs.get_mut(&uid) {
                *count = count.saturating_sub(1);
            }
        }
    }

    /// Counts a program restored at start, whatever the limit.
    pub fn count_program(&self, uid: u32) {
        if let Ok(mut programs) = self.programs.lock() {
            *programs.entry(uid).or_default() += 1;
        }
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
        let limits = Limits::new(2, 1);
        limits.reserve_program(1000).unwrap();
        limits.reserve_program(1000).unwrap();
        assert!(matches!(limits.reserve_program(1000), Err(ServiceError::LimitExceeded(_))));
        limits.reserve_program(0).unwrap();
        limits.reserve_program(0).unwrap();
        limits.reserve_program(0).unwrap();
        limits.release_program(1000);
        limits.reserve_program(1000).unwrap();

        let first = limits.begin_request(":1.7").unwrap();
        assert!(matches!(limits.begin_request(":1.7"), Err(ServiceError::LimitExceeded(_))));
        limits.begin_request(":1.8").unwrap();
        drop(first);
        limits.begin_request(":1.7").unwrap();
    }
}
