//! Time as the domain sees it: UTC instants, business days and months in
//! the policy's time zone, and the rolling window.
//!
//! The core never reads a clock. Callers pass `now` in, so tests control
//! time and replays are deterministic.
//!
//! ## Business time
//! An instant ([`Timestamp`]) is UTC milliseconds. Everything a manager
//! counts in days or months is counted in the *business* calendar: the
//! civil date in the policy's `time_zone` ([`BusinessCalendar`], an IANA
//! zone from a database compiled into the binary, so the core does no IO).
//! A [`Day`] is a local civil date, a [`Month`] a local calendar month. Due
//! dates, days late, month buckets and the window all use them, so a
//! payment made at 10:00 in Shanghai on its due date is on time although it
//! is still the previous day in UTC.
//!
//! ## The window
//! "Last N months" ([`Window`]) is a span of whole business days of a
//! *fixed* length, `round(N * 30.4375)` days (365 for 12 months, 183 for 6,
//! 731 for 24): the same length on every day of the year, so a customer who
//! behaves the same keeps the same figures. At instant `t` the window holds
//! the `len` business days ending with `t`'s day, that day included.

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

/// A business (local civil) date, as days since 1970-01-01.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Day(pub i32);

impl Day {
    pub const fn plus(self, n: i32) -> Self {
        Self(self.0.saturating_add(n))
    }

    pub const fn minus(self, n: i32) -> Self {
        Self(self.0.saturating_sub(n))
    }

    /// Whole days from `earlier` to `self` (negative when `earlier` is later).
    pub const fn since(self, earlier: Day) -> i32 {
        self.0.saturating_sub(earlier.0)
    }

    /// The calendar month of this date.
    pub fn month(self) -> Month {
        let (y, m, _) = civil_from_days(i64::from(self.0));
        Month::from_ym(y, m)
    }

    /// `(year, month 1-12, day 1-31)`.
    pub fn ymd(self) -> (i64, u32, u32) {
        civil_from_days(i64::from(self.0))
    }
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// The business calendar: civil dates in the policy's time zone.
///
/// Cheap to clone (the zone is reference counted). UTC unless the policy
/// names a zone.
#[derive(Clone)]
pub struct BusinessCalendar {
    name: String,
    tz: jiff::tz::TimeZone,
    /// The zone never changes its offset (UTC, Etc/GMT-8, ...): days are
    /// then one addition away, no zone lookup.
    fixed_offset_ms: Option<i64>,
    /// The zone's offset has not changed since this instant (Asia/Shanghai
    /// since 1991): `(since_ms, offset_ms)`. Later instants skip the lookup.
    steady: Option<(i64, i64)>,
}

impl std::fmt::Debug for BusinessCalendar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BusinessCalendar").field(&self.name).finish()
    }
}

impl PartialEq for BusinessCalendar {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Default for BusinessCalendar {
    fn default() -> Self {
        Self::utc()
    }
}

/// A time zone name that the bundled database does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {name:?}: expected an IANA name such as \"Asia/Shanghai\" or \"UTC\"")]
pub struct UnknownTimeZone {
    pub name: String,
}

impl BusinessCalendar {
    pub fn utc() -> Self {
        Self {
            name: "UTC".to_owned(),
            tz: jiff::tz::TimeZone::UTC,
            fixed_offset_ms: Some(0),
            steady: None,
        }
    }

    /// The calendar of an IANA time zone (`Asia/Shanghai`, `Europe/Berlin`).
    pub fn from_iana(name: &str) -> Result<Self, UnknownTimeZone> {
        let tz = jiff::tz::db().get(name).map_err(|_| UnknownTimeZone {
            name: name.to_owned(),
        })?;
        // A zone with no transitions from 1900 on has one offset for good.
        let fixed_offset_ms = fixed_offset(&tz).map(|s| i64::from(s) * 1000);
        let steady = steady_offset(&tz);
        Ok(Self {
            name: name.to_owned(),
            tz,
            fixed_offset_ms,
            steady,
        })
    }

    /// The IANA name (`UTC` by default).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Offset of local time from UTC at `t`, in milliseconds.
    #[inline(always)]
    fn offset_ms(&self, t: Timestamp) -> i64 {
        if let Some(fixed) = self.fixed_offset_ms {
            return fixed;
        }
        if let Some((since, offset)) = self.steady
            && t.0 >= since
        {
            return offset;
        }
        self.lookup_offset_ms(t)
    }

    /// The zone database's offset at `t` (the slow path).
    #[inline(never)]
    fn lookup_offset_ms(&self, t: Timestamp) -> i64 {
        let ts = jiff::Timestamp::from_millisecond(t.0).unwrap_or(if t.0 < 0 {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        });
        i64::from(self.tz.to_offset(ts).seconds()) * 1000
    }

    /// The business day `t` falls on.
    #[inline]
    pub fn day(&self, t: Timestamp) -> Day {
        let local = t.0.saturating_add(self.offset_ms(t));
        let d = local.div_euclid(MS_PER_DAY);
        Day(d.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
    }

    /// The business month `t` falls in.
    pub fn month(&self, t: Timestamp) -> Month {
        self.day(t).month()
    }

    /// The first instant of business day `d` (local midnight; the earliest
    /// instant of that date if midnight is skipped by a DST change).
    pub fn day_start(&self, d: Day) -> Timestamp {
        let naive = i64::from(d.0).saturating_mul(MS_PER_DAY);
        // One offset at the instant, the one before it and `naive` (a
        // fixed zone, or a steady one since before them): local midnight
        // is exact, and what the search below finds.
        let steady = match (self.fixed_offset_ms, self.steady) {
            (Some(offset), _) => Some(offset),
            (None, Some((since, offset)))
                if naive >= since && naive.saturating_sub(offset) > since =>
            {
                Some(offset)
            }
            _ => None,
        };
        if let Some(offset) = steady
            && let Some(t) = naive.checked_sub(offset)
            && t > i64::MIN / 2
            && t < i64::MAX / 2
        {
            return Timestamp(t);
        }
        // The offset at local midnight is close to the one at the UTC
        // instant of the same wall time; two rounds settle any DST edge.
        let mut t = Timestamp(naive.saturating_sub(self.offset_ms(Timestamp(naive))));
        for _ in 0..2 {
            if self.day(t) < d {
                t = Timestamp(naive.saturating_sub(self.offset_ms(Timestamp(t.0 + 3_600_000))));
            }
        }
        while self.day(t) < d {
            t = Timestamp(t.0 + 3_600_000);
        }
        while self.day(Timestamp(t.0 - 1)) >= d {
            t = Timestamp(t.0 - 3_600_000);
        }
        t
    }

    /// The first instant of business month `m`.
    pub fn month_start(&self, m: Month) -> Timestamp {
        self.day_start(m.first_day())
    }
}

/// The offset of a zone that has one offset from 1900 on, in seconds.
fn fixed_offset(tz: &jiff::tz::TimeZone) -> Option<i32> {
    let start = jiff::Timestamp::from_second(-2_208_988_800).ok()?; // 1900-01-01
    let first = tz.to_offset(start);
    let mut transitions = tz.following(start);
    match transitions.next() {
        None => Some(first.seconds()),
        Some(_) => None,
    }
}

/// The last transition of a zone that has no more of them (no daylight
/// saving any more): `(its instant in ms, the offset after it in ms)`.
fn steady_offset(tz: &jiff::tz::TimeZone) -> Option<(i64, i64)> {
    // A zone with rules for the future (daylight saving) has a transition
    // within any two years; one without has none after its last.
    let probe = jiff::Timestamp::from_second(4_102_444_800).ok()?; // 2100-01-01
    if tz
        .preceding(probe)
        .next()
        .is_some_and(|t| t.timestamp().as_second() > 4_102_444_800 - 2 * 366 * 86_400)
    {
        return None;
    }
    let last = tz.preceding(probe).next()?;
    let since = last.timestamp().as_millisecond();
    let offset = i64::from(tz.to_offset(last.timestamp()).seconds()) * 1000;
    Some((since, offset))
}

/// A rolling window of a fixed number of business days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    months: u32,
    days: u32,
}

impl Window {
    /// Average Gregorian month: 365.25 / 12 days.
    const DAYS_PER_MONTH: f64 = 30.4375;

    /// The window of "the last `months` months": `round(months * 30.4375)`
    /// days (at least one).
    pub fn months(months: u32) -> Self {
        let months = months.max(1);
        let days = (f64::from(months) * Self::DAYS_PER_MONTH).round() as u32;
        Self { months, days }
    }

    /// The nominal length in months (what the policy says).
    pub const fn len_months(self) -> u32 {
        self.months
    }

    /// The length in business days.
    pub const fn len_days(self) -> u32 {
        self.days
    }

    /// The first business day of the window whose last day is `today`.
    pub fn start(self, today: Day) -> Day {
        today.minus(i32::try_from(self.days).unwrap_or(i32::MAX) - 1)
    }

    /// Factor that turns a sum over the window into a yearly figure.
    pub fn annualise(self) -> f64 {
        365.25 / f64::from(self.days)
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

    /// The days of this month, from its first day to the next month's,
    /// without a calendar conversion of either: 28 to 31 for any month
    /// within about 5.8 million years of 1970 (past that `first_day`
    /// clamps, and the difference of the clamped days is fewer).
    pub fn len_days(self) -> i32 {
        let year = self.0.div_euclid(12);
        // Past about five million years a first day no longer fits a
        // `Day` (see `first_day`): the days between the clamped ones.
        if year.unsigned_abs() > 5_000_000 {
            return self.plus(1).first_day().since(self.first_day());
        }
        match self.0.rem_euclid(12) + 1 {
            2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    /// The first day of this month.
    pub fn first_day(self) -> Day {
        let year = i64::from(self.0.div_euclid(12));
        let month = self.0.rem_euclid(12) as u32 + 1;
        let d = days_from_civil(year, month, 1);
        Day(d.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
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

    proptest::proptest! {
        /// A month's length is the days from its first day to the next
        /// month's, for every month a `Month` holds: mostly months of
        /// the calendar rules (within 5,000,000 years), some past them.
        #[test]
        fn a_months_length_is_the_days_to_the_next(
            m in proptest::prop_oneof![
                4 => -60_000_012i32..60_000_012,
                1 => proptest::prelude::any::<i32>(),
            ]
        ) {
            let m = Month(m);
            proptest::prop_assert_eq!(m.len_days(), m.plus(1).first_day().since(m.first_day()));
        }
    }

    #[test]
    fn months_have_their_calendar_lengths() {
        let len = |y, m| Month::from_ym(y, m).len_days();
        assert_eq!(
            (len(2024, 2), len(2023, 2), len(1900, 2), len(2000, 2)),
            (29, 28, 28, 29)
        );
        assert_eq!((len(2026, 1), len(2026, 4), len(2026, 12)), (31, 30, 31));
        assert_eq!(
            (len(-4, 2), len(-1, 2), len(-100, 2), len(-400, 2)),
            (29, 28, 28, 29)
        );
        // Both sides of where the rules give way to the clamped days,
        // and the ends.
        let edge = 5_000_000 * 12;
        for m in [
            i32::MIN,
            i32::MIN + 11,
            -edge - 13,
            -edge - 12,
            -edge - 1,
            -edge,
            -1,
            0,
            edge + 11,
            edge + 12,
            i32::MAX - 1,
            i32::MAX,
        ] {
            let m = Month(m);
            assert_eq!(
                m.len_days(),
                m.plus(1).first_day().since(m.first_day()),
                "{m:?}"
            );
        }
    }

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
        assert_eq!(BusinessCalendar::utc().month(t), Month::from_ym(2026, 3));
        assert_eq!(Month::from_ym(2026, 1).minus(1), Month::from_ym(2025, 12));
        assert_eq!(
            BusinessCalendar::utc().month_start(Month::from_ym(2025, 12)),
            date(2025, 12, 1)
        );
        assert_eq!(date(2024, 2, 29).to_string(), "2024-02-29T00:00:00Z");
        assert_eq!(Timestamp(-1).day(), -1);
        assert_eq!(Month::from_ym(2026, 3).first_day().ymd(), (2026, 3, 1));
    }

    #[test]
    fn business_days_follow_the_zone() {
        let sh = BusinessCalendar::from_iana("Asia/Shanghai").unwrap();
        // 2026-03-09T16:00Z is midnight of 2026-03-10 in Shanghai.
        let t = Timestamp(date(2026, 3, 9).0 + 16 * 3_600_000);
        assert_eq!(sh.day(t).ymd(), (2026, 3, 10));
        assert_eq!(sh.day(Timestamp(t.0 - 1)).ymd(), (2026, 3, 9));
        assert_eq!(sh.day_start(sh.day(t)), t);
        assert_eq!(BusinessCalendar::utc().day(t).ymd(), (2026, 3, 9));
        assert!(BusinessCalendar::from_iana("Mars/Olympus").is_err());
        // Shanghai had daylight saving until 1991: an instant then still
        // uses the zone database, a later one the steady offset.
        let dst_1988 = Timestamp(date(1988, 7, 1).0 + 15 * 3_600_000 + 30 * 60_000);
        assert_eq!(sh.day(dst_1988).ymd(), (1988, 7, 2), "UTC+9 in summer 1988");
        assert!(sh.steady.is_some());
        let berlin = BusinessCalendar::from_iana("Europe/Berlin").unwrap();
        assert!(berlin.steady.is_none() && berlin.fixed_offset_ms.is_none());
    }

    #[test]
    fn day_start_is_exact_across_dst() {
        let berlin = BusinessCalendar::from_iana("Europe/Berlin").unwrap();
        let ny = BusinessCalendar::from_iana("America/New_York").unwrap();
        for cal in [&berlin, &ny, &BusinessCalendar::utc()] {
            let first = cal.day(date(2025, 1, 1));
            for i in 0..800 {
                let d = first.plus(i);
                let s = cal.day_start(d);
                assert_eq!(cal.day(s), d, "{cal:?} {d}");
                assert_eq!(cal.day(Timestamp(s.0 - 1)), d.minus(1), "{cal:?} {d}");
            }
        }
    }

    #[test]
    fn windows_have_a_fixed_length() {
        assert_eq!(Window::months(12).len_days(), 365);
        assert_eq!(Window::months(6).len_days(), 183);
        assert_eq!(Window::months(1).len_days(), 30);
        assert_eq!(Window::months(24).len_days(), 731);
        let today = Day(20_000);
        assert_eq!(today.since(Window::months(12).start(today)), 364);
    }
}
