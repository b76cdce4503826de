//! Tier history: every change of a customer's effective tier as it was
//! published (kept with the customer, the last 256), what the tier was at
//! a past instant, and who moved in a period.
//!
//! A date before the oldest change kept is answered `known = false` with
//! the instant from which the history is complete, never guessed. Movers
//! are listed newest first; `UP` and `DOWN` compare the tiers' order in the
//! policy in force (a customer's first tier, and a tier the policy no
//! longer has, count as neither).

use std::cmp::Reverse;

use tier_core::Timestamp;
use tier_core::policy::Policy;
use tier_core::state::{TierStep, history_truncated, step_at};
use tier_proto::api::{
    self, GetTierAsOfRequest, GetTierHistoryRequest, ListTierMoversRequest, ListTierMoversResponse,
    MoveDirection, TierAsOf, TierHistory, TierMover,
};
use tier_wire::tier_changed::cause_to_proto;

use crate::convert::{instant, list_limit as limit, required_instant, timestamp};
use crate::error::ApiError;
use crate::read_model::ReadModel;

fn step(s: &TierStep) -> api::TierStep {
    api::TierStep {
        at: Some(timestamp(s.at)),
        from_tier: s.from.as_deref().unwrap_or_default().to_owned(),
        to_tier: s.to.to_string(),
        score: s.score,
        cause: cause_to_proto(s.cause) as i32,
        overridden: s.overridden,
        sequence: s.sequence,
    }
}

fn customer(field_value: &str) -> Result<&str, ApiError> {
    crate::service::require_id("customer_id", field_value)?;
    Ok(field_value)
}

pub(crate) fn history(
    read: &ReadModel,
    req: &GetTierHistoryRequest,
) -> Result<TierHistory, ApiError> {
    let id = customer(&req.customer_id)?;
    let view = read.get(id).ok_or_else(|| ApiError::NotFound {
        customer_id: id.to_owned(),
    })?;
    let steps = view.history();
    Ok(TierHistory {
        customer_id: id.to_owned(),
        truncated: history_truncated(&steps),
        steps: steps.iter().map(step).collect(),
    })
}

pub(crate) fn as_of(read: &ReadModel, req: &GetTierAsOfRequest) -> Result<TierAsOf, ApiError> {
    let id = customer(&req.customer_id)?;
    let at = required_instant("at", req.at.as_ref())?;
    let view = read.get(id).ok_or_else(|| ApiError::NotFound {
        customer_id: id.to_owned(),
    })?;
    let mut out = TierAsOf {
        customer_id: id.to_owned(),
        at: Some(timestamp(at)),
        known: true,
        ..TierAsOf::default()
    };
    match step_at(&view.history(), at) {
        Ok(None) => {}
        Ok(Some(s)) => {
            out.tier = s.to.to_string();
            out.step = Some(step(s));
        }
        Err(oldest) => {
            out.known = false;
            out.known_from = Some(timestamp(oldest));
        }
    }
    Ok(out)
}

pub(crate) fn movers(
    read: &ReadModel,
    policy: &Policy,
    req: &ListTierMoversRequest,
) -> Result<ListTierMoversResponse, ApiError> {
    let limit = limit(req.limit)?;
    let since = required_instant("since", req.since.as_ref())?;
    let until = match &req.until {
        Some(t) => instant("until", t)?,
        None => Timestamp::from_millis(i64::MAX),
    };
    if until < since {
        return Err(ApiError::invalid("until", "must not be before since"));
    }
    let direction = MoveDirection::try_from(req.direction)
        .map_err(|_| ApiError::invalid("direction", format!("unknown value {}", req.direction)))?;
    let rank = |t: &str| policy.tier_index(t);
    let mut all: Vec<(String, TierStep)> = Vec::new();
    for (id, view) in read.all_shared() {
        for s in view.history_steps() {
            if s.at < since || s.at >= until {
                continue;
            }
            let moved = match (s.from.as_deref().and_then(rank), rank(&s.to)) {
                (Some(from), Some(to)) => Some(to.cmp(&from)),
                _ => None,
            };
            let keep = match direction {
                MoveDirection::Any => true,
                // A better tier has a lower index.
                MoveDirection::Up => moved == Some(std::cmp::Ordering::Less),
                MoveDirection::Down => moved == Some(std::cmp::Ordering::Greater),
            };
            if keep {
                all.push((id.to_string(), s));
            }
        }
    }
    newest_first(&mut all);
    let fingerprint = {
        let mut h = crate::reports::Fnv::new();
        h.write(&since.millis().to_le_bytes());
        h.write(&until.millis().to_le_bytes());
        h.write(&req.direction.to_le_bytes());
        h.finish()
    };
    let cursor = match req.page_token.as_str() {
        "" => None,
        token => Some(mover_cursor(&MOVER_TOKENS.decode(
            token,
            fingerprint,
            3,
        )?)?),
    };
    let total = u32::try_from(all.len()).unwrap_or(u32::MAX);
    let (page, next) = crate::page::after(all, mover_key, cursor.as_ref(), limit);
    Ok(ListTierMoversResponse {
        total,
        movers: page
            .iter()
            .map(|(id, s)| TierMover {
                customer_id: id.clone(),
                step: Some(step(s)),
            })
            .collect(),
        next_page_token: next.map_or_else(String::new, |(at, id, seq)| {
            MOVER_TOKENS.encode(fingerprint, &[at.0.to_string(), id, seq.0.to_string()])
        }),
    })
}

const MOVER_TOKENS: crate::page::Tokens = crate::page::Tokens {
    rpc: "ListTierMovers",
    tag: "m1",
    filter: "since, until and direction",
};

/// The movers' order as a key: newest first, then by customer, a
/// customer's later step first (see [`newest_first`]).
type MoverKey = (Reverse<i64>, String, Reverse<u64>);

fn mover_key((id, s): &(String, TierStep)) -> MoverKey {
    (Reverse(s.at.millis()), id.clone(), Reverse(s.sequence))
}

fn mover_cursor(fields: &[String]) -> Result<MoverKey, ApiError> {
    let bad = || MOVER_TOKENS.foreign();
    match fields {
        [at, id, seq] => Ok((
            Reverse(at.parse().map_err(|_| bad())?),
            id.clone(),
            Reverse(seq.parse().map_err(|_| bad())?),
        )),
        _ => Err(bad()),
    }
}

/// Movers newest first, then by customer; a customer that moved twice at
/// one instant (a late event decided at its decision instant) lists its
/// later step first, as its history and its last `TierChanged` have it.
fn newest_first(movers: &mut [(String, TierStep)]) {
    movers.sort_by(|(a, x), (b, y)| {
        y.at.cmp(&x.at)
            .then_with(|| a.cmp(b))
            .then_with(|| y.sequence.cmp(&x.sequence))
    });
    debug_assert!(movers.is_sorted_by_key(mover_key));
}

#[cfg(test)]
mod tests {
    use super::*;
    use tier_core::state::Cause;

    #[test]
    fn two_moves_of_one_customer_at_one_instant_list_the_later_first() {
        let at = Timestamp::from_millis(1_700_000_000_000);
        let step = |from: &str, to: &str, sequence| TierStep {
            at,
            from: Some(from.into()),
            to: to.into(),
            score: 0.0,
            cause: Cause::Event,
            overridden: false,
            sequence,
        };
        // In history order, as the read model yields them.
        let mut movers = vec![
            ("c".to_owned(), step("D", "C", 5)),
            ("c".to_owned(), step("C", "B", 6)),
            ("b".to_owned(), step("C", "D", 2)),
        ];
        newest_first(&mut movers);
        let order: Vec<(&str, u64)> = movers
            .iter()
            .map(|(c, s)| (c.as_str(), s.sequence))
            .collect();
        assert_eq!(order, [("b", 2), ("c", 6), ("c", 5)]);
    }
}
