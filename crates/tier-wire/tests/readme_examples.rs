//! README's event contract by example stays true: every JSON event line it
//! shows (the `json` block and the `kcat` line, key and value split at the
//! first colon as `kcat -K:` does) decodes with tierd's own decoder under
//! the default policy, to the event type the line names, keyed by its
//! customer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tier_core::policy::Policy;
use tier_core::time::date;
use tier_core::{EventKind, ValidationLimits};
use tier_wire::decode::Decoder;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap()
}

/// `(key, value)` of every example record: the lines of the `json` block
/// after "The event contract by example", and the `kcat` line's echo.
fn examples(text: &str) -> Vec<(Option<String>, String)> {
    let section = text
        .split("**The event contract by example.**")
        .nth(1)
        .expect("README shows the event contract by example")
        .split("**Trace context.**")
        .next()
        .unwrap();
    let mut out = Vec::new();
    for line in section.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("echo '") {
            let record = rest.split('\'').next().unwrap();
            let (key, value) = record.split_once(':').unwrap();
            out.push((Some(key.to_owned()), value.to_owned()));
        } else if line.starts_with("{\"eventId\"") {
            out.push((None, line.to_owned()));
        }
    }
    out
}

#[test]
fn every_readme_event_decodes() {
    let policy = Policy::default_policy();
    let decoder = Decoder::for_policy(&policy, ValidationLimits::default());
    let records = examples(&readme());
    assert!(records.len() >= 9, "found only {} examples", records.len());
    let mut kinds = Vec::new();
    let mut named = 0;
    for (key, value) in &records {
        let decoded = decoder
            .decode(
                key.as_deref().map(str::as_bytes),
                Some(value.as_bytes()),
                date(2026, 12, 1),
            )
            .unwrap_or_else(|e| panic!("README example does not decode: {e}\n{value}"));
        let event = decoded.event;
        if let Some(k) = key {
            assert_eq!(&event.customer_id, k, "the kcat key is the customer");
        }
        // The line names its own type.
        let kind = match &event.kind {
            EventKind::OrderPlaced { .. } => "orderPlaced",
            EventKind::OrderCancelled { .. } => "orderCancelled",
            EventKind::OrderReturned { .. } => "orderReturned",
            EventKind::InvoiceIssued { .. } => "invoiceIssued",
            EventKind::PaymentReceived { .. } => "paymentReceived",
            EventKind::InvoiceCancelled { .. } => "invoiceCancelled",
            EventKind::InvoiceCredited { .. } => "invoiceCredited",
            EventKind::ComplaintOpened { .. } => "complaintOpened",
            EventKind::ComplaintResolved { .. } => "complaintResolved",
            EventKind::ProfileUpdated { .. } => "profileUpdated",
            other => panic!("unexpected example kind {other:?}"),
        };
        assert!(value.contains(&format!("\"{kind}\":")), "{kind}: {value}");
        // The business ids README shows are read, not dropped.
        if let Some((_, id)) = event.kind.business_key() {
            assert!(value.contains(&format!("Id\":\"{id}\"")), "{id}: {value}");
            named += 1;
        }
        kinds.push(kind);
    }
    assert_eq!(
        named, 3,
        "a payment, a return and a credit note with their own ids"
    );
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(
        kinds.len(),
        10,
        "every event type but assessments: {kinds:?}"
    );
}
