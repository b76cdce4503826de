//! `explain`: why a customer holds its tier.

use std::fmt::Write as _;

use anyhow::Result;
use tier_proto::api::{ExplainTierRequest, TierExplanation};

use super::{RpcOptions, emit, proto_json_line};
use crate::cli::{ExplainArgs, Output};
use crate::format::{
    Table, fixed, gradings_text, indicator_value, key_values, lifecycle_name, override_text,
    percent, proto_time, unit_value,
};

pub async fn run(rpc: &RpcOptions, args: &ExplainArgs) -> Result<()> {
    let mut client = rpc.connect().await?;
    let explanation = client
        .explain_tier(rpc.request(ExplainTierRequest {
            customer_id: args.customer_id.clone(),
        }))
        .await
        .map_err(|s| rpc.rpc_error(s))?
        .into_inner();
    match rpc.output {
        Output::Json => emit(&proto_json_line(
            &explanation,
            "tiering.v1.TierExplanation",
        )?),
        Output::Table => emit(&render(&explanation, args.currency.as_deref())),
    }
}

/// The currency money values are in: the one tierd names, else
/// `fallback` (`--currency`), else none (amounts shown unlabelled).
fn currency<'a>(e: &'a TierExplanation, fallback: Option<&'a str>) -> &'a str {
    let named = e.currency.trim();
    if named.is_empty() {
        fallback.map_or("", str::trim)
    } else {
        named
    }
}

/// The indicator table, then the score, tier, band, next tier and gap,
/// then the tier gates the customer fails, then the advice. Contributions that do not add up to the score (a
/// complaint penalty, or a rules policy) are shown as the difference.
/// Money is shown in major units of the explanation's currency (or
/// `fallback_currency` when the server names none).
pub fn render(e: &TierExplanation, fallback_currency: Option<&str>) -> String {
    let currency = currency(e, fallback_currency);
    let mut out = String::new();
    if !e.indicators.is_empty() {
        let mut table = Table::new(["indicator", "value", "points", "weight", "contribution"])
            .right(&[1, 2, 3, 4]);
        for i in &e.indicators {
            table.row([
                i.name.clone(),
                indicator_value(&i.name, i.known.then_some(i.value), i.unit(), currency),
                fixed(i.points, 1),
                percent(i.weight),
                fixed(i.contribution, 2),
            ]);
        }
        out.push_str(&table.render());
        out.push('\n');
    }
    let sum: f64 = e.indicators.iter().map(|i| i.contribution).sum();
    if e.penalty > 0.0 {
        out.push_str(&format!("complaint penalty: -{}\n", fixed(e.penalty, 2)));
    }
    // What neither the contributions nor the penalty explain (clamping).
    let adjustment = e.score - (sum - e.penalty);
    let mut score = fixed(e.score, 2);
    if !e.indicators.is_empty() && adjustment.abs() >= 0.005 {
        score.push_str(&format!(
            "  (contributions {}, adjustment {})",
            fixed(sum, 2),
            crate::format::signed(adjustment)
        ));
    }
    let mut tier = e.tier.clone();
    if e.overridden {
        if e.computed_tier.is_empty() || e.computed_tier == e.tier {
            tier.push_str("  (overridden)");
        } else {
            tier.push_str(&format!("  (overridden; computed {})", e.computed_tier));
        }
    }
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    let next = if e.next_tier.is_empty() {
        "- (top tier)".to_owned()
    } else {
        e.next_tier.clone()
    };
    let mut pairs = vec![
        ("customer", e.customer_id.clone()),
        ("as of", proto_time(e.evaluated_at.as_ref())),
        ("lifecycle", lifecycle_name(e.lifecycle)),
        ("total score", score),
        ("tier", tier),
        ("computed", dash(&e.computed_tier)),
        ("gradings", gradings_text(&e.gradings)),
    ];
    if !e.new_customer.is_empty() {
        pairs.push(("graded as", e.new_customer.clone()));
    }
    // A gate vetoed the tier the score reaches: say which one it was.
    if !e.score_tier.is_empty() && e.score_tier != e.computed_tier {
        pairs.push((
            "score tier",
            format!("{}  (vetoed by a gate)", e.score_tier),
        ));
    }
    if let Some(o) = &e.r#override {
        pairs.push(("override", override_text(o)));
    }
    pairs.extend([
        ("band", dash(&e.band)),
        ("next tier", next),
        ("gap", dash(&e.gap)),
        ("policy", dash(&e.policy_version)),
    ]);
    out.push_str(&key_values(&pairs));
    let assessed = render_assessments(e);
    if !assessed.is_empty() {
        out.push('\n');
        out.push_str(&assessed);
    }
    let gates = render_gates(e, currency);
    if !gates.is_empty() {
        out.push('\n');
        out.push_str(&gates);
    }
    let advice = render_advice(e, currency);
    if !advice.is_empty() {
        out.push('\n');
        out.push_str(&advice);
    }
    out
}

/// The assessed indicators (what account managers judged), one aligned
/// row each: level and label, points, contribution, who and when, until
/// when; `expired` / `never assessed` instead of a level. Empty when the
/// policy declares none.
fn render_assessments(e: &TierExplanation) -> String {
    if e.assessments.is_empty() {
        return String::new();
    }
    let mut t = Table::new([
        "assessed",
        "level",
        "points",
        "contribution",
        "by",
        "on",
        "until",
    ]);
    for a in &e.assessments {
        let level = match (a.value, a.assessed_by.is_empty()) {
            (Some(v), _) if a.label.is_empty() => fixed(v, 0),
            (Some(v), _) => format!("{} ({})", fixed(v, 0), a.label),
            (None, true) => "never assessed".to_owned(),
            (None, false) => "expired".to_owned(),
        };
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                s.to_owned()
            }
        };
        t.row(vec![
            a.name.clone(),
            level,
            a.points
                .map_or_else(|| fixed(a.missing_points, 2), |p| fixed(p, 2)),
            fixed(a.contribution, 2),
            dash(&a.assessed_by),
            proto_time(a.assessed_at.as_ref()),
            proto_time(a.expires_at.as_ref()),
        ]);
    }
    t.render()
}

/// The failed tier gates, one aligned line each, best tier first:
/// `failed gate: A  on_time_payment_ratio >= 80.0%  now 25.0%`, later
/// lines indented under the first. Empty when every gate holds.
fn render_gates(e: &TierExplanation, currency: &str) -> String {
    if e.failed_gates.is_empty() {
        return String::new();
    }
    let rows: Vec<[String; 3]> = e
        .failed_gates
        .iter()
        .map(|g| {
            [
                g.tier.clone(),
                format!(
                    "{} {} {}",
                    g.indicator,
                    g.op,
                    unit_value(&g.indicator, g.threshold, g.unit(), currency)
                ),
                indicator_value(&g.indicator, g.value, g.unit(), currency),
            ]
        })
        .collect();
    let width = |col: usize| {
        rows.iter()
            .map(|r| r[col].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (tier_w, cond_w) = (width(0), width(1));
    let lead = if rows.len() == 1 {
        "failed gate: "
    } else {
        "failed gates: "
    };
    let indent = " ".repeat(lead.chars().count());
    let mut out = String::new();
    for (k, [tier, condition, now]) in rows.iter().enumerate() {
        let prefix = if k == 0 { lead } else { indent.as_str() };
        let _ = writeln!(
            out,
            "{prefix}{tier:<tier_w$}  {condition:<cond_w$}  now {now}"
        );
    }
    out
}

/// The structured advice, one aligned line per indicator:
/// `to reach B: order_amount_12m  1,500,000.00 CNY -> 2,000,000.00 CNY`,
/// later lines indented under the first. Empty without advice.
fn render_advice(e: &TierExplanation, currency: &str) -> String {
    if e.advice.is_empty() {
        return String::new();
    }
    let rows: Vec<[String; 3]> = e
        .advice
        .iter()
        .map(|a| {
            [
                a.indicator.clone(),
                indicator_value(&a.indicator, a.current, a.unit(), currency),
                unit_value(&a.indicator, a.target, a.unit(), currency),
            ]
        })
        .collect();
    let width = |col: usize| {
        rows.iter()
            .map(|r| r[col].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (name_w, current_w, target_w) = (width(0), width(1), width(2));
    let next = if e.next_tier.is_empty() {
        "the next tier"
    } else {
        e.next_tier.as_str()
    };
    let lead = format!("to reach {next}: ");
    let indent = " ".repeat(lead.chars().count());
    let mut out = String::new();
    for (k, [name, current, target]) in rows.iter().enumerate() {
        let prefix = if k == 0 { &lead } else { &indent };
        let _ = writeln!(
            out,
            "{prefix}{name:<name_w$}  {current:>current_w$} -> {target:>target_w$}"
        );
    }
    if rows.len() > 1 {
        out.push_str(&format!(
            "{indent}(all of these together, everything else unchanged)\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use tier_proto::api::{Advice, FailedGate, Indicator, Unit};

    use super::*;

    fn indicator(
        name: &str,
        value: Option<f64>,
        unit: Unit,
        points: f64,
        weight: f64,
    ) -> Indicator {
        Indicator {
            name: name.into(),
            value: value.unwrap_or(0.0),
            known: value.is_some(),
            unit: unit.into(),
            points,
            weight,
            contribution: points * weight / 100.0,
        }
    }

    fn explanation() -> TierExplanation {
        TierExplanation {
            customer_id: "cust-000001".into(),
            tier: "A".into(),
            score: 70.0,
            indicators: vec![
                indicator(
                    "order_amount_12m",
                    Some(123_456_789.0),
                    Unit::Money,
                    90.0,
                    40.0,
                ),
                indicator(
                    "on_time_payment_ratio",
                    Some(0.875),
                    Unit::Ratio,
                    80.0,
                    30.0,
                ),
                indicator("share_of_wallet", None, Unit::Ratio, 0.0, 30.0),
                indicator("avg_days_late", Some(12.0), Unit::Days, 0.0, 0.0),
                indicator("order_frequency", Some(3.5), Unit::OrdersPerMonth, 0.0, 0.0),
            ],
            next_tier: "S".into(),
            gap: "order_amount_12m +CNY 200,000".into(),
            policy_version: "v1".into(),
            band: ">= 60 and < 80".into(),
            overridden: true,
            computed_tier: "B".into(),
            penalty: 0.0,
            advice: vec![
                Advice {
                    indicator: "order_amount_12m".into(),
                    current: Some(123_456_789.0),
                    target: 200_000_000.0,
                    unit: Unit::Money.into(),
                },
                Advice {
                    indicator: "share_of_wallet".into(),
                    current: None,
                    target: 0.9525,
                    unit: Unit::Ratio.into(),
                },
            ],
            evaluated_at: Some(prost_types::Timestamp {
                seconds: 1_767_225_600,
                nanos: 0,
            }),
            currency: "CNY".into(),
            lifecycle: tier_proto::api::Lifecycle::Active.into(),
            r#override: Some(tier_proto::api::Override {
                tier: "A".into(),
                mode: tier_proto::api::OverrideMode::Floor.into(),
                reason: "strategic".into(),
                author: "alice".into(),
                set_at: None,
                expires_at: None,
            }),
            score_tier: String::new(),
            failed_gates: Vec::new(),
            gradings: Vec::new(),
            assessments: Vec::new(),
            new_customer: String::new(),
        }
    }

    #[test]
    fn assessments_show_level_author_and_expiry() {
        let mut e = explanation();
        e.assessments = vec![
            tier_proto::api::AssessedIndicator {
                name: "potential".into(),
                value: Some(4.0),
                label: "high".into(),
                points: Some(75.0),
                weight: 20.0,
                contribution: 15.0,
                assessed_by: "li.wei".into(),
                assessed_at: Some(prost_types::Timestamp {
                    seconds: 1_767_225_600,
                    nanos: 0,
                }),
                expires_at: Some(prost_types::Timestamp {
                    seconds: 1_769_817_600,
                    nanos: 0,
                }),
                ..Default::default()
            },
            tier_proto::api::AssessedIndicator {
                name: "cooperation".into(),
                missing_points: 40.0,
                ..Default::default()
            },
        ];
        let text = render(&e, None);
        let row = text
            .lines()
            .find(|l| l.starts_with("potential"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(row.contains("4 (high)") && row.contains("li.wei"), "{row}");
        assert!(row.contains("2026-01-01"), "{row}");
        let never = text.lines().find(|l| l.starts_with("cooperation")).unwrap();
        assert!(
            never.contains("never assessed") && never.contains("40.00"),
            "{never}"
        );
    }

    #[test]
    fn explanation_table() {
        let text = render(&explanation(), None);
        assert!(text.contains("1,234,567.89 CNY"), "{text}");
        assert!(text.contains("87.5%"), "{text}");
        let unknown = text
            .lines()
            .find(|l| l.starts_with("share_of_wallet "))
            .unwrap();
        let cells: Vec<&str> = unknown.split_whitespace().collect();
        assert_eq!(cells, ["share_of_wallet", "unknown", "0.0", "30%", "0.00"]);
        assert!(text.contains("12 days"), "{text}");
        assert!(text.contains("3.50 orders/month"), "{text}");
        assert!(text.contains("40%"), "{text}");
        assert!(text.contains("36.00"), "{text}");
        assert!(
            text.contains("(contributions 60.00, adjustment +10.00)"),
            "{text}"
        );
        assert!(text.contains("A  (overridden; computed B)"), "{text}");
        assert!(text.contains("computed     B\n"), "{text}");
        assert!(text.contains("lifecycle    active\n"), "{text}");
        assert!(
            text.contains("override     floor A until cleared, set by alice: strategic\n"),
            "{text}"
        );
        assert!(
            text.contains("as of        2026-01-01T00:00:00Z\n"),
            "{text}"
        );
        assert!(text.contains("next tier    S\n"), "{text}");
        assert!(text.contains("band         >= 60 and < 80\n"), "{text}");
        assert!(
            text.contains("gap          order_amount_12m +CNY 200,000\n"),
            "{text}"
        );
    }

    #[test]
    fn advice_lines_are_aligned() {
        let text = render(&explanation(), None);
        let advice: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("to reach"))
            .collect();
        assert_eq!(
            advice,
            [
                "to reach S: order_amount_12m  1,234,567.89 CNY -> 2,000,000.00 CNY",
                "            share_of_wallet            unknown ->           95.25%",
                "            (all of these together, everything else unchanged)",
            ],
            "{text}"
        );
    }

    #[test]
    fn the_server_currency_wins_over_the_fallback() {
        let mut e = explanation();
        e.currency = "JPY".into();
        let text = render(&e, Some("CNY"));
        assert!(text.contains("123,456,789 JPY"), "{text}");
        assert!(
            text.contains("123,456,789 JPY -> 200,000,000 JPY"),
            "{text}"
        );
        assert!(!text.contains(" CNY"), "{text}");

        e.currency = String::new();
        let text = render(&e, Some("KWD"));
        assert!(text.contains("123,456.789 KWD"), "{text}");
        let text = render(&e, None);
        assert!(text.contains("1,234,567.89 "), "{text}");
        assert!(!text.contains("1,234,567.89 CNY"), "{text}");
    }

    #[test]
    fn one_advice_needs_no_together_note() {
        let mut e = explanation();
        e.advice.truncate(1);
        let text = render(&e, None);
        assert!(
            text.ends_with("to reach S: order_amount_12m  1,234,567.89 CNY -> 2,000,000.00 CNY\n"),
            "{text}"
        );
    }

    #[test]
    fn failed_gates_are_listed_with_their_tier_and_the_value_now() {
        let mut e = explanation();
        e.overridden = false;
        e.r#override = None;
        e.tier = "B".into();
        e.computed_tier = "B".into();
        e.score_tier = "A".into();
        e.failed_gates = vec![
            FailedGate {
                tier: "A".into(),
                indicator: "on_time_payment_ratio".into(),
                op: ">=".into(),
                threshold: 0.8,
                value: Some(0.25),
                unit: Unit::Ratio.into(),
            },
            FailedGate {
                tier: "A".into(),
                indicator: "oldest_overdue_days".into(),
                op: "<=".into(),
                threshold: 60.0,
                value: Some(75.0),
                unit: Unit::Days.into(),
            },
        ];
        let text = render(&e, None);
        assert!(
            text.contains("score tier   A  (vetoed by a gate)\n"),
            "{text}"
        );
        let gates: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("failed gates"))
            .take(2)
            .collect();
        assert_eq!(
            gates,
            [
                "failed gates: A  on_time_payment_ratio >= 80.0%  now 25.0%",
                "              A  oldest_overdue_days <= 60 days  now 75 days",
            ],
            "{text}"
        );
        // One gate: singular; none: no section, no score tier line.
        e.failed_gates.truncate(1);
        let text = render(&e, None);
        assert!(
            text.contains("failed gate: A  on_time_payment_ratio >= 80.0%  now 25.0%\n"),
            "{text}"
        );
        let text = render(&explanation(), None);
        assert!(!text.contains("failed gate"), "{text}");
        assert!(!text.contains("score tier"), "{text}");
    }

    #[test]
    fn top_tier_without_indicators() {
        let e = TierExplanation {
            customer_id: "c".into(),
            tier: "S".into(),
            score: 90.0,
            ..Default::default()
        };
        let text = render(&e, Some("CNY"));
        assert!(text.contains("- (top tier)"), "{text}");
        assert!(text.contains("computed     -\n"), "{text}");
        assert!(!text.contains("override "), "{text}");
        assert!(text.contains("as of        -\n"), "{text}");
        assert!(!text.contains("adjustment"), "{text}");
        assert!(!text.contains("to reach"), "{text}");
    }
}
