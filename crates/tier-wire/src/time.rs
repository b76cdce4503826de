//! The one conversion between the domain's [`Timestamp`] (UTC
//! milliseconds) and protobuf's `google.protobuf.Timestamp`.
//!
//! Every codec and the gRPC API use it: input events ([`crate::decode`]),
//! `TierChanged` ([`crate::tier_changed`]) and `tier-api`'s responses.
//!
//! - Domain -> proto ([`to_proto`]) is total and exact: whole seconds are
//!   floored (`div_euclid`), so an instant before the epoch has negative
//!   `seconds` and `nanos` in `0..1e9`, as proto3 requires.
//! - Proto -> domain ([`from_proto`]) accepts exactly the range proto3
//!   defines (0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z, nanos
//!   in `0..1e9`), so every accepted instant can be written back in every
//!   format, JSON included. Anything else is
//!   [`RejectReason::InvalidField`] naming the field. Sub-millisecond
//!   precision is truncated (toward the earlier instant).

use tier_core::{InvalidEvent, RejectReason, Timestamp};

/// Earliest seconds of a proto3 `Timestamp` (0001-01-01T00:00:00Z).
pub const MIN_SECONDS: i64 = -62_135_596_800;
/// Latest seconds of a proto3 `Timestamp` (9999-12-31T23:59:59Z).
pub const MAX_SECONDS: i64 = 253_402_300_799;

/// A domain instant as a protobuf `Timestamp`, exactly (milliseconds kept,
/// instants before the epoch included).
pub fn to_proto(t: Timestamp) -> prost_types::Timestamp {
    let ms = t.millis();
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        // rem_euclid is in 0..1000, so this is below 1e9 and fits.
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A protobuf `Timestamp` read from `field` (a dotted proto path such as
/// `invoice_issued.due_at`) as a domain instant. Outside proto3's range, or
/// with `nanos` outside `0..1e9`, it is an [`InvalidEvent`] with
/// [`RejectReason::InvalidField`] on `field`.
pub fn from_proto(
    field: &'static str,
    ts: &prost_types::Timestamp,
) -> Result<Timestamp, InvalidEvent> {
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(InvalidEvent::new(
            RejectReason::InvalidField,
            field,
            format!("{field}.nanos is {}, outside 0..=999999999", ts.nanos),
        ));
    }
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&ts.seconds) {
        return Err(InvalidEvent::new(
            RejectReason::InvalidField,
            field,
            format!(
                "{field}.seconds is {}, outside 0001-01-01..9999-12-31",
                ts.seconds
            ),
        ));
    }
    // In range, so neither the product nor the sum can overflow.
    Ok(Timestamp::from_millis(
        ts.seconds * 1000 + i64::from(ts.nanos / 1_000_000),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds, nanos }
    }

    #[test]
    fn millis_are_kept() {
        let t = to_proto(Timestamp::from_millis(1_700_000_000_123));
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_000_000));
        let t = to_proto(Timestamp::from_millis(0));
        assert_eq!((t.seconds, t.nanos), (0, 0));
    }

    #[test]
    fn instants_before_the_epoch_floor_their_seconds() {
        let t = to_proto(Timestamp::from_millis(-1));
        assert_eq!((t.seconds, t.nanos), (-1, 999_000_000));
        let t = to_proto(Timestamp::from_millis(-1_000));
        assert_eq!((t.seconds, t.nanos), (-1, 0));
        let t = to_proto(Timestamp::from_millis(-1_001));
        assert_eq!((t.seconds, t.nanos), (-2, 999_000_000));
    }

    #[test]
    fn round_trips_across_the_whole_range() {
        for ms in [
            MIN_SECONDS * 1000,
            MIN_SECONDS * 1000 + 1,
            -62_000_000_000_001,
            -1_001,
            -1,
            0,
            1,
            999,
            1_000,
            1_700_000_000_123,
            MAX_SECONDS * 1000 + 999,
        ] {
            let t = Timestamp::from_millis(ms);
            assert_eq!(from_proto("occurred_at", &to_proto(t)), Ok(t), "{ms}");
        }
    }

    #[test]
    fn sub_millisecond_precision_is_truncated() {
        assert_eq!(
            from_proto("occurred_at", &ts(1, 999_999_999)),
            Ok(Timestamp::from_millis(1_999))
        );
        assert_eq!(
            from_proto("occurred_at", &ts(-1, 1)),
            Ok(Timestamp::from_millis(-1_000))
        );
    }

    #[test]
    fn out_of_range_is_an_invalid_field_named_by_its_path() {
        for (field, bad, part) in [
            ("occurred_at", ts(0, -1), "occurred_at.nanos"),
            ("occurred_at", ts(0, 1_000_000_000), "occurred_at.nanos"),
            (
                "invoice_issued.due_at",
                ts(MIN_SECONDS - 1, 0),
                "invoice_issued.due_at.seconds",
            ),
            (
                "profile_updated.customer_since",
                ts(MAX_SECONDS + 1, 0),
                "profile_updated.customer_since.seconds",
            ),
            ("occurred_at", ts(i64::MAX, 0), "occurred_at.seconds"),
            ("occurred_at", ts(i64::MIN, 0), "occurred_at.seconds"),
        ] {
            let e = from_proto(field, &bad).unwrap_err();
            assert_eq!(e.reason, RejectReason::InvalidField);
            assert_eq!(e.field, field);
            assert!(e.detail.starts_with(part), "{}", e.detail);
        }
    }
}
