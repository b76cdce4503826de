//! Robustness of `Decoder::decode` against hostile bytes.
//!
//! The bulk is a seeded mutation loop (fast and deterministic, no proptest
//! shrinking): valid protobuf, JSON and Confluent encodings of random events
//! are bit-flipped, truncated, extended, spliced and mixed with random bytes.
//! Every outcome must be `Ok` or a rejection with a bounded reason, a field
//! and a short detail; an accepted event must be valid and survive a
//! re-encode in every format unchanged. Both outcomes are counted and both
//! must occur, so the test cannot pass vacuously.
//!
//! A proptest round trip over generated domain events complements it.

// Test helpers outside #[test] fns panic on purpose too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tier_core::time::date;
use tier_core::{
    Amount, CurrencyRules, Event, EventKind, Money, ProfileField, ProfileUpdate, RejectReason,
    Severity, Timestamp, ValidationLimits,
};
use tier_proto::ev;
use tier_wire::decode::{
    Decoder, FIELD_PATHS, MAX_DETAIL_LEN, encode_confluent, encode_json, encode_protobuf,
    event_to_proto,
};

const BASE: &str = "CNY";
const ITERATIONS: usize = 200_000;
const SEED: u64 = 0x7153_D3C0_DE5E_ED01;

fn now() -> Timestamp {
    date(2026, 3, 1)
}

fn rules() -> CurrencyRules {
    CurrencyRules::new(BASE).with_rate_micro("USD", 7_100_000)
}

fn decoder() -> Decoder {
    Decoder::new(rules(), ValidationLimits::default())
}

/// Invoice or payment money as the decoder reads it: exact in its own
/// currency (base or USD, or the empty code), and its base value.
fn own_money(minor: i64, currency: &str) -> (Amount, Money) {
    rules().amount("amount", minor, currency).unwrap()
}

/// Earliest and latest millisecond a proto3 `Timestamp` can carry.
const PROTO_MIN_MS: i64 = -62_135_596_800_000;
const PROTO_MAX_MS: i64 = 253_402_300_799_999;

const ID_CHARS: &[u8] = b"abcXYZ019-_:./ {}\"\\";

fn random_id(rng: &mut StdRng) -> String {
    let len = rng.random_range(1..12);
    let mut s: String = (0..len)
        .map(|_| char::from(ID_CHARS[rng.random_range(0..ID_CHARS.len())]))
        .collect();
    if rng.random_bool(0.1) {
        s.push('é');
    }
    s.push('x'); // never blank
    s
}

fn random_money(rng: &mut StdRng) -> Money {
    Money(match rng.random_range(0..4) {
        0 => 0,
        1 => rng.random_range(0..1_000_000),
        _ => rng.random_range(0..1_000_000_000_000),
    })
}

/// Money in its own currency: mostly base, sometimes USD (kept small
/// enough that its base value stays within the limit).
fn random_own_money(rng: &mut StdRng) -> (Amount, Money) {
    let minor = random_money(rng).minor();
    match rng.random_range(0..4) {
        0 => own_money(minor, "USD"),
        1 => own_money(minor, ""),
        _ => own_money(minor, BASE),
    }
}

/// A partial profile update: each field unchanged, set or cleared.
fn random_profile(rng: &mut StdRng) -> ProfileUpdate {
    let mut p = ProfileUpdate::default();
    for field in ProfileField::ALL {
        match rng.random_range(0..3) {
            0 => {}
            1 => p.cleared.push(field),
            _ => match field {
                ProfileField::Name => p.name = Some(random_id(rng)),
                ProfileField::Industry => p.industry = Some(random_id(rng)),
                ProfileField::Region => {
                    p.region = Some(if rng.random_bool(0.3) {
                        String::new()
                    } else {
                        random_id(rng)
                    });
                }
                ProfileField::PurchasePotential => {
                    p.purchase_potential = Some(random_money(rng));
                }
                ProfileField::AccountManager => p.account_manager = Some(random_id(rng)),
                ProfileField::CustomerSince => {
                    p.customer_since = Some(now().plus_days(-rng.random_range(0..20_000)));
                }
            },
        }
    }
    // Cleared fields in any order.
    if rng.random_bool(0.5) {
        p.cleared.reverse();
    }
    p
}

fn random_event(rng: &mut StdRng) -> Event {
    let kind = match rng.random_range(0..11) {
        0 => EventKind::OrderPlaced {
            order_id: random_id(rng),
            amount: random_money(rng),
            cost: rng.random_bool(0.7).then(|| random_money(rng)),
        },
        1 => EventKind::OrderCancelled {
            order_id: random_id(rng),
        },
        2 => EventKind::OrderReturned {
            order_id: random_id(rng),
            amount: random_money(rng),
            cost: rng.random_bool(0.5).then(|| random_money(rng)),
            return_id: if rng.random_bool(0.5) {
                random_id(rng)
            } else {
                String::new()
            },
        },
        3 => {
            let (billed, amount) = random_own_money(rng);
            EventKind::InvoiceIssued {
                invoice_id: random_id(rng),
                order_id: random_id(rng),
                amount,
                billed,
                due_at: now().plus_days(rng.random_range(-100..100)),
            }
        }
        4 => {
            let (paid, amount) = random_own_money(rng);
            EventKind::PaymentReceived {
                invoice_id: random_id(rng),
                amount,
                paid,
                payment_id: if rng.random_bool(0.5) {
                    random_id(rng)
                } else {
                    String::new()
                },
            }
        }
        5 => EventKind::ComplaintOpened {
            complaint_id: random_id(rng),
            severity: Severity::ALL[rng.random_range(0..Severity::ALL.len())],
            category: random_id(rng),
        },
        6 => EventKind::ComplaintResolved {
            complaint_id: random_id(rng),
        },
        7 => EventKind::InvoiceCancelled {
            invoice_id: random_id(rng),
        },
        10 => {
            let (credited, amount) = random_own_money(rng);
            EventKind::InvoiceCredited {
                invoice_id: random_id(rng),
                amount,
                credited,
                credit_note_id: if rng.random_bool(0.5) {
                    random_id(rng)
                } else {
                    String::new()
                },
            }
        }
        _ => EventKind::ProfileUpdated(random_profile(rng)),
    };
    Event {
        event_id: random_id(rng),
        customer_id: random_id(rng),
        occurred_at: Timestamp::from_millis(
            now().millis() - rng.random_range(-3_600_000..400 * 86_400_000),
        ),
        source: if rng.random_bool(0.5) {
            random_id(rng)
        } else {
            String::new()
        },
        kind,
    }
}

/// Encodings in all three formats (mostly valid), plus a few hand-written
/// variants.
fn seed_corpus(rng: &mut StdRng) -> Vec<Vec<u8>> {
    let mut corpus = Vec::new();
    for i in 0..120 {
        let ev = random_event(rng);
        let currency = if i % 3 == 0 { "" } else { BASE };
        let msg = event_to_proto(&ev, currency);
        corpus.push(encode_protobuf(&msg));
        corpus.push(encode_json(&msg));
        corpus.push(encode_confluent(&msg, rng.random()));
    }
    corpus.push(
        br#" {"event_id":"e","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z",
             "order_placed":{"order_id":"o","amount":{"amount_minor":"5","currency":"USD"}}}"#
            .to_vec(),
    );
    corpus.push(
        br#"{"eventId":"e","customerId":"c","occurredAt":"2026-01-01T00:00:00Z",
             "profileUpdated":{"name":"","customerSince":"2001-01-01T00:00:00Z",
             "clearedFields":["region","purchase_potential"]}}"#
            .to_vec(),
    );
    corpus.push(
        br#"{"eventId":"e","customerId":"c","occurredAt":"2026-01-01T00:00:00Z",
             "invoiceCancelled":{"invoiceId":"i"}}"#
            .to_vec(),
    );
    let mut shorthand = vec![0, 0, 0, 0, 1, 0];
    shorthand.extend_from_slice(&corpus[0]);
    corpus.push(shorthand);
    corpus
}

const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x7F, 0x80, 0xFF, b'{', b'}', b'"', b'\\', b':', b',', b'[', b'-', b'0', b'\n',
    0x0A, 0x12, 0x1A, 0x52, 0x7A, 0x92, 0x3A,
];

fn mutate(rng: &mut StdRng, corpus: &[Vec<u8>], out: &mut Vec<u8>) -> &'static str {
    out.clear();
    let pick = |rng: &mut StdRng| &corpus[rng.random_range(0..corpus.len())];
    match rng.random_range(0..100) {
        // Unchanged valid seeds keep `Ok` in the mix.
        0..5 => {
            out.extend_from_slice(pick(rng));
            return "valid";
        }
        // Random bytes, sometimes behind a format's first byte.
        5..13 => {
            let len = rng.random_range(0..80);
            match rng.random_range(0..3) {
                0 => out.push(0),
                1 => out.push(b'{'),
                _ => {}
            }
            out.extend((0..len).map(|_| rng.random::<u8>()));
            return "random";
        }
        // Splice: a prefix of one seed and a suffix of another.
        13..25 => {
            let (a, b) = (pick(rng), pick(rng));
            out.extend_from_slice(&a[..rng.random_range(0..=a.len())]);
            out.extend_from_slice(&b[rng.random_range(0..=b.len())..]);
        }
        _ => out.extend_from_slice(pick(rng)),
    }
    let rounds = rng.random_range(1..4);
    for _ in 0..rounds {
        let len = out.len();
        match rng.random_range(0..6) {
            // Bit flips.
            0 if len > 0 => {
                for _ in 0..rng.random_range(1..5) {
                    let i = rng.random_range(0..len);
                    out[i] ^= 1 << rng.random_range(0..8);
                }
            }
            // Truncation.
            1 => out.truncate(rng.random_range(0..=len)),
            // Insertion of random or interesting bytes.
            2 => {
                let at = rng.random_range(0..=len);
                let n = rng.random_range(1..6);
                let bytes: Vec<u8> = (0..n)
                    .map(|_| {
                        if rng.random_bool(0.5) {
                            INTERESTING[rng.random_range(0..INTERESTING.len())]
                        } else {
                            rng.random()
                        }
                    })
                    .collect();
                out.splice(at..at, bytes);
            }
            // Overwrite with an interesting byte.
            3 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] = INTERESTING[rng.random_range(0..INTERESTING.len())];
            }
            // Remove a range.
            4 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = rng.random_range(a..=len.min(a + 8));
                out.drain(a..b);
            }
            // Duplicate a range.
            _ if len > 0 => {
                let a = rng.random_range(0..len);
                let b = rng.random_range(a..=len.min(a + 16));
                let chunk = out[a..b].to_vec();
                let at = rng.random_range(0..=out.len());
                out.splice(at..at, chunk);
            }
            _ => {}
        }
    }
    "mutated"
}

#[test]
fn mutated_payloads_never_panic_and_are_accepted_or_named() {
    let mut rng = StdRng::seed_from_u64(SEED);
    let corpus = seed_corpus(&mut rng);
    let decoder = decoder();
    let mut payload = Vec::with_capacity(1024);
    let mut ok = 0usize;
    let mut ok_mutated = 0usize;
    let mut rejected: BTreeMap<&'static str, usize> = BTreeMap::new();

    for iteration in 0..ITERATIONS {
        let origin = mutate(&mut rng, &corpus, &mut payload);
        let key: Option<Vec<u8>> = match rng.random_range(0..10) {
            0 => Some((0..rng.random_range(0..6)).map(|_| rng.random()).collect()),
            1..4 => None,
            _ => Some(b"x".to_vec()),
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            decoder.decode(key.as_deref(), Some(&payload), now())
        }));
        let result = match outcome {
            Ok(result) => result,
            Err(_) => panic!(
                "decode panicked at iteration {iteration} (seed {SEED:#x}) on {} bytes: {:02x?}",
                payload.len(),
                payload
            ),
        };
        match result {
            Ok(decoded) => {
                ok += 1;
                if origin != "valid" {
                    ok_mutated += 1;
                }
                let ev = decoded.event;
                assert!(ev.validate(now(), decoder.limits()).is_ok());
                if let (Some(k), false) = (&key, key.as_ref().is_some_and(|k| k.is_empty())) {
                    assert_eq!(k.as_slice(), ev.customer_id.as_bytes());
                }
                // An accepted event re-encodes and decodes to itself.
                let msg = event_to_proto(&ev, BASE);
                for bytes in [
                    encode_protobuf(&msg),
                    encode_json(&msg),
                    encode_confluent(&msg, 3),
                ] {
                    let again = decoder
                        .decode(None, Some(&bytes), now())
                        .unwrap_or_else(|e| panic!("re-encoded event rejected: {e}; {ev:?}"));
                    assert_eq!(again.event, ev);
                }
            }
            Err(err) => {
                assert!(RejectReason::ALL.contains(&err.reason));
                assert!(FIELD_PATHS.contains(&err.field), "{err:?}");
                assert!(!err.detail.is_empty(), "{err:?}");
                assert!(err.detail.len() <= MAX_DETAIL_LEN, "{err:?}");
                *rejected.entry(err.reason.as_str()).or_default() += 1;
            }
        }
    }

    let rejected_total: usize = rejected.values().sum();
    println!(
        "{ITERATIONS} payloads: {ok} accepted ({ok_mutated} of them mutated), \
         {rejected_total} rejected: {rejected:?}"
    );
    assert_eq!(ok + rejected_total, ITERATIONS);
    assert!(ok > 0 && rejected_total > 0, "both outcomes must occur");
    assert!(ok_mutated > 0, "some mutations must still decode");
    assert!(
        rejected.len() >= 5,
        "the mutations should reach most rejection classes: {rejected:?}"
    );
}

#[test]
fn random_noise_never_panics() {
    let mut rng = StdRng::seed_from_u64(SEED ^ 1);
    let decoder = decoder();
    let mut buf = Vec::new();
    for _ in 0..5_000 {
        buf.clear();
        buf.extend((0..rng.random_range(0..300)).map(|_| rng.random::<u8>()));
        if let Err(e) = decoder.decode(Some(b"k"), Some(&buf), now()) {
            assert!(RejectReason::ALL.contains(&e.reason));
            assert!(FIELD_PATHS.contains(&e.field), "{e:?}");
        }
    }
}

fn arb_id() -> impl Strategy<Value = String> {
    "\\PC{0,12}[a-zA-Z0-9]\\PC{0,12}"
}

fn arb_money() -> impl Strategy<Value = Money> {
    (0i64..=1_000_000_000_000_000).prop_map(Money)
}

/// Any instant proto3 can carry that validation accepts as a due date.
fn arb_due() -> impl Strategy<Value = Timestamp> {
    (1i64..=253_402_300_799_999).prop_map(Timestamp::from_millis)
}

/// Invoice or payment money: base, the empty code, or USD (bounded so the
/// base value stays within the limit).
fn arb_own_money() -> impl Strategy<Value = (Amount, Money)> {
    prop_oneof![
        (0i64..=1_000_000_000_000_000).prop_map(|m| own_money(m, BASE)),
        (0i64..=1_000_000_000_000_000).prop_map(|m| own_money(m, "")),
        (0i64..=140_000_000_000_000).prop_map(|m| own_money(m, "USD")),
    ]
}

/// A partial profile update: per field unchanged (0), set (1) or cleared
/// (2); cleared fields in any order.
fn arb_profile() -> impl Strategy<Value = ProfileUpdate> {
    (
        proptest::collection::vec(0u8..3, ProfileField::ALL.len()),
        (
            any::<String>(),
            any::<String>(),
            any::<String>(),
            arb_money(),
            any::<String>(),
            PROTO_MIN_MS..=PROTO_MAX_MS,
        ),
        any::<bool>(),
    )
        .prop_map(|(states, values, reverse)| {
            let (name, industry, region, potential, manager, since) = values;
            let mut p = ProfileUpdate::default();
            for (field, state) in ProfileField::ALL.into_iter().zip(states) {
                match (state, field) {
                    (0, _) => {}
                    (1, ProfileField::Name) => p.name = Some(name.clone()),
                    (1, ProfileField::Industry) => p.industry = Some(industry.clone()),
                    (1, ProfileField::Region) => p.region = Some(region.clone()),
                    (1, ProfileField::PurchasePotential) => p.purchase_potential = Some(potential),
                    (1, ProfileField::AccountManager) => p.account_manager = Some(manager.clone()),
                    (1, ProfileField::CustomerSince) => {
                        p.customer_since = Some(Timestamp::from_millis(since));
                    }
                    _ => p.cleared.push(field),
                }
            }
            if reverse {
                p.cleared.reverse();
            }
            p
        })
}

fn arb_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        (arb_id(), arb_money(), proptest::option::of(arb_money())).prop_map(
            |(order_id, amount, cost)| EventKind::OrderPlaced {
                order_id,
                amount,
                cost,
            }
        ),
        arb_id().prop_map(|order_id| EventKind::OrderCancelled { order_id }),
        (
            arb_id(),
            arb_money(),
            proptest::option::of(arb_money()),
            proptest::option::of(arb_id()),
        )
            .prop_map(
                |(order_id, amount, cost, return_id)| EventKind::OrderReturned {
                    order_id,
                    amount,
                    cost,
                    return_id: return_id.unwrap_or_default(),
                }
            ),
        (arb_id(), any::<String>(), arb_own_money(), arb_due()).prop_map(
            |(invoice_id, order_id, (billed, amount), due_at)| EventKind::InvoiceIssued {
                invoice_id,
                order_id,
                amount,
                billed,
                due_at,
            }
        ),
        arb_id().prop_map(|invoice_id| EventKind::InvoiceCancelled { invoice_id }),
        (arb_id(), arb_own_money(), proptest::option::of(arb_id())).prop_map(
            |(invoice_id, (credited, amount), credit_note_id)| EventKind::InvoiceCredited {
                invoice_id,
                amount,
                credited,
                credit_note_id: credit_note_id.unwrap_or_default(),
            }
        ),
        (arb_id(), arb_own_money(), proptest::option::of(arb_id())).prop_map(
            |(invoice_id, (paid, amount), payment_id)| EventKind::PaymentReceived {
                invoice_id,
                amount,
                paid,
                payment_id: payment_id.unwrap_or_default(),
            }
        ),
        (arb_id(), 0usize..5, any::<String>()).prop_map(|(complaint_id, s, category)| {
            EventKind::ComplaintOpened {
                complaint_id,
                severity: Severity::ALL[s],
                category,
            }
        }),
        arb_id().prop_map(|complaint_id| EventKind::ComplaintResolved { complaint_id }),
        arb_profile().prop_map(EventKind::ProfileUpdated),
    ]
}

fn arb_event() -> impl Strategy<Value = Event> {
    let latest = now().millis() + 24 * 3_600_000;
    (
        arb_id(),
        arb_id(),
        1i64..=latest,
        any::<String>(),
        arb_kind(),
    )
        .prop_map(|(event_id, customer_id, at, source, mut kind)| {
            // A relationship cannot begin after the update that states it
            // (`Event::validate` rejects that; tested on its own).
            if let EventKind::ProfileUpdated(p) = &mut kind
                && let Some(since) = &mut p.customer_since
                && since.millis() > at
            {
                *since = Timestamp::from_millis(at);
            }
            // Nor can an invoice fall due days before its issue (the same).
            if let EventKind::InvoiceIssued { due_at, .. } = &mut kind
                && due_at.millis() < at
            {
                *due_at = Timestamp::from_millis(at);
            }
            Event {
                event_id,
                customer_id,
                occurred_at: Timestamp::from_millis(at),
                source,
                kind,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_valid_event_round_trips_in_every_format(ev in arb_event(), schema_id in any::<u32>()) {
        let d = decoder();
        let msg = event_to_proto(&ev, BASE);
        for bytes in [encode_protobuf(&msg), encode_json(&msg), encode_confluent(&msg, schema_id)] {
            let got = d.decode(Some(ev.customer_id.as_bytes()), Some(&bytes), now());
            prop_assert_eq!(got.map(|g| g.event), Ok(ev.clone()));
        }
    }

    #[test]
    fn proto_level_garbage_is_rejected_not_panicking(
        event_id in any::<String>(),
        seconds in any::<i64>(),
        nanos in any::<i32>(),
        amount in any::<i64>(),
        currency in "[A-Za-z]{0,4}",
        severity in any::<i32>(),
        cleared in proptest::collection::vec(
            prop_oneof![
                Just("name".to_owned()),
                Just("customer_since".to_owned()),
                "[a-z_]{0,20}",
                any::<String>(),
            ],
            0..4,
        ),
    ) {
        let msg = ev::CustomerEvent {
            event_id,
            customer_id: "c".into(),
            occurred_at: Some(prost_types::Timestamp { seconds, nanos }),
            source: String::new(),
            payload: Some(match severity.rem_euclid(4) {
                0 => ev::customer_event::Payload::ComplaintOpened(ev::ComplaintOpened {
                    complaint_id: "k".into(),
                    severity,
                    category: String::new(),
                }),
                1 => ev::customer_event::Payload::PaymentReceived(ev::PaymentReceived {
                    invoice_id: "i".into(),
                    amount: Some(ev::Money { amount_minor: amount, currency }), payment_id: String::new(),
                }),
                2 => ev::customer_event::Payload::InvoiceIssued(ev::InvoiceIssued {
                    invoice_id: "i".into(),
                    order_id: String::new(),
                    amount: Some(ev::Money { amount_minor: amount, currency }),
                    due_at: Some(prost_types::Timestamp { seconds: seconds.wrapping_add(86_400), nanos }),
                }),
                _ => ev::customer_event::Payload::ProfileUpdated(ev::CustomerProfileUpdated {
                    name: (amount % 3 == 0).then(String::new),
                    purchase_potential: (amount % 2 == 0)
                        .then_some(ev::Money { amount_minor: amount, currency }),
                    customer_since: Some(prost_types::Timestamp { seconds, nanos }),
                    cleared_fields: cleared,
                    ..Default::default()
                }),
            }),
        };
        let d = decoder();
        for bytes in [encode_protobuf(&msg), encode_json(&msg), encode_confluent(&msg, 0)] {
            match d.decode(None, Some(&bytes), now()) {
                Ok(decoded) => prop_assert!(decoded.event.validate(now(), d.limits()).is_ok()),
                Err(e) => {
                    prop_assert!(RejectReason::ALL.contains(&e.reason));
                    prop_assert!(FIELD_PATHS.contains(&e.field), "{:?}", e);
                    prop_assert!(e.detail.len() <= MAX_DETAIL_LEN, "{:?}", e);
                }
            }
        }
    }
}
