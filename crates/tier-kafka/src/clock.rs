//! The processing clock. The core never reads time; the adapters ask a
//! [`Clock`], so tests can drive time by hand.

use std::sync::atomic::{AtomicI64, Ordering};

use tier_core::Timestamp;

/// A source of processing time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// Wall-clock UTC time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Timestamp::from_millis(ms)
    }
}

/// A clock set by hand (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(t: Timestamp) -> Self {
        Self(AtomicI64::new(t.millis()))
    }

    pub fn set(&self, t: Timestamp) {
        self.0.store(t.millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// Never lets processing time go backwards (wall clocks can step back).
#[derive(Debug)]
pub(crate) struct MonotonicNow {
    last: i64,
}

impl MonotonicNow {
    pub(crate) fn new() -> Self {
        Self { last: i64::MIN }
    }

    pub(crate) fn now(&mut self, clock: &dyn Clock) -> Timestamp {
        self.last = self.last.max(clock.now().millis());
        Timestamp::from_millis(self.last)
    }
}
