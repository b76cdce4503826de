//! The lists and reports over gRPC, against a real server on
//! `127.0.0.1:0` and a hand-filled read model: `ListCustomers` walks that
//! never skip or repeat while tiers change under them, the tier
//! distribution (Pareto check) and the account-manager balance on
//! hand-computed examples, and refusals naming their field.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tier_api::read_model::Relation;
use tier_api::reports::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use tier_api::{
    ApiError, Book, CustomerView, Entry, ReadModel, TierServiceImpl, health_pair, serve,
};
use tier_core::policy::Policy;
use tier_core::state::Lifecycle as CoreLifecycle;
use tier_core::{Indicators, Timestamp};
use tier_proto::api::tier_service_client::TierServiceClient;
use tier_proto::api::{
    AccountManagerBalance, CustomerRow, GetAccountManagerBalanceRequest,
    GetTierDistributionRequest, Lifecycle, ListCustomersRequest, ListCustomersResponse,
    TierDistribution, TierShare,
};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

// ---------------------------------------------------------------- harness

struct Server {
    client: TierServiceClient<Channel>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ApiError>>,
}

async fn start(read: Arc<ReadModel>) -> Server {
    let policy = Arc::new(Policy::default_policy());
    let (changes, _) = broadcast::channel(16);
    let service = TierServiceImpl::new(Arc::clone(&read), policy, changes);
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
    Server {
        client: TierServiceClient::new(channel),
        shutdown,
        task,
    }
}

impl Server {
    async fn list(
        &mut self,
        req: ListCustomersRequest,
    ) -> Result<ListCustomersResponse, tonic::Status> {
        self.client
            .list_customers(req)
            .await
            .map(|r| r.into_inner())
    }

    async fn distribution(&mut self) -> TierDistribution {
        self.client
            .get_tier_distribution(GetTierDistributionRequest {})
            .await
            .unwrap()
            .into_inner()
    }

    async fn balance(&mut self) -> AccountManagerBalance {
        self.client
            .get_account_manager_balance(GetAccountManagerBalanceRequest {})
            .await
            .unwrap()
            .into_inner()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("server stops within 5 s")
            .unwrap()
            .unwrap();
    }
}

/// A customer as the pipeline would publish it: `tier` held since its
/// `sequence`-th change, with a manager and 12-month figures.
fn entry(tier: &str, sequence: u64, manager: &str, revenue: i64, margin: Option<i64>) -> Entry {
    Entry::new(
        CustomerView {
            tier: tier.to_owned(),
            score: 50.0,
            since: Timestamp::from_millis(1_700_000_000_000),
            sequence,
            indicators: Indicators {
                order_amount_12m: revenue as f64,
                margin_12m: margin.map(|m| m as f64),
                ..Indicators::default()
            },
            scored_at: Timestamp::from_millis(1_700_000_000_000),
            policy_version: "default-2027.01".into(),
            overridden: false,
            relation: Relation {
                lifecycle: Some(CoreLifecycle::Active),
                ..Relation::default()
            },
        },
        Book {
            account_manager: tier_api::Name::new(manager),
            revenue_12m: revenue,
            margin_12m: margin,
        },
    )
}

fn with_lifecycle(mut e: Entry, lifecycle: CoreLifecycle) -> Entry {
    let mut view = (*e.view).clone();
    view.lifecycle = Some(lifecycle);
    e.view = Arc::new(view);
    e
}

/// A small deterministic generator (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const TIERS: [&str; 4] = ["A", "B", "C", "D"];

/// Customer ids of the initial population: even numbers, so customers
/// added during a walk (odd numbers) land between them.
fn id(n: u64) -> String {
    format!("cust-{n:06}")
}

/// 10,000 customers, tiers round robin.
fn population(read: &ReadModel) -> BTreeMap<String, (String, u64)> {
    let ids: Vec<String> = (0..10_000u64).map(|i| id(2 * i)).collect();
    read.upsert_entries(
        ids.iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), entry(TIERS[i % 4], 1, "", 1_000, None))),
    );
    ids.into_iter()
        .enumerate()
        .map(|(i, c)| (c, (TIERS[i % 4].to_owned(), 1)))
        .collect()
}

/// Between two pages: move 40 customers to another tier and add 5 new
/// ones anywhere in the id range. Returns the new ids.
fn churn(
    read: &ReadModel,
    held: &mut BTreeMap<String, (String, u64)>,
    rng: &mut Rng,
    moved: &mut BTreeSet<String>,
) -> Vec<String> {
    for _ in 0..40 {
        let who = id(2 * rng.below(10_000));
        let (tier, seq) = held.get_mut(&who).unwrap();
        let to = TIERS[rng.below(4) as usize];
        *tier = to.to_owned();
        *seq += 1;
        read.upsert_entry(&who, entry(to, *seq, "", 1_000, None));
        moved.insert(who);
    }
    let mut added = Vec::new();
    for _ in 0..5 {
        let who = id(2 * rng.below(10_000) + 1);
        if held.contains_key(&who) {
            continue;
        }
        let to = TIERS[rng.below(4) as usize];
        held.insert(who.clone(), (to.to_owned(), 1));
        read.upsert_entry(&who, entry(to, 1, "", 1_000, None));
        added.push(who);
    }
    added
}

// ------------------------------------------------------------- pagination

#[tokio::test]
async fn a_walk_over_10000_customers_lists_each_exactly_once_while_tiers_change() {
    // Given 10,000 customers, when they are listed 137 at a time while,
    // between pages, 40 customers change tier and 5 new ones appear, then
    // every customer of the start is listed exactly once, in id order,
    // and a new customer is listed exactly when its id lies ahead of the
    // walk when it appears.
    let read = Arc::new(ReadModel::new());
    let mut held = population(&read);
    let mut server = start(Arc::clone(&read)).await;
    let originals: Vec<String> = held.keys().cloned().collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut moved = BTreeSet::new();
    let mut seen: Vec<String> = Vec::new();
    let mut expected_new = BTreeSet::new();
    let mut unexpected_new = BTreeSet::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = server
            .list(ListCustomersRequest {
                page_size: 137,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        pages += 1;
        for row in &page.customers {
            // Every row shows the tier held when its page was read.
            assert_eq!(row.tier, held[&row.customer_id].0, "{}", row.customer_id);
        }
        seen.extend(page.customers.iter().map(|r| r.customer_id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        assert_eq!(page.customers.len(), 137, "only the last page is short");
        token = page.next_page_token;
        let cursor = seen.last().cloned().unwrap();
        for new in churn(&read, &mut held, &mut rng, &mut moved) {
            if new > cursor {
                expected_new.insert(new);
            } else {
                unexpected_new.insert(new);
            }
        }
    }
    assert!(pages >= 10_000 / 137, "{pages} pages");
    assert!(moved.len() > 1_000, "the walk ran while tiers changed");
    assert!(!expected_new.is_empty() && !unexpected_new.is_empty());
    let sorted: Vec<String> = {
        let mut s = seen.clone();
        s.sort();
        s.dedup();
        s
    };
    assert_eq!(seen, sorted, "in id order, no repeats");
    let seen: BTreeSet<String> = seen.into_iter().collect();
    for c in &originals {
        assert!(seen.contains(c), "{c} was skipped");
    }
    assert!(expected_new.is_subset(&seen));
    assert!(unexpected_new.is_disjoint(&seen));
    assert_eq!(seen.len(), originals.len() + expected_new.len());
    server.stop().await;
}

#[tokio::test]
async fn a_tier_filtered_walk_lists_customers_where_they_stand_when_passed() {
    // Given 10,000 customers, when tier A is listed 50 at a time while
    // customers move between tiers, then no customer is listed twice, each
    // row is in A when its page is read, every customer in A for the whole
    // walk is listed, and one that moved into A ahead of the walk is too.
    let read = Arc::new(ReadModel::new());
    let mut held = population(&read);
    let mut server = start(Arc::clone(&read)).await;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut moved = BTreeSet::new();
    let mut moved_in_ahead: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen: Vec<String> = Vec::new();
    let mut token = String::new();
    let mut page_no = 0;
    loop {
        let page = server
            .list(ListCustomersRequest {
                tier: "A".into(),
                page_size: 50,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        page_no += 1;
        for row in &page.customers {
            assert_eq!(row.tier, "A");
            assert_eq!(held[&row.customer_id].0, "A", "{}", row.customer_id);
        }
        seen.extend(page.customers.iter().map(|r| r.customer_id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        // A full page ends at its last row: the walk resumes after it.
        assert_eq!(page.customers.len(), 50);
        token = page.next_page_token;
        let cursor = seen.last().cloned().unwrap();
        let before: BTreeSet<String> = moved.clone();
        churn(&read, &mut held, &mut rng, &mut moved);
        for who in moved.difference(&before) {
            if *who > cursor && held[who].0 == "A" {
                moved_in_ahead.insert(who.clone(), page_no);
            }
        }
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a customer was listed twice");
    // Customers never touched during the walk and in A: all listed.
    for i in 0..10_000u64 {
        let c = id(2 * i);
        if !moved.contains(&c) && i % 4 == 0 {
            assert!(unique.contains(&c), "{c} (A throughout) was skipped");
        }
    }
    // Moved into A ahead of the walk and still in A at the end (so in A
    // when passed, as nothing moves it back before): listed.
    let stayed: Vec<&String> = moved_in_ahead
        .keys()
        .filter(|c| held[*c].0 == "A" && held[*c].1 == 2)
        .collect();
    assert!(!stayed.is_empty());
    for c in stayed {
        assert!(unique.contains(c), "{c} moved into A ahead of the walk");
    }
    server.stop().await;
}

#[tokio::test]
async fn filters_by_manager_unassigned_and_lifecycle_and_default_page_size() {
    let read = Arc::new(ReadModel::new());
    read.upsert_entries([
        ("c-1", entry("A", 1, "li", 100, Some(10))),
        ("c-2", entry("B", 1, "li", 200, None)),
        ("c-3", entry("A", 1, "", 300, None)),
        (
            "c-4",
            with_lifecycle(entry("C", 1, "wang", 400, None), CoreLifecycle::Lapsed),
        ),
    ]);
    let mut server = start(Arc::clone(&read)).await;
    let ids = |r: &ListCustomersResponse| -> Vec<String> {
        r.customers.iter().map(|c| c.customer_id.clone()).collect()
    };
    let li = server
        .list(ListCustomersRequest {
            account_manager: Some("li".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&li), ["c-1", "c-2"]);
    assert_eq!(li.next_page_token, "");
    assert_eq!(li.currency, "CNY");
    let unassigned = server
        .list(ListCustomersRequest {
            account_manager: Some(String::new()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&unassigned), ["c-3"]);
    let lapsed = server
        .list(ListCustomersRequest {
            lifecycle: Lifecycle::Lapsed.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&lapsed), ["c-4"]);
    let row: &CustomerRow = &li.customers[0];
    assert_eq!(
        (
            row.tier.as_str(),
            row.computed_tier.as_str(),
            row.account_manager.as_str()
        ),
        ("A", "A", "li")
    );
    assert_eq!(
        (row.revenue_12m, row.margin_12m, row.priority),
        (100, Some(10), 1)
    );
    assert_eq!(row.lifecycle(), Lifecycle::Active);
    assert_eq!(li.customers[1].margin_12m, None);

    // page_size 0 is the default; an exact last page has no token.
    for i in 0..(DEFAULT_PAGE_SIZE as usize * 2 - 4) {
        read.upsert_entry(&format!("d-{i:04}"), entry("D", 1, "", 1, None));
    }
    let first = server.list(ListCustomersRequest::default()).await.unwrap();
    assert_eq!(first.customers.len(), DEFAULT_PAGE_SIZE as usize);
    let second = server
        .list(ListCustomersRequest {
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(second.customers.len(), DEFAULT_PAGE_SIZE as usize);
    assert_eq!(second.next_page_token, "", "nothing follows the last page");
    let most = server
        .list(ListCustomersRequest {
            page_size: MAX_PAGE_SIZE,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(most.customers.len(), DEFAULT_PAGE_SIZE as usize * 2);
    server.stop().await;
}

#[tokio::test]
async fn bad_filters_pages_and_tokens_are_invalid_argument_naming_the_field() {
    let read = Arc::new(ReadModel::new());
    for i in 0..30 {
        read.upsert_entry(&format!("c-{i:02}"), entry("A", 1, "li", 1, None));
    }
    let mut server = start(Arc::clone(&read)).await;
    let first = server
        .list(ListCustomersRequest {
            tier: "A".into(),
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!first.next_page_token.is_empty());
    let token = first.next_page_token.clone();
    let mut tampered = token.clone();
    tampered.replace_range(5..7, "00");
    let cases = [
        (
            ListCustomersRequest {
                page_size: MAX_PAGE_SIZE + 1,
                ..Default::default()
            },
            "page_size",
        ),
        (
            ListCustomersRequest {
                tier: "Z".into(),
                ..Default::default()
            },
            "tier",
        ),
        (
            ListCustomersRequest {
                lifecycle: 99,
                ..Default::default()
            },
            "lifecycle",
        ),
        (
            ListCustomersRequest {
                page_token: "not-a-token".into(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            ListCustomersRequest {
                tier: "A".into(),
                page_token: tampered,
                ..Default::default()
            },
            "page_token",
        ),
        // The token of a tier-A walk, sent with another filter.
        (
            ListCustomersRequest {
                tier: "B".into(),
                page_token: token.clone(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            ListCustomersRequest {
                tier: "A".into(),
                account_manager: Some("li".into()),
                page_token: token.clone(),
                ..Default::default()
            },
            "page_token",
        ),
    ];
    for (req, field) in cases {
        let status = server.list(req.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{req:?}: {status:?}");
        assert!(
            status.message().starts_with(&format!("invalid {field}: ")),
            "{req:?}: {}",
            status.message()
        );
    }
    // The same filter with its token goes on, also with another page size.
    let next = server
        .list(ListCustomersRequest {
            tier: "A".into(),
            page_size: 15,
            page_token: token,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(next.customers.len(), 15);
    assert_eq!(next.customers[0].customer_id, "c-10");
    server.stop().await;
}

// ----------------------------------------------------------- distribution

fn share(d: &TierDistribution, tier: &str) -> TierShare {
    d.tiers
        .iter()
        .chain(&d.other_tiers)
        .find(|t| t.tier == tier)
        .cloned()
        .unwrap_or_else(|| panic!("no row for tier {tier:?}"))
}

#[tokio::test]
async fn the_distribution_on_a_hand_computed_example() {
    // Given six decided customers (one in a tier of an earlier policy) and
    // one without a decision, then each policy tier is present, D empty,
    // and the shares are the hand-computed ones, each column summing to
    // exactly 10,000 basis points.
    let read = Arc::new(ReadModel::new());
    read.upsert_entries([
        ("a1", entry("A", 1, "li", 600_000, Some(200_000))),
        ("a2", entry("A", 1, "wang", 300_000, Some(100_000))),
        ("b1", entry("B", 1, "li", 50_000, None)),
        ("c1", entry("C", 1, "li", 40_000, Some(-10_000))),
        ("c2", entry("C", 1, "wang", 10_000, Some(40_000))),
        ("r1", entry("retired", 1, "", 0, None)),
        ("u1", entry("", 1, "", 7, None)),
    ]);
    let mut server = start(Arc::clone(&read)).await;
    let d = server.distribution().await;
    assert_eq!(d.policy_version, "default-2027.01");
    assert_eq!(d.currency, "CNY");
    let names: Vec<&str> = d.tiers.iter().map(|t| t.tier.as_str()).collect();
    assert_eq!(names, ["A", "B", "C", "D"], "every policy tier, in order");
    assert_eq!(d.other_tiers.len(), 1);
    assert_eq!(
        (d.total_customers, d.total_revenue_12m, d.total_margin_12m),
        (6, 1_000_000, 330_000)
    );
    assert_eq!(d.total_margin_known_customers, 4);
    // Customers 2/6, 1/6, 2/6, 0, 1/6: floors 3333, 1666, 3333, 0, 1666;
    // the two largest remainders (B, then retired) get the missing units.
    // Revenue: 900k, 50k, 50k of 1M. Margin: 300k and 30k of 330k:
    // 9090.9 and 909.1, the larger remainder (A) gets the unit.
    let expect = [
        ("A", 2, 900_000, 300_000, 2, 3333, 9000, 9091),
        ("B", 1, 50_000, 0, 0, 1667, 500, 0),
        ("C", 2, 50_000, 30_000, 2, 3333, 500, 909),
        ("D", 0, 0, 0, 0, 0, 0, 0),
        ("retired", 1, 0, 0, 0, 1667, 0, 0),
    ];
    for (tier, customers, revenue, margin, known, c_bp, r_bp, m_bp) in expect {
        let s = share(&d, tier);
        assert_eq!(
            (
                s.customers,
                s.revenue_12m,
                s.margin_12m,
                s.margin_known_customers,
                s.customer_share_bp,
                s.revenue_share_bp,
                s.margin_share_bp
            ),
            (customers, revenue, margin, known, c_bp, r_bp, m_bp),
            "tier {tier}"
        );
    }
    let undecided = d.undecided.clone().unwrap();
    assert_eq!((undecided.customers, undecided.revenue_12m), (1, 7));
    server.stop().await;
}

#[tokio::test]
async fn shares_sum_to_exactly_100_percent_and_follow_changes() {
    // Given 10,000 customers with uneven revenue and margin (some losses),
    // then every share column sums to exactly 10,000 basis points, and
    // after customers move the distribution follows at once.
    let read = Arc::new(ReadModel::new());
    let mut rng = Rng(42);
    let mut revenue_by_tier: BTreeMap<&str, i64> = BTreeMap::new();
    for i in 0..10_000u64 {
        let tier = TIERS[(rng.below(3)) as usize]; // D stays empty
        let revenue = rng.below(10_000_000) as i64;
        let margin = (rng.below(4) != 0).then(|| revenue / 3 - rng.below(1_000_000) as i64);
        *revenue_by_tier.entry(tier).or_default() += revenue;
        read.upsert_entry(&id(i), entry(tier, 1, "", revenue, margin));
    }
    let mut server = start(Arc::clone(&read)).await;
    let d = server.distribution().await;
    assert_eq!(d.tiers.len(), 4);
    assert_eq!(share(&d, "D").customers, 0);
    let sum = |f: fn(&TierShare) -> i64| d.tiers.iter().chain(&d.other_tiers).map(f).sum::<i64>();
    assert_eq!(sum(|s| s.customer_share_bp), 10_000);
    assert_eq!(sum(|s| s.revenue_share_bp), 10_000);
    assert_eq!(sum(|s| s.margin_share_bp), 10_000);
    assert_eq!(d.total_customers, 10_000);
    for (tier, revenue) in &revenue_by_tier {
        let s = share(&d, tier);
        assert_eq!(s.revenue_12m, *revenue);
        // Within one basis point of the exact share.
        let exact = *revenue as f64 * 10_000.0 / d.total_revenue_12m as f64;
        assert!((s.revenue_share_bp as f64 - exact).abs() < 1.0, "{tier}");
    }

    // Everyone moves to D: the report follows.
    for i in 0..10_000u64 {
        read.upsert_entry(&id(i), entry("D", 2, "", 5, None));
    }
    let d = server.distribution().await;
    let d_row = share(&d, "D");
    assert_eq!((d_row.customers, d_row.revenue_12m), (10_000, 50_000));
    assert_eq!(
        (d_row.customer_share_bp, d_row.revenue_share_bp),
        (10_000, 10_000)
    );
    // No margin known: no margin shares.
    assert_eq!(d_row.margin_share_bp, 0);
    assert_eq!(share(&d, "A").customers, 0);
    server.stop().await;
}

// ---------------------------------------------------------- manager balance

#[tokio::test]
async fn the_manager_balance_on_a_hand_computed_example() {
    // li: A, B, C; wang: A, A, C; zhao: D; no manager: A and a tier of an
    // earlier policy. Top tier (A) per manager: 1, 2, 0 (mean 1,
    // population variance 2/3), 1 unassigned.
    let read = Arc::new(ReadModel::new());
    read.upsert_entries([
        ("a1", entry("A", 1, "li", 600_000, None)),
        ("b1", entry("B", 1, "li", 50_000, None)),
        ("c1", entry("C", 1, "li", 40_000, None)),
        ("a2", entry("A", 1, "wang", 300_000, None)),
        ("a3", entry("A", 1, "wang", 100_000, None)),
        ("c2", entry("C", 1, "wang", 10_000, None)),
        ("d1", entry("D", 1, "zhao", 5_000, None)),
        ("a4", entry("A", 1, "", 1_000, None)),
        ("r1", entry("retired", 1, "", 0, None)),
    ]);
    let mut server = start(Arc::clone(&read)).await;
    let b = server.balance().await;
    let names: Vec<(&str, bool)> = b
        .managers
        .iter()
        .map(|m| (m.account_manager.as_str(), m.unassigned))
        .collect();
    assert_eq!(
        names,
        [("li", false), ("wang", false), ("zhao", false), ("", true)]
    );
    let per_tier = |i: usize| -> Vec<(String, u64, i64)> {
        b.managers[i]
            .tiers
            .iter()
            .map(|t| (t.tier.clone(), t.customers, t.revenue_12m))
            .collect()
    };
    let t = |tier: &str, n: u64, r: i64| (tier.to_owned(), n, r);
    assert_eq!(
        per_tier(0),
        [
            t("A", 1, 600_000),
            t("B", 1, 50_000),
            t("C", 1, 40_000),
            t("D", 0, 0)
        ]
    );
    assert_eq!(
        per_tier(1),
        [
            t("A", 2, 400_000),
            t("B", 0, 0),
            t("C", 1, 10_000),
            t("D", 0, 0)
        ]
    );
    assert_eq!(
        per_tier(3),
        [
            t("A", 1, 1_000),
            t("B", 0, 0),
            t("C", 0, 0),
            t("D", 0, 0),
            t("retired", 1, 0)
        ]
    );
    let totals: Vec<(u64, i64, u64)> = b
        .managers
        .iter()
        .map(|m| (m.customers, m.revenue_12m, m.top_tier_customers))
        .collect();
    assert_eq!(
        totals,
        [
            (3, 690_000, 1),
            (3, 410_000, 2),
            (1, 5_000, 0),
            (2, 1_000, 1)
        ]
    );
    let s = b.top_tier_spread.unwrap();
    assert_eq!(s.tier, "A");
    assert_eq!((s.managers, s.customers, s.min, s.max), (3, 3, 0, 2));
    assert_eq!(s.mean, 1.0);
    let sd = (2.0_f64 / 3.0).sqrt();
    assert!((s.stddev - sd).abs() < 1e-12, "{}", s.stddev);
    assert!((s.coefficient_of_variation - sd).abs() < 1e-12);
    assert_eq!(s.max_min_ratio, None, "zhao has no top-tier customer");
    assert_eq!(s.unassigned, 1);

    // zhao gets a top customer: counts 1, 2, 1.
    read.upsert_entry("d1", entry("A", 2, "zhao", 5_000, None));
    let s = server.balance().await.top_tier_spread.unwrap();
    assert_eq!((s.min, s.max, s.max_min_ratio), (1, 2, Some(2.0)));
    server.stop().await;
}
