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

/// The instant a record's `occurred_at` is judged against (how far ahead
/// an event may be dated, `ValidationLimits::max_future_ms`): when the
/// record reached Kafka (its timestamp), or the processing time when that
/// is earlier or the record has none. The record's timestamp never
/// changes, so a replay on a later day rejects exactly the records live
/// processing rejected, where the processing time alone would accept a
/// record dated 30 hours ahead once it is read a day later.
pub fn judged_at(record: rdkafka::Timestamp, now: Timestamp) -> Timestamp {
    record
        .to_millis()
        .filter(|ms| *ms > 0)
        .map_or(now, |ms| now.min(Timestamp::from_millis(ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_judged_at_its_kafka_time_unless_processing_is_earlier() {
        let now = Timestamp::from_millis(1_772_323_200_000);
        let earlier = now.millis() - 86_400_000;
        // Written a day ago: judged as of then, on any later day.
        assert_eq!(
            judged_at(rdkafka::Timestamp::CreateTime(earlier), now).millis(),
            earlier
        );
        assert_eq!(
            judged_at(rdkafka::Timestamp::LogAppendTime(earlier), now).millis(),
            earlier
        );
        // A producer clock ahead of ours is not trusted past our own.
        let ahead = now.millis() + 86_400_000;
        assert_eq!(judged_at(rdkafka::Timestamp::CreateTime(ahead), now), now);
        // None, or none usable: the processing time.
        assert_eq!(judged_at(rdkafka::Timestamp::NotAvailable, now), now);
        assert_eq!(judged_at(rdkafka::Timestamp::CreateTime(0), now), now);
        assert_eq!(judged_at(rdkafka::Timestamp::CreateTime(-1), now), now);
    }
}
