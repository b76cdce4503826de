//! The ranking machinery of `tier_core::rank` against naive references:
//! a full sort with the documented tie rule after every update, class sizes
//! within one customer of the shares, the diff against a before/after
//! comparison of every customer, and hand-computed ABC and RFM examples.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Ordering;
use std::collections::BTreeMap;

use proptest::prelude::*;
use tier_core::Timestamp;
use tier_core::rank::{
    ClassChange, Cuts, Direction, Placement, Proportions, ProportionsError, Ranking, RfmRanking,
    RfmScore, RfmValues,
};

// ----- naive reference -----

/// `-0.0` is `0.0`; every NaN is the one unknown.
fn canonical(v: f64) -> f64 {
    if v == 0.0 { 0.0 } else { v }
}

/// The documented order: known first, better value first, then id.
fn naive_cmp(direction: Direction, a: (u16, f64), b: (u16, f64)) -> Ordering {
    let by_value = match (a.1.is_nan(), b.1.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => {
            let ord = canonical(a.1).partial_cmp(&canonical(b.1)).unwrap();
            match direction {
                Direction::HigherIsBetter => ord.reverse(),
                Direction::LowerIsBetter => ord,
            }
        }
    };
    by_value.then(a.0.cmp(&b.0))
}

fn naive_sorted(direction: Direction, model: &BTreeMap<u16, f64>) -> Vec<(u16, f64)> {
    let mut all: Vec<(u16, f64)> = model.iter().map(|(&id, &v)| (id, v)).collect();
    all.sort_by(|&a, &b| naive_cmp(direction, a, b));
    all
}

fn same_value(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || canonical(a).to_bits() == canonical(b).to_bits()
}

// ----- strategies -----

#[derive(Debug, Clone)]
enum Op {
    Upsert(u16, f64),
    Remove(u16),
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => (0u8..8).prop_map(f64::from),
        1 => Just(f64::NAN),
        1 => Just(-0.0),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(f64::INFINITY),
        2 => any::<f64>(),
    ]
}

fn ops(ids: u16, max: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            4 => (0..ids, value()).prop_map(|(i, v)| Op::Upsert(i, v)),
            1 => (0..ids).prop_map(Op::Remove),
        ],
        0..max,
    )
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![
        Just(Direction::HigherIsBetter),
        Just(Direction::LowerIsBetter)
    ]
}

/// Shares from integer weights (not all zero), and maybe a low share.
fn proportions() -> impl Strategy<Value = (Vec<f64>, Option<f64>)> {
    (
        prop::collection::vec(0u32..10, 1..7)
            .prop_filter("a non-zero weight", |w| w.iter().any(|&x| x > 0)),
        prop::option::of(0u32..=100),
    )
        .prop_map(|(weights, low)| {
            let total: u32 = weights.iter().sum();
            let shares = weights
                .iter()
                .map(|&w| f64::from(w) / f64::from(total))
                .collect();
            (shares, low.map(|l| f64::from(l) / 100.0))
        })
}

fn build(shares: &[f64], low: Option<f64>) -> Proportions {
    let p = Proportions::new(shares).unwrap();
    match low {
        Some(l) => p.with_low_share(l).unwrap(),
        None => p,
    }
}

fn apply(ranking: &mut Ranking<u16>, model: &mut BTreeMap<u16, f64>, op: &Op) {
    match *op {
        Op::Upsert(id, v) => {
            assert_eq!(
                ranking.upsert(&id, v).map(f64::to_bits),
                model.insert(id, v).map(f64::to_bits)
            );
        }
        Op::Remove(id) => {
            assert_eq!(
                ranking.remove(&id).map(f64::to_bits),
                model.remove(&id).map(f64::to_bits)
            );
        }
    }
}

/// The class of each known customer by its position and the cut positions.
fn classes_by_position(cuts: &Cuts<u16>) -> Vec<usize> {
    (0..cuts.classes())
        .flat_map(|c| cuts.class_range(c).map(move |_| c))
        .collect()
}

/// Every known customer whose placement differs, in rank order.
fn naive_diff(
    ranking: &Ranking<u16>,
    old: &Cuts<u16>,
    new: &Cuts<u16>,
) -> Vec<(u16, Placement, Placement)> {
    ranking
        .iter()
        .filter(|(_, v)| !v.is_nan())
        .filter_map(|(&id, v)| {
            let before = old.placement(v, &id).unwrap();
            let after = new.placement(v, &id).unwrap();
            (before != after).then_some((id, before, after))
        })
        .collect()
}

fn strip(changes: &[ClassChange<u16>]) -> Vec<(u16, Placement, Placement)> {
    changes.iter().map(|c| (c.id, c.old, c.new)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// After any sequence of upserts and removes the ranking is a full sort
    /// of the population with the tie rule, and positions agree.
    #[test]
    fn ranking_equals_a_full_sort(
        ops in ops(80, 400),
        direction in direction(),
        load in prop_oneof![1usize..5, Just(256usize)],
    ) {
        let mut ranking = Ranking::with_load(direction, load);
        let mut model = BTreeMap::new();
        for op in &ops {
            apply(&mut ranking, &mut model, op);
            prop_assert_eq!(ranking.len(), model.len());
        }
        let naive = naive_sorted(direction, &model);
        let got: Vec<(u16, f64)> = ranking.iter().map(|(&id, v)| (id, v)).collect();
        prop_assert_eq!(got.len(), naive.len());
        for (p, (g, n)) in got.iter().zip(&naive).enumerate() {
            prop_assert_eq!(g.0, n.0, "position {}", p);
            prop_assert!(same_value(g.1, n.1));
            prop_assert_eq!(ranking.position(&n.0), Some(p));
            prop_assert_eq!(ranking.get(p).map(|(&id, _)| id), Some(n.0));
        }
        let unknown = model.values().filter(|v| v.is_nan()).count();
        prop_assert_eq!(ranking.unknown_len(), unknown);
        prop_assert_eq!(ranking.known_len(), model.len() - unknown);
        // The bulk build gives the same order.
        let bulk = Ranking::from_values(direction, model.iter().map(|(&id, &v)| (id, v)));
        let bulk_order: Vec<u16> = bulk.iter().map(|(&id, _)| id).collect();
        let order: Vec<u16> = naive.iter().map(|&(id, _)| id).collect();
        prop_assert_eq!(bulk_order, order);
    }

    /// Class sizes are within one customer of `share * n` for any
    /// population (empty, smaller than the number of classes, all equal),
    /// classes follow the ranking, and classifying a `(value, id)` agrees
    /// with its position; a value not in the ranking takes the class of
    /// the ranked customer just before it.
    #[test]
    fn class_sizes_match_the_shares(
        values in prop::collection::vec(value(), 0..150),
        all_equal in any::<bool>(),
        (shares, low) in proportions(),
        direction in direction(),
        probes in prop::collection::vec((value(), 0u16..400), 0..20),
    ) {
        let values: Vec<f64> = if all_equal {
            values.iter().map(|_| 3.0).collect()
        } else {
            values
        };
        let ranking = Ranking::from_values(
            direction,
            values.iter().enumerate().map(|(i, &v)| (u16::try_from(i).unwrap() * 2, v)),
        );
        let props = build(&shares, low);
        let cuts = ranking.cuts(&props);
        let n = ranking.known_len();
        prop_assert_eq!(cuts.population(), n);

        let sizes = cuts.class_sizes();
        prop_assert_eq!(sizes.len(), shares.len());
        prop_assert_eq!(sizes.iter().sum::<usize>(), n);
        for (size, share) in sizes.iter().zip(&shares) {
            let ideal = share * n as f64;
            prop_assert!((*size as f64 - ideal).abs() <= 1.0 + 1e-9, "size {} ideal {}", size, ideal);
        }
        prop_assert_eq!(&props.class_sizes(n), &sizes);

        let flagged = cuts.flagged_low_count();
        let ideal_flagged = low.unwrap_or(0.0) * n as f64;
        prop_assert!((flagged as f64 - ideal_flagged).abs() <= 0.5 + 1e-9);

        // Each known customer: class by position == class by value.
        let by_position = classes_by_position(&cuts);
        let known: Vec<(u16, f64)> = ranking.iter().take(n).map(|(&id, v)| (id, v)).collect();
        for (p, &(id, v)) in known.iter().enumerate() {
            let placement = cuts.placement(v, &id).unwrap();
            prop_assert_eq!(placement.class, by_position[p]);
            prop_assert_eq!(placement.flagged_low, p >= n - flagged);
            prop_assert_eq!(cuts.score(v, &id), Some(u8::try_from(shares.len() - by_position[p]).unwrap()));
        }
        // Unknown values have no class.
        for (id, v) in ranking.iter().skip(n) {
            prop_assert!(v.is_nan());
            prop_assert_eq!(cuts.placement(v, id), None);
        }
        // Any other (value, id): the class of its predecessor (0 if none).
        for (v, id) in probes {
            if v.is_nan() {
                prop_assert_eq!(cuts.class(v, &id), None);
                continue;
            }
            let before = known
                .iter()
                .rposition(|&k| naive_cmp(direction, k, (id, v)) != Ordering::Greater);
            let expected = before.map_or(0, |p| by_position[p]);
            prop_assert_eq!(cuts.class(v, &id), Some(expected));
        }
    }

    /// The same population gives the same cuts, whatever the update order.
    #[test]
    fn cuts_do_not_depend_on_update_order(
        ops in ops(40, 200),
        direction in direction(),
        (shares, low) in proportions(),
    ) {
        let mut ranking = Ranking::with_load(direction, 3);
        let mut model = BTreeMap::new();
        for op in &ops {
            apply(&mut ranking, &mut model, op);
        }
        let mut reversed = Ranking::with_load(direction, 2);
        for (&id, &v) in model.iter().rev() {
            reversed.upsert(&id, f64::NAN);
            reversed.upsert(&id, v);
        }
        let props = build(&shares, low);
        prop_assert_eq!(ranking.cuts(&props), reversed.cuts(&props));
    }

    /// The diff after any population change and any policy change equals a
    /// comparison of every customer before and after.
    #[test]
    fn diff_equals_a_naive_comparison(
        before in ops(100, 300),
        after in ops(100, 60),
        direction in direction(),
        (shares, low) in proportions(),
        (other_shares, other_low) in proportions(),
        same_policy in any::<bool>(),
        load in 1usize..6,
    ) {
        let mut ranking = Ranking::with_load(direction, load);
        let mut model = BTreeMap::new();
        for op in &before {
            apply(&mut ranking, &mut model, op);
        }
        let old_props = build(&shares, low);
        let new_props = if same_policy { old_props.clone() } else { build(&other_shares, other_low) };
        let old = ranking.cuts(&old_props);
        for op in &after {
            apply(&mut ranking, &mut model, op);
        }
        let new = ranking.cuts(&new_props);
        let diff = ranking.diff(&old, &new);
        prop_assert_eq!(strip(&diff), naive_diff(&ranking, &old, &new));
        for c in &diff {
            prop_assert!(same_value(c.value, model[&c.id]));
        }
        // No change of cuts, no change.
        prop_assert!(ranking.diff(&new, &new).is_empty());
    }
}

// ----- hand-computed examples -----

fn ids(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn abc_low() -> Proportions {
    Proportions::new(&[0.2, 0.3, 0.5])
        .unwrap()
        .with_low_share(0.2)
        .unwrap()
}

fn class_of(ranking: &Ranking<String>, cuts: &Cuts<String>, id: &str) -> Placement {
    cuts.placement(ranking.value(id).unwrap(), id).unwrap()
}

/// Values a=10, b=8, c=8, d=8, e=5, shares 20/30/50 and bottom 20%:
/// b_1 = round(0.2 * 5) = 1, b_2 = round(0.5 * 5 = 2.5) = 3 (half up),
/// flagged = round(0.2 * 5) = 1. The three 8s straddle the B/C cut and
/// are split by id: b, c in B; d in C.
#[test]
fn ties_at_a_cut_point_are_split_by_id() {
    let ranking = Ranking::from_values(
        Direction::HigherIsBetter,
        ids(&["d", "a", "e", "c", "b"])
            .into_iter()
            .zip([8.0, 10.0, 5.0, 8.0, 8.0]),
    );
    let order: Vec<&str> = ranking.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(order, ["a", "b", "c", "d", "e"]);
    let cuts = ranking.cuts(&abc_low());
    assert_eq!(cuts.boundary_positions(), &[1, 3]);
    assert_eq!(cuts.class_sizes(), vec![1, 2, 2]);
    let p = |class, flagged_low| Placement { class, flagged_low };
    assert_eq!(class_of(&ranking, &cuts, "a"), p(0, false));
    assert_eq!(class_of(&ranking, &cuts, "b"), p(1, false));
    assert_eq!(class_of(&ranking, &cuts, "c"), p(1, false));
    assert_eq!(class_of(&ranking, &cuts, "d"), p(2, false));
    assert_eq!(class_of(&ranking, &cuts, "e"), p(2, true));
    // The cut points a report shows: B from (8, b), C from (8, d), low from (5, e).
    assert_eq!(
        cuts.cut_point(1).map(|(v, id)| (v, id.as_str())),
        Some((8.0, "b"))
    );
    assert_eq!(
        cuts.cut_point(2).map(|(v, id)| (v, id.as_str())),
        Some((8.0, "d"))
    );
    assert_eq!(
        cuts.low_cut_point().map(|(v, id)| (v, id.as_str())),
        Some((5.0, "e"))
    );
    // The cuts are frozen thresholds: a newcomer worth 8 lands by its id
    // among the tied ("a0" before b: A; "bb" after b: B; "da" after d: C),
    // and 9 is above the B cut point (8, b), so A until the next recut.
    assert_eq!(cuts.class(8.0, "a0"), Some(0));
    assert_eq!(cuts.class(8.0, "bb"), Some(1));
    assert_eq!(cuts.class(8.0, "da"), Some(2));
    assert_eq!(cuts.class(9.0, "zz"), Some(0));
    assert_eq!(cuts.class(10.0, "0"), Some(0));
    assert_eq!(cuts.class(f64::NAN, "x"), None);
    // Scores: 3 = A ... 1 = C.
    assert_eq!(cuts.score(10.0, "a"), Some(3));
    assert_eq!(cuts.score(5.0, "e"), Some(1));
}

#[test]
fn small_and_degenerate_populations() {
    let abc = abc_low();
    let empty: Ranking<String> = Ranking::new(Direction::HigherIsBetter);
    let cuts = empty.cuts(&abc);
    assert_eq!(cuts.class_sizes(), vec![0, 0, 0]);
    assert_eq!(cuts.flagged_low_count(), 0);
    // Anyone classified against empty cuts is in the best class.
    assert_eq!(cuts.class(1.0, "x"), Some(0));

    // One customer: b_1 = round(0.2) = 0, b_2 = round(0.5) = 1 (half up),
    // so it is B; flagged = round(0.2) = 0.
    let one = Ranking::from_values(Direction::HigherIsBetter, [("x".to_owned(), 1.0)]);
    let cuts = one.cuts(&abc);
    assert_eq!(cuts.class_sizes(), vec![0, 1, 0]);
    assert_eq!(class_of(&one, &cuts, "x").class, 1);

    // Ten equal values: 2 / 3 / 5 by id, the last 2 flagged.
    let equal = Ranking::from_values(
        Direction::HigherIsBetter,
        (0..10).map(|i| (format!("c{i}"), 7.0)),
    );
    let cuts = equal.cuts(&abc);
    assert_eq!(cuts.class_sizes(), vec![2, 3, 5]);
    assert_eq!(cuts.flagged_low_count(), 2);
    assert_eq!(class_of(&equal, &cuts, "c1").class, 0);
    assert_eq!(class_of(&equal, &cuts, "c2").class, 1);
    assert_eq!(class_of(&equal, &cuts, "c5").class, 2);
    assert!(class_of(&equal, &cuts, "c8").flagged_low);
    assert!(!class_of(&equal, &cuts, "c7").flagged_low);

    // Unknown values are outside the population.
    let mut with_unknown = equal.clone();
    with_unknown.upsert("u", f64::NAN);
    assert_eq!(with_unknown.known_len(), 10);
    assert_eq!(with_unknown.cuts(&abc), cuts);
    assert_eq!(with_unknown.position("u"), Some(10));
}

#[test]
fn shares_are_validated() {
    assert_eq!(Proportions::new(&[]), Err(ProportionsError::NoClasses));
    assert!(matches!(
        Proportions::new(&[0.5, 0.6]),
        Err(ProportionsError::SumNotOne(_))
    ));
    assert!(matches!(
        Proportions::new(&[1.5, -0.5]),
        Err(ProportionsError::InvalidShare { index: 0, .. })
    ));
    assert!(matches!(
        Proportions::new(&[f64::NAN, 1.0]),
        Err(ProportionsError::InvalidShare { index: 0, .. })
    ));
    assert!(matches!(
        Proportions::new(&[1.0]).unwrap().with_low_share(1.1),
        Err(ProportionsError::InvalidLowShare(_))
    ));
    assert!(matches!(
        Proportions::new(&vec![1.0 / 300.0; 300]),
        Err(ProportionsError::TooManyClasses(300))
    ));
    // Thirds sum to 1 within the tolerance.
    let thirds = Proportions::new(&[1.0 / 3.0; 3]).unwrap();
    assert_eq!(thirds.class_sizes(10), vec![3, 4, 3]);
    assert_eq!(thirds.class_sizes(2), vec![1, 0, 1]);
}

/// Values 1..=10 cut 20/30/50: A = {10, 9}, B = {8, 7, 6}. Ten better
/// customers (11..=20) arrive: the new cuts over 20 are A = 20..=17,
/// B = 16..=11, so 10 and 9 fall A -> C, 8..6 fall B -> C, and the
/// newcomers 16..11 (A under the old cuts) are B.
#[test]
fn cut_points_move_when_the_population_moves() {
    let abc = Proportions::new(&[0.2, 0.3, 0.5]).unwrap();
    let mut ranking: Ranking<String> = Ranking::new(Direction::HigherIsBetter);
    for v in 1..=10 {
        ranking.upsert(&format!("v{v:02}"), f64::from(v));
    }
    let old = ranking.cuts(&abc);
    assert_eq!(old.class_sizes(), vec![2, 3, 5]);
    for v in 11..=20 {
        ranking.upsert(&format!("v{v:02}"), f64::from(v));
    }
    let new = ranking.cuts(&abc);
    assert_eq!(new.class_sizes(), vec![4, 6, 10]);
    let moved: Vec<(String, usize, usize)> = ranking
        .diff(&old, &new)
        .into_iter()
        .map(|c| (c.id, c.old.class, c.new.class))
        .collect();
    let mut expected: Vec<(String, usize, usize)> = (11..=16)
        .rev()
        .map(|v| (format!("v{v:02}"), 0, 1))
        .collect();
    expected.extend([10, 9].map(|v| (format!("v{v:02}"), 0, 2)));
    expected.extend([8, 7, 6].map(|v| (format!("v{v:02}"), 1, 2)));
    assert_eq!(moved, expected);
}

#[test]
fn lower_is_better_ranks_small_values_first() {
    let ranking = Ranking::from_values(
        Direction::LowerIsBetter,
        [
            ("a", 5.0),
            ("b", 1.0),
            ("c", f64::NAN),
            ("d", 1.0),
            ("e", -2.0),
        ]
        .map(|(id, v)| (id.to_owned(), v)),
    );
    let order: Vec<&str> = ranking.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(order, ["e", "b", "d", "a", "c"]);
}

/// id, last order, orders, revenue, expected [R, F, M].
type RfmRow = (&'static str, Option<Timestamp>, f64, f64, [Option<u8>; 3]);

fn day(d: i64) -> Option<Timestamp> {
    Some(Timestamp::from_millis(d * 86_400_000))
}

/// Ten customers, hand-scored:
///
/// | id | last order (day) | orders | revenue | R | F | M |
/// |----|-----|----|------|---|---|---|
/// | A  | 100 | 12 | 1000 | 5 | 5 | 5 |
/// | B  |  90 |  3 |  500 | 5 | 4 | 4 |
/// | C  |  90 |  3 |  800 | 4 | 3 | 5 |
/// | D  |  80 |  3 |  200 | 4 | 3 | 3 |
/// | E  |  70 |  1 |   50 | 3 | 2 | 2 |
/// | F  |  60 |  0 |    0 | 2 | 2 | 2 |
/// | G  |  50 |  0 |    0 | 2 | 1 | 1 |
/// | H  |  40 |  5 |  300 | 1 | 4 | 3 |
/// | I  |   - |  0 |    0 | - | 1 | 1 |
/// | J  |  30 |  8 |  700 | 1 | 5 | 4 |
///
/// Recency: 9 known, bounds round(1.8, 3.6, 5.4, 7.2) = 2, 4, 5, 7 ->
/// A B | C D | E | F G | H J (B and C tie at day 90, split by id).
/// Frequency: 10 known, bounds 2, 4, 6, 8 -> A J | H B | C D | E F | G I
/// (the 3s and the 0s straddle cuts, split by id). Monetary likewise:
/// A C | J B | H D | E F | G I.
#[test]
fn rfm_quintiles_match_a_hand_computed_example() {
    let rows: [RfmRow; 10] = [
        ("A", day(100), 12.0, 1000.0, [Some(5), Some(5), Some(5)]),
        ("B", day(90), 3.0, 500.0, [Some(5), Some(4), Some(4)]),
        ("C", day(90), 3.0, 800.0, [Some(4), Some(3), Some(5)]),
        ("D", day(80), 3.0, 200.0, [Some(4), Some(3), Some(3)]),
        ("E", day(70), 1.0, 50.0, [Some(3), Some(2), Some(2)]),
        ("F", day(60), 0.0, 0.0, [Some(2), Some(2), Some(2)]),
        ("G", day(50), 0.0, 0.0, [Some(2), Some(1), Some(1)]),
        ("H", day(40), 5.0, 300.0, [Some(1), Some(4), Some(3)]),
        ("I", None, 0.0, 0.0, [None, Some(1), Some(1)]),
        ("J", day(30), 8.0, 700.0, [Some(1), Some(5), Some(4)]),
    ];
    let mut rfm: RfmRanking<String> = RfmRanking::new();
    for (id, last, f, m, _) in &rows {
        let values = RfmValues {
            last_order_at: *last,
            frequency: *f,
            monetary: *m,
        };
        rfm.upsert(*id, &values);
    }
    let cuts = rfm.cuts();
    assert_eq!(cuts.recency.class_sizes(), vec![2, 2, 1, 2, 2]);
    assert_eq!(cuts.frequency.class_sizes(), vec![2, 2, 2, 2, 2]);
    for (id, last, f, m, [r, fs, ms]) in &rows {
        let id = (*id).to_owned();
        let expected = RfmScore {
            recency: *r,
            frequency: *fs,
            monetary: *ms,
        };
        let values = RfmValues {
            last_order_at: *last,
            frequency: *f,
            monetary: *m,
        };
        assert_eq!(cuts.score(&values, &id), expected, "{id}");
        assert_eq!(rfm.score_of(&cuts, &id), Some(expected), "{id}");
    }
    // A newcomer with 3 orders lands among the tied 3s by id: "BB" after
    // B (F = 4), "CC" after C (F = 3).
    assert_eq!(cuts.frequency.score(3.0, "BB"), Some(4));
    assert_eq!(cuts.frequency.score(3.0, "CC"), Some(3));

    // Remove A: frequency bounds over 9 are 2, 4, 5, 7 -> J H | B C | D |
    // E F | G I. The diff reports exactly the customers whose score moved.
    rfm.remove("A");
    let new = rfm.cuts();
    let changes = rfm.diff(&cuts, &new);
    let mut naive = Vec::new();
    for (id, ..) in &rows[1..] {
        let id = (*id).to_owned();
        let before = rfm.score_of(&cuts, &id).unwrap();
        let after = rfm.score_of(&new, &id).unwrap();
        if before != after {
            naive.push((id, before, after));
        }
    }
    let got: Vec<(String, RfmScore, RfmScore)> =
        changes.into_iter().map(|c| (c.id, c.old, c.new)).collect();
    assert_eq!(got, naive);
    assert_eq!(rfm.score_of(&new, "C").unwrap().frequency, Some(4));
    assert_eq!(rfm.score_of(&new, "D").unwrap().frequency, Some(3));
}
