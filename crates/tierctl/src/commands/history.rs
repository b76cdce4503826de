//! `history CUSTOMER_ID`: every change of a customer's effective tier
//! tierd keeps (the last 256), oldest first (`GetTierHistory`); with
//! `--at`, the tier the customer held at an instant (`GetTierAsOf`).
//!
//! An instant before the oldest change kept is answered "not known", with
//! the instant from which the history is complete; it is never guessed.

use anyhow::Result;
use tier_proto::api::{
    ChangeCause, GetTierAsOfRequest, GetTierHistoryRequest, TierAsOf, TierHistory, TierStep,
};

use super::{RpcOptions, emit, proto_json_line};
use crate::cli::{HistoryArgs, Output};
use crate::format::{Table, cause_name, fixed, key_values, proto_time, tier_move, yes_no};

pub async fn run(rpc: &RpcOptions, args: &HistoryArgs) -> Result<()> {
    let calendar = rpc.calendar_for(&[args.at]).await?;
    let mut client = rpc.connect().await?;
    if let Some(at) = args.at {
        let as_of = client
            .get_tier_as_of(rpc.request(GetTierAsOfRequest {
                customer_id: args.customer_id.clone(),
                at: Some(at.resolve(&calendar)),
            }))
            .await
            .map_err(|s| rpc.rpc_error(s))?
            .into_inner();
        return match rpc.output {
            Output::Json => emit(&proto_json_line(&as_of, "tiering.v1.TierAsOf")?),
            Output::Table => emit(&render_as_of(&args.customer_id, &as_of)),
        };
    }
    let history = client
        .get_tier_history(rpc.request(GetTierHistoryRequest {
            customer_id: args.customer_id.clone(),
        }))
        .await
        .map_err(|s| rpc.rpc_error(s))?
        .into_inner();
    match rpc.output {
        Output::Json => emit(&proto_json_line(&history, "tiering.v1.TierHistory")?),
        Output::Table => emit(&render(&args.customer_id, &history)),
    }
}

/// One row per change, oldest first: at, from -> to, score, cause,
/// whether an override set it, sequence; then, when older changes were
/// dropped, from when the history is complete.
pub fn render(customer_id: &str, h: &TierHistory) -> String {
    let customer = if h.customer_id.is_empty() {
        customer_id
    } else {
        &h.customer_id
    };
    if h.steps.is_empty() {
        return format!("{customer} has no tier changes yet\n");
    }
    let mut table =
        Table::new(["at", "change", "score", "cause", "overridden", "sequence"]).right(&[2, 5]);
    for s in &h.steps {
        table.row([
            proto_time(s.at.as_ref()),
            tier_move(&s.from_tier, &s.to_tier),
            fixed(s.score, 2),
            cause_name(s.cause),
            yes_no(s.overridden).to_owned(),
            s.sequence.to_string(),
        ]);
    }
    let mut out = table.render();
    if h.truncated {
        let from = proto_time(h.steps.first().and_then(|s| s.at.as_ref()));
        out.push_str(&format!(
            "truncated: older changes were dropped; the history is complete from {from}\n"
        ));
    }
    out
}

/// The change that set a tier, on one line: `A -> B (time passed, score
/// 55.20, sequence 3)`, with `, by an override` when one set it (unless
/// the cause already says so).
fn step_text(s: &TierStep) -> String {
    let by = if s.overridden && s.cause != ChangeCause::Override as i32 {
        ", by an override"
    } else {
        ""
    };
    format!(
        "{} ({}, score {}, sequence {}{by})",
        tier_move(&s.from_tier, &s.to_tier),
        cause_name(s.cause),
        fixed(s.score, 2),
        s.sequence
    )
}

/// The customer, the instant, and the tier then with the change that set
/// it and since when; or that it is not known and from when it is.
pub fn render_as_of(customer_id: &str, a: &TierAsOf) -> String {
    let customer = if a.customer_id.is_empty() {
        customer_id.to_owned()
    } else {
        a.customer_id.clone()
    };
    let mut pairs = vec![("customer", customer), ("at", proto_time(a.at.as_ref()))];
    if !a.known {
        pairs.push((
            "tier",
            "not known (the instant is before the oldest change kept)".to_owned(),
        ));
        pairs.push(("history complete from", proto_time(a.known_from.as_ref())));
        return key_values(&pairs);
    }
    match (&a.step, a.tier.is_empty()) {
        (_, true) => pairs.push(("tier", "none (the customer had no tier yet)".to_owned())),
        (Some(s), false) => {
            pairs.push(("tier", a.tier.clone()));
            pairs.push(("since", proto_time(s.at.as_ref())));
            pairs.push(("set by", step_text(s)));
        }
        (None, false) => pairs.push(("tier", a.tier.clone())),
    }
    key_values(&pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    fn step(from: &str, to: &str, seconds: i64, sequence: u64) -> TierStep {
        TierStep {
            at: ts(seconds),
            from_tier: from.into(),
            to_tier: to.into(),
            score: 55.204,
            cause: ChangeCause::Time as i32,
            overridden: sequence == 3,
            sequence,
        }
    }

    #[test]
    fn history_table() {
        let mut h = TierHistory {
            customer_id: "c-1".into(),
            steps: vec![
                step("", "A", 1_767_225_600, 1),
                step("A", "B", 1_767_312_000, 2),
            ],
            truncated: false,
        };
        assert_eq!(
            render("c-1", &h),
            "at                    change       score  cause        overridden  sequence\n\
             --------------------  -----------  -----  -----------  ----------  --------\n\
             2026-01-01T00:00:00Z  (none) -> A  55.20  time passed  no                 1\n\
             2026-01-02T00:00:00Z  A -> B       55.20  time passed  no                 2\n"
        );
        h.steps.remove(0);
        h.truncated = true;
        assert!(render("c-1", &h).ends_with(
            "truncated: older changes were dropped; the history is complete from 2026-01-02T00:00:00Z\n"
        ));
        h.steps.clear();
        assert_eq!(render("c-1", &h), "c-1 has no tier changes yet\n");
    }

    #[test]
    fn as_of_known_unknown_and_none() {
        let known = TierAsOf {
            customer_id: "c-1".into(),
            at: ts(1_767_312_000),
            known: true,
            tier: "B".into(),
            step: Some(step("A", "B", 1_767_225_600, 3)),
            known_from: None,
        };
        assert_eq!(
            render_as_of("c-1", &known),
            "customer  c-1\n\
             at        2026-01-02T00:00:00Z\n\
             tier      B\n\
             since     2026-01-01T00:00:00Z\n\
             set by    A -> B (time passed, score 55.20, sequence 3, by an override)\n"
        );
        let unknown = TierAsOf {
            known: false,
            tier: String::new(),
            step: None,
            known_from: ts(1_767_225_600),
            ..known.clone()
        };
        assert_eq!(
            render_as_of("c-1", &unknown),
            "customer               c-1\n\
             at                     2026-01-02T00:00:00Z\n\
             tier                   not known (the instant is before the oldest change kept)\n\
             history complete from  2026-01-01T00:00:00Z\n"
        );
        let none = TierAsOf {
            known: true,
            known_from: None,
            ..unknown
        };
        assert!(
            render_as_of("c-1", &none).contains("tier      none (the customer had no tier yet)\n")
        );
        let mut by_override = step("A", "B", 1_767_225_600, 3);
        by_override.cause = ChangeCause::Override as i32;
        assert_eq!(
            step_text(&by_override),
            "A -> B (override, score 55.20, sequence 3)"
        );
    }
}
