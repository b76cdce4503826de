//! `complaints queue|overdue`, `history` (with and without `--at`) and
//! `movers`, run as the real binary against the real `TierService`
//! (tier-api) over customer states made by tier-core from events and
//! overrides (so deadlines, overdue flags and histories are the real ones)
//! and published to the read model as tierd does after a commit: table,
//! JSON and CSV outputs, cut lists, a date before the kept history, and
//! refused input.

// Helpers outside `#[test]` fns are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;
use std::sync::Arc;

use tier_api::ReadModel;
use tier_core::overrides::{Override, OverrideMode};
use tier_core::policy::Policy;
use tier_core::sim::scenario::{complaint, weekly_buyer};
use tier_core::state::{CustomerState, MAX_TIER_HISTORY, TierStep};
use tier_core::time::date;
use tier_core::{Severity, Timestamp};
use tierctl::format::{cause_name, fixed, tier_move};

mod common;
use common::{ok, serve, stderr, tierctl};

const HOUR: i64 = 3_600_000;

fn hours(t: Timestamp, h: i64) -> Timestamp {
    Timestamp::from_millis(t.millis() + h * HOUR)
}

/// A customer buying weekly, worth `per_year` fen a year, up to `last`.
fn buyer(id: &str, last: Timestamp, per_year: i64, policy: &Policy) -> CustomerState {
    let mut s = CustomerState::default();
    for e in weekly_buyer(id, last, per_year) {
        s.process(id, &e, policy);
    }
    s
}

/// The customers the tests read, and the facts they check against.
struct World {
    read: Arc<ReadModel>,
    policy: Policy,
    /// Opening of the first complaint (small's); big's follow an hour
    /// and two hours later.
    t0: Timestamp,
    /// big's tier when it complained (its deadlines' tier), and now.
    big_then: String,
    big_now: String,
    /// big's SLA in hours.
    big_sla: u32,
    /// Every customer's history.
    histories: Vec<(&'static str, Vec<TierStep>)>,
}

/// `big` and `small` complain after a year of weekly orders (big's first
/// complaint is overdue); `lapser` stops buying and drops step by step;
/// `churner` was pinned back and forth more often than the history keeps.
fn world() -> World {
    let policy = Policy::default_policy();
    let last = date(2026, 3, 1);
    let mut big = buyer("big", last, 300_000_000, &policy);
    let mut small = buyer("small", last, 2_000_000, &policy);
    let big_then = big.tier().unwrap().to_owned();
    let bi = policy.tier_index(&big_then).unwrap();
    let big_sla = policy.tiers()[bi].complaint_sla_hours;

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
    let now = hours(t0, i64::from(big_sla) + 1);
    assert_eq!(big.announce_overdue("big", now).len(), 1);
    assert!(small.announce_overdue("small", now).is_empty());
    let big_now = big.tier().unwrap().to_owned();

    let mut lapser = buyer("lapser", last, 200_000_000, &policy);
    let (_, done) = lapser.advance_to("lapser", &policy, last.plus_days(500), 100_000);
    assert!(done);
    assert!(lapser.tier_history().len() >= 3);

    // 300 pins an hour apart, in 2024 (before anyone else's history).
    let mut churner = buyer("churner", date(2024, 1, 1), 2_000_000, &policy);
    for i in 0..300 {
        let o = Override {
            tier: if i % 2 == 0 { "A" } else { "D" }.into(),
            mode: OverrideMode::Pin,
            reason: "test".into(),
            author: "tester".into(),
            set_at: hours(date(2024, 2, 1), i),
            expires_at: None,
        };
        churner.set_override("churner", &policy, o).unwrap();
    }
    assert_eq!(churner.tier_history().len(), MAX_TIER_HISTORY);
    assert!(churner.tier_history()[0].sequence > 1);

    let read = Arc::new(ReadModel::new());
    read.publish(
        &[
            ("big", &big),
            ("small", &small),
            ("lapser", &lapser),
            ("churner", &churner),
        ],
        &policy,
    );
    let histories = vec![
        ("big", big.tier_history().to_vec()),
        ("small", small.tier_history().to_vec()),
        ("lapser", lapser.tier_history().to_vec()),
        ("churner", churner.tier_history().to_vec()),
    ];
    World {
        read,
        policy,
        t0,
        big_then,
        big_now,
        big_sla,
        histories,
    }
}

impl World {
    fn history(&self, id: &str) -> &[TierStep] {
        &self.histories.iter().find(|(c, _)| *c == id).unwrap().1
    }
}

/// The command failed with `code`, nothing on stdout, and `needle` on
/// stderr.
fn refused(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
}

fn json(text: &str) -> serde_json::Value {
    assert_eq!(text.lines().count(), 1, "one JSON object: {text}");
    serde_json::from_str(text).unwrap()
}

fn cells(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[test]
fn complaint_lists_in_each_format() {
    let w = world();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = serve(&rt, w.read.clone());
    let priority = |tier: &str| {
        let i = w.policy.tier_index(tier).unwrap();
        w.policy.tiers()[i].priority.to_string()
    };
    let opened = hours(w.t0, 1);
    let deadline = hours(opened, i64::from(w.big_sla));

    // The queue: big (the better tier now) first, oldest opening first.
    let text = ok(&tierctl(&addr, &["complaints", "queue"]));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(
            "customer  complaint         severity  tier  priority  opened                deadline              deadline tier/SLA  overdue"
        ),
        "{text}"
    );
    assert_eq!(lines.len(), 2 + 3, "{text}");
    assert_eq!(
        cells(lines[2]),
        [
            "big",
            "big-complaint1",
            "low",
            &w.big_now,
            &priority(&w.big_now),
            &opened.to_string(),
            &deadline.to_string(),
            &format!("{}/{}h", w.big_then, w.big_sla),
            "yes",
        ]
    );
    assert_eq!(cells(lines[3])[..3], ["big", "big-complaint2", "critical"]);
    assert_eq!(cells(lines[3])[8], "no");
    assert_eq!(cells(lines[4])[..3], ["small", "small-complaint1", "high"]);

    // Cut: the total is said.
    let text = ok(&tierctl(&addr, &["complaints", "queue", "--limit", "2"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2 + 2 + 1, "{text}");
    assert_eq!(
        lines[4],
        "showing 2 of 3 open complaints (--all lists every one)"
    );

    // Overdue: big's first complaint only, not cut.
    let text = ok(&tierctl(&addr, &["complaints", "overdue"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2 + 1, "{text}");
    assert_eq!(cells(lines[2])[..2], ["big", "big-complaint1"]);

    // JSON: the whole answer, total included.
    let v = json(&ok(&tierctl(
        &addr,
        &["complaints", "queue", "--limit", "1", "-o", "json"],
    )));
    assert_eq!(v["total"], 3);
    let items = v["complaints"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["complaint_id"], "big-complaint1");
    assert_eq!(items[0]["overdue"], true);
    assert_eq!(items[0]["deadline_tier"], w.big_then.as_str());
    assert_eq!(items[0]["sla_hours"], w.big_sla);
    assert_eq!(items[0]["deadline"], deadline.to_string());
    let v = json(&ok(&tierctl(
        &addr,
        &["complaints", "overdue", "-o", "json"],
    )));
    assert_eq!(v["total"], 1);
    assert_eq!(v["complaints"][0]["customer_id"], "big");

    // CSV: header and rows on stdout, the cut on stderr.
    let out = tierctl(&addr, &["complaints", "queue", "-o", "csv", "--limit", "2"]);
    let text = ok(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "customer_id,complaint_id,severity,category,customer_tier,priority,opened_at,deadline,deadline_tier,sla_hours,overdue"
    );
    assert_eq!(
        lines[1],
        format!(
            "big,big-complaint1,low,quality,{},{},{opened},{deadline},{},{},true",
            w.big_now,
            priority(&w.big_now),
            w.big_then,
            w.big_sla
        )
    );
    assert_eq!(lines.len(), 3);
    assert_eq!(
        stderr(&out),
        "showing 2 of 3 open complaints (--all lists every one)\n"
    );
    let text = ok(&tierctl(&addr, &["complaints", "overdue", "-o", "csv"]));
    assert_eq!(text.lines().count(), 2);
    // --all walks the pages (of one here): every complaint, in order, no cut.
    let out = tierctl(
        &addr,
        &["complaints", "queue", "-o", "csv", "--limit", "1", "--all"],
    );
    let all: Vec<String> = ok(&out)
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(2).collect::<Vec<_>>().join(","))
        .collect();
    assert_eq!(
        all,
        [
            "big,big-complaint1",
            "big,big-complaint2",
            "small,small-complaint1"
        ]
    );
    assert_eq!(stderr(&out), "");
    let v = json(&ok(&tierctl(
        &addr,
        &["complaints", "queue", "--limit", "1", "--all", "-o", "json"],
    )));
    assert_eq!(v["total"], 3);
    assert_eq!(v["complaints"].as_array().unwrap().len(), 3);

    // Refused before any call.
    refused(
        &tierctl(&addr, &["complaints", "queue", "--limit", "0"]),
        2,
        "invalid value '0' for '--limit <LIMIT>'",
    );
    refused(
        &tierctl(&addr, &["complaints", "queue", "--limit", "10001"]),
        2,
        "--limit",
    );
    refused(&tierctl(&addr, &["complaints", "late"]), 2, "'late'");
}

#[test]
fn history_and_the_tier_at_an_instant() {
    let w = world();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = serve(&rt, w.read.clone());
    let lapser = w.history("lapser");

    // Every change, oldest first, complete.
    let text = ok(&tierctl(&addr, &["history", "lapser"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        cells(lines[0]),
        ["at", "change", "score", "cause", "overridden", "sequence"]
    );
    assert_eq!(lines.len(), 2 + lapser.len(), "{text}");
    for (line, s) in lines[2..].iter().zip(lapser) {
        let change = tier_move(s.from.as_deref().unwrap_or(""), &s.to);
        let cause = cause_name(tier_wire::tier_changed::cause_to_proto(s.cause) as i32);
        let expected = format!(
            "{} {change} {} {cause} no {}",
            s.at,
            fixed(s.score, 2),
            s.sequence
        );
        assert_eq!(cells(line), cells(&expected), "{text}");
    }
    assert!(lines[2].contains("(none) -> "), "{text}");
    assert!(!text.contains("truncated"), "{text}");

    let v = json(&ok(&tierctl(&addr, &["history", "lapser", "-o", "json"])));
    assert_eq!(v["customer_id"], "lapser");
    assert_eq!(v["truncated"], false);
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), lapser.len());
    assert_eq!(steps[0]["from_tier"], "");
    assert_eq!(
        steps[steps.len() - 1]["cause"],
        "CHANGE_CAUSE_TIME",
        "the last drop"
    );

    // The churner's oldest changes were dropped: said, with from when the
    // history is complete.
    let churner = w.history("churner");
    let oldest = churner[0].at;
    let text = ok(&tierctl(&addr, &["history", "churner"]));
    assert_eq!(text.lines().count(), 2 + MAX_TIER_HISTORY + 1);
    assert!(
        text.ends_with(&format!(
            "truncated: older changes were dropped; the history is complete from {oldest}\n"
        )),
        "{text}"
    );
    assert!(text.lines().nth(2).unwrap().contains(" yes "), "pinned");
    let v = json(&ok(&tierctl(&addr, &["history", "churner", "-o", "json"])));
    assert_eq!(v["truncated"], true);
    assert_eq!(v["steps"].as_array().unwrap().len(), MAX_TIER_HISTORY);

    // --at: the last change at or before the instant.
    let (first, second) = (&lapser[1], &lapser[2]);
    let just_before = Timestamp::from_millis(second.at.millis() - 1000);
    let at = just_before.to_string();
    let text = ok(&tierctl(&addr, &["history", "lapser", "--at", &at]));
    let cause = cause_name(tier_wire::tier_changed::cause_to_proto(first.cause) as i32);
    assert_eq!(
        text,
        format!(
            "customer  lapser\n\
             at        {at}\n\
             tier      {}\n\
             since     {}\n\
             set by    {} ({cause}, score {}, sequence {})\n",
            first.to,
            first.at,
            tier_move(first.from.as_deref().unwrap_or(""), &first.to),
            fixed(first.score, 2),
            first.sequence
        )
    );
    let v = json(&ok(&tierctl(
        &addr,
        &["history", "lapser", "--at", &at, "-o", "json"],
    )));
    assert_eq!(
        (&v["known"], &v["tier"]),
        (&serde_json::json!(true), &serde_json::json!(first.to))
    );
    assert_eq!(v["step"]["sequence"], first.sequence.to_string());

    // Before the first tier: known, none yet; a date is the start of
    // that day in the policy's zone (Asia/Shanghai: 16:00 UTC the day
    // before), as tierd's days are.
    let text = ok(&tierctl(
        &addr,
        &["history", "lapser", "--at", "2020-01-01"],
    ));
    assert!(text.contains("at        2019-12-31T16:00:00Z\n"), "{text}");
    assert!(
        text.contains("tier      none (the customer had no tier yet)\n"),
        "{text}"
    );

    // Before the churner's kept history: not known, and from when it is.
    let text = ok(&tierctl(
        &addr,
        &["history", "churner", "--at", "2024-02-01"],
    ));
    assert_eq!(
        text,
        format!(
            "customer               churner\n\
             at                     2024-01-31T16:00:00Z\n\
             tier                   not known (the instant is before the oldest change kept)\n\
             history complete from  {oldest}\n"
        )
    );
    let v = json(&ok(&tierctl(
        &addr,
        &["history", "churner", "--at", "2024-02-01", "-o", "json"],
    )));
    assert_eq!(v["known"], false);
    assert_eq!(v["tier"], "");
    assert_eq!(v["known_from"], oldest.to_string());
    // At the oldest change kept, it is known again.
    let text = ok(&tierctl(
        &addr,
        &["history", "churner", "--at", &oldest.to_string()],
    ));
    assert!(
        text.contains(&format!("tier      {}\n", churner[0].to)),
        "{text}"
    );

    // Refusals: bad instants before any call, an unknown customer by the
    // server.
    refused(
        &tierctl(&addr, &["history", "lapser", "--at", "2026-02-31"]),
        2,
        "invalid value '2026-02-31' for '--at <TIME>': expected an RFC 3339 time or YYYY-MM-DD, got \"2026-02-31\"",
    );
    refused(
        &tierctl(&addr, &["history", "lapser", "--at", "last tuesday"]),
        2,
        "expected an RFC 3339 time or YYYY-MM-DD",
    );
    refused(
        &tierctl(&addr, &["history", "nobody"]),
        1,
        "error: NOT_FOUND: ",
    );
    // CSV: the JSON's fields as columns, a row per change.
    let csv = ok(&tierctl(&addr, &["history", "lapser", "-o", "csv"]));
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(
        header.contains("to_tier") && header.contains("cause"),
        "{csv}"
    );
    let rows: Vec<&str> = lines.collect();
    let json = ok(&tierctl(&addr, &["history", "lapser", "-o", "json"]));
    let changes = json.matches("\"to_tier\"").count();
    assert!(changes > 0);
    assert_eq!(rows.len(), changes, "{csv}");
}

#[test]
fn movers_of_a_period() {
    let w = world();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = serve(&rt, w.read.clone());
    // `--since 2026-03-02`: the start of that day in the policy's zone.
    let calendar = w.policy.calendar();
    let day_start = |y, m, d| calendar.day_start(calendar.day(date(y, m, d)));
    let since = day_start(2026, 3, 2);
    assert_eq!(since.millis(), date(2026, 3, 2).millis() - 8 * HOUR);
    let rank = |t: &str| w.policy.tier_index(t);

    // Expected: every downgrade since `since`, newest first, ties by id.
    let mut down: Vec<(&str, &TierStep)> = w
        .histories
        .iter()
        .flat_map(|(id, h)| h.iter().map(move |s| (*id, s)))
        .filter(|(_, s)| s.at >= since)
        .filter(|(_, s)| {
            matches!((s.from.as_deref().and_then(rank), rank(&s.to)), (Some(f), Some(t)) if t > f)
        })
        .collect();
    down.sort_by(|(a, x), (b, y)| y.at.cmp(&x.at).then_with(|| a.cmp(b)));
    assert!(down.len() >= 3, "{down:?}");
    assert!(
        down.iter().any(|(id, _)| *id == "big"),
        "the critical complaint"
    );

    let text = ok(&tierctl(
        &addr,
        &["movers", "--since", "2026-03-02", "--direction", "down"],
    ));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "customer  at                    change  cause        score"
    );
    assert_eq!(lines.len(), 2 + down.len(), "{text}");
    for (line, (id, s)) in lines[2..].iter().zip(&down) {
        let cause = cause_name(tier_wire::tier_changed::cause_to_proto(s.cause) as i32);
        let expected = format!(
            "{id} {} {} {cause} {}",
            s.at,
            tier_move(s.from.as_deref().unwrap_or(""), &s.to),
            fixed(s.score, 2)
        );
        assert_eq!(cells(line), cells(&expected), "{text}");
    }

    // Cut, with the total.
    let text = ok(&tierctl(
        &addr,
        &[
            "movers",
            "--since",
            "2026-03-01T16:00:00Z",
            "--direction",
            "down",
            "--limit",
            "2",
        ],
    ));
    assert_eq!(text.lines().count(), 2 + 2 + 1);
    assert!(
        text.ends_with(&format!(
            "showing 2 of {} downgrades (--all lists every one)\n",
            down.len()
        )),
        "{text}"
    );
    // --all: pages of two, walked to the end: the whole list, uncut.
    let all = ok(&tierctl(
        &addr,
        &[
            "movers",
            "--since",
            "2026-03-02",
            "--direction",
            "down",
            "--limit",
            "2",
            "--all",
        ],
    ));
    let whole = ok(&tierctl(
        &addr,
        &["movers", "--since", "2026-03-02", "--direction", "down"],
    ));
    assert_eq!(all, whole);

    // --until bounds the period; nobody moved up.
    let until = down[0].1.at.to_string();
    let v = json(&ok(&tierctl(
        &addr,
        &[
            "movers",
            "--since",
            "2026-03-02",
            "--until",
            &until,
            "--direction",
            "down",
            "-o",
            "json",
        ],
    )));
    assert_eq!(v["total"], down.len() - 1, "until is exclusive");
    let movers = v["movers"].as_array().unwrap();
    assert_eq!(movers[0]["customer_id"], down[1].0);
    assert_eq!(movers[0]["step"]["at"], down[1].1.at.to_string());
    assert_eq!(
        ok(&tierctl(
            &addr,
            &["movers", "--since", "2026-03-02", "--direction", "up"]
        )),
        "no upgrades in the period\n"
    );

    // Any direction: the churner's 2024 pins are there too.
    let v = json(&ok(&tierctl(
        &addr,
        &[
            "movers",
            "--since",
            "2024-01-01",
            "--until",
            "2025-01-01",
            "-o",
            "json",
        ],
    )));
    let in_2024 = w
        .history("churner")
        .iter()
        .filter(|s| s.at < date(2025, 1, 1))
        .count();
    assert_eq!(v["total"], in_2024);
    assert_eq!(
        v["movers"].as_array().unwrap().len(),
        100,
        "the server's default limit"
    );

    // Refusals.
    refused(
        &tierctl(
            &addr,
            &["movers", "--since", "2026-03-02", "--direction", "sideways"],
        ),
        2,
        "invalid value 'sideways' for '--direction <DIRECTION>'",
    );
    refused(
        &tierctl(
            &addr,
            &["movers", "--since", "2026-03-02", "--direction", "sideways"],
        ),
        2,
        "[possible values: up, down, any]",
    );
    refused(
        &tierctl(&addr, &["movers", "--since", "2026-13-01"]),
        2,
        "invalid value '2026-13-01' for '--since <TIME>': expected an RFC 3339 time or YYYY-MM-DD",
    );
    refused(&tierctl(&addr, &["movers"]), 2, "--since <TIME>");
    refused(
        &tierctl(
            &addr,
            &["movers", "--since", "2026-03-02", "--until", "2026-03-01"],
        ),
        1,
        "error: --until (2026-02-28T16:00:00Z) is before --since (2026-03-01T16:00:00Z)\n",
    );

    // A day's movers are that business day's: the lapser's first drop by
    // time is decided at the start of a day in Asia/Shanghai (16:00 UTC
    // the day before), so `--since` that local date finds it, and
    // `--until` it does not (as UTC midnights, both would be 8 h late).
    let drop = w
        .history("lapser")
        .iter()
        .find(|s| s.cause == tier_core::state::Cause::Time)
        .expect("the lapser drops by time");
    let (y, m, d) = calendar.day(drop.at).ymd();
    assert_eq!(day_start(y, m, d), drop.at, "a drop at a day's start");
    let (date_of, next) = (
        format!("{y:04}-{m:02}-{d:02}"),
        calendar.day(drop.at).plus(1).ymd(),
    );
    let next = format!("{:04}-{:02}-{:02}", next.0, next.1, next.2);
    let v = json(&ok(&tierctl(
        &addr,
        &[
            "movers", "--since", &date_of, "--until", &next, "-o", "json",
        ],
    )));
    let movers = v["movers"].as_array().unwrap();
    assert!(
        movers
            .iter()
            .any(|m| m["customer_id"] == "lapser" && m["step"]["at"] == drop.at.to_string()),
        "{v}"
    );
    let v = json(&ok(&tierctl(
        &addr,
        &[
            "movers",
            "--since",
            "2026-01-01",
            "--until",
            &date_of,
            "-o",
            "json",
        ],
    )));
    assert!(
        v["movers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["step"]["at"] != drop.at.to_string()),
        "{v}"
    );
}
