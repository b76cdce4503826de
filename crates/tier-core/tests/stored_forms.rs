//! Customer states stored by earlier builds still decode: the fixtures
//! are bytes those builds wrote, not this build's idea of them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tier_core::event::Severity;
use tier_core::policy::Policy;
use tier_core::projection::deciding_only;
use tier_core::sim::scenario::{complaint, invoice, order, payment, resolved};
use tier_core::state::CustomerState;
use tier_core::time::date;

/// Ten events of one customer: three orders, two invoices paid (one
/// late), two complaints (one resolved): day sums with every kind of figure.
fn fixture_state() -> CustomerState {
    let c = "acme";
    let events = [
        order(c, 1, date(2026, 3, 2), 120_000),
        invoice(c, 1, date(2026, 3, 2), 120_000, 30),
        order(c, 2, date(2026, 3, 5), 80_000),
        invoice(c, 2, date(2026, 3, 5), 80_000, 14),
        complaint(c, 1, date(2026, 3, 6), Severity::High),
        resolved(c, 1, date(2026, 3, 9)),
        payment(c, 2, date(2026, 3, 10), 80_000),
        complaint(c, 2, date(2026, 4, 1), Severity::Low),
        payment(c, 1, date(2026, 4, 20), 120_000),
        order(c, 3, date(2026, 4, 21), 45_000),
    ];
    let policy = Policy::default_policy();
    let mut state = CustomerState::default();
    for e in &events {
        state.process(c, e, &policy);
    }
    state
}

/// [`fixture_state`] in postcard as 8fed8a6 (store format 2) wrote it: the
/// window's day sums field by field behind the number of its buckets.
const FORMAT_2: &[&str] = &[
    "07c4c00280d30e80d30ea0fe0a02000000000000000000000000000180e0c1bd",
    "956700cac00280e20980e209c0a90702000000000000000000000000000180b0",
    "dab4976700ccc00200000000000000020000000002000000000000d4c0020000",
    "000000000000000000000000020200000080c102000000000002000000000000",
    "00000000000000a6c1020000000000000000000000000000020026000113a8c1",
    "0290bf0590bf05ac8f0402000000000000000000000000000180c0b1d5b56700",
    "90f41d90f41d8cb716060002000200000000020004022601130102f4fb0280b5",
    "18f6fb0290bf0503ae8899cdc8edf4928c0101c4c00280e0c1bd956780d30e01",
    "a0fe0a00000000fb8499cdc8cdf4928c0101cac00280b0dab4976780e20901c0",
    "a90700000000c88199cdc8adf4928c0101a8c10280c0b1d5b56790bf0501ac8f",
    "040000000002d49fa0ede8bdfe8f970102c4c002ae8899cdc8edf4928c0180c1",
    "0280d30e434e5980d30e80d30e000180d0fe82b56700eda9a0ede89dff8f9701",
    "02cac002fb8499cdc8cdf4928c01e6c00280e209434e5980e20980e209000180",
    "e0d8d09a670000020f61636d652d636f6d706c61696e74310180a08d87986703",
    "077175616c6974790180f0a5fe9967ccc0020180d08ba39b67014478000f6163",
    "6d652d636f6d706c61696e7432018080b8e5a86701077175616c6974790080c1",
    "020180b0b681ac6701447801010ad0f0b0cec88d90a98c01d4c002f1ffd2ccc8",
    "cdd4888c01cac002f2b4c6cdc8edd2998c01ccc002849bdfcdc8ed959d8c01c4",
    "c002d8f5d2ccc8edd3888c01c4c002e9fab0cec8ed90a98c01a6c1028adeb5c0",
    "df8da1f3eb01d2c0029da5dfcdc8cd969d8c01cac002befcd2ccc8add4888c01",
    "a8c102bfb1c6cdc8cdd2998c0180c1020000000180e0c1bd9567000180c0b1d5",
    "b567d0bb02e2bb02000101445c8fc2f5285c1d4080e0c1bd956780c0b1d5b567",
    "0f64656661756c742d323032372e30310101ae8899cdc8edf4928c0100000001",
    "01445c8fc2f5285c1d4080e0c1bd9567000180e0c1bd9567000144ae47e17a14",
    "6e3140000001013181a61d0581a61d05c1a90702000000000000d03f00000001",
    "01000101010001000001000000000000000000000000000000",
];

fn bytes(hex: &[&str]) -> Vec<u8> {
    let hex = hex.concat();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// `old`, bytes an earlier build wrote of [`fixture_state`], decodes to
/// the state as this build stores and reads it back (without what a
/// decision caches and no store keeps), with the same figures, and
/// decodes for deciding only (as the policy rescore reads it) to that
/// state's copy for deciding. Returns the state read from `old`.
fn reads_as_this_build_stores_it(old: &[u8]) -> CustomerState {
    let state: CustomerState =
        postcard::from_bytes(&postcard::to_allocvec(&fixture_state()).unwrap()).unwrap();
    let read: CustomerState = postcard::from_bytes(old).unwrap();
    assert_eq!(read, state);
    let policy = Policy::default_policy();
    assert_eq!(read.indicators(&policy), state.indicators(&policy));
    let part: CustomerState = deciding_only(|| postcard::from_bytes(old).unwrap());
    assert_eq!(part, state.clone_deciding_only());
    read
}

#[test]
fn a_state_written_before_compact_sums_decodes_to_the_same_state() {
    reads_as_this_build_stores_it(&bytes(FORMAT_2));
}

#[test]
fn the_compact_form_is_shorter_and_reads_back() {
    let old = bytes(FORMAT_2);
    let state: CustomerState = postcard::from_bytes(&old).unwrap();
    let new = postcard::to_allocvec(&state).unwrap();
    // Seven day buckets and the totals: the zero figures of each are no
    // longer written (a mask and the nonzero ones instead).
    assert!(
        new.len() + 70 < old.len(),
        "compact {} bytes, field by field {}",
        new.len(),
        old.len()
    );
    assert_eq!(postcard::from_bytes::<CustomerState>(&new).unwrap(), state);
}

#[test]
fn a_window_header_or_sums_mask_no_state_has_is_an_error() {
    let new = postcard::to_allocvec(&fixture_state()).unwrap();
    // The state begins with the window's header: 8192 (compact, the
    // applied ids packed) + 7 buckets, a two-byte varint.
    assert_eq!(new[..2], [0x87, 0x40]);
    // 4095 buckets in the compact form (4096 + 4095: what follows is not
    // as many buckets), or a header past the three forms (3 * 4096 + 7)...
    for header in [[0xff, 0x3f], [0x87, 0x60]] {
        let mut many = new.clone();
        many[..2].copy_from_slice(&header);
        let err = postcard::from_bytes::<CustomerState>(&many).unwrap_err();
        assert!(
            matches!(err, postcard::Error::SerdeDeCustom),
            "{header:x?}: {err:?}"
        );
    }
    // ...or a first day's sums with a mask bit past the 17 fields.
    let mut mask = new.clone();
    let day = 2 + 3; // header, then the day (a zigzag varint of three bytes)
    mask[day..day + 3].copy_from_slice(&[0x80, 0x80, 0x08]);
    let err = postcard::from_bytes::<CustomerState>(&mask).unwrap_err();
    assert!(matches!(err, postcard::Error::SerdeDeCustom), "{err:?}");
}

/// A customer as 2417ae4 (store format 3) wrote it: invoice 1 (1,200.00
/// CNY, due in 30 days) paid 500.00 on 20 March, invoice 2's payment of
/// 800.00 on 25 March held before the invoice: both invoices' payments
/// without their instants.
const FORMAT_3_PAYMENTS: &[&str] = &[
    "8220c4c0020f80d30e80d30ea0fe0a020180e0c1bd956700cac0020f80e20980",
    "e209c0a907020180b0dab49767000f80b51880b518e0a712040001f4fb0280b5",
    "1802ae8899cdc8edf4928c0101c4c00280e0c1bd956780d30e01a0fe0a000000",
    "00fb8499cdc8cdf4928c0101cac00280b0dab4976780e20901c0a90700000000",
    "02d49fa0ede8bdfe8f970101c4c002ae8899cdc8edf4928c0180c10280d30e43",
    "4e5980d30ea08d0601000198e9aeb0e2ade6823c0180c0d588a16700eda9a0ed",
    "e89dff8f970100f2c0020000000000000000010180e209434e5980e20901d0f0",
    "b0cec88d90a98c010180f0d3a4a467000180c102d49fa0ede8bdfe8f97010000",
    "05d8f5d2ccc8edd3888c01c4c002849bdfcdc8ed959d8c01c4c002f1ffd2ccc8",
    "cdd4888c01cac00298e9aeb0e2ade6823ce8c002d0f0b0cec88d90a98c01f2c0",
    "020000000180e0c1bd9567000180f0d3a4a4679abb02a6bb020001014485eb51",
    "b81e05334080e0c1bd956780f0d3a4a4670f64656661756c742d323032372e30",
    "310101ae8899cdc8edf4928c0100000001014485eb51b81e05334080e0c1bd95",
    "67000180e0c1bd9567000144ae47e17a146e3140000001013181a61d0581a61d",
    "05c1a90702000000000000d03f00000001010001010100010000010000000000",
    "00000000000000000000",
];

#[test]
fn payments_stored_without_their_instants_settle_at_the_latest_payment() {
    let c = "acme";
    let policy = Policy::default_policy();
    let mut read: CustomerState = postcard::from_bytes(&bytes(FORMAT_3_PAYMENTS)).unwrap();
    // The rest of invoice 1 on 1 April (on time), and invoice 2 issued on
    // 26 March, due 14 days on (its early payment covered it).
    let mut rest = payment(c, 1, date(2026, 4, 1), 70_000);
    rest.event_id = "acme-p1b".into();
    read.process(c, &rest, &policy);
    read.process(c, &invoice(c, 2, date(2026, 3, 26), 80_000, 14), &policy);
    let f = read
        .projection
        .indicators(date(2026, 5, 1), policy.fold_rules());
    assert_eq!(f.on_time_payment_ratio, Some(1.0));
    assert_eq!(f.overdue_amount, 0.0);
    // Written again, it is written in the current form and reads back
    // (compared as stored: what a decision caches is not).
    let again = postcard::to_allocvec(&read).unwrap();
    let back: CustomerState = postcard::from_bytes(&again).unwrap();
    assert_eq!(postcard::to_allocvec(&back).unwrap(), again);
}

/// A customer as 2417ae4 (store format 3) wrote it: invoice 1 (1,200.00
/// CNY, due 1 April) with 10.00 paid on 15 April, the payment of the whole
/// sum dated 20 March not seen yet.
const FORMAT_3_OVERPAID: &[&str] = &[
    "8120c4c0020f80d30e80d30ea0fe0a020180e0c1bd9567000f80d30e80d30ea0",
    "fe0a020001f4fb0280d30e01ae8899cdc8edf4928c0101c4c00280e0c1bd9567",
    "80d30e01a0fe0a0000000001d49fa0ede8bdfe8f970101c4c002ae8899cdc8ed",
    "f4928c0180c10280d30e434e5980d30ed00f010001ca9995ffdeb2b7f4100180",
    "a080e7b167000180c102d49fa0ede8bdfe8f9701000003d8f5d2ccc8edd3888c",
    "01c4c002849bdfcdc8ed959d8c01c4c002ca9995ffdeb2b7f4109cc102000000",
    "0180e0c1bd9567000180a080e7b167c4bb02e2bb02000101440000000000802b",
    "4080e0c1bd956780a080e7b1670f64656661756c742d323032372e30310101ae",
    "8899cdc8edf4928c010000000101440000000000802b4080e0c1bd9567000180",
    "e0c1bd9567000144ae47e17a146e3140000001013181a61d0581a61d05c1a907",
    "02000000000000d03f0000000101000101010001000001000000000000000000",
    "000000000000",
];

#[test]
fn an_invoice_stored_without_its_payments_instants_falls_back_to_the_latest_payment() {
    // The instant of the 15 April payment was not kept: when the payment
    // of 20 March completes the invoice, the payments cannot be taken in
    // event time, and the invoice counts as paid on 15 April, as the
    // build that stored it counted it (14 days late). The same events
    // folded by this build count it paid on 20 March, on time.
    let c = "acme";
    let policy = Policy::default_policy();
    let mut read: CustomerState = postcard::from_bytes(&bytes(FORMAT_3_OVERPAID)).unwrap();
    let whole = payment(c, 1, date(2026, 3, 20), 120_000);
    read.process(c, &whole, &policy);
    let f = read
        .projection
        .indicators(date(2026, 5, 1), policy.fold_rules());
    assert_eq!(f.on_time_payment_ratio, Some(0.0));
    assert_eq!(f.avg_days_late, Some(14.0));

    let mut extra = payment(c, 1, date(2026, 4, 15), 1_000);
    extra.event_id = "acme-p1-extra".into();
    let mut now = CustomerState::default();
    for e in [
        order(c, 1, date(2026, 3, 2), 120_000),
        invoice(c, 1, date(2026, 3, 2), 120_000, 30),
        extra,
        whole,
    ] {
        now.process(c, &e, &policy);
    }
    let f = now
        .projection
        .indicators(date(2026, 5, 1), policy.fold_rules());
    assert_eq!(f.on_time_payment_ratio, Some(1.0));
}

/// [`fixture_state`] in postcard as 8fa9e2a (store format 4) wrote it:
/// the applied event ids a map of varint hashes and days.
const FORMAT_4: &[&str] = &[
    "8720c4c0020f80d30e80d30ea0fe0a020180e0c1bd956700cac0020f80e20980",
    "e209c0a907020180b0dab4976700ccc002802102020000d4c002808003020200",
    "0080c10220020000a6c1028080050226000113a8c1020f90bf0590bf05ac8f04",
    "020180c0b1d5b56700afa10790f41d90f41d8cb7160602020204022601130102",
    "f4fb0280b518f6fb0290bf0503ae8899cdc8edf4928c0101c4c00280e0c1bd95",
    "6780d30e01a0fe0a00000000fb8499cdc8cdf4928c0101cac00280b0dab49767",
    "80e20901c0a90700000000c88199cdc8adf4928c0101a8c10280c0b1d5b56790",
    "bf0501ac8f040000000002d49fa0ede8bdfe8f970102c4c002ae8899cdc8edf4",
    "928c0180c10280d30e434e5980d30e80d30e000180d0fe82b56700eda9a0ede8",
    "9dff8f970102cac002fb8499cdc8cdf4928c01e6c00280e209434e5980e20980",
    "e209000180e0d8d09a670000020f61636d652d636f6d706c61696e74310180a0",
    "8d87986703077175616c6974790180f0a5fe9967ccc0020180d08ba39b670144",
    "78000f61636d652d636f6d706c61696e7432018080b8e5a86701077175616c69",
    "74790080c1020180b0b681ac6701447801010ad0f0b0cec88d90a98c01d4c002",
    "f1ffd2ccc8cdd4888c01cac002f2b4c6cdc8edd2998c01ccc002849bdfcdc8ed",
    "959d8c01c4c002d8f5d2ccc8edd3888c01c4c002e9fab0cec8ed90a98c01a6c1",
    "028adeb5c0df8da1f3eb01d2c0029da5dfcdc8cd969d8c01cac002befcd2ccc8",
    "add4888c01a8c102bfb1c6cdc8cdd2998c0180c1020000000180e0c1bd956700",
    "0180c0b1d5b567d0bb02e2bb02000101445c8fc2f5285c1d4080e0c1bd956780",
    "c0b1d5b5670f64656661756c742d323032372e30310101ae8899cdc8edf4928c",
    "010000000101445c8fc2f5285c1d4080e0c1bd9567000180e0c1bd9567000144",
    "ae47e17a146e3140000001013181a61d0581a61d05c1a90702000000000000d0",
    "3f0000000101000101010001000001000000000000000000000000000000",
];

#[test]
fn a_state_written_before_packed_ids_decodes_to_the_same_state() {
    let old = bytes(FORMAT_4);
    let read = reads_as_this_build_stores_it(&old);
    let new = postcard::to_allocvec(&fixture_state()).unwrap();
    let state: CustomerState = postcard::from_bytes(&new).unwrap();
    // The ids are there: a redelivered event changes nothing.
    let mut again = read.clone();
    again.process(
        "acme",
        &order("acme", 3, date(2026, 4, 21), 45_000),
        &Policy::default_policy(),
    );
    assert_eq!(again, read, "a redelivery is dropped");
    // The rescore reads the new form as it reads the old.
    let part: CustomerState = deciding_only(|| postcard::from_bytes(&new).unwrap());
    assert_eq!(part, state.clone_deciding_only());
    // Ten ids, about 3 bytes shorter each.
    assert!(
        new.len() + 25 < old.len(),
        "packed {} bytes, map {}",
        new.len(),
        old.len()
    );
    let rewritten = postcard::to_allocvec(&read).unwrap();
    assert_eq!(
        postcard::from_bytes::<CustomerState>(&rewritten).unwrap(),
        state
    );
}

#[test]
fn damaged_packed_ids_are_an_error() {
    let new = postcard::to_allocvec(&fixture_state()).unwrap();
    let state: CustomerState = postcard::from_bytes(&new).unwrap();
    // The same state with one more id than its string holds: the
    // string's length (94: the count, the earliest day in three bytes,
    // ten hashes and ten days), then its count raised from 10 to 11.
    let at: Vec<usize> = new
        .windows(2)
        .enumerate()
        .filter(|(_, w)| *w == [94, 10])
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "the packed ids' length and count, once");
    let mut damaged = new.clone();
    damaged[at[0] + 1] = 11;
    let err = postcard::from_bytes::<CustomerState>(&damaged).unwrap_err();
    assert!(matches!(err, postcard::Error::SerdeDeCustom), "{err:?}");
    // Read past for deciding only, as the rescore reads it.
    let part: CustomerState = deciding_only(|| postcard::from_bytes(&damaged).unwrap());
    assert_eq!(part, state.clone_deciding_only());
}
