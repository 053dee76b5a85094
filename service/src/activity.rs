//! Tracks requests in flight and the time of the last one, so the service
//! can exit when idle (its chains stay attached: their links are pinned).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Activity(Arc<Inner>);

struct Inner {
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
}

/// Held while a request runs.
pub struct Busy(Arc<Inner>);

impl Activity {
    pub fn new() -> Activity {
        Activity(Arc::new(Inner { in_flight: AtomicUsize::new(0), last: Mutex::new(Instant::now()) }))
    }

    pub fn begin(&self) -> Busy {
        self.0.in_flight.fetch_add(1, Ordering::SeqCst);
        self.0.touch();
        Busy(self.0.clone())
    }

    /// How long nothing has happened; `None` while a request runs.
    pub fn idle_for(&self) -> Option<Duration> {
        if self.0.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        self.0.last.lock().ok().map(|t| t.elapsed())
    }
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

impl Inner {
    fn touch(&self) {
        if let Ok(mut t) = self.last.lock() {
            *t = Instant::now();
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
