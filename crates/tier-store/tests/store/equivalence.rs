//! Random sequences of operations leave `MemStore` and each disk backend
//! (sled; fjall and redb when compiled in) in the same observable state,
//! with the same results along the way.

use crate::common::p0;
use proptest::prelude::*;
use tier_store::{CommitBatch, CommitReceipt, FlushPolicy, Store, StoreError};

use crate::common::{Backend, MaybePoisoned, account, snapshot};

const IDS: [&str; 8] = ["c", "c1", "c10", "c2", "kunde-ä", "b", "zz", ""];
// The empty topic is invalid: commits and set_offset that use it must fail
// on both backends without changing anything.
const TOPICS: [&str; 4] = ["orders", "payments", "orders.v2", ""];

#[derive(Debug, Clone)]
enum Op {
    Commit {
        customers: Vec<(usize, i64, bool)>,
        offsets: Vec<(usize, i32, i64)>,
        outbox: Vec<Vec<u8>>,
    },
    Delete(Vec<u64>),
    SetOffset(usize, i32, i64),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            prop::collection::vec((0..IDS.len(), -50i64..50, prop::bool::weighted(0.05)), 0..5),
            prop::collection::vec((0..TOPICS.len(), -1i32..4, -1i64..1_000), 0..3),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..4),
        )
            .prop_map(|(customers, offsets, outbox)| Op::Commit { customers, offsets, outbox }),
        3 => prop::collection::vec(0u64..40, 0..6).prop_map(Op::Delete),
        1 => (0..TOPICS.len(), 0i32..4, 0i64..1_000).prop_map(|(t, p, o)| Op::SetOffset(t, p, o)),
        1 => Just(Op::Reopen),
    ]
}

/// Results reduced to what must agree (error variants, not their sources).
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Committed(CommitReceipt),
    Done,
    Failed(std::mem::Discriminant<StoreError>),
}

fn outcome<T>(result: Result<T, StoreError>, ok: impl FnOnce(T) -> Outcome) -> Outcome {
    match result {
        Ok(v) => ok(v),
        Err(e) => Outcome::Failed(std::mem::discriminant(&e)),
    }
}

fn apply(b: &mut impl Backend, op: &Op) -> Outcome {
    match op {
        Op::Commit {
            customers,
            offsets,
            outbox,
        } => {
            let states: Vec<(usize, MaybePoisoned)> = customers
                .iter()
                .map(|&(id, score, poisoned)| {
                    (
                        id,
                        MaybePoisoned {
                            account: account(score, "t"),
                            poisoned,
                        },
                    )
                })
                .collect();
            let batch = CommitBatch {
                customers: p0(states.iter().map(|(id, s)| (IDS[*id], s))),
                moved: Vec::new(),
                offsets: offsets.iter().map(|&(t, p, o)| (TOPICS[t], p, o)).collect(),
                outbox: outbox.clone(),
                meta: Vec::new(),
            };
            outcome(b.store().commit(&batch), Outcome::Committed)
        }
        Op::Delete(keys) => outcome(b.store().outbox_delete(keys), |()| Outcome::Done),
        Op::SetOffset(t, p, o) => {
            outcome(b.store().set_offset(TOPICS[*t], *p, *o), |()| Outcome::Done)
        }
        Op::Reopen => {
            b.reopen();
            Outcome::Done
        }
    }
}

/// Runs `ops` on the in-memory store and on `disk`, comparing every
/// outcome and the observable state after each step.
fn agree(ops: &[Op], mut disk: impl Backend) -> Result<(), TestCaseError> {
    let mut mem = crate::common::mem();
    for op in ops {
        let (m, s) = (apply(&mut mem, op), apply(&mut disk, op));
        prop_assert_eq!(&m, &s, "{:?}", op);
        prop_assert_eq!(
            snapshot(mem.store()),
            snapshot(disk.store()),
            "after {:?}",
            op
        );
    }
    prop_assert_eq!(
        mem.store().verify::<crate::common::Account>().unwrap(),
        disk.store().verify::<crate::common::Account>().unwrap()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn mem_and_sled_agree(ops in prop::collection::vec(op(), 1..25)) {
        agree(&ops, crate::common::sled(FlushPolicy::IntervalMs(1_000)))?;
    }

    #[cfg(feature = "fjall")]
    #[test]
    fn mem_and_fjall_agree(ops in prop::collection::vec(op(), 1..25)) {
        agree(&ops, crate::common::disk(tier_store::Backend::Fjall, FlushPolicy::IntervalMs(1_000)))?;
    }

    #[cfg(feature = "redb")]
    #[test]
    fn mem_and_redb_agree(ops in prop::collection::vec(op(), 1..25)) {
        agree(&ops, crate::common::disk(tier_store::Backend::Redb, FlushPolicy::IntervalMs(1_000)))?;
    }
}
