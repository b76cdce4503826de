//! Secondary gradings over gRPC: a customer's ABC class and RFM score over
//! the committed population (cut points move when the population moves)
//! and its relationship x potential quadrant, in GetTier and ExplainTier.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tier_api::{ReadModel, TierServiceImpl, health_pair, serve};
use tier_core::event::{EventKind, Money, ProfileUpdate};
use tier_core::policy::{DEFAULT_POLICY_TOML, Policy};
use tier_core::sim::scenario::weekly_buyer;
use tier_core::state::CustomerState;
use tier_core::time::date;
use tier_core::{Event, Timestamp};
use tier_proto::api::tier_service_client::TierServiceClient;
use tier_proto::api::{ExplainTierRequest, GetTierRequest};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

const GRADINGS: &str = r#"
[[gradings]]
name = "abc"
kind = "abc"
by = "order_amount_12m"
shares = [20, 30, 50]
classes = ["A", "B", "C"]
low_value_share = 10

[[gradings]]
name = "rfm"
kind = "rfm"

[[gradings]]
name = "wallet"
kind = "matrix"
x_min = 0.5
y_min = 100000000
"#;

/// The default policy with [`GRADINGS`] for its gradings, version
/// `graded-1`.
fn policy_text() -> String {
    let base = DEFAULT_POLICY_TOML
        .split("# --- Secondary gradings")
        .next()
        .unwrap_or_default();
    format!("{base}\n{GRADINGS}").replace("version = \"default-2027.01\"", "version = \"graded-1\"")
}

fn policy() -> Policy {
    Policy::from_toml_str(&policy_text()).unwrap()
}

/// Ten customers, c01 the smallest (100,000 CNY a year) to c10 the
/// largest (1,000,000), each buying weekly; c10 orders last.
fn ten_customers(p: &Policy, last: Timestamp) -> Vec<(String, CustomerState)> {
    (1..=10)
        .map(|i| {
            let id = format!("c{i:02}");
            let s = customer(&id, last.plus_days(i - 10), i * 10_000_000, None, p);
            (id, s)
        })
        .collect()
}

async fn client(
    read: Arc<ReadModel>,
    policy: Policy,
) -> (TierServiceClient<Channel>, CancellationToken) {
    let (changes, _) = broadcast::channel(16);
    let service = TierServiceImpl::new(read, Arc::new(policy), changes);
    let (_health, health_service) = health_pair();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(serve(listener, service, health_service, shutdown.clone()));
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (TierServiceClient::new(channel), shutdown)
}

/// Weekly orders worth `per_year` fen up to `last`, with an optional
/// purchase potential in the profile.
fn customer(
    id: &str,
    last: Timestamp,
    per_year: i64,
    potential: Option<i64>,
    p: &Policy,
) -> CustomerState {
    let mut s = CustomerState::default();
    let mut events = weekly_buyer(id, last, per_year);
    if let Some(potential) = potential {
        events.insert(
            0,
            Event {
                event_id: format!("{id}-profile"),
                customer_id: id.into(),
                occurred_at: last.plus_days(-400),
                source: "crm".into(),
                kind: EventKind::ProfileUpdated(ProfileUpdate {
                    purchase_potential: Some(Money(potential)),
                    ..ProfileUpdate::default()
                }),
            },
        );
    }
    for e in &events {
        s.process(id, e, p);
    }
    s
}

async fn class_of(
    client: &mut TierServiceClient<Channel>,
    id: &str,
    grading: &str,
) -> Option<String> {
    client
        .get_tier(GetTierRequest {
            customer_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .gradings
        .into_iter()
        .find(|g| g.grading == grading)
        .map(|g| g.class)
}

#[tokio::test]
async fn abc_classes_follow_the_population_and_rfm_scores_the_quintiles() {
    let p = policy();
    let last = date(2026, 3, 1);
    let states = ten_customers(&p, last);
    let read = Arc::new(ReadModel::new());
    let refs: Vec<(&str, &CustomerState)> = states.iter().map(|(k, v)| (k.as_str(), v)).collect();
    read.publish(&refs, &p);
    let (mut client, shutdown) = client(Arc::clone(&read), p.clone()).await;

    // Top 20% (2) A, next 30% (3) B, rest C; the bottom 10% (1) flagged.
    let mut got = Vec::new();
    for (id, _) in &states {
        got.push(class_of(&mut client, id, "abc").await.unwrap());
    }
    assert_eq!(
        got,
        ["C (low value)", "C", "C", "C", "C", "B", "B", "B", "A", "A"]
    );

    // RFM: c10 ordered last, as often as everyone (53 weekly orders: a tie,
    // split by id, c01 first) and spent most: R5 F1 M5.
    assert_eq!(
        class_of(&mut client, "c10", "rfm").await.as_deref(),
        Some("515")
    );
    assert_eq!(
        class_of(&mut client, "c01", "rfm").await.as_deref(),
        Some("151")
    );

    // The population moves: ten bigger customers arrive. After the recut
    // the old top is C, whatever its own figures did.
    let bigger: Vec<(String, CustomerState)> = (11..=20)
        .map(|i| {
            let id = format!("c{i:02}");
            let s = customer(&id, last, i * 10_000_000, None, &p);
            (id, s)
        })
        .collect();
    let refs: Vec<(&str, &CustomerState)> = bigger.iter().map(|(k, v)| (k.as_str(), v)).collect();
    read.publish(&refs, &p);
    read.recut_gradings();
    assert_eq!(
        class_of(&mut client, "c10", "abc").await.as_deref(),
        Some("C")
    );
    assert_eq!(
        class_of(&mut client, "c20", "abc").await.as_deref(),
        Some("A")
    );
    assert_eq!(
        class_of(&mut client, "c02", "abc").await.as_deref(),
        Some("C (low value)")
    );
    shutdown.cancel();
}

#[tokio::test]
async fn the_matrix_quadrant_is_in_get_tier_and_explain_tier() {
    let p = policy();
    let last = date(2026, 3, 1);
    // 1,500,000 CNY a year of a 2,000,000 potential: key. 1,000,000 of
    // 10,000,000: potential. No potential in the profile: not graded.
    let key = customer("key", last, 150_000_000, Some(200_000_000), &p);
    let grow = customer("grow", last, 100_000_000, Some(1_000_000_000), &p);
    let plain = customer("plain", last, 100_000_000, None, &p);
    let read = Arc::new(ReadModel::new());
    read.publish(&[("key", &key), ("grow", &grow), ("plain", &plain)], &p);
    let (mut client, shutdown) = client(Arc::clone(&read), p.clone()).await;
    assert_eq!(
        class_of(&mut client, "key", "wallet").await.as_deref(),
        Some("key")
    );
    assert_eq!(
        class_of(&mut client, "grow", "wallet").await.as_deref(),
        Some("potential")
    );
    assert_eq!(class_of(&mut client, "plain", "wallet").await, None);
    let explained = client
        .explain_tier(ExplainTierRequest {
            customer_id: "grow".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let kinds: Vec<(&str, &str)> = explained
        .gradings
        .iter()
        .map(|g| (g.grading.as_str(), g.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [("abc", "abc"), ("rfm", "rfm"), ("wallet", "matrix")]
    );
    shutdown.cancel();
}

/// A customer with no order in the window (a prospect, a lapsed customer)
/// is not abc-graded: ranked at the bottom, the block of their equal
/// figures was split by id across classes (prospects graded B beside
/// others graded C), and a customer whose revenue fell to nothing could
/// read A until the next recut.
#[tokio::test]
async fn customers_who_bought_nothing_in_the_window_are_not_abc_graded() {
    let p = policy();
    let last = date(2026, 3, 1);
    let mut states: Vec<(String, CustomerState)> = Vec::new();
    states.push(("big".into(), customer("big", last, 100_000_000, None, &p)));
    states.push(("mid".into(), customer("mid", last, 50_000_000, None, &p)));
    for i in 0..4 {
        let id = format!("prospect{i}");
        let mut s = CustomerState::default();
        let profile = Event {
            event_id: format!("{id}-profile"),
            customer_id: id.clone(),
            occurred_at: last,
            source: "crm".into(),
            kind: EventKind::ProfileUpdated(ProfileUpdate {
                purchase_potential: Some(Money(100_000_000)),
                ..ProfileUpdate::default()
            }),
        };
        s.process(&id, &profile, &p);
        states.push((id, s));
    }
    for i in 0..4 {
        let id = format!("lapsed{i}");
        let mut s = customer(&id, last.plus_days(-400), 80_000_000, None, &p);
        s.advance_to(&id, &p, last, usize::MAX);
        states.push((id, s));
    }
    let read = Arc::new(ReadModel::new());
    let refs: Vec<(&str, &CustomerState)> = states.iter().map(|(k, v)| (k.as_str(), v)).collect();
    read.publish(&refs, &p);
    read.recut_gradings();
    let (mut client, shutdown) = client(Arc::clone(&read), p.clone()).await;
    for (id, _) in states.iter().skip(2) {
        assert_eq!(class_of(&mut client, id, "abc").await, None, "{id}");
    }
    // The two who buy are graded among themselves.
    assert!(class_of(&mut client, "big", "abc").await.is_some());
    assert!(class_of(&mut client, "mid", "abc").await.is_some());
    shutdown.cancel();
}

/// While the rescore of a policy change has not reached a customer, its
/// decision is explained by the policy that made it, but its gradings are
/// those of the policy in force, as GetTier gives them: ExplainTier classed
/// it under the old policy's gradings (and rebuilt the population for it).
#[tokio::test]
async fn explain_tier_grades_as_get_tier_while_a_rescore_is_pending() {
    let p = policy();
    let last = date(2026, 3, 1);
    let states = ten_customers(&p, last);
    let read = Arc::new(ReadModel::new());
    let refs: Vec<(&str, &CustomerState)> = states.iter().map(|(k, v)| (k.as_str(), v)).collect();
    read.publish(&refs, &p);
    let (changes, _) = broadcast::channel(16);
    let service = TierServiceImpl::new(Arc::clone(&read), Arc::new(p.clone()), changes);
    // v2 gives half the population A; nobody is rescored yet.
    let v2_text = policy_text()
        .replace("version = \"graded-1\"", "version = \"graded-2\"")
        .replace("shares = [20, 30, 50]", "shares = [50, 30, 20]");
    let v2 = Policy::from_toml_str(&v2_text).unwrap();
    service
        .policy_handle()
        .set(Arc::new(tier_engine::ActivePolicy::new(
            v2,
            v2_text,
            String::new(),
        )));
    let (_health, health_service) = health_pair();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(serve(listener, service, health_service, shutdown.clone()));
    let mut client = TierServiceClient::new(
        Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let explained = client
        .explain_tier(ExplainTierRequest {
            customer_id: "c07".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        explained.policy_version, "graded-1",
        "the decision's policy"
    );
    let abc = |g: &[tier_proto::api::GradingClass]| {
        g.iter()
            .find(|g| g.grading == "abc")
            .map(|g| g.class.clone())
    };
    assert_eq!(
        abc(&explained.gradings).as_deref(),
        Some("A"),
        "v2's classes"
    );
    assert_eq!(
        class_of(&mut client, "c07", "abc").await,
        abc(&explained.gradings)
    );
    shutdown.cancel();
}
