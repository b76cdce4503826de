//! Decoding of Kafka records: round trips through every wire format and one
//! test per rejection class, each checking the reason and the field named.

// Test helpers outside #[test] fns panic on purpose too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use prost::Message as _;
use tier_core::time::date;
use tier_core::{
    Amount, Currency, CurrencyRules, Event, EventKind, InvalidEvent, Money, ProfileField,
    ProfileUpdate, RejectReason, Severity, Timestamp, ValidationLimits,
};
use tier_proto::ev::{self, CustomerEvent, customer_event::Payload};
use tier_wire::decode::{
    CUSTOMER_EVENT_MESSAGE_INDEX, Decoded, Decoder, FIELD_PATHS, MAX_DETAIL_LEN, WireFormat,
    decode_wire, encode_confluent, encode_json, encode_protobuf, event_from_proto, event_to_proto,
    try_encode_json,
};

const BASE: &str = "CNY";
const SCHEMA_ID: u32 = 42;

fn now() -> Timestamp {
    date(2026, 3, 1)
}

fn rules() -> CurrencyRules {
    CurrencyRules::new(BASE).with_rate_micro("USD", 7_100_000)
}

fn decoder() -> Decoder {
    Decoder::new(rules(), ValidationLimits::default())
}

fn event(id: &str, kind: EventKind) -> Event {
    Event {
        event_id: id.into(),
        customer_id: "cust-1".into(),
        occurred_at: Timestamp::from_millis(date(2026, 2, 14).millis() + 37_123),
        source: "erp".into(),
        kind,
    }
}

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

fn cny() -> Currency {
    Currency::parse(BASE).unwrap()
}

/// One event of every kind and shape, with awkward values where they
/// matter. Invoice and payment base amounts are the base values of what
/// was billed or paid under [`rules`].
fn every_kind() -> Vec<Event> {
    vec![
        event(
            "e-placed",
            EventKind::OrderPlaced {
                order_id: "o-1".into(),
                amount: Money(1_234_567),
                cost: Some(Money(1_000_000)),
            },
        ),
        event(
            "e-placed-free",
            EventKind::OrderPlaced {
                order_id: "o-2".into(),
                amount: Money(0),
                cost: Some(Money(0)),
            },
        ),
        event(
            "e-placed-uncosted",
            EventKind::OrderPlaced {
                order_id: "o-3".into(),
                amount: Money(99_900),
                cost: None,
            },
        ),
        event(
            "e-cancelled",
            EventKind::OrderCancelled {
                order_id: "o-1".into(),
            },
        ),
        event(
            "e-returned",
            EventKind::OrderReturned {
                order_id: "o-1".into(),
                amount: Money(500),
                cost: Some(Money(400)),
                return_id: "rma-1".into(),
            },
        ),
        event(
            "e-returned-pro-rata",
            EventKind::OrderReturned {
                order_id: "o-3".into(),
                amount: Money(9_990),
                cost: None,
                return_id: String::new(),
            },
        ),
        event(
            "e-invoice",
            EventKind::InvoiceIssued {
                invoice_id: "i-1".into(),
                order_id: "o-1".into(),
                amount: Money(1_234_567),
                billed: Amount::new(1_234_567, cny()),
                due_at: Timestamp::from_millis(date(2026, 3, 16).millis() + 999),
            },
        ),
        event(
            "e-invoice-usd",
            EventKind::InvoiceIssued {
                invoice_id: "i-2".into(),
                order_id: String::new(),
                // 3,333 US cents at 7.10 = 23,664.3 fen, truncated.
                amount: Money(23_664),
                billed: Amount::new(3_333, usd()),
                due_at: date(2026, 4, 1),
            },
        ),
        event(
            "e-invoice-cancelled",
            EventKind::InvoiceCancelled {
                invoice_id: "i-2".into(),
            },
        ),
        event(
            "e-invoice-credited",
            EventKind::InvoiceCredited {
                invoice_id: "i-1".into(),
                amount: Money(34_567),
                credited: Amount::new(34_567, cny()),
                credit_note_id: "CN-1".into(),
            },
        ),
        event(
            "e-payment",
            EventKind::PaymentReceived {
                invoice_id: "i-1".into(),
                amount: Money(1_000_000_000_000_000), // the default limit
                paid: Amount::new(1_000_000_000_000_000, cny()),
                payment_id: "pay-1".into(),
            },
        ),
        event(
            "e-payment-usd",
            EventKind::PaymentReceived {
                invoice_id: "i-2".into(),
                amount: Money(7),
                paid: Amount::new(1, usd()),
                payment_id: String::new(),
            },
        ),
        event(
            "e-complaint",
            EventKind::ComplaintOpened {
                complaint_id: "k-1".into(),
                severity: Severity::Critical,
                category: "quality".into(),
            },
        ),
        event(
            "e-complaint-unspecified",
            EventKind::ComplaintOpened {
                complaint_id: "k-2".into(),
                severity: Severity::Unspecified,
                category: String::new(),
            },
        ),
        event(
            "e-resolved",
            EventKind::ComplaintResolved {
                complaint_id: "k-1".into(),
            },
        ),
        event(
            "e-profile",
            EventKind::ProfileUpdated(ProfileUpdate {
                name: Some("Zhejiang Präzision 精密".into()),
                industry: Some("machinery".into()),
                region: Some("east".into()),
                purchase_potential: Some(Money(50_000_000)),
                account_manager: Some("li.wei".into()),
                customer_since: Some(date(2011, 6, 1)),
                cleared: Vec::new(),
            }),
        ),
        event(
            "e-profile-empty",
            EventKind::ProfileUpdated(ProfileUpdate::default()),
        ),
        event(
            "e-profile-partial",
            EventKind::ProfileUpdated(ProfileUpdate {
                // Set to empty text: present on the wire, unlike an absent field.
                name: Some(String::new()),
                account_manager: Some("wang.fang".into()),
                customer_since: Some(Timestamp::from_millis(-1_000_000_000_001)),
                cleared: vec![ProfileField::PurchasePotential, ProfileField::Region],
                ..ProfileUpdate::default()
            }),
        ),
        event(
            "e-profile-clear-all",
            EventKind::ProfileUpdated(ProfileUpdate {
                cleared: ProfileField::ALL.to_vec(),
                ..ProfileUpdate::default()
            }),
        ),
    ]
}

/// The event of [`every_kind`] with this id.
fn by_id(id: &str) -> Event {
    every_kind()
        .into_iter()
        .find(|e| e.event_id == id)
        .unwrap_or_else(|| panic!("no event {id}"))
}

fn encodings(msg: &CustomerEvent) -> [(WireFormat, Vec<u8>); 3] {
    [
        (WireFormat::Protobuf, encode_protobuf(msg)),
        (WireFormat::Json, encode_json(msg)),
        (
            WireFormat::ConfluentProtobuf,
            encode_confluent(msg, SCHEMA_ID),
        ),
    ]
}

fn reject(key: Option<&[u8]>, payload: &[u8]) -> InvalidEvent {
    let err = decoder()
        .decode(key, Some(payload), now())
        .expect_err("record must be rejected");
    assert!(RejectReason::ALL.contains(&err.reason));
    assert!(FIELD_PATHS.contains(&err.field), "{err:?}");
    assert!(err.detail.len() <= MAX_DETAIL_LEN, "{}", err.detail);
    err
}

fn reject_msg(msg: &CustomerEvent) -> InvalidEvent {
    let err = reject(None, &encode_protobuf(msg));
    // The same verdict whatever the encoding.
    for (format, bytes) in encodings(msg) {
        assert_eq!(reject(None, &bytes), err, "{format}");
    }
    err
}

fn assert_reject(err: &InvalidEvent, reason: RejectReason, field: &str) {
    assert_eq!((err.reason, err.field), (reason, field), "{err}");
}

fn placed() -> CustomerEvent {
    event_to_proto(&by_id("e-placed"), BASE)
}

fn with_payload(payload: Payload) -> CustomerEvent {
    CustomerEvent {
        payload: Some(payload),
        ..placed()
    }
}

// ---------------------------------------------------------------- round trips

#[test]
fn round_trip_every_kind_in_every_format() {
    let d = decoder();
    for ev in every_kind() {
        for currency in [BASE, ""] {
            let msg = event_to_proto(&ev, currency);
            assert_eq!(event_from_proto(msg.clone(), &rules()).unwrap(), ev);
            for (format, bytes) in encodings(&msg) {
                let got = d
                    .decode(Some(ev.customer_id.as_bytes()), Some(&bytes), now())
                    .unwrap_or_else(|e| panic!("{} as {format}: {e}", ev.event_id));
                assert_eq!(
                    got,
                    Decoded {
                        event: ev.clone(),
                        format
                    }
                );
                // A missing key is allowed, an empty one is treated as missing.
                assert_eq!(d.decode(None, Some(&bytes), now()).unwrap().event, ev);
                assert_eq!(d.decode(Some(b""), Some(&bytes), now()).unwrap().event, ev);
            }
        }
    }
}

#[test]
fn json_is_the_canonical_proto3_mapping() {
    let msg = event_to_proto(&by_id("e-invoice"), BASE);
    let json: serde_json::Value = serde_json::from_slice(&encode_json(&msg)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "eventId": "e-invoice",
            "customerId": "cust-1",
            "occurredAt": "2026-02-14T00:00:37.123Z",
            "source": "erp",
            "invoiceIssued": {
                "invoiceId": "i-1",
                "orderId": "o-1",
                "amount": {"amountMinor": "1234567", "currency": "CNY"},
                "dueAt": "2026-03-16T00:00:00.999Z"
            }
        })
    );
    let complaint = event_to_proto(&by_id("e-complaint"), BASE);
    let json: serde_json::Value = serde_json::from_slice(&encode_json(&complaint)).unwrap();
    assert_eq!(json["complaintOpened"]["severity"], "SEVERITY_CRITICAL");
}

#[test]
fn json_accepts_original_names_numbers_offsets_and_whitespace() {
    let want = by_id("e-placed");
    let json = r#"
        {
          "event_id": "e-placed",
          "customer_id": "cust-1",
          "occurred_at": "2026-02-14T08:00:37.123456+08:00",
          "source": "erp",
          "order_placed": {
            "order_id": "o-1",
            "amount": {"amount_minor": 1234567, "currency": "CNY"},
            "cost": {"amountMinor": "1000000"}
          }
        }
    "#;
    let got = decoder()
        .decode(Some(b"cust-1"), Some(json.as_bytes()), now())
        .unwrap();
    assert_eq!(got.format, WireFormat::Json);
    assert_eq!(got.event, want);

    let enum_as_number = r#"{"eventId":"e","customerId":"c","occurredAt":"2026-01-01T00:00:00Z",
        "complaintOpened":{"complaintId":"k","severity":3}}"#;
    let got = decoder()
        .decode(None, Some(enum_as_number.as_bytes()), now())
        .unwrap();
    assert!(matches!(
        got.event.kind,
        EventKind::ComplaintOpened {
            severity: Severity::High,
            ..
        }
    ));
}

#[test]
fn foreign_currency_is_converted_to_base() {
    let mut msg = placed();
    let Some(Payload::OrderPlaced(p)) = &mut msg.payload else {
        unreachable!()
    };
    p.amount = Some(ev::Money {
        amount_minor: 100,
        currency: "USD".into(),
    });
    p.cost = None; // optional: unknown, not 0
    for (_, bytes) in encodings(&msg) {
        let got = decoder().decode(None, Some(&bytes), now()).unwrap();
        assert_eq!(
            got.event.kind,
            EventKind::OrderPlaced {
                order_id: "o-1".into(),
                amount: Money(710),
                cost: None,
            }
        );
    }
}

#[test]
fn absent_cost_is_unknown_and_zero_cost_is_known() {
    for (id, wire_cost, want) in [
        ("e-placed-uncosted", None, None),
        ("e-placed-free", Some(0), Some(Money(0))),
    ] {
        let msg = event_to_proto(&by_id(id), BASE);
        let Some(Payload::OrderPlaced(p)) = &msg.payload else {
            unreachable!()
        };
        assert_eq!(p.cost.as_ref().map(|c| c.amount_minor), wire_cost, "{id}");
        for (format, bytes) in encodings(&msg) {
            let got = decoder().decode(None, Some(&bytes), now()).unwrap().event;
            let EventKind::OrderPlaced { cost, .. } = got.kind else {
                unreachable!()
            };
            assert_eq!(cost, want, "{id} as {format}");
        }
    }
    let json = serde_json::json!({
        "eventId": "e", "customerId": "c", "occurredAt": "2026-01-01T00:00:00Z",
        "orderReturned": {"orderId": "o", "amount": {"amountMinor": "5"}, "cost": null}
    });
    let got = decoder()
        .decode(None, Some(&serde_json::to_vec(&json).unwrap()), now())
        .unwrap();
    assert!(
        matches!(got.event.kind, EventKind::OrderReturned { cost: None, .. }),
        "{got:?}"
    );
}

#[test]
fn invoices_and_payments_keep_their_own_currency() {
    // On the wire: the Amount's own currency and minor units, not the base.
    for (id, want_minor) in [("e-invoice-usd", 3_333), ("e-payment-usd", 1)] {
        let ev = by_id(id);
        for currency in [BASE, "", "USD"] {
            let msg = event_to_proto(&ev, currency);
            let wire = match &msg.payload {
                Some(Payload::InvoiceIssued(p)) => p.amount.clone(),
                Some(Payload::PaymentReceived(p)) => p.amount.clone(),
                other => panic!("{other:?}"),
            };
            assert_eq!(
                wire,
                Some(ev::Money {
                    amount_minor: want_minor,
                    currency: "USD".into()
                }),
                "{id}"
            );
        }
    }
    // Decoded: exact in its own currency, base value beside it. An empty
    // code is the base currency.
    let msg = with_payload(Payload::PaymentReceived(ev::PaymentReceived {
        invoice_id: "i".into(),
        amount: Some(ev::Money {
            amount_minor: 1_001,
            currency: String::new(),
        }),
        payment_id: String::new(),
    }));
    for (format, bytes) in encodings(&msg) {
        let got = decoder().decode(None, Some(&bytes), now()).unwrap().event;
        assert_eq!(
            got.kind,
            EventKind::PaymentReceived {
                invoice_id: "i".into(),
                amount: Money(1_001),
                paid: Amount::new(1_001, cny()),
                payment_id: String::new(),
            },
            "{format}"
        );
    }
}

#[test]
fn partial_profile_json_carries_presence_and_cleared_fields() {
    let msg = event_to_proto(&by_id("e-profile-partial"), BASE);
    let json: serde_json::Value = serde_json::from_slice(&encode_json(&msg)).unwrap();
    // Absent fields stay absent; a field set to "" is present.
    assert_eq!(
        json["profileUpdated"],
        serde_json::json!({
            "name": "",
            "accountManager": "wang.fang",
            "customerSince": "1938-04-24T22:13:19.999Z",
            "clearedFields": ["purchase_potential", "region"]
        })
    );
    let empty = event_to_proto(&by_id("e-profile-empty"), BASE);
    let json: serde_json::Value = serde_json::from_slice(&encode_json(&empty)).unwrap();
    assert_eq!(json["profileUpdated"], serde_json::json!({}));

    // Original names work too; an explicit null is absent.
    let text = r#"{"event_id":"e","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z",
        "profile_updated":{"industry":"retail","region":null,
        "customer_since":"2020-02-29T00:00:00Z","cleared_fields":["account_manager"]}}"#;
    let got = decoder()
        .decode(None, Some(text.as_bytes()), now())
        .unwrap();
    assert_eq!(
        got.event.kind,
        EventKind::ProfileUpdated(ProfileUpdate {
            industry: Some("retail".into()),
            customer_since: Some(date(2020, 2, 29)),
            cleared: vec![ProfileField::AccountManager],
            ..ProfileUpdate::default()
        })
    );
}

#[test]
fn profile_fields_stay_wire_compatible() {
    // `optional string` encodes a set field exactly as the plain `string`
    // of the first release did (tag 1, length, bytes), so old producers'
    // records decode unchanged; an empty plain string was never on the wire
    // and now reads as "unchanged".
    let msg = ev::CustomerProfileUpdated {
        name: Some("ACME".into()),
        ..Default::default()
    };
    assert_eq!(msg.encode_to_vec(), b"\x0a\x04ACME");
    let old_empty = ev::CustomerProfileUpdated::decode(&b""[..]).unwrap();
    assert_eq!(old_empty.name, None);
}

#[test]
fn confluent_accepts_full_index_and_shorthand() {
    let msg = placed();
    let body = encode_protobuf(&msg);
    let full = encode_confluent(&msg, 7);
    assert_eq!(&full[..7], &[0, 0, 0, 0, 7, 0x02, 0x12]);
    assert_eq!(CUSTOMER_EVENT_MESSAGE_INDEX, 9);
    for indexes in [&[0x00u8][..], &[0x02, 0x00], &[0x02, 0x12]] {
        let mut frame = vec![0, 0xFF, 0xFF, 0xFF, 0xFF];
        frame.extend_from_slice(indexes);
        frame.extend_from_slice(&body);
        let got = decoder().decode(None, Some(&frame), now()).unwrap();
        assert_eq!(got.format, WireFormat::ConfluentProtobuf);
        assert_eq!(got.event, by_id("e-placed"));
    }
}

#[test]
fn protobuf_that_looks_like_json_whitespace_is_still_protobuf() {
    // An event_id of 123 bytes encodes as 0A 7B ..., i.e. "\n{".
    let mut ev = by_id("e-placed");
    ev.event_id = format!("{{{}", "x".repeat(122));
    let bytes = encode_protobuf(&event_to_proto(&ev, BASE));
    assert_eq!(&bytes[..2], b"\n{");
    let got = decoder().decode(None, Some(&bytes), now()).unwrap();
    assert_eq!(got.format, WireFormat::Protobuf);
    assert_eq!(got.event, ev);
}

#[test]
fn sub_millisecond_precision_is_truncated() {
    let mut msg = placed();
    msg.occurred_at = Some(prost_types::Timestamp {
        seconds: 1_770_000_000,
        nanos: 123_999_999,
    });
    let ev = decoder()
        .decode(None, Some(&encode_protobuf(&msg)), now())
        .unwrap()
        .event;
    assert_eq!(ev.occurred_at.millis(), 1_770_000_000_123);
}

// ----------------------------------------------------------------- rejections

#[test]
fn negative_amount() {
    let mut msg = placed();
    let Some(Payload::OrderPlaced(p)) = &mut msg.payload else {
        unreachable!()
    };
    p.amount = Some(ev::Money {
        amount_minor: -5,
        currency: BASE.into(),
    });
    assert_reject(
        &reject_msg(&msg),
        RejectReason::NegativeAmount,
        "order_placed.amount",
    );

    let msg = with_payload(Payload::OrderReturned(ev::OrderReturned {
        order_id: "o".into(),
        amount: Some(ev::Money::default()),
        cost: Some(ev::Money {
            amount_minor: -1,
            currency: String::new(),
        }),
        return_id: String::new(),
    }));
    assert_reject(
        &reject_msg(&msg),
        RejectReason::NegativeAmount,
        "order_returned.cost",
    );
}

#[test]
fn unknown_currency() {
    let msg = with_payload(Payload::InvoiceIssued(ev::InvoiceIssued {
        invoice_id: "i".into(),
        order_id: "o".into(),
        amount: Some(ev::Money {
            amount_minor: 10,
            currency: "EUR".into(),
        }),
        due_at: Some(prost_types::Timestamp {
            seconds: 1_780_000_000,
            nanos: 0,
        }),
    }));
    let err = reject_msg(&msg);
    assert_reject(&err, RejectReason::UnknownCurrency, "invoice_issued.amount");
    assert!(err.detail.contains("EUR"), "{err}");

    let msg = with_payload(Payload::ProfileUpdated(ev::CustomerProfileUpdated {
        purchase_potential: Some(ev::Money {
            amount_minor: 10,
            currency: "X".repeat(10_000),
        }),
        ..Default::default()
    }));
    let err = reject_msg(&msg);
    assert_reject(
        &err,
        RejectReason::UnknownCurrency,
        "profile_updated.purchase_potential",
    );
}

#[test]
fn bad_currency_code_on_an_invoice() {
    // A malformed code is no currency the policy knows: rejected like an
    // unknown one, under the invoice's amount.
    for code in ["usd", "US", "USDX", "€€€", " CNY"] {
        let msg = with_payload(Payload::InvoiceIssued(ev::InvoiceIssued {
            invoice_id: "i".into(),
            order_id: "o".into(),
            amount: Some(ev::Money {
                amount_minor: 10,
                currency: code.into(),
            }),
            due_at: Some(prost_types::Timestamp {
                seconds: 1_780_000_000,
                nanos: 0,
            }),
        }));
        let err = reject_msg(&msg);
        assert_reject(&err, RejectReason::UnknownCurrency, "invoice_issued.amount");
        assert!(err.detail.contains(&format!("{code:?}")), "{err}");
    }
    let msg = with_payload(Payload::PaymentReceived(ev::PaymentReceived {
        invoice_id: "i".into(),
        amount: Some(ev::Money {
            amount_minor: 10,
            currency: "cny".into(),
        }),
        payment_id: String::new(),
    }));
    assert_reject(
        &reject_msg(&msg),
        RejectReason::UnknownCurrency,
        "payment_received.amount",
    );
}

#[test]
fn unknown_cleared_field_name() {
    for name in ["nmae", "purchasePotential", "Name", "", "tier"] {
        let msg = with_payload(Payload::ProfileUpdated(ev::CustomerProfileUpdated {
            industry: Some("retail".into()),
            cleared_fields: vec!["region".into(), name.into()],
            ..Default::default()
        }));
        let err = reject_msg(&msg);
        assert_reject(
            &err,
            RejectReason::InvalidField,
            "profile_updated.cleared_fields",
        );
        assert!(err.detail.contains(&format!("{name:?}")), "{err}");
        assert!(err.detail.contains("purchase_potential"), "{err}");
    }
    // A huge name is not echoed whole.
    let msg = with_payload(Payload::ProfileUpdated(ev::CustomerProfileUpdated {
        cleared_fields: vec!["x".repeat(10_000)],
        ..Default::default()
    }));
    assert!(reject_msg(&msg).detail.len() <= MAX_DETAIL_LEN);
}

#[test]
fn profile_field_set_and_cleared() {
    let msg = with_payload(Payload::ProfileUpdated(ev::CustomerProfileUpdated {
        customer_since: Some(prost_types::Timestamp {
            seconds: 1_300_000_000,
            nanos: 0,
        }),
        cleared_fields: vec!["customer_since".into()],
        ..Default::default()
    }));
    let err = reject_msg(&msg);
    assert_reject(
        &err,
        RejectReason::InvalidField,
        "profile_updated.cleared_fields",
    );
    assert!(err.detail.contains("customer_since"), "{err}");
}

#[test]
fn customer_since_out_of_range() {
    let msg = with_payload(Payload::ProfileUpdated(ev::CustomerProfileUpdated {
        customer_since: Some(prost_types::Timestamp {
            seconds: 1_300_000_000,
            nanos: 1_000_000_000,
        }),
        ..Default::default()
    }));
    // Binary only: JSON normalises nanos away.
    assert_reject(
        &reject(None, &encode_protobuf(&msg)),
        RejectReason::InvalidField,
        "profile_updated.customer_since",
    );
    let json = br#"{"eventId":"e","customerId":"c","occurredAt":"2026-01-01T00:00:00Z",
        "profileUpdated":{"customerSince":"last spring"}}"#;
    assert_reject(
        &reject(None, json),
        RejectReason::Undecodable,
        "profile_updated.customer_since",
    );
}

#[test]
fn invoice_cancelled_needs_its_invoice() {
    let msg = with_payload(Payload::InvoiceCancelled(ev::InvoiceCancelled::default()));
    assert_reject(
        &reject_msg(&msg),
        RejectReason::MissingField,
        "invoice_cancelled.invoice_id",
    );
    let json = br#"{"eventId":"e","customerId":"c","occurredAt":"2026-01-01T00:00:00Z",
        "invoiceCancelled":{"invoiceId":"i","amount":{"amountMinor":"5"}}}"#;
    let err = reject(None, json);
    assert_reject(&err, RejectReason::Undecodable, "invoice_cancelled");
    // A non-UTF-8 id inside the new variant names it: field 18, length 3,
    // then tag 1 length 1.
    let mut bytes = encode_protobuf(&placed());
    bytes.extend_from_slice(&[0x92, 0x01, 0x03, 0x0A, 0x01, 0xC3]);
    assert_reject(
        &reject(None, &bytes),
        RejectReason::Undecodable,
        "invoice_cancelled.invoice_id",
    );
}

#[test]
fn amount_above_limit_or_overflowing_conversion() {
    for currency in ["USD", BASE] {
        let mut msg = placed();
        let Some(Payload::OrderPlaced(p)) = &mut msg.payload else {
            unreachable!()
        };
        p.amount = Some(ev::Money {
            amount_minor: i64::MAX,
            currency: currency.into(),
        });
        assert_reject(
            &reject_msg(&msg),
            RejectReason::InvalidField,
            "order_placed.amount",
        );
    }
}

#[test]
fn missing_amount() {
    let msg = with_payload(Payload::PaymentReceived(ev::PaymentReceived {
        invoice_id: "i".into(),
        amount: None,
        payment_id: String::new(),
    }));
    assert_reject(
        &reject_msg(&msg),
        RejectReason::MissingField,
        "payment_received.amount",
    );
    let mut msg = placed();
    let Some(Payload::OrderPlaced(p)) = &mut msg.payload else {
        unreachable!()
    };
    p.amount = None;
    assert_reject(
        &reject_msg(&msg),
        RejectReason::MissingField,
        "order_placed.amount",
    );
}

#[test]
fn missing_ids() {
    type Mutation = fn(&mut CustomerEvent);
    let cases: [(Mutation, &str); 4] = [
        (|m| m.event_id.clear(), "event_id"),
        (|m| m.customer_id = "  ".into(), "customer_id"),
        (
            |m| {
                if let Some(Payload::OrderPlaced(p)) = &mut m.payload {
                    p.order_id.clear();
                }
            },
            "order_placed.order_id",
        ),
        (
            |m| {
                m.payload = Some(Payload::ComplaintResolved(ev::ComplaintResolved::default()));
            },
            "complaint_resolved.complaint_id",
        ),
    ];
    for (mutate, field) in cases {
        let mut msg = placed();
        mutate(&mut msg);
        assert_reject(&reject_msg(&msg), RejectReason::MissingField, field);
    }
}

#[test]
fn overlong_id() {
    let mut msg = placed();
    msg.event_id = "e".repeat(10_000);
    let err = reject_msg(&msg);
    assert_reject(&err, RejectReason::InvalidField, "event_id");
}

#[test]
fn overlong_free_texts() {
    // Kept in the customer's state, written again with every batch that
    // touches the customer: a text is at most 2,000 bytes.
    let long = "x".repeat(tier_core::policy::MAX_NOTE_LEN + 1);
    let mut msg = placed();
    msg.source = long.clone();
    assert_reject(&reject_msg(&msg), RejectReason::InvalidField, "source");
    let msg = with_payload(Payload::ComplaintOpened(ev::ComplaintOpened {
        complaint_id: "k".into(),
        severity: 1,
        category: long.clone(),
    }));
    assert_reject(
        &reject_msg(&msg),
        RejectReason::InvalidField,
        "complaint_opened.category",
    );
    let msg = with_payload(Payload::ProfileUpdated(ev::CustomerProfileUpdated {
        account_manager: Some(long),
        ..Default::default()
    }));
    assert_reject(
        &reject_msg(&msg),
        RejectReason::InvalidField,
        "profile_updated.account_manager",
    );
}

#[test]
fn missing_time() {
    let mut msg = placed();
    msg.occurred_at = None;
    assert_reject(&reject_msg(&msg), RejectReason::MissingField, "occurred_at");

    let msg = with_payload(Payload::InvoiceIssued(ev::InvoiceIssued {
        invoice_id: "i".into(),
        order_id: String::new(),
        amount: Some(ev::Money::default()),
        due_at: None,
    }));
    assert_reject(
        &reject_msg(&msg),
        RejectReason::MissingField,
        "invoice_issued.due_at",
    );
}

#[test]
fn a_due_date_before_the_issue_is_refused_but_due_on_the_day_is_not() {
    let issued = placed().occurred_at.unwrap();
    let due = |seconds: i64| {
        with_payload(Payload::InvoiceIssued(ev::InvoiceIssued {
            invoice_id: "i".into(),
            order_id: String::new(),
            amount: Some(ev::Money {
                amount_minor: 10_000,
                currency: BASE.into(),
            }),
            due_at: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        }))
    };
    // A year typed wrong would count a year of lateness.
    let err = reject_msg(&due(issued.seconds - 365 * 86_400));
    assert_reject(&err, RejectReason::InvalidField, "invoice_issued.due_at");
    assert!(err.detail.contains("before the invoice's issue"), "{err}");
    // Due on the day of issue, sent as that day's midnight in a zone
    // 14 h ahead of UTC: accepted.
    let midnight = issued.seconds - issued.seconds.rem_euclid(86_400) - 14 * 3_600;
    let d = decoder();
    for (format, bytes) in encodings(&due(midnight)) {
        assert!(d.decode(None, Some(&bytes), now()).is_ok(), "{format}");
    }
    // The edge: 48 hours before the issue passes, a second more does not.
    let edge = |seconds: i64| {
        let mut msg = due(seconds);
        msg.occurred_at = Some(prost_types::Timestamp {
            seconds: issued.seconds,
            nanos: 0,
        });
        msg
    };
    let bytes = encode_protobuf(&edge(issued.seconds - 48 * 3_600));
    assert!(d.decode(None, Some(&bytes), now()).is_ok());
    let err = reject_msg(&edge(issued.seconds - 48 * 3_600 - 1));
    assert_reject(&err, RejectReason::InvalidField, "invoice_issued.due_at");
}

#[test]
fn out_of_range_timestamps() {
    for (seconds, nanos) in [
        (1_770_000_000, -1),
        (1_770_000_000, 1_000_000_000),
        (i64::MAX, 0),
        (253_402_300_800, 0),
    ] {
        let mut msg = placed();
        msg.occurred_at = Some(prost_types::Timestamp { seconds, nanos });
        // JSON cannot carry these (out-of-range seconds do not encode,
        // bad nanos are normalised away); check the binary formats.
        let err = reject(None, &encode_protobuf(&msg));
        assert_reject(&err, RejectReason::InvalidField, "occurred_at");
        if !(0..1_000_000_000).contains(&nanos) {
            assert!(err.detail.contains("nanos"), "{err}");
        } else {
            assert!(try_encode_json(&msg).is_err());
            assert!(encode_json(&msg).is_empty());
        }
        let err = reject(None, &encode_confluent(&msg, 1));
        assert_reject(&err, RejectReason::InvalidField, "occurred_at");
    }
    let mut msg = placed();
    msg.occurred_at = Some(prost_types::Timestamp {
        seconds: -5,
        nanos: 0,
    });
    // In proto range but before 1970: rejected by validation.
    assert_reject(&reject_msg(&msg), RejectReason::MissingField, "occurred_at");
    let msg = with_payload(Payload::InvoiceIssued(ev::InvoiceIssued {
        invoice_id: "i".into(),
        order_id: String::new(),
        amount: Some(ev::Money::default()),
        due_at: Some(prost_types::Timestamp {
            seconds: 0,
            nanos: -7,
        }),
    }));
    assert_reject(
        &reject(None, &encode_protobuf(&msg)),
        RejectReason::InvalidField,
        "invoice_issued.due_at",
    );
}

#[test]
fn empty_oneof() {
    let mut msg = placed();
    msg.payload = None;
    assert_reject(&reject_msg(&msg), RejectReason::EmptyPayload, "payload");
}

#[test]
fn severity_out_of_range() {
    let msg = with_payload(Payload::ComplaintOpened(ev::ComplaintOpened {
        complaint_id: "k".into(),
        severity: 42,
        category: String::new(),
    }));
    assert_reject(
        &reject_msg(&msg),
        RejectReason::InvalidField,
        "complaint_opened.severity",
    );
    let json = br#"{"eventId":"e","customerId":"c","occurredAt":"2026-01-01T00:00:00Z",
        "complaintOpened":{"complaintId":"k","severity":"SEVERITY_APOCALYPTIC"}}"#;
    assert_reject(
        &reject(None, json),
        RejectReason::Undecodable,
        "complaint_opened.severity",
    );
}

#[test]
fn far_future_time() {
    let mut ev = by_id("e-placed");
    ev.occurred_at = now().plus_days(2);
    let err = reject_msg(&event_to_proto(&ev, BASE));
    assert_reject(&err, RejectReason::FutureTimestamp, "occurred_at");
    // Within the allowed skew it is fine.
    ev.occurred_at = now().plus_days(1);
    let bytes = encode_protobuf(&event_to_proto(&ev, BASE));
    assert!(decoder().decode(None, Some(&bytes), now()).is_ok());
}

#[test]
fn key_mismatch() {
    let bytes = encode_protobuf(&placed());
    let err = reject(Some(b"cust-2"), &bytes);
    assert_reject(&err, RejectReason::KeyMismatch, "key");
    assert!(
        err.detail.contains("cust-2") && err.detail.contains("cust-1"),
        "{err}"
    );

    let err = reject(Some(&[0xFF, 0xFE, b'c']), &bytes);
    assert_reject(&err, RejectReason::InvalidField, "key");

    let long_key = "k".repeat(5_000);
    let err = reject(Some(long_key.as_bytes()), &bytes);
    assert_reject(&err, RejectReason::KeyMismatch, "key");
}

#[test]
fn absent_or_empty_payload() {
    let d = decoder();
    for payload in [None, Some(&b""[..])] {
        let err = d.decode(Some(b"cust-1"), payload, now()).unwrap_err();
        assert_reject(&err, RejectReason::Undecodable, "payload");
        assert!(err.detail.contains("empty payload"), "{err}");
    }
}

#[test]
fn garbage_bytes() {
    for garbage in [
        &b"\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF"[..],
        b"hello, world",
        b"\x08",
        b"   ",
        b"\x7B",
        b"\n\n\n{",
    ] {
        // The field is `payload`, or the first field prost tripped over.
        let err = reject(None, garbage);
        assert_eq!(err.reason, RejectReason::Undecodable, "{err}");
    }
    assert_reject(&reject(None, b""), RejectReason::Undecodable, "event_id");
}

#[test]
fn non_utf8_ids_name_the_field() {
    // event_id = "\xFF\xFE", tag 1 length 2.
    let mut bytes = vec![0x0A, 0x02, 0xFF, 0xFE];
    bytes.extend_from_slice(&encode_protobuf(&placed()));
    let err = reject(None, &bytes);
    assert_reject(&err, RejectReason::Undecodable, "event_id");
    assert!(err.detail.contains("UTF-8"), "{err}");

    // order_placed { order_id = "\xC3" }: field 10, length 3, then tag 1 length 1.
    let mut bytes = encode_protobuf(&placed());
    bytes.extend_from_slice(&[0x52, 0x03, 0x0A, 0x01, 0xC3]);
    assert_reject(
        &reject(None, &bytes),
        RejectReason::Undecodable,
        "order_placed.order_id",
    );
}

#[test]
fn truncated_confluent_frame() {
    let full = encode_confluent(&placed(), SCHEMA_ID);
    for cut in 1..5 {
        assert_reject(
            &reject(None, &full[..cut]),
            RejectReason::Undecodable,
            "confluent.schema_id",
        );
    }
    assert_reject(
        &reject(None, &full[..5]),
        RejectReason::Undecodable,
        "confluent.message_indexes",
    );
    // Count says one index, the index is missing.
    assert_reject(
        &reject(None, &full[..6]),
        RejectReason::Undecodable,
        "confluent.message_indexes",
    );
    // Body cut short: a protobuf error.
    let err = reject(None, &full[..full.len() - 3]);
    assert_eq!(err.reason, RejectReason::Undecodable, "{err}");
    // Header only: an empty message, so no occurred_at.
    assert_reject(
        &reject(None, &full[..7]),
        RejectReason::MissingField,
        "occurred_at",
    );
}

#[test]
fn wrong_confluent_message_index() {
    let body = encode_protobuf(&placed());
    for (indexes, mention) in [
        (&[0x02u8, 0x06][..], "[3]"),
        (&[0x02, 0x01][..], "[-1]"),
        (&[0x04, 0x12, 0x00][..], "length 2"),
        (&[0x01][..], "negative"),
        (&[0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF][..], "varint"),
    ] {
        let mut frame = vec![0, 0, 0, 0, 42];
        frame.extend_from_slice(indexes);
        frame.extend_from_slice(&body);
        let err = reject(None, &frame);
        assert_reject(&err, RejectReason::Undecodable, "confluent.message_indexes");
        assert!(err.detail.contains(mention), "{mention}: {err}");
        assert!(err.detail.contains("schema id 42"), "{err}");
    }
}

fn json_placed() -> serde_json::Value {
    serde_json::from_slice(&encode_json(&placed())).unwrap()
}

#[test]
fn json_unknown_field_is_rejected() {
    let mut v = json_placed();
    v["orderPlaced"]["amont"] = serde_json::json!({"amountMinor": "5"});
    let err = reject(None, &serde_json::to_vec(&v).unwrap());
    assert_reject(&err, RejectReason::Undecodable, "order_placed");
    assert!(err.detail.contains("amont"), "{err}");

    let mut v = json_placed();
    v["priority"] = serde_json::json!(1);
    let err = reject(None, &serde_json::to_vec(&v).unwrap());
    assert_reject(&err, RejectReason::Undecodable, "payload");
    assert!(err.detail.contains("priority"), "{err}");
}

#[test]
fn json_wrong_types_are_rejected() {
    for (pointer, value, field) in [
        ("/eventId", serde_json::json!(5), "event_id"),
        ("/customerId", serde_json::json!(null), "customer_id"),
        ("/occurredAt", serde_json::json!("yesterday"), "occurred_at"),
        (
            "/occurredAt",
            serde_json::json!(1_770_000_000),
            "occurred_at",
        ),
        (
            "/orderPlaced/amount/amountMinor",
            serde_json::json!("12.5"),
            "order_placed.amount.amount_minor",
        ),
        (
            "/orderPlaced/amount/amountMinor",
            serde_json::json!("ten"),
            "order_placed.amount.amount_minor",
        ),
        (
            "/orderPlaced/amount/currency",
            serde_json::json!(["CNY"]),
            "order_placed.amount.currency",
        ),
        (
            "/orderPlaced/amount",
            serde_json::json!([1, 2]),
            "order_placed.amount",
        ),
        ("/orderPlaced", serde_json::json!("o-1"), "order_placed"),
    ] {
        let mut v = json_placed();
        *v.pointer_mut(pointer).unwrap() = value;
        let bytes = serde_json::to_vec(&v).unwrap();
        match decoder().decode(None, Some(&bytes), now()) {
            // proto3 JSON reads null as the default value.
            Err(err) if field == "customer_id" => {
                assert_reject(&err, RejectReason::MissingField, field)
            }
            Err(err) => assert_reject(&err, RejectReason::Undecodable, field),
            Ok(d) => panic!("{pointer} accepted: {d:?}"),
        }
    }
}

#[test]
fn json_broken_syntax_and_trailing_bytes() {
    let good = encode_json(&placed());
    let mut trailing = good.clone();
    trailing.extend_from_slice(b" {}");
    let mut two_payloads = good.clone();
    two_payloads.extend_from_slice(br#","orderCancelled":{"orderId":"o"}}"#);
    for bad in [
        trailing,
        two_payloads,
        good[..good.len() - 1].to_vec(),
        b"{".to_vec(),
        b"{\"eventId\":\"\xFF\"}".to_vec(),
        "[".repeat(10_000).into_bytes(),
        format!("{}{}", "{\"orderPlaced\":".repeat(5_000), "{}").into_bytes(),
    ] {
        let err = reject(None, &bad);
        assert_eq!(err.reason, RejectReason::Undecodable, "{err}");
    }
    // Two payloads in one JSON object is a oneof violation.
    let mut v = json_placed();
    v["orderCancelled"] = serde_json::json!({"orderId": "o"});
    let err = reject(None, &serde_json::to_vec(&v).unwrap());
    assert_reject(&err, RejectReason::Undecodable, "payload");
    assert!(err.detail.contains("oneof"), "{err}");
}

#[test]
fn details_never_echo_the_payload() {
    let huge = "Z".repeat(100_000);
    let json = format!(r#"{{"eventId": {huge}}}"#);
    let err = reject(None, json.as_bytes());
    assert!(!err.detail.contains(&huge[..MAX_DETAIL_LEN]));
    let json = format!(r#"{{"eventId": 1, "x": "{huge}"}}"#);
    assert!(reject(None, json.as_bytes()).detail.len() <= MAX_DETAIL_LEN);
}

#[test]
fn decode_wire_exposes_the_raw_message() {
    let msg = placed();
    let (got, format) = decode_wire(&encode_json(&msg)).unwrap();
    assert_eq!((got, format), (msg.clone(), WireFormat::Json));
    let mut empty = msg;
    empty.payload = None;
    let (got, _) = decode_wire(&empty.encode_to_vec()).unwrap();
    assert_eq!(got.payload, None);
}
