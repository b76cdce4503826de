//! Time as the domain sees it: UTC milliseconds, calendar months, days.
//!
//! The core never reads a clock. Callers pass `now` in, so tests control
//! time and replays are deterministic.

use serde::{Deserialize, Serialize};

const MS_PER_DAY: i64 = 86_400_000;

/// A UTC instant in milliseconds since the Unix epoch.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Whole days since the epoch (floor, also for instants before 1970).
    pub const fn day(self) -> i64 {
        self.0.div_euclid(MS_PER_DAY)
    }

    /// The calendar month this instant falls in.
    pub fn month(self) -> Month {
        let (y, m, _) = civil_from_days(self.day());
        Month::from_ym(y, m)
    }

    pub const fn plus_days(self, days: i64) -> Self {
        Self(self.0.saturating_add(days.saturating_mul(MS_PER_DAY)))
    }

    /// Fractional days from `earlier` to `self` (negative when `earlier` is later).
    pub fn days_since(self, earlier: Timestamp) -> f64 {
        (self.0.saturating_sub(earlier.0)) as f64 / MS_PER_DAY as f64
    }

    /// `(year, month 1-12, day 1-31)` in the proleptic Gregorian calendar.
    pub fn ymd(self) -> (i64, u32, u32) {
        civil_from_days(self.day())
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (y, m, d) = self.ymd();
        let ms = self.0.rem_euclid(MS_PER_DAY);
        let (h, mi, s) = (ms / 3_600_000, (ms / 60_000) % 60, (ms / 1000) % 60);
        write!(f, "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }
}

/// A calendar month as a running index: `year * 12 + (month - 1)`.
///
/// Rolling windows are kept in month buckets: a window of `W` months at
/// `now` covers the current month and the `W - 1` months before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Month(pub i32);

impl Month {
    pub fn from_ym(year: i64, month: u32) -> Self {
        let idx = year.saturating_mul(12).saturating_add(i64::from(month) - 1);
        Self(idx.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
    }

    /// The month `n` months before this one.
    pub const fn minus(self, n: i32) -> Self {
        Self(self.0.saturating_sub(n))
    }

    pub const fn plus(self, n: i32) -> Self {
        Self(self.0.saturating_add(n))
    }

    /// The first instant of this month.
    pub fn start(self) -> Timestamp {
        let year = i64::from(self.0.div_euclid(12));
        let month = self.0.rem_euclid(12) as u32 + 1;
        Timestamp(days_from_civil(year, month, 1).saturating_mul(MS_PER_DAY))
    }
}

/// Days since 1970-01-01 to `(year, month, day)`. Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `(year, month, day)` to days since 1970-01-01.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Build a timestamp from a calendar date at midnight UTC (tests, demos).
pub fn date(year: i64, month: u32, day: u32) -> Timestamp {
    Timestamp(days_from_civil(year, month, day).saturating_mul(MS_PER_DAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_over_centuries() {
        for z in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn months_and_display() {
        let t = date(2026, 2, 28).plus_days(1);
        assert_eq!(t.ymd(), (2026, 3, 1));
        assert_eq!(t.month(), Month::from_ym(2026, 3));
        assert_eq!(Month::from_ym(2026, 1).minus(1), Month::from_ym(2025, 12));
        assert_eq!(Month::from_ym(2025, 12).start(), date(2025, 12, 1));
        assert_eq!(date(2024, 2, 29).to_string(), "2024-02-29T00:00:00Z");
        assert_eq!(Timestamp(-1).day(), -1);
    }
}
