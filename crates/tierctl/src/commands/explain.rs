//! `explain`: why a customer holds its tier.

use anyhow::Result;
use tier_proto::api::{ExplainTierRequest, TierExplanation};

use super::{RpcOptions, emit, proto_json_line};
use crate::cli::{ExplainArgs, Output};
use crate::format::{Table, fixed, indicator_value, key_values, percent};

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
        Output::Table => emit(&render(&explanation, &args.currency)),
    }
}

/// The indicator table, then the score, tier, band, next tier and gap.
/// Contributions that do not add up to the score (a complaint penalty, or
/// a rules policy) are shown as the difference.
pub fn render(e: &TierExplanation, currency: &str) -> String {
    let mut out = String::new();
    if !e.indicators.is_empty() {
        let mut table = Table::new(["indicator", "value", "points", "weight", "contribution"])
            .right(&[1, 2, 3, 4]);
        for i in &e.indicators {
            table.row([
                i.name.clone(),
                indicator_value(&i.name, i.value, currency),
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
    out.push_str(&key_values(&[
        ("customer", e.customer_id.clone()),
        ("total score", score),
        ("tier", tier),
        ("band", dash(&e.band)),
        ("next tier", next),
        ("gap", dash(&e.gap)),
        ("policy", dash(&e.policy_version)),
    ]));
    out
}

#[cfg(test)]
mod tests {
    use tier_proto::api::Indicator;

    use super::*;

    fn indicator(name: &str, value: f64, points: f64, weight: f64) -> Indicator {
        Indicator {
            name: name.into(),
            value,
            points,
            weight,
            contribution: points * weight / 100.0,
        }
    }

    #[test]
    fn explanation_table() {
        let e = TierExplanation {
            customer_id: "cust-000001".into(),
            tier: "A".into(),
            score: 70.0,
            indicators: vec![
                indicator("order_amount_12m", 123_456_789.0, 90.0, 40.0),
                indicator("on_time_payment_ratio", 0.875, 80.0, 30.0),
                indicator("share_of_wallet", f64::NAN, 0.0, 30.0),
            ],
            next_tier: "S".into(),
            gap: "order_amount_12m +CNY 200,000".into(),
            policy_version: "v1".into(),
            band: ">= 60 and < 80".into(),
            overridden: true,
            computed_tier: "B".into(),
            penalty: 0.0,
        };
        let text = render(&e, "CNY");
        assert!(text.contains("CNY 1,234,567.89"), "{text}");
        assert!(text.contains("87.5%"), "{text}");
        assert!(text.contains("unknown"), "{text}");
        assert!(text.contains("40%"), "{text}");
        assert!(text.contains("36.00"), "{text}");
        assert!(
            text.contains("(contributions 60.00, adjustment +10.00)"),
            "{text}"
        );
        assert!(text.contains("A  (overridden; computed B)"), "{text}");
        assert!(text.contains("next tier    S\n"), "{text}");
        assert!(text.contains("band         >= 60 and < 80\n"), "{text}");
    }

    #[test]
    fn top_tier_without_indicators() {
        let e = TierExplanation {
            customer_id: "c".into(),
            tier: "S".into(),
            score: 90.0,
            ..Default::default()
        };
        let text = render(&e, "CNY");
        assert!(text.contains("- (top tier)"), "{text}");
        assert!(!text.contains("adjustment"), "{text}");
    }
}
