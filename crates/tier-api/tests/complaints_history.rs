//! The complaint lists and the tier history over gRPC, on customer states
//! made by tier-core from events (so the deadlines, overdue flags and
//! history are the real ones) and published to the read model as tierd
//! does after a commit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use tier_api::{ApiError, ReadModel, TierServiceImpl, health_pair, serve};
use tier_core::policy::Policy;
use tier_core::sim::scenario::{complaint, weekly_buyer};
use tier_core::state::CustomerState;
use tier_core::time::date;
use tier_core::{Severity, Timestamp};
use tier_proto::api::tier_service_client::TierServiceClient;
use tier_proto::api::{
    GetTierAsOfRequest, GetTierHistoryRequest, ListComplaintQueueRequest,
    ListOverdueComplaintsRequest, ListTierMoversRequest, MoveDirection,
};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

const HOUR: i64 = 3_600_000;

fn hours(t: Timestamp, h: i64) -> Timestamp {
    Timestamp::from_millis(t.millis() + h * HOUR)
}

fn ts(t: Timestamp) -> prost_types::Timestamp {
    tier_wire::time::to_proto(t)
}

async fn start(
    read: Arc<ReadModel>,
) -> (
    TierServiceClient<Channel>,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), ApiError>>,
) {
    start_with(read, Policy::default_policy()).await
}

async fn start_with(
    read: Arc<ReadModel>,
    policy: Policy,
) -> (
    TierServiceClient<Channel>,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), ApiError>>,
) {
    let policy = Arc::new(policy);
    let (changes, _) = broadcast::channel(16);
    let service = TierServiceImpl::new(read, policy, changes);
    let (_health, health_service) = health_pair();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(listener, service, health_service, shutdown.clone()));
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (TierServiceClient::new(channel), shutdown, task)
}

/// A customer buying weekly, worth `per_year` fen a year, up to `last`.
fn buyer(id: &str, last: Timestamp, per_year: i64, policy: &Policy) -> CustomerState {
    let mut s = CustomerState::default();
    for e in weekly_buyer(id, last, per_year) {
        s.process(id, &e, policy);
    }
    s
}

#[tokio::test]
async fn the_queue_serves_better_tiers_first_and_lists_overdue_complaints_with_their_deadlines() {
    let policy = Policy::default_policy();
    let last = date(2026, 3, 1);
    let mut big = buyer("big", last, 300_000_000, &policy);
    let mut small = buyer("small", last, 2_000_000, &policy);
    let big_tier = big.tier().unwrap().to_owned();
    let small_tier = small.tier().unwrap().to_owned();
    let (bi, si) = (
        policy.tier_index(&big_tier).unwrap(),
        policy.tier_index(&small_tier).unwrap(),
    );
    assert!(bi < si, "{big_tier} is better than {small_tier}");

    // The small customer complained first; the big one twice, later.
    let t0 = hours(date(2026, 3, 2), 8);
    small.process("small", &complaint("small", 1, t0, Severity::High), &policy);
    big.process(
        "big",
        &complaint("big", 1, hours(t0, 1), Severity::Low),
        &policy,
    );
    big.process(
        "big",
        &complaint("big", 2, hours(t0, 2), Severity::Critical),
        &policy,
    );
    // Past the big customer's first deadline only.
    let big_sla = i64::from(policy.tiers()[bi].complaint_sla_hours);
    let small_sla = i64::from(policy.tiers()[si].complaint_sla_hours);
    assert!(big_sla + 1 < small_sla);
    let now = hours(t0, big_sla + 1);
    assert_eq!(big.announce_overdue("big", now).len(), 1);
    assert!(small.announce_overdue("small", now).is_empty());

    let small_now = small.tier().unwrap().to_owned();
    assert!(
        policy.tier_index(big.tier().unwrap()) < policy.tier_index(&small_now),
        "the big customer still holds the better tier"
    );
    let read = Arc::new(ReadModel::new());
    read.publish(&[("big", &big), ("small", &small)], &policy);
    let (mut client, shutdown, task) = start(read).await;

    let queue = client
        .list_complaint_queue(ListComplaintQueueRequest::default())
        .await
        .unwrap()
        .into_inner();
    let order: Vec<(&str, &str)> = queue
        .complaints
        .iter()
        .map(|c| (c.customer_id.as_str(), c.complaint_id.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("big", "big-complaint1"),
            ("big", "big-complaint2"),
            ("small", "small-complaint1")
        ]
    );
    assert_eq!(queue.total, 3);
    let first = &queue.complaints[0];
    assert_eq!(first.deadline, Some(ts(hours(t0, 1 + big_sla))));
    // The deadline keeps the tier at the opening even though the critical
    // complaint since moved the customer down.
    let big_now = big.tier().unwrap().to_owned();
    assert_eq!(
        (first.deadline_tier.as_str(), first.customer_tier.as_str()),
        (big_tier.as_str(), big_now.as_str())
    );
    assert!(first.overdue);
    assert!(!queue.complaints[1].overdue);
    assert_eq!(queue.complaints[2].severity, "high");
    assert_eq!(
        queue.complaints[2].sla_hours,
        policy.tiers()[si].complaint_sla_hours
    );

    let overdue = client
        .list_overdue_complaints(ListOverdueComplaintsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(overdue.total, 1);
    assert_eq!(overdue.complaints[0].complaint_id, "big-complaint1");

    let err = client
        .list_complaint_queue(ListComplaintQueueRequest {
            limit: 10_001,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("limit"), "{}", err.message());
    // Pages of one: the queue's order, each once, then no token.
    let mut walked = Vec::new();
    let mut token = String::new();
    loop {
        let one = client
            .list_complaint_queue(ListComplaintQueueRequest {
                limit: 1,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((one.complaints.len(), one.total), (1, 3));
        walked.push((
            one.complaints[0].customer_id.clone(),
            one.complaints[0].complaint_id.clone(),
        ));
        token = one.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let walked: Vec<(&str, &str)> = walked
        .iter()
        .map(|(c, k)| (c.as_str(), k.as_str()))
        .collect();
    assert_eq!(walked, order);
    // A token of the queue is not one of the overdue list.
    let first_page = client
        .list_complaint_queue(ListComplaintQueueRequest {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let err = client
        .list_overdue_complaints(ListOverdueComplaintsRequest {
            limit: 1,
            page_token: first_page.next_page_token,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("page_token"), "{}", err.message());

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_tier_on_a_past_date_and_the_movers_of_a_period_follow_the_history() {
    let policy = Policy::default_policy();
    // Buys for a year, then stops: time moves it down step by step.
    let last = date(2026, 3, 1);
    let mut s = buyer("lapser", last, 200_000_000, &policy);
    let (changes, done) = s.advance_to("lapser", &policy, last.plus_days(500), 100_000);
    assert!(done);
    assert!(changes.len() >= 2, "{changes:?}");
    let history = s.tier_history().to_vec();
    assert!(history.len() >= 3);

    let read = Arc::new(ReadModel::new());
    read.publish(&[("lapser", &s)], &policy);
    let (mut client, shutdown, task) = start(read).await;

    let h = client
        .get_tier_history(GetTierHistoryRequest {
            customer_id: "lapser".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h.steps.len(), history.len());
    assert!(!h.truncated);
    assert_eq!(h.steps[0].from_tier, "");

    // Before the first tier: none; at each change and just before the
    // next: that change's tier.
    let as_of = |at: Timestamp| GetTierAsOfRequest {
        customer_id: "lapser".into(),
        at: Some(ts(at)),
    };
    let before = client
        .get_tier_as_of(as_of(history[0].at.plus_days(-1)))
        .await
        .unwrap()
        .into_inner();
    assert!(before.known);
    assert_eq!(before.tier, "");
    for w in history.windows(2) {
        for at in [w[0].at, Timestamp::from_millis(w[1].at.millis() - 1)] {
            let got = client.get_tier_as_of(as_of(at)).await.unwrap().into_inner();
            assert_eq!((got.known, got.tier.as_str()), (true, w[0].to.as_str()));
            assert_eq!(got.step.unwrap().sequence, w[0].sequence);
        }
    }

    // The drops after the last order are movers down; none up.
    let since = last.plus_days(1);
    let down = client
        .list_tier_movers(ListTierMoversRequest {
            since: Some(ts(since)),
            direction: MoveDirection::Down as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let drops = history.iter().filter(|x| x.at >= since).count();
    assert_eq!(down.total as usize, drops);
    assert!(down.next_page_token.is_empty(), "one page holds them");
    // Page by page, the same list; a token sent with another period is
    // refused naming page_token.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_tier_movers(ListTierMoversRequest {
                since: Some(ts(since)),
                direction: MoveDirection::Down as i32,
                limit: 1,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.total as usize, drops);
        paged.extend(page.movers);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
        let err = client
            .list_tier_movers(ListTierMoversRequest {
                since: Some(ts(since.plus_days(-1))),
                direction: MoveDirection::Down as i32,
                limit: 1,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("page_token"), "{}", err.message());
    }
    assert_eq!(paged, down.movers);
    assert!(
        down.movers
            .windows(2)
            .all(|w| w[0].step.as_ref().unwrap().sequence > w[1].step.as_ref().unwrap().sequence),
        "newest first"
    );
    let up = client
        .list_tier_movers(ListTierMoversRequest {
            since: Some(ts(since)),
            direction: MoveDirection::Up as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(up.total, 0);

    // Invalid requests name their field; an unknown customer is NOT_FOUND.
    for (err, field) in [
        (
            client
                .get_tier_as_of(GetTierAsOfRequest {
                    customer_id: "lapser".into(),
                    at: None,
                })
                .await
                .unwrap_err(),
            "at",
        ),
        (
            client
                .list_tier_movers(ListTierMoversRequest {
                    since: Some(ts(since)),
                    until: Some(ts(since.plus_days(-1))),
                    ..Default::default()
                })
                .await
                .unwrap_err(),
            "until",
        ),
        (
            client
                .list_tier_movers(ListTierMoversRequest::default())
                .await
                .unwrap_err(),
            "since",
        ),
        (
            client
                .get_tier_history(GetTierHistoryRequest::default())
                .await
                .unwrap_err(),
            "customer_id",
        ),
    ] {
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
    let err = client
        .get_tier_history(GetTierHistoryRequest {
            customer_id: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_complaint_of_a_tier_the_new_policy_dropped_is_queued_at_the_priority_get_tier_gives() {
    // A policy change renamed the customer's tier and its rescore has not
    // reached the customer: GetTier ranks it by the tier its figures give
    // under the new policy, and so does the complaint queue (it sorted
    // such a customer last, priority 0).
    let old = Policy::default_policy();
    let last = date(2026, 3, 1);
    let mut big = buyer("big", last, 300_000_000, &old);
    big.process(
        "big",
        &complaint("big", 1, hours(last, 8), Severity::High),
        &old,
    );
    let held = big.tier().unwrap().to_owned();
    let renamed = Policy::from_toml_str(
        &tier_core::policy::DEFAULT_POLICY_TOML
            .replacen(&format!("name = \"{held}\""), "name = \"renamed\"", 1)
            .replacen("version = \"", "version = \"renamed-", 1),
    )
    .unwrap();
    assert_eq!(renamed.tier_index(&held), None);
    let read = Arc::new(ReadModel::new());
    read.publish(&[("big", &big)], &old);
    let (mut client, shutdown, task) = start_with(read, renamed).await;
    let tier = client
        .get_tier(tier_proto::api::GetTierRequest {
            customer_id: "big".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(tier.priority > 0, "a tier of the new policy's");
    let queue = client
        .list_complaint_queue(ListComplaintQueueRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queue.complaints.len(), 1);
    assert_eq!(queue.complaints[0].priority, tier.priority);
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
