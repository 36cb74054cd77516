//! Where the service layer reads the time: the system clock in runseald, a [`ManualClock`] that
//! tests advance, so that expiry, retry windows and retention are tested without sleeping.

use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

/// The time source of a [`super::Service`].
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// The system's UTC clock (the only one the binaries use).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that stands still until told to move: for tests of the in-process server.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    /// A clock showing the current system time, from which it moves only by [`advance`].
    ///
    /// [`advance`]: ManualClock::advance
    pub fn new() -> Self {
        Self::at(OffsetDateTime::now_utc())
    }

    pub fn at(t: OffsetDateTime) -> Self {
        Self(Mutex::new(t))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
