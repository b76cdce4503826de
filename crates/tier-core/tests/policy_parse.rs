//! Loading policies: the shipped ones and the valid fixtures load; every
//! invalid fixture is rejected with the line and the field at fault.

// Test helpers may panic: a failed lookup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use tier_core::policy::{Policy, PolicyError};

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn load(name: &str) -> Result<Policy, PolicyError> {
    Policy::from_toml_str(&fixture(name))
}

const DEFAULT: &str = include_str!("../../../deploy/policy/default.toml");
const RETAIL: &str = include_str!("../../../deploy/policy/retail-rules.toml");

#[test]
fn the_shipped_policies_load() {
    let default = Policy::from_toml_str(DEFAULT).unwrap();
    assert_eq!(default.version(), "default-2027.01");
    assert_eq!(default.method_kind(), "weighted_score");
    assert_eq!(default.version(), Policy::default_policy().version());
    // Business days are Shanghai days.
    assert_eq!(default.calendar().name(), "Asia/Shanghai");

    let retail = Policy::from_toml_str(RETAIL).unwrap();
    assert_eq!(retail.version(), "retail-rules-2026.11");
    assert_eq!(retail.method_kind(), "rules");
    let names: Vec<&str> = retail.tiers().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["core", "important", "regular"]);
    assert!(retail.tiers().iter().all(|t| t.min_score.is_none()));
    assert_eq!(retail.lowest_tier().name, "regular");
    assert_eq!(retail.hysteresis().min_days_in_tier, 30);
    assert_eq!(retail.hysteresis().downgrade_margin, 0.0);
    assert_eq!(retail.calendar().name(), "Asia/Shanghai");
}

#[test]
fn the_valid_weighted_fixture_loads_every_setting() {
    let p = load("valid_weighted.toml").unwrap();
    assert_eq!(p.version(), "fixture-weighted-1");
    assert_eq!(p.window_months(), 6);
    assert_eq!(p.hysteresis().downgrade_margin, 2.5);
    assert_eq!(p.hysteresis().min_days_in_tier, 14);
    let rules = p.currency_rules();
    assert_eq!(rules.base(), "CNY");
    // "7.10" and "0.048" are exact: 7_100_000 and 48_000 millionths.
    assert_eq!(rules.to_base("x", 100, "USD").unwrap().minor(), 710);
    assert_eq!(rules.to_base("x", 1_000, "JPY").unwrap().minor(), 48);
    assert!(rules.to_base("x", 1, "EUR").is_err());
    let bands: Vec<Option<f64>> = p.tiers().iter().map(|t| t.min_score).collect();
    assert_eq!(bands, [Some(80.0), Some(60.0), Some(40.0), Some(0.0)]);
    let a = &p.tiers()[0];
    assert_eq!(
        (
            a.priority,
            a.complaint_sla_hours,
            a.visit_every_days,
            a.payment_terms_days
        ),
        (1, 72, 30, 60)
    );
}

#[test]
fn the_valid_rules_fixture_loads() {
    let p = load("valid_rules.toml").unwrap();
    assert_eq!(p.method_kind(), "rules");
    assert_eq!(p.tiers().len(), 3);
    assert_eq!(p.tier_index("important"), Some(1));
}

/// `(fixture, line, field, part of the message)`.
const INVALID: &[(&str, usize, &str, &str)] = &[
    (
        "unknown_key.toml",
        73,
        "tiers[1].colour",
        "unknown field `colour`",
    ),
    ("syntax_error.toml", 29, "", ""),
    (
        "empty_version.toml",
        2,
        "version",
        "version must not be empty",
    ),
    ("bad_currency.toml", 3, "currency", "ISO 4217"),
    (
        "window_out_of_range.toml",
        4,
        "window_months",
        "within 1..=36, got 48",
    ),
    (
        "bad_rate.toml",
        7,
        "currency_rates.USD",
        "not an exact decimal",
    ),
    (
        "weights_not_100.toml",
        46,
        "method.dimensions[2].weight",
        "dimension weights sum to 90, expected 100",
    ),
    (
        "shares_not_100.toml",
        39,
        "method.dimensions[1].parts[1].share",
        "part shares of dimension \"volume\" sum to 90, expected 100",
    ),
    (
        "curve_x_not_increasing.toml",
        25,
        "method.dimensions[0].parts[0].curve[1]",
        "strictly increase",
    ),
    (
        "curve_points_out_of_range.toml",
        25,
        "method.dimensions[0].parts[0].curve[1]",
        "within 0..=100, got 120",
    ),
    (
        "curve_not_monotone.toml",
        52,
        "method.dimensions[2].parts[0].curve[1]",
        "must not increase as the value grows (higher_is_better = false)",
    ),
    (
        "duplicate_tier.toml",
        78,
        "tiers[2].name",
        "duplicate tier name \"B\" (first defined at line 70)",
    ),
    ("no_tiers.toml", 5, "tiers", "at least one tier is required"),
    (
        "missing_min_score.toml",
        70,
        "tiers[1].min_score",
        "tier \"B\" has no min_score",
    ),
    (
        "overlapping_bands.toml",
        79,
        "tiers[2].min_score",
        "bands would overlap",
    ),
    (
        "missing_band.toml",
        87,
        "tiers[3].min_score",
        "lowest tier's min_score is 10, expected 0",
    ),
    (
        "min_score_over_100.toml",
        63,
        "tiers[0].min_score",
        "outside 0..=100",
    ),
    (
        "min_score_too_precise.toml",
        72,
        "tiers[1].min_score",
        "min_score 59.995 of tier \"B\" has more than 2 decimals",
    ),
    (
        "unknown_indicator.toml",
        22,
        "method.dimensions[0].parts[0].indicator",
        "unknown variant `margin_24m`",
    ),
    (
        "priority_zero.toml",
        64,
        "tiers[0].priority",
        "priority must be at least 1, got 0",
    ),
    (
        "wrong_type.toml",
        19,
        "method.dimensions[0].weight",
        "invalid type",
    ),
    (
        "missing_direction.toml",
        21,
        "method.dimensions[0].parts[0].higher_is_better",
        "missing field `higher_is_better`",
    ),
    (
        "unknown_method.toml",
        15,
        "method.kind",
        "unknown variant `abc_ranking`",
    ),
    (
        "rules_in_weighted.toml",
        54,
        "method.rules",
        "unknown field `rules`",
    ),
    (
        "rules_unknown_tier.toml",
        24,
        "method.rules[1].tier",
        "rule for unknown tier \"vip\"",
    ),
    (
        "rules_fallback_rule.toml",
        24,
        "method.rules[1].tier",
        "is the fallback",
    ),
    (
        "rules_tier_without_rule.toml",
        31,
        "tiers[1].name",
        "tier \"important\" has no rule",
    ),
    (
        "rules_unknown_op.toml",
        19,
        "method.rules[0].all[1].op",
        "unknown variant `=>`",
    ),
    (
        "rules_with_margin.toml",
        11,
        "hysteresis.downgrade_margin",
        "weighted_score method only",
    ),
    (
        "rules_with_min_score.toml",
        40,
        "tiers[1].min_score",
        "weighted_score method only",
    ),
    (
        "gate_unknown_indicator.toml",
        72,
        "tiers[0].gates[1].indicator",
        "unknown variant `credit_rating`",
    ),
    (
        "gate_bad_op.toml",
        71,
        "tiers[0].gates[0].op",
        "unknown variant `=>`",
    ),
    (
        "gate_on_lowest_tier.toml",
        94,
        "tiers[3].gates",
        "tier \"D\" is the lowest tier, which every customer may hold",
    ),
    (
        "abc_score_without_dimensions.toml",
        9,
        "method.dimensions",
        "by = \"score\" ranks by a weighted score: declare its [[method.dimensions]]",
    ),
    (
        "abc_score_unknown_indicator.toml",
        23,
        "method.dimensions[1].parts[0].indicator",
        "unknown variant `rfm_frequencies`: neither an indicator (",
    ),
];

#[test]
fn every_invalid_fixture_is_rejected_with_line_and_field() {
    for (name, line, field, fragment) in INVALID {
        let err = match load(name) {
            Ok(_) => panic!("{name}: loaded, but must be rejected"),
            Err(e) => e,
        };
        let shown = err.to_string();
        assert_eq!(err.line, Some(*line), "{name}: wrong line in {shown:?}");
        assert_eq!(err.field, *field, "{name}: wrong field in {shown:?}");
        assert!(
            shown.contains(fragment),
            "{name}: {shown:?} lacks {fragment:?}"
        );
        let prefix = if field.is_empty() {
            format!("policy line {line}: ")
        } else {
            format!("policy line {line}, field {field}: ")
        };
        assert!(
            shown.starts_with(&prefix),
            "{name}: {shown:?} does not start with {prefix:?}"
        );
    }
}

#[test]
fn every_invalid_fixture_is_covered() {
    let dir = fixture_path("");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let valid = name.starts_with("valid_") || name == "thresholds.toml";
        let listed = INVALID.iter().any(|(n, ..)| *n == name);
        assert!(
            valid || listed,
            "fixture {name} is neither valid nor in INVALID"
        );
        if valid {
            assert!(load(&name).is_ok(), "{name}: {:?}", load(&name).err());
        }
    }
}

#[test]
fn the_unknown_key_error_reads_well() {
    let err = load("unknown_key.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "policy line 73, field tiers[1].colour: unknown field `colour`, expected one of \
         `name`, `min_score`, `priority`, `complaint_sla_hours`, `visit_every_days`, \
         `payment_terms_days`, `gates`"
    );
}

/// Apply `edit` to the valid weighted fixture and expect a rejection.
fn reject_weighted(edit: impl Fn(&str) -> String) -> PolicyError {
    let src = edit(&fixture("valid_weighted.toml"));
    match Policy::from_toml_str(&src) {
        Ok(_) => panic!("loaded, but must be rejected"),
        Err(e) => e,
    }
}

fn reject_rules(edit: impl Fn(&str) -> String) -> PolicyError {
    let src = edit(&fixture("valid_rules.toml"));
    match Policy::from_toml_str(&src) {
        Ok(_) => panic!("loaded, but must be rejected"),
        Err(e) => e,
    }
}

#[test]
fn a_complaint_sla_past_ten_years_is_refused_with_line_and_field() {
    // Its deadlines would lie past what a protobuf timestamp may hold.
    let src = fixture("valid_weighted.toml");
    let (line, _) = src
        .lines()
        .enumerate()
        .find(|(_, l)| l.starts_with("complaint_sla_hours"))
        .unwrap();
    let first = src.lines().nth(line).unwrap();
    let e = reject_weighted(|s| s.replacen(first, "complaint_sla_hours = 4000000000", 1));
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(line + 1), "tiers[0].complaint_sla_hours")
    );
    assert!(e.message.contains("at most 87600"), "{e}");
    // Ten years is accepted.
    let ten = src.replacen(first, "complaint_sla_hours = 87600", 1);
    assert!(Policy::from_toml_str(&ten).is_ok());
}

#[test]
fn more_semantic_checks_name_line_and_field() {
    // One indicator scored in both directions would break monotonicity.
    let e = reject_weighted(|s| {
        s.replace(
            "indicator = \"avg_days_late\"",
            "indicator = \"margin_12m\"",
        )
    });
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(51), "method.dimensions[2].parts[0].higher_is_better")
    );
    assert!(
        e.message.contains("cannot be better both higher and lower"),
        "{e}"
    );

    let e = reject_weighted(|s| s.replace("curve = [[0, 100], [30, 0]]", "curve = [[0, 100]]"));
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(52), "method.dimensions[2].parts[0].curve")
    );
    assert!(e.message.contains("at least 2 points"), "{e}");

    let e = reject_weighted(|s| s.replace("[30, 0]]", "[30, 0, 1]]"));
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(52), "method.dimensions[2].parts[0].curve[1]")
    );
    assert!(e.message.contains("got 3 numbers"), "{e}");

    let e = reject_weighted(|s| s.replace("name = \"volume\"", "name = \"profit\""));
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(28), "method.dimensions[1].name")
    );

    let e = reject_weighted(|s| s.replace("weight = 10", "weight = 0"));
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(46), "method.dimensions[2].weight")
    );

    let e = reject_weighted(|s| s.replace("high = 8", "high = -8"));
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(57), "method.complaint_penalty.high")
    );

    let e = reject_weighted(|s| s.replace("missing_points = 50", "missing_points = 150"));
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(42), "method.dimensions[1].parts[1].missing_points")
    );

    let e = reject_weighted(|s| s.replace("resolved_factor = 0.5", "resolved_factor = 1.5"));
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(61), "method.complaint_penalty.resolved_factor")
    );
    assert!(
        e.message
            .contains("resolved_factor must be within 0.0..=1.0"),
        "{e}"
    );
    let e = reject_weighted(|s| s.replace("resolved_factor = 0.5", "resolved_factor = -0.1"));
    assert_eq!(e.field, "method.complaint_penalty.resolved_factor");
    let e = reject_weighted(|s| s.replace("resolved_factor = 0.5", "resolved_factor = \"half\""));
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(61), "method.complaint_penalty.resolved_factor")
    );

    let e = reject_weighted(|s| s.replace("JPY = \"0.048\"", "CNY = \"1\""));
    assert_eq!((e.line, e.field.as_str()), (Some(8), "currency_rates.CNY"));

    let e = reject_weighted(|s| s.replace("downgrade_margin = 2.5", "downgrade_margin = -1"));
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(11), "hysteresis.downgrade_margin")
    );

    let e = reject_weighted(|s| s.replace("downgrade_margin = 2.5", "downgrade_margin = 2.555"));
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(11), "hysteresis.downgrade_margin")
    );
    assert!(e.message.contains("more than 2 decimals"), "{e}");

    let e = reject_weighted(|s| s.replace("min_days_in_tier = 14", "min_days_in_tier = 5000"));
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(12), "hysteresis.min_days_in_tier")
    );

    let e = reject_weighted(|s| s.replace("[method]\nkind = \"weighted_score\"\n", ""));
    // `[[method.dimensions]]` still opens `method`, but without its tag.
    assert_eq!(e.field, "method.kind");
    assert!(e.message.contains("missing field `kind`"), "{e}");

    let e = reject_rules(|s| s.replacen("tier = \"important\"", "tier = \"core\"", 1));
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(24), "method.rules[1].tier")
    );
    assert!(
        e.message
            .contains("a second rule for tier \"core\" (the first is at line 16)"),
        "{e}"
    );

    let e = reject_rules(|s| {
        s.replace(
            "all = [\n    { indicator = \"order_amount_12m\", op = \">=\"",
            "all = []\nx = [\n    { indicator = \"order_amount_12m\", op = \">=\"",
        )
    });
    // `x` is an unknown key of the rule.
    assert_eq!((e.line, e.field.as_str()), (Some(26), "method.rules[1].x"));

    let e = reject_rules(|s| {
        let (head, _) = s
            .split_once("\n[[method.rules]]\ntier = \"important\"")
            .unwrap();
        let (_, tail) = s.split_once("\n[[tiers]]").unwrap();
        format!("{head}\n[[method.rules]]\ntier = \"important\"\nall = []\n\n[[tiers]]{tail}")
    });
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(25), "method.rules[1].all")
    );
    assert!(e.message.contains("at least one condition"), "{e}");

    let e = reject_rules(|s| s.replace("value = 2 }", "value = nan }"));
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(27), "method.rules[1].all[1].value")
    );
}

#[test]
fn a_single_tier_policy_is_valid_for_both_methods() {
    let rules = "version = \"one\"\ncurrency = \"CNY\"\nwindow_months = 1\n[method]\nkind = \"rules\"\n\
                 [[tiers]]\nname = \"all\"\npriority = 1\ncomplaint_sla_hours = 1\nvisit_every_days = 1\npayment_terms_days = 0\n";
    let p = Policy::from_toml_str(rules).unwrap();
    let no_method = rules.replace("[method]\nkind = \"rules\"\n", "");
    let e = Policy::from_toml_str(&no_method).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (Some(1), "method"));
    assert!(e.message.contains("missing field `method`"), "{e}");
    let e = p.evaluate(&Default::default());
    assert_eq!((e.tier, e.score), (0, 0.0));
}

#[test]
fn resolved_factor_defaults_to_full_points() {
    // Given two policies that differ only in resolved_factor (absent = 1),
    // a resolved high complaint costs 8 points under the first, 4 under
    // the second (0.5), and an open one 8 under both.
    let half = load("valid_weighted.toml").unwrap();
    let full = Policy::from_toml_str(
        &fixture("valid_weighted.toml").replace("resolved_factor = 0.5\n", ""),
    )
    .unwrap();
    let mut ind = tier_core::Indicators::default();
    ind.complaints_by_severity_12m[tier_core::Severity::High.index()] = 1;
    let open = |p: &Policy| p.explain(&ind, 0).penalty;
    assert_eq!((open(&full), open(&half)), (8.0, 8.0));
    ind.resolved_by_severity_12m[tier_core::Severity::High.index()] = 1;
    let resolved = |p: &Policy| p.explain(&ind, 0).penalty;
    assert_eq!((resolved(&full), resolved(&half)), (8.0, 4.0));
}

#[test]
fn band_edges_with_two_decimals_load_exactly() {
    let p = load("valid_unknowns.toml").unwrap();
    let bands: Vec<Option<f64>> = p.tiers().iter().map(|t| t.min_score).collect();
    assert_eq!(bands, [Some(77.77), Some(55.5), Some(33.33), Some(0.0)]);
    assert_eq!(p.hysteresis().downgrade_margin, 1.25);
    assert_eq!(p.calendar().name(), "Asia/Shanghai");
}
