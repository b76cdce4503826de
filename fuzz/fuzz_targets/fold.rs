//! Arbitrary bytes -> a sequence of records for one customer -> decoded
//! events folded into a `CustomerProjection`, with the processing clock
//! (which bounds how far in the future an event may lie) moving forward
//! between records and event times spread around it.
//!
//! Each record is either raw payload bytes (through the full decoder) or,
//! so that the fuzzer reaches deep fold states without a seed corpus, a
//! compact description of an event (kind, small id spaces so cancellations,
//! returns, credit notes and payments meet their orders and invoices,
//! amounts with or without a cost, invoices and payments in the base
//! currency or USD, partial profile updates, times) that is built, encoded
//! in one of the three wire formats and decoded.
//!
//! Checks: nothing panics (overflow included: fuzz builds keep debug
//! assertions), and re-applying an event that was just applied leaves the
//! projection unchanged (producers resend).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tier_core::projection::{CustomerProjection, FoldRules};
use tier_core::time::date;
use tier_core::{
    Amount, Currency, CurrencyRules, Event, EventKind, Money, ProfileField, ProfileUpdate,
    Severity, ValidationLimits,
};
use tier_wire::decode::{Decoder, encode_confluent, encode_json, encode_protobuf, event_to_proto};

const BASE: &str = "CNY";
const CUSTOMER: &str = "c1";
const HOUR_MS: i64 = 3_600_000;

static DECODER: LazyLock<Decoder> = LazyLock::new(|| {
    Decoder::new(
        CurrencyRules::new(BASE).with_rate_micro("USD", 7_100_000),
        ValidationLimits::default(),
    )
});

/// Reads the fuzz input front to back; runs dry as zeros.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Invoice or payment money as the decoder reads it back: `minor` in the
/// base currency or USD, and its base value.
fn own_money(minor: i64, usd: bool) -> (Amount, Money) {
    let code = if usd { "USD" } else { BASE };
    DECODER
        .rules()
        .amount("amount", minor, code)
        .unwrap_or((Amount::new(minor, Currency(*b"CNY")), Money(minor)))
}

fn compact_event(input: &mut Input<'_>, now_ms: i64) -> Event {
    let kind_byte = input.u8();
    let id = |b: u8| format!("x{}", b % 8);
    // A payment's or return's own id, for half of them: few, so that
    // resends under other event ids are drawn.
    let named = |b: u8| {
        if b & 0x40 != 0 {
            format!("n{}", (b >> 3) % 4)
        } else {
            String::new()
        }
    };
    let business = input.u8();
    let minor = i64::from(input.u32());
    let amount = Money(minor);
    let cost_word = input.u16();
    // The low bit: is the cost known?
    let cost = cost_word
        .is_multiple_of(2)
        .then_some(Money(i64::from(cost_word)));
    let kind = match kind_byte % 10 {
        0 => EventKind::OrderPlaced {
            order_id: id(business),
            amount,
            cost,
        },
        1 => EventKind::OrderCancelled {
            order_id: id(business),
        },
        2 => EventKind::OrderReturned {
            order_id: id(business),
            amount,
            cost,
            return_id: named(business),
        },
        3 => {
            let (billed, amount) = own_money(minor, kind_byte & 0x80 != 0);
            EventKind::InvoiceIssued {
                invoice_id: id(business),
                order_id: id(business),
                amount,
                billed,
                due_at: date(2020, 1, 1).plus_days(i64::from(input.u16())),
            }
        }
        4 => {
            let (paid, amount) = own_money(minor, kind_byte & 0x80 != 0);
            EventKind::PaymentReceived {
                invoice_id: id(business),
                amount,
                paid,
                payment_id: named(business),
            }
        }
        8 => {
            let (credited, amount) = own_money(minor, kind_byte & 0x80 != 0);
            EventKind::InvoiceCredited {
                invoice_id: id(business),
                amount,
                credited,
                credit_note_id: named(business),
            }
        }
        5 => EventKind::ComplaintOpened {
            complaint_id: id(business),
            severity: Severity::ALL[usize::from(input.u8()) % Severity::ALL.len()],
            category: String::new(),
        },
        6 => EventKind::ComplaintResolved {
            complaint_id: id(business),
        },
        7 => EventKind::InvoiceCancelled {
            invoice_id: id(business),
        },
        _ => {
            // Two bits per field: 0 unchanged, 1 set, 2 cleared, 3 unchanged.
            let mut p = ProfileUpdate::default();
            let mut plan = u32::from(cost_word) | (u32::from(business) << 16);
            for field in ProfileField::ALL {
                match plan & 3 {
                    1 => match field {
                        ProfileField::Name => p.name = Some(id(business)),
                        ProfileField::Industry => p.industry = Some(String::new()),
                        ProfileField::Region => p.region = Some(id(kind_byte)),
                        ProfileField::PurchasePotential => p.purchase_potential = Some(amount),
                        ProfileField::AccountManager => p.account_manager = Some(id(business)),
                        ProfileField::CustomerSince => {
                            p.customer_since = Some(date(2000, 1, 1).plus_days(minor % 10_000));
                        }
                    },
                    2 => p.cleared.push(field),
                    _ => {}
                }
                plan >>= 2;
            }
            EventKind::ProfileUpdated(p)
        }
    };
    // Up to ~2.7 years back, or up to 24 h ahead (the allowed clock skew).
    let back = i64::from(input.u16()) * HOUR_MS / 3;
    let ahead = i64::from(input.u8() % 25) * HOUR_MS;
    Event {
        event_id: format!("e{}", input.u8() % 64),
        customer_id: CUSTOMER.into(),
        occurred_at: tier_core::Timestamp::from_millis(now_ms - back + ahead),
        source: String::new(),
        kind,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let rules = FoldRules::utc(u32::from(input.u8() % 36) + 1);
    let mut now_ms = date(2026, 1, 1).millis();
    let mut projection = CustomerProjection::new();
    let mut records = 0;
    while !input.is_empty() && records < 256 {
        records += 1;
        // The processing clock never goes backwards: 0 to ~42 days.
        now_ms += i64::from(input.u8()) * 4 * HOUR_MS;
        let now = tier_core::Timestamp::from_millis(now_ms);
        let tag = input.u8();
        let payload = if tag % 2 == 0 {
            let len = usize::from(input.u16() % 512);
            input.bytes(len).to_vec()
        } else {
            let msg = event_to_proto(&compact_event(&mut input, now_ms), BASE);
            match tag % 6 {
                1 => encode_protobuf(&msg),
                3 => encode_json(&msg),
                _ => encode_confluent(&msg, 1),
            }
        };
        let Ok(decoded) = DECODER.decode(Some(CUSTOMER.as_bytes()), Some(&payload), now) else {
            continue;
        };
        let event = decoded.event;
        projection.apply(&event, &rules);
        let before = projection.clone();
        projection.apply(&event, &rules);
        assert!(
            projection == before,
            "re-applying {} changed the projection",
            event.event_id
        );
    }
});
