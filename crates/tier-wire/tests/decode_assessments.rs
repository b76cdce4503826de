//! Decoding `customer_assessed` (issue 12): round trips through every wire
//! format, and a decoder built for a policy rejects an undeclared
//! indicator or an off-scale value with the field named, so the pipeline
//! dead-letters it with the reason.

// Test helpers outside #[test] fns panic on purpose too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tier_core::policy::Policy;
use tier_core::time::date;
use tier_core::{Event, EventKind, RejectReason, Timestamp, ValidationLimits};
use tier_proto::ev::customer_event::Payload;
use tier_wire::decode::{
    Decoder, FIELD_PATHS, encode_confluent, encode_json, encode_protobuf, event_to_proto,
};

const POLICY: &str = include_str!("../../tier-core/tests/fixtures/valid_assessments.toml");

fn policy() -> Policy {
    Policy::from_toml_str(POLICY).unwrap()
}

fn decoder() -> Decoder {
    Decoder::for_policy(&policy(), ValidationLimits::default())
}

fn now() -> Timestamp {
    date(2026, 3, 10)
}

fn assessed(indicator: &str, value: i64, by: &str) -> Event {
    Event {
        event_id: "as-1".into(),
        customer_id: "cust-1".into(),
        occurred_at: Timestamp::from_millis(date(2026, 3, 3).millis() + 7_000),
        source: "crm".into(),
        kind: EventKind::CustomerAssessed {
            indicator: indicator.into(),
            value,
            assessed_by: by.into(),
            note: "visited the plant; 行业龙头".into(),
        },
    }
}

/// Every wire format of `e`.
fn encodings(e: &Event) -> Vec<Vec<u8>> {
    let msg = event_to_proto(e, "CNY");
    vec![
        encode_protobuf(&msg),
        encode_json(&msg),
        encode_confluent(&msg, 7),
    ]
}

#[test]
fn an_assessment_round_trips_through_every_format() {
    let e = assessed("potential", 4, "alice");
    let msg = event_to_proto(&e, "CNY");
    assert!(matches!(msg.payload, Some(Payload::CustomerAssessed(_))));
    for bytes in encodings(&e) {
        let d = decoder()
            .decode(Some(b"cust-1"), Some(&bytes), now())
            .unwrap();
        assert_eq!(d.event, e, "{:?}", d.format);
    }
}

#[test]
fn the_json_mapping_reads_snake_and_camel_case() {
    let json = r#"{"eventId":"as-2","customerId":"cust-1","occurredAt":"2026-03-03T02:00:00Z",
        "customerAssessed":{"indicator":"industry_position","value":5,"assessedBy":"bob"}}"#;
    let d = decoder()
        .decode(None, Some(json.as_bytes()), now())
        .unwrap();
    assert_eq!(
        d.event.kind,
        EventKind::CustomerAssessed {
            indicator: "industry_position".into(),
            value: 5,
            assessed_by: "bob".into(),
            note: String::new(),
        }
    );
    let snake = json
        .replace("customerAssessed", "customer_assessed")
        .replace("assessedBy", "assessed_by");
    let d2 = decoder()
        .decode(None, Some(snake.as_bytes()), now())
        .unwrap();
    assert_eq!(d2.event, d.event);
}

#[test]
fn an_undeclared_indicator_is_rejected_with_the_field_named() {
    for bytes in encodings(&assessed("charisma", 4, "alice")) {
        let err = decoder().decode(None, Some(&bytes), now()).unwrap_err();
        assert_eq!(err.reason, RejectReason::InvalidField);
        assert_eq!(err.field, "customer_assessed.indicator");
        assert!(err.detail.contains("charisma"), "{err}");
    }
}

#[test]
fn an_off_scale_value_is_rejected_with_the_field_named() {
    for value in [0, 6, -3] {
        for bytes in encodings(&assessed("potential", value, "alice")) {
            let err = decoder().decode(None, Some(&bytes), now()).unwrap_err();
            assert_eq!(err.reason, RejectReason::InvalidField);
            assert_eq!(err.field, "customer_assessed.value");
            assert!(err.detail.contains("1..=5"), "{err}");
        }
    }
    // The edges of the scale are on it.
    for value in [1, 5] {
        let bytes = encode_protobuf(&event_to_proto(&assessed("potential", value, "a"), "CNY"));
        assert!(decoder().decode(None, Some(&bytes), now()).is_ok());
    }
}

#[test]
fn an_assessment_without_an_author_is_rejected() {
    let bytes = encode_json(&event_to_proto(&assessed("potential", 3, ""), "CNY"));
    let err = decoder().decode(None, Some(&bytes), now()).unwrap_err();
    assert_eq!(
        (err.reason, err.field),
        (RejectReason::MissingField, "customer_assessed.assessed_by")
    );
}

#[test]
fn a_decoder_without_the_policy_leaves_the_check_to_the_fold() {
    let plain = Decoder::new(
        policy().currency_rules().clone(),
        ValidationLimits::default(),
    );
    assert!(plain.assessments().is_none());
    let bytes = encode_protobuf(&event_to_proto(&assessed("charisma", 9, "alice"), "CNY"));
    assert!(plain.decode(None, Some(&bytes), now()).is_ok());
}

#[test]
fn the_assessment_fields_are_known_paths() {
    for f in [
        "customer_assessed",
        "customer_assessed.indicator",
        "customer_assessed.value",
        "customer_assessed.assessed_by",
        "customer_assessed.note",
    ] {
        assert!(FIELD_PATHS.contains(&f), "{f}");
    }
}
