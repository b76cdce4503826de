//! The complaint lists customer service works from: the queue of open
//! complaints and the overdue ones, each complaint with the deadline fixed
//! at its opening (tier-core) and its customer's tier priority now.
//!
//! Both read the read model's views (committed state only). Order: the
//! customer's tier priority now (1 first; for a tier no longer in the
//! policy, the evaluated tier's, as GetTier gives it), then, for the
//! queue, the oldest opening, for the overdue list the earliest deadline;
//! ties by customer and complaint id, so the order is stable between
//! calls.

use tier_core::policy::Policy;
use tier_proto::api::{
    ComplaintItem, ListComplaintQueueRequest, ListComplaintQueueResponse,
    ListOverdueComplaintsRequest, ListOverdueComplaintsResponse,
};

use crate::convert::{list_limit as limit, timestamp};
use crate::error::ApiError;
use crate::read_model::{OpenComplaint, ReadModel};

/// Every open complaint (only overdue ones if `overdue_only`), with the
/// sort key `(priority, instant)` and the item.
fn collect(
    read: &ReadModel,
    policy: &Policy,
    overdue_only: bool,
) -> Vec<((u32, i64), ComplaintItem)> {
    let mut out = Vec::new();
    for (customer_id, view) in read.all_shared() {
        if view.complaints().is_empty() {
            continue;
        }
        // As GetTier and RankByPriority give it: a tier the policy no
        // longer has (its rescore pending) takes the evaluated tier's.
        let priority = crate::service::TierServiceImpl::spec_for(policy, &view).priority;
        for c in view.complaints() {
            if overdue_only && !c.overdue {
                continue;
            }
            let instant = if overdue_only {
                c.deadline.as_ref().map_or(c.opened_at, |d| d.at)
            } else {
                c.opened_at
            };
            out.push((
                (priority, instant.millis()),
                item(&customer_id, &view.tier, priority, c),
            ));
        }
    }
    out.sort_by(|(a, x), (b, y)| {
        a.cmp(b)
            .then_with(|| x.customer_id.cmp(&y.customer_id))
            .then_with(|| x.complaint_id.cmp(&y.complaint_id))
    });
    out
}

fn item(customer_id: &str, tier: &str, priority: u32, c: &OpenComplaint) -> ComplaintItem {
    ComplaintItem {
        customer_id: customer_id.to_owned(),
        complaint_id: c.id.clone(),
        severity: c.severity.as_str().to_owned(),
        category: c.category.clone(),
        opened_at: Some(timestamp(c.opened_at)),
        deadline: c.deadline.as_ref().map(|d| timestamp(d.at)),
        deadline_tier: c
            .deadline
            .as_ref()
            .map(|d| d.tier.clone())
            .unwrap_or_default(),
        sla_hours: c.deadline.as_ref().map_or(0, |d| d.sla_hours),
        customer_tier: tier.to_owned(),
        priority,
        overdue: c.overdue,
    }
}

/// A list's order as a key: priority, instant, customer, complaint.
type Key = (u32, i64, String, String);

fn key(((priority, instant), item): &((u32, i64), ComplaintItem)) -> Key {
    (
        *priority,
        *instant,
        item.customer_id.clone(),
        item.complaint_id.clone(),
    )
}

/// One page of a complaint list (see [`crate::page`]): the items, the
/// total and the next page's token.
fn page(
    tokens: &crate::page::Tokens,
    all: Vec<((u32, i64), ComplaintItem)>,
    token: &str,
    limit: usize,
) -> Result<(Vec<ComplaintItem>, u32, String), ApiError> {
    // No filter: every token of the list fits every request.
    const FINGERPRINT: u64 = 0;
    let bad = || tokens.foreign();
    let cursor = match token {
        "" => None,
        token => match tokens.decode(token, FINGERPRINT, 4)?.as_slice() {
            [priority, instant, customer, complaint] => Some((
                priority.parse().map_err(|_| bad())?,
                instant.parse().map_err(|_| bad())?,
                customer.clone(),
                complaint.clone(),
            )),
            _ => return Err(bad()),
        },
    };
    let total = u32::try_from(all.len()).unwrap_or(u32::MAX);
    let (page, next) = crate::page::after(all, key, cursor.as_ref(), limit);
    let next = next.map_or_else(String::new, |(p, at, c, k)| {
        tokens.encode(FINGERPRINT, &[p.to_string(), at.to_string(), c, k])
    });
    Ok((page.into_iter().map(|(_, i)| i).collect(), total, next))
}

const QUEUE_TOKENS: crate::page::Tokens = crate::page::Tokens {
    rpc: "ListComplaintQueue",
    tag: "q1",
    filter: "no other field",
};

const OVERDUE_TOKENS: crate::page::Tokens = crate::page::Tokens {
    rpc: "ListOverdueComplaints",
    tag: "o1",
    filter: "no other field",
};

pub(crate) fn queue(
    read: &ReadModel,
    policy: &Policy,
    req: &ListComplaintQueueRequest,
) -> Result<ListComplaintQueueResponse, ApiError> {
    let limit = limit(req.limit)?;
    let all = collect(read, policy, false);
    let (complaints, total, next_page_token) = page(&QUEUE_TOKENS, all, &req.page_token, limit)?;
    Ok(ListComplaintQueueResponse {
        total,
        complaints,
        next_page_token,
    })
}

pub(crate) fn overdue(
    read: &ReadModel,
    policy: &Policy,
    req: &ListOverdueComplaintsRequest,
) -> Result<ListOverdueComplaintsResponse, ApiError> {
    let limit = limit(req.limit)?;
    let all = collect(read, policy, true);
    let (complaints, total, next_page_token) = page(&OVERDUE_TOKENS, all, &req.page_token, limit)?;
    Ok(ListOverdueComplaintsResponse {
        total,
        complaints,
        next_page_token,
    })
}
