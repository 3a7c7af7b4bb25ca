//! The simulator's notion of "now".
//!
//! Publication, token lifetimes and quota windows all read this clock, so a
//! test can freeze it and move it across weeks in milliseconds instead of
//! waiting for real Mondays.

use chrono::{DateTime, Duration, Utc};
use std::sync::{Arc, Mutex};

/// Either the real clock or a frozen, movable instant; clones share state.
#[derive(Debug, Clone, Default)]
pub struct SimClock {
    frozen: Arc<Mutex<Option<DateTime<Utc>>>>,
}

impl SimClock {
    /// Follows the system clock until `set` is called.
    pub fn real() -> Self {
        Self::default()
    }

    /// Frozen at `at` until moved.
    pub fn frozen_at(at: DateTime<Utc>) -> Self {
        let clock = Self::default();
        clock.set(at);
        clock
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<DateTime<Utc>>> {
        // A poisoned lock only means another thread panicked mid-assignment of
        // a `Copy` value; the value itself is still whole.
        self.frozen.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now(&self) -> DateTime<Utc> {
        (*self.slot()).unwrap_or_else(Utc::now)
    }

    /// Freezes the clock at `at` (moving it if already frozen).
    pub fn set(&self, at: DateTime<Utc>) {
        *self.slot() = Some(at);
    }

    /// Moves the clock by `by`; a real clock becomes frozen at `now + by`.
    pub fn advance(&self, by: Duration) {
        let mut slot = self.slot();
        let now = (*slot).unwrap_or_else(Utc::now);
        *slot = Some(now + by);
    }

    /// Goes back to following the system clock.
    pub fn unfreeze(&self) {
        *self.slot() = None;
    }

    pub fn is_frozen(&self) -> bool {
        self.slot().is_some()
    }
}
