//! Secondary gradings in the policy: `[[gradings]]` parsed with every
//! rejection naming its line and field, and the relationship x potential
//! matrix on hand-computed figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tier_core::Indicators;
use tier_core::policy::{DEFAULT_POLICY_TOML, GradingKind, Policy, RankBy};

/// The default policy without its own gradings, plus `gradings`.
fn with(gradings: &str) -> String {
    let base = DEFAULT_POLICY_TOML
        .split("# --- Secondary gradings")
        .next()
        .unwrap_or_default();
    format!("{base}\n{gradings}")
}

#[test]
fn the_default_policy_ships_three_gradings() {
    let p = Policy::default_policy();
    let kinds: Vec<(&str, &str)> = p
        .gradings()
        .iter()
        .map(|g| (g.name.as_str(), g.kind_name()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("abc_revenue", "abc"),
            ("rfm", "rfm"),
            ("relationship", "matrix")
        ]
    );
}

#[test]
fn gradings_parse_with_their_defaults() {
    let p = Policy::from_toml_str(&with(
        r#"
[[gradings]]
name = "wallet"
kind = "matrix"
x_min = 0.5
y_min = 100000000

[[gradings]]
name = "abc"
kind = "abc"
by = "order_amount_12m"
shares = [20, 30, 50]
classes = ["A", "B", "C"]
low_value_share = 10

[[gradings]]
name = "score-abc"
kind = "abc"
shares = [50, 50]
classes = ["top", "rest"]

[[gradings]]
name = "rfm"
kind = "rfm"
"#,
    ))
    .unwrap();
    let g = p.gradings();
    assert_eq!(g.len(), 4);
    assert!(matches!(g[0].kind, GradingKind::Matrix { x_min, .. } if x_min == 0.5));
    assert!(!g[0].is_population());
    match &g[1].kind {
        GradingKind::Abc {
            by,
            shares,
            low_value_share,
            ..
        } => {
            assert_eq!(
                *by,
                RankBy::Indicator(tier_core::IndicatorName::OrderAmount12m)
            );
            assert_eq!(shares, &[0.2, 0.3, 0.5]);
            assert_eq!(*low_value_share, Some(0.1));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        &g[2].kind,
        GradingKind::Abc {
            by: RankBy::Score,
            ..
        }
    ));
    assert!(g[3].is_population());
    assert_eq!(g[3].recut_seconds, tier_core::policy::DEFAULT_RECUT_SECONDS);
}

#[test]
fn a_bad_grading_is_rejected_with_line_and_field() {
    for (text, field, says) in [
        (
            "[[gradings]]\nname = \"x\"\nkind = \"pareto\"\n",
            "gradings[0].kind",
            "unknown grading kind",
        ),
        (
            "[[gradings]]\nname = \"x\"\nkind = \"abc\"\nshares = [20, 30, 40]\nclasses = [\"A\", \"B\", \"C\"]\n",
            "gradings[0].shares",
            "sum to 100",
        ),
        (
            "[[gradings]]\nname = \"x\"\nkind = \"abc\"\nshares = [20, 80]\nclasses = [\"A\", \"B\", \"C\"]\n",
            "gradings[0].classes",
            "3 classes for 2 shares",
        ),
        (
            "[[gradings]]\nname = \"x\"\nkind = \"abc\"\nby = \"revenue\"\nshares = [20, 80]\nclasses = [\"A\", \"B\"]\n",
            "gradings[0].by",
            "neither",
        ),
        (
            "[[gradings]]\nname = \"x\"\nkind = \"rfm\"\nshares = [20, 80]\n",
            "gradings[0].shares",
            "does not apply",
        ),
        (
            "[[gradings]]\nname = \"x\"\nkind = \"matrix\"\nx_min = 0.5\n",
            "gradings[0].y_min",
            "needs y_min",
        ),
        (
            "[[gradings]]\nname = \"x\"\nkind = \"rfm\"\n[[gradings]]\nname = \"x\"\nkind = \"rfm\"\n",
            "gradings[1].name",
            "twice",
        ),
    ] {
        let src = with(text);
        let err = Policy::from_toml_str(&src).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(field), "{field}: {msg}");
        assert!(msg.contains(says), "{says}: {msg}");
        assert!(msg.contains("line "), "{msg}");
    }
}

#[test]
fn the_matrix_puts_customers_in_quadrants_by_share_of_wallet_and_potential() {
    let p = Policy::from_toml_str(&with(
        "[[gradings]]\nname = \"wallet\"\nkind = \"matrix\"\nx_min = 0.5\ny_min = 100000000\n",
    ))
    .unwrap();
    let g = &p.gradings()[0];
    let at = |share: Option<f64>, potential: Option<f64>| Indicators {
        share_of_wallet: share,
        purchase_potential: potential,
        ..Indicators::default()
    };
    // 1,000,000 CNY potential (in fen) is the line; at the line is high.
    assert_eq!(
        g.classify(&at(Some(0.75), Some(200_000_000.0))),
        Some("key")
    );
    assert_eq!(
        g.classify(&at(Some(0.1), Some(1_000_000_000.0))),
        Some("potential")
    );
    assert_eq!(
        g.classify(&at(Some(0.5), Some(50_000_000.0))),
        Some("regular")
    );
    assert_eq!(
        g.classify(&at(Some(0.2), Some(100_000_000.0 - 1.0))),
        Some("low_value")
    );
    assert_eq!(g.classify(&at(Some(0.5), Some(100_000_000.0))), Some("key"));
    // No purchase potential in the profile: not graded, not guessed.
    assert_eq!(g.classify(&at(None, None)), None);
}

#[test]
fn a_tier_change_by_an_event_carries_the_gradings_of_the_whole_figures() {
    // A matrix grading on recency, which the default policy does not
    // score: the decision an order makes computes only the scored figures,
    // and the TierChanged carried no class for it, where GetTier (the
    // whole figures) gives one.
    use tier_core::sim::scenario::weekly_buyer;
    use tier_core::state::CustomerState;
    use tier_core::time::date;

    let p = Policy::from_toml_str(&with(
        "[[gradings]]\nname = \"recent\"\nkind = \"matrix\"\nx = \"days_since_last_order\"\nx_min = 30\ny = \"order_amount_12m\"\ny_min = 0\n",
    ))
    .unwrap();
    assert!(p.gradings_read_unscored());
    let mut s = CustomerState::default();
    let mut changes = 0;
    for e in weekly_buyer("kai", date(2026, 3, 1), 150_000_000) {
        let Some(c) = s.process("kai", &e, &p).change else {
            continue;
        };
        changes += 1;
        let whole = s.indicators(&p);
        assert!(whole.days_since_last_order.is_some());
        let want: Vec<_> = p
            .gradings()
            .iter()
            .filter_map(|g| g.class_of(&whole))
            .collect();
        assert!(!want.is_empty());
        assert_eq!(c.gradings, want, "{:?}", c.changed_at);
    }
    assert!(changes > 0);
}

#[test]
fn a_tier_change_carries_the_per_customer_gradings() {
    use tier_core::event::{Event, EventKind, Money, ProfileUpdate};
    use tier_core::sim::scenario::weekly_buyer;
    use tier_core::state::CustomerState;
    use tier_core::time::date;

    let p = Policy::from_toml_str(&with(
        "[[gradings]]\nname = \"wallet\"\nkind = \"matrix\"\nx_min = 0.5\ny_min = 100000000\n\n[[gradings]]\nname = \"rfm\"\nkind = \"rfm\"\n",
    ))
    .unwrap();
    let last = date(2026, 3, 1);
    let mut s = CustomerState::default();
    let profile = Event {
        event_id: "p".into(),
        customer_id: "kai".into(),
        occurred_at: last.plus_days(-400),
        source: "crm".into(),
        kind: EventKind::ProfileUpdated(ProfileUpdate {
            purchase_potential: Some(Money(200_000_000)),
            ..ProfileUpdate::default()
        }),
    };
    s.process("kai", &profile, &p);
    for e in weekly_buyer("kai", last, 150_000_000) {
        s.process("kai", &e, &p);
    }
    // A manager pins it to the lowest tier on the day of its last order:
    // a change made with the year's figures (1,500,000 of a 2,000,000
    // potential, share 0.75).
    let lowest = p.tiers().last().unwrap().name.clone();
    let c = s
        .set_override(
            "kai",
            &p,
            tier_core::overrides::Override {
                tier: lowest,
                mode: tier_core::overrides::OverrideMode::Pin,
                reason: "test".into(),
                author: "t".into(),
                set_at: last,
                expires_at: None,
            },
        )
        .unwrap()
        .expect("the pin moves the tier");
    // Only the per-customer grading: RFM needs the population.
    let classes: Vec<(&str, &str)> = c
        .gradings
        .iter()
        .map(|g| (g.grading.as_str(), g.kind.as_str()))
        .collect();
    assert_eq!(classes, [("wallet", "matrix")]);
    assert_eq!(c.gradings[0].class, "key");
}
