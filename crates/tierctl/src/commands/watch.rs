//! `watch`: stream tier changes until Ctrl-C.

use anyhow::{Result, bail};
use tier_proto::api::{ChangeCause, TierChanged, WatchTierChangesRequest};

use super::{RpcOptions, emit, proto_json_line};
use crate::cli::Output;
use crate::format::{fixed, proto_time, signed};

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

/// One change on one line: time, customer, old -> new, score, cause, top
/// reasons, sequence.
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
    format!(
        "{}  {}  {} -> {}  score {} -> {}  {}  reasons: {}  seq {}",
        proto_time(c.changed_at.as_ref()),
        c.customer_id,
        old,
        c.new_tier,
        fixed(c.old_score, 2),
        fixed(c.new_score, 2),
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
    }
}
