//! `watch`: stream tier changes until Ctrl-C.

use anyhow::{Result, bail};
use tier_proto::api::{ChangeCause, TierChanged, WatchTierChangesRequest};

use super::{RpcOptions, emit, proto_json_line};
use crate::cli::Output;
use crate::format::{fixed, lifecycle_name, proto_time, signed};

/// Reasons shown per line.
const TOP_REASONS: usize = 3;

pub async fn run(rpc: &RpcOptions) -> Result<()> {
    let mut client = rpc.connect().await?;
    // No deadline: the stream is meant to stay open.
    let mut stream = client
        .watch_tier_changes(WatchTierChangesRequest {})
        .await
        .map_err(|s| rpc.rpc_error(s))?
        .into_inner();
    eprintln!("watching tier changes at {} (Ctrl-C to stop)", rpc.addr);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            next = stream.message() => match next.map_err(|s| rpc.rpc_error(s))? {
                Some(change) => {
                    let line = match rpc.output {
                        Output::Json => proto_json_line(&change, "tiering.v1.TierChanged")?,
                        Output::Table => format!("{}\n", render(&change)),
                    };
                    emit(&line)?;
                }
                None => bail!("tierd at {} closed the watch stream", rpc.addr),
            },
        }
    }
}

/// One change on one line: time, customer, old -> new (with the computed
/// tier when an override sets the new one), score, lifecycle (when the
/// server sends one), cause, top reasons, sequence.
pub fn render(c: &TierChanged) -> String {
    let old = if c.old_tier.is_empty() {
        "(none)"
    } else {
        &c.old_tier
    };
    let cause = match ChangeCause::try_from(c.cause) {
        Ok(ChangeCause::Event) if !c.causing_event_id.is_empty() => {
            format!("event {}", c.causing_event_id)
        }
        Ok(ChangeCause::Event) => "event".to_owned(),
        Ok(ChangeCause::Time) => "time passed".to_owned(),
        Ok(ChangeCause::Policy) => "policy changed".to_owned(),
        Ok(ChangeCause::Override) => "override".to_owned(),
        Ok(ChangeCause::Rank) => "ranking moved".to_owned(),
        Ok(ChangeCause::Unspecified) | Err(_) => format!("cause {}", c.cause),
    };
    let reasons: Vec<String> = c
        .reasons
        .iter()
        .take(TOP_REASONS)
        .map(|r| format!("{} {}", r.name, signed(r.delta)))
        .collect();
    let reasons = if reasons.is_empty() {
        "-".to_owned()
    } else {
        reasons.join(", ")
    };
    let computed_differs = !c.computed_tier.is_empty() && c.computed_tier != c.new_tier;
    let overridden = match (c.overridden, computed_differs) {
        (true, true) => format!(" (overridden; computed {})", c.computed_tier),
        (true, false) => " (overridden)".to_owned(),
        (false, true) => format!(" (computed {})", c.computed_tier),
        (false, false) => String::new(),
    };
    let lifecycle = match lifecycle_name(c.lifecycle) {
        l if l == "-" => String::new(),
        l => format!("  lifecycle {l}"),
    };
    format!(
        "{}  {}  {} -> {}{}  score {} -> {}{}  {}  reasons: {}  seq {}",
        proto_time(c.changed_at.as_ref()),
        c.customer_id,
        old,
        c.new_tier,
        overridden,
        fixed(c.old_score, 2),
        fixed(c.new_score, 2),
        lifecycle,
        cause,
        reasons,
        c.sequence
    )
}

#[cfg(test)]
mod tests {
    use tier_proto::api::Reason;

    use super::*;

    #[test]
    fn one_line_per_change() {
        let reason = |name: &str, delta| Reason {
            name: name.into(),
            contribution: 10.0,
            delta,
        };
        let c = TierChanged {
            customer_id: "cust-000007".into(),
            old_tier: "B".into(),
            new_tier: "A".into(),
            old_score: 58.2,
            new_score: 61.04,
            cause: ChangeCause::Event as i32,
            causing_event_id: "evt-9-o".into(),
            reasons: vec![
                reason("order_amount_12m", 2.5),
                reason("margin_12m", 0.4),
                reason("growth_3m", -0.1),
                reason("tenure_days", 0.01),
            ],
            policy_version: "v1".into(),
            sequence: 4,
            changed_at: Some(prost_types::Timestamp {
                seconds: 1_767_225_600,
                nanos: 0,
            }),
            computed_tier: "A".into(),
            overridden: false,
            lifecycle: 0,
            gradings: Vec::new(),
            traceparent: String::new(),
        };
        assert_eq!(
            render(&c),
            "2026-01-01T00:00:00Z  cust-000007  B -> A  score 58.20 -> 61.04  event evt-9-o  \
             reasons: order_amount_12m +2.50, margin_12m +0.40, growth_3m -0.10  seq 4"
        );
        let first = TierChanged {
            customer_id: "c".into(),
            new_tier: "C".into(),
            cause: ChangeCause::Time as i32,
            sequence: 1,
            ..Default::default()
        };
        assert_eq!(
            render(&first),
            "-  c  (none) -> C  score 0.00 -> 0.00  time passed  reasons: -  seq 1"
        );
        let pinned = TierChanged {
            customer_id: "c".into(),
            old_tier: "B".into(),
            new_tier: "A".into(),
            computed_tier: "B".into(),
            overridden: true,
            lifecycle: tier_proto::api::Lifecycle::Reactivated.into(),
            cause: ChangeCause::Override as i32,
            sequence: 9,
            ..Default::default()
        };
        assert_eq!(
            render(&pinned),
            "-  c  B -> A (overridden; computed B)  score 0.00 -> 0.00  lifecycle reactivated  override  \
             reasons: -  seq 9"
        );
    }
}
