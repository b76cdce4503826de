//! Bytes -> `Decoder::decode`: never panics; every outcome is a valid event
//! that re-encodes to itself in every format, or a rejection with a bounded
//! reason, a known field path and a short detail.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tier_core::time::date;
use tier_core::{CurrencyRules, RejectReason, Timestamp, ValidationLimits};
use tier_wire::decode::{
    Decoder, FIELD_PATHS, MAX_DETAIL_LEN, encode_confluent, encode_json, encode_protobuf,
    event_to_proto,
};

const BASE: &str = "CNY";

static DECODER: LazyLock<Decoder> = LazyLock::new(|| {
    Decoder::new(
        CurrencyRules::new(BASE).with_rate_micro("USD", 7_100_000),
        ValidationLimits::default(),
    )
});

fn now() -> Timestamp {
    date(2026, 3, 1)
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the key: absent, empty, or the rest's customer id
    // guess "c" (so both key paths are exercised).
    let (key, payload): (Option<&[u8]>, &[u8]) = match data.split_first() {
        Some((k, rest)) if k % 4 == 1 => (Some(b""), rest),
        Some((k, rest)) if k % 4 == 2 => (Some(b"c"), rest),
        _ => (None, data),
    };
    match DECODER.decode(key, Some(payload), now()) {
        Ok(decoded) => {
            let ev = decoded.event;
            assert!(ev.validate(now(), DECODER.limits()).is_ok());
            let msg = event_to_proto(&ev, BASE);
            for bytes in [
                encode_protobuf(&msg),
                encode_json(&msg),
                encode_confluent(&msg, 1),
            ] {
                match DECODER.decode(None, Some(&bytes), now()) {
                    Ok(again) => assert_eq!(again.event, ev),
                    Err(e) => panic!("re-encoded event rejected: {e}"),
                }
            }
        }
        Err(e) => {
            assert!(RejectReason::ALL.contains(&e.reason));
            assert!(FIELD_PATHS.contains(&e.field), "{e:?}");
            assert!(!e.detail.is_empty() && e.detail.len() <= MAX_DETAIL_LEN);
        }
    }
});
