//! RFM quintile scores as indicators (`rfm_recency`, `rfm_frequency`,
//! `rfm_monetary`, `rfm_score`): a hand-computed population of ten
//! customers built from events, its quintile cut points, each customer's
//! scores read from its own figures through them, a rules condition and a
//! tier gate on them, unknown before the first cut and without an order,
//! equal figures scoring alike, and advice phrased in score levels.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use tier_core::indicators::Unit;
use tier_core::policy::Policy;
use tier_core::rank::{RfmQuintiles, RfmRanking, RfmScore, RfmValues};
use tier_core::sim::scenario::order;
use tier_core::state::{Cause, CustomerState};
use tier_core::time::date;
use tier_core::{IndicatorName, Indicators, Timestamp};

const DAY_MS: i64 = 86_400_000;

/// 100,000 CNY in fen.
const UNIT: i64 = 10_000_000;

fn fixture() -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid_rfm.toml");
    Policy::from_toml_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn plus_days(t: Timestamp, d: i64) -> Timestamp {
    Timestamp::from_millis(t.millis() + d * DAY_MS)
}

fn base() -> Timestamp {
    date(2026, 3, 2)
}

/// Customer `i` (0..10): `(i * 3) % 10 + 1` orders (a permutation of
/// 1..=10), the last on day `i` after [`base`] (later for a higher `i`),
/// summing to `(10 - i)` units of revenue.
fn events_of(i: i64) -> Vec<tier_core::Event> {
    let id = format!("c{i}");
    let count = (i * 3) % 10 + 1;
    let mut events: Vec<_> = (1..count)
        .map(|k| order(&id, k as usize, plus_days(base(), -10 - (count - k)), 1))
        .collect();
    events.push(order(
        &id,
        count as usize,
        plus_days(base(), i),
        (10 - i) * UNIT - (count - 1),
    ));
    events
}

/// The ten customers folded under `policy`.
fn population(policy: &Policy) -> Vec<(String, CustomerState)> {
    (0..10)
        .map(|i| {
            let id = format!("c{i}");
            let mut state = CustomerState::default();
            for e in events_of(i) {
                state.process(&id, &e, policy);
            }
            (id, state)
        })
        .collect()
}

/// `policy` with the RFM cut points of `states` (what the engine does).
fn cut(policy: &Policy, states: &[(String, CustomerState)]) -> Policy {
    let mut ranking = RfmRanking::<String>::new();
    for (id, s) in states {
        ranking.upsert(id.as_str(), &s.rfm_values(policy));
    }
    policy.with_rfm_cuts(RfmQuintiles::of(&ranking))
}

fn scores(ind: &Indicators) -> [Option<f64>; 4] {
    [
        ind.rfm_recency,
        ind.rfm_frequency,
        ind.rfm_monetary,
        ind.rfm_score,
    ]
}

#[test]
fn quintile_scores_of_a_hand_computed_population() {
    let p = fixture();
    assert!(p.uses_rfm());
    assert!(p.uses(IndicatorName::RfmScore) && p.uses(IndicatorName::RfmRecency));
    let states = population(&p);
    // Before any cut: every score unknown.
    assert!(p.rfm_cuts().is_empty());
    for (_, s) in &states {
        assert_eq!(scores(&s.indicators(&p)), [None; 4]);
    }

    let cut = cut(&p, &states);
    // Ten customers, two per fifth; ties go to the better fifth, so each
    // cut point is the value of the last customer of its fifth.
    let u = UNIT as f64;
    assert_eq!(cut.rfm_cuts().frequency, [9.0, 7.0, 5.0, 3.0]);
    assert_eq!(
        cut.rfm_cuts().monetary,
        [9.0 * u, 7.0 * u, 5.0 * u, 3.0 * u]
    );
    let day = |d: i64| plus_days(base(), d).millis() as f64;
    assert_eq!(cut.rfm_cuts().recency, [day(8), day(6), day(4), day(2)]);

    // Hand-computed: R by the last order's day (c8, c9 latest), F by the
    // order count (c3: 10, c6: 9, c9: 8, c2: 7, ...), M by revenue (c0
    // most).
    let want: [[u8; 3]; 10] = [
        [1, 1, 5],
        [1, 2, 5],
        [2, 4, 4],
        [2, 5, 4],
        [3, 2, 3],
        [3, 3, 3],
        [4, 5, 2],
        [4, 1, 2],
        [5, 3, 1],
        [5, 4, 1],
    ];
    for ((id, s), [r, f, m]) in states.iter().zip(want) {
        let ind = s.indicators(&cut);
        let total = f64::from(r + f + m);
        assert_eq!(
            scores(&ind),
            [
                Some(f64::from(r)),
                Some(f64::from(f)),
                Some(f64::from(m)),
                Some(total)
            ],
            "{id}"
        );
        assert_eq!(ind.get(IndicatorName::RfmScore), Some(total));
    }

    // Time passing moves no score: 100 days on, everyone's days since the
    // last order grew alike, and recency is ranked by the order's instant.
    let mut later = states[0].1.clone();
    let before = later.indicators(&cut);
    later.reevaluate("c0", &cut, plus_days(base(), 100), Cause::Time);
    let after = later.indicators(&cut);
    assert!(after.days_since_last_order > before.days_since_last_order);
    assert_eq!(scores(&after), scores(&before));
}

#[test]
fn a_rules_condition_and_a_gate_read_the_scores() {
    let p = fixture();
    let mut states = population(&p);
    // Unranked: no condition holds, everyone in the lowest tier.
    for (_, s) in &states {
        assert_eq!(s.effective.as_ref().unwrap().tier, "C");
    }
    let cut = cut(&p, &states);
    let now = plus_days(base(), 20);
    let mut tiers = Vec::new();
    for (id, s) in &mut states {
        let change = s.reevaluate(id, &cut, now, Cause::Rank);
        if let Some(c) = change {
            assert_eq!(c.cause, Cause::Rank);
        }
        tiers.push(s.tier().unwrap().to_owned());
    }
    // A: rfm_score >= 10 and (gate) rfm_recency >= 4: c6 (4+5+2) and c9
    // (5+4+1); c2 (10) and c3 (11) reach A's rule but recency 2 fails the
    // gate: B. B: rfm_frequency >= 3: also c5 and c8.
    assert_eq!(tiers, ["C", "C", "B", "B", "C", "B", "A", "C", "B", "A"]);

    // c3's explanation names the failing gate, in levels.
    let e = states[3].1.explain(&cut);
    assert_eq!(e.failed_gates.len(), 1);
    assert_eq!(e.failed_gates[0].indicator, "rfm_recency");
    assert_eq!(e.failed_gates[0].unit, Unit::Level);
    // c7 (frequency 1): the advice is the frequency score B needs, and
    // following it reaches B.
    let ind = states[7].1.indicators(&cut);
    let e = cut.explain(&ind, 2);
    assert_eq!(e.advice.len(), 1, "{e:?}");
    assert_eq!(e.advice[0].indicator, IndicatorName::RfmFrequency);
    assert_eq!(e.advice[0].target, 3.0);
    assert_eq!(e.advice[0].unit, Unit::Level);
    let mut after = ind;
    after.set(IndicatorName::RfmFrequency, Some(3.0));
    after.set(IndicatorName::RfmScore, Some(4.0 + 3.0 + 2.0));
    assert_eq!(cut.evaluate(&after).tier, 1);
}

#[test]
fn unknown_without_an_order_or_without_cut_points() {
    let p = fixture();
    let cut = cut(&p, &population(&p));
    // A customer tierd knows of but that never ordered: nothing to score.
    let prospect = CustomerState::default();
    assert_eq!(scores(&prospect.indicators(&cut)), [None; 4]);
    let values = prospect.rfm_values(&cut);
    assert_eq!(values.last_order_at, None);
    assert!(values.frequency.is_nan() && values.monetary.is_nan());
    // The gate is `unknown = "fail"`: an unknown recency keeps a customer
    // out of A whatever the rest.
    let ind = Indicators {
        rfm_score: Some(15.0),
        ..Indicators::default()
    };
    assert_eq!(cut.evaluate(&ind).tier, 1);
    // An empty population has no cut points: unknown scores.
    let empty = RfmQuintiles::of(&RfmRanking::<String>::new());
    assert!(empty.is_empty());
    let some = RfmValues {
        last_order_at: Some(base()),
        frequency: 3.0,
        monetary: 1.0,
    };
    assert_eq!(empty.score(&some), RfmScore::default());
}

#[test]
fn equal_figures_get_equal_scores() {
    // Frequencies 5, 5, 5, 5, 1: the first fifth's cut point is 5, so all
    // four customers with 5 orders score 5 (ties to the better fifth),
    // whatever their ids; the one with 1 order scores 1.
    let mut ranking = RfmRanking::<String>::new();
    for (i, f) in [5.0, 5.0, 5.0, 5.0, 1.0].into_iter().enumerate() {
        ranking.upsert(
            &format!("c{i}"),
            &RfmValues {
                last_order_at: Some(base()),
                frequency: f,
                monetary: 100.0,
            },
        );
    }
    let q = RfmQuintiles::of(&ranking);
    let of = |f: f64| {
        q.score(&RfmValues {
            last_order_at: Some(base()),
            frequency: f,
            monetary: 100.0,
        })
    };
    assert_eq!(of(5.0).frequency, Some(5));
    assert_eq!(of(1.0).frequency, Some(1));
    // A newcomer between the cut points: the fifth its figure reaches.
    assert_eq!(of(3.0).frequency, Some(1));
    assert_eq!(of(7.0).frequency, Some(5));
    // Recency and monetary all tied: everyone in the best fifth.
    assert_eq!(of(5.0).total(), Some(15));
}

/// Customers whose last order lies before the window (frequency and
/// revenue 0) score the worst fifth in frequency and revenue, 1, however
/// many they are: ties go to the better fifth, and without 0 kept for the
/// worst fifth they scored that of the last customer who bought (3 here),
/// or 5 once most of the population had lapsed. Recency ranks them by
/// their last order's date, as everyone.
#[test]
fn buying_nothing_in_the_window_scores_the_worst_fifth() {
    let last = |d: i64| Some(plus_days(base(), d));
    for lapsed in [5_usize, 9] {
        let mut ranking = RfmRanking::<String>::new();
        for (i, orders) in [5.0, 4.0, 3.0, 2.0, 1.0].into_iter().enumerate() {
            let values = RfmValues {
                last_order_at: last(-(i as i64)),
                frequency: orders,
                monetary: orders * 1_000.0,
            };
            ranking.upsert(format!("buyer{i}").as_str(), &values);
        }
        let nothing = RfmValues {
            last_order_at: last(-500),
            frequency: 0.0,
            monetary: 0.0,
        };
        for i in 0..lapsed {
            ranking.upsert(format!("lapsed{i}").as_str(), &nothing);
        }
        let q = RfmQuintiles::of(&ranking);
        let s = q.score(&nothing);
        assert_eq!(
            (s.frequency, s.monetary),
            (Some(1), Some(1)),
            "{lapsed} lapsed: {q:?}"
        );
        // One who lapsed later: older is still worse in recency only.
        let later = q.score(&RfmValues {
            last_order_at: last(-450),
            ..nothing
        });
        assert_eq!((later.frequency, later.monetary), (Some(1), Some(1)));
        // The buyers keep their fifths: the best still scores 5.
        let best = q.score(&RfmValues {
            last_order_at: last(0),
            frequency: 5.0,
            monetary: 5_000.0,
        });
        assert_eq!(best.frequency, Some(5), "{q:?}");
    }
    // Nobody without an order: ties at the fewest orders keep the better
    // fifth (five of ten customers with one order score 3, not 1).
    let mut ranking = RfmRanking::<String>::new();
    for (i, orders) in [5.0, 4.0, 3.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0]
        .into_iter()
        .enumerate()
    {
        let values = RfmValues {
            last_order_at: last(-(i as i64)),
            frequency: orders,
            monetary: 1_000.0 * (10 - i) as f64,
        };
        ranking.upsert(format!("buyer{i}").as_str(), &values);
    }
    let q = RfmQuintiles::of(&ranking);
    let one = q.score(&RfmValues {
        last_order_at: last(-9),
        frequency: 1.0,
        monetary: 1_000.0,
    });
    assert_eq!(one.frequency, Some(3), "{q:?}");
}
