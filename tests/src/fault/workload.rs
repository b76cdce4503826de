//! A seeded workload with known truth, for the fault harness.
//!
//! Valid events come from [`tier_core::sim`] (a generated year of business
//! for `customers` customers ending at `now`). On top of them:
//!
//! - exact duplicates: an event re-sent later (new offsets, same
//!   `event_id`; a third of them re-encoded in another wire format);
//! - out-of-order events: some events are published later than their
//!   customer's subsequent events, so their `occurred_at` is earlier than
//!   that of events already published for the customer;
//! - late events: valid events from before the 12-month window at `now`
//!   (stale: they change nothing);
//! - malformed records of every [`RejectReason`].
//!
//! Every customer is pinned to one input topic and every record is keyed by
//! customer id, so a customer's events share one partition and keep their
//! order. [`Workload::self_check`] runs tierd's own [`Decoder`] over every
//! record, so the truth recorded here is what tierd must conclude.

use std::collections::{BTreeMap, HashMap};

use prost::Message as _;
use tier_core::policy::Policy;
use tier_core::projection::stable_hash;
use tier_core::sim::{self, SplitMix64};
use tier_core::{Event, EventKind, Money, RejectReason, Timestamp, ValidationLimits};
use tier_proto::ev::{self, customer_event::Payload};
use tier_wire::decode::{Decoder, encode_confluent, encode_json, encode_protobuf, event_to_proto};

const DAY_MS: i64 = 86_400_000;

/// How big, and which.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    pub seed: u64,
    /// Records to publish in total (approximately: the generator may fall
    /// a little short).
    pub events: usize,
    pub customers: usize,
    /// Processing time tierd runs at (`--frozen-now-ms`).
    pub now: Timestamp,
    /// Number of input topics customers are spread over.
    pub topics: usize,
    /// Also publish `CustomerAssessed` events (about 2% of the records),
    /// for tierd running [`super::harness_policy`]; without them the
    /// workload is for the default policy.
    pub assessments: bool,
}

impl WorkloadSpec {
    /// The policy tierd runs with for this workload.
    pub fn policy(&self) -> Policy {
        if self.assessments {
            super::harness_policy().clone()
        } else {
            Policy::default_policy()
        }
    }
}

/// What tierd must make of a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Truth {
    /// Decodes to exactly this event (which the fold may still find to be a
    /// duplicate or stale).
    Valid(Box<Event>),
    /// Rejected with this reason, dead-lettered.
    Malformed(RejectReason),
}

/// Why a record is in the workload (for the figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flavor {
    Fresh,
    /// Moved later in publish order than its customer's later events.
    Delayed,
    Duplicate,
    Late,
    Malformed,
}

/// One record to publish.
#[derive(Debug, Clone)]
pub struct WorkRecord {
    /// Index of the input topic.
    pub topic: usize,
    pub key: Option<String>,
    /// `None` publishes a tombstone.
    pub payload: Option<Vec<u8>>,
    pub truth: Truth,
    pub flavor: Flavor,
}

/// The records in publish order, and what is known about them.
#[derive(Debug, Clone)]
pub struct Workload {
    pub spec: WorkloadSpec,
    pub records: Vec<WorkRecord>,
    /// Every customer the generator knows (some may only have stale or
    /// malformed records).
    pub customers: Vec<String>,
    pub stats: WorkloadStats,
}

/// Counts by kind, for the figures.
#[derive(Debug, Clone, Default)]
pub struct WorkloadStats {
    pub fresh: usize,
    pub delayed: usize,
    pub duplicates: usize,
    pub late: usize,
    /// Valid records whose `occurred_at` is earlier than that of an event
    /// published before them for the same customer.
    pub out_of_order: usize,
    pub malformed: BTreeMap<&'static str, usize>,
}

impl WorkloadStats {
    pub fn malformed_total(&self) -> usize {
        self.malformed.values().sum()
    }
}

/// The input topic index a customer is pinned to.
pub fn topic_of(customer_id: &str, topics: usize) -> usize {
    (stable_hash(customer_id) % topics.max(1) as u64) as usize
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WireKind {
    Protobuf,
    Json,
    Confluent,
}

fn encode(msg: &ev::CustomerEvent, wire: WireKind) -> Vec<u8> {
    match wire {
        WireKind::Protobuf => encode_protobuf(msg),
        WireKind::Json => encode_json(msg),
        WireKind::Confluent => encode_confluent(msg, 7),
    }
}

fn pick_wire(rng: &mut SplitMix64) -> WireKind {
    let x = rng.unit();
    if x < 0.8 {
        WireKind::Protobuf
    } else if x < 0.92 {
        WireKind::Json
    } else {
        WireKind::Confluent
    }
}

/// A record with the position it is published at (sorted at the end).
struct Placed {
    at: f64,
    record: WorkRecord,
}

impl Workload {
    /// Build the workload; deterministic in `spec`.
    pub fn build(spec: WorkloadSpec) -> Self {
        let mut rng = SplitMix64::new(spec.seed ^ 0x5eed_fa17);
        let topics = spec.topics.max(1);
        let total = spec.events.max(100);
        let duplicates = total * 3 / 100;
        let late = total / 100;
        let malformed = (total / 100).max(RejectReason::ALL.len() * 2);
        let base_target = total.saturating_sub(duplicates + late + malformed).max(1);
        let customers = spec.customers.max(1);

        // The valid base stream, time-ordered.
        let orders = (base_target.saturating_sub(customers) as f64 / 3.0 * 1.1) as usize + 10;
        let mut w = sim::Workload::new(customers, orders, spec.now);
        w.seed = spec.seed;
        w.zipf_s = 0.8;
        w.id_prefix = format!("cust{}-", spec.seed % 1000);
        let mut base = w.generate();
        base.truncate(base_target);
        let customer_ids: Vec<String> = (0..customers)
            .map(|n| format!("{}{n:06}", w.id_prefix))
            .collect();

        let mut placed: Vec<Placed> = Vec::with_capacity(total + 16);
        let n = base.len() as f64;
        let mut stats = WorkloadStats::default();
        let mut assessed = 0usize;
        for (i, event) in base.into_iter().enumerate() {
            // An account manager's judgement of the customer, right after
            // one of its events (later judgements replace earlier ones; a
            // 30-day validity makes some expire within the year).
            if spec.assessments && rng.chance(0.02) {
                let judged = Event {
                    event_id: format!("assess-{}-{assessed}", spec.seed),
                    customer_id: event.customer_id.clone(),
                    occurred_at: Timestamp(event.occurred_at.millis() + 60_000),
                    source: "crm".into(),
                    kind: EventKind::CustomerAssessed {
                        indicator: "potential".into(),
                        value: rng.range(1, 6),
                        assessed_by: format!("am-{}", assessed % 7),
                        note: String::new(),
                    },
                };
                assessed += 1;
                let wire = pick_wire(&mut rng);
                placed.push(Placed {
                    at: i as f64 + 0.5,
                    record: WorkRecord {
                        topic: topic_of(&judged.customer_id, topics),
                        key: Some(judged.customer_id.clone()),
                        payload: Some(encode(&event_to_proto(&judged, "CNY"), wire)),
                        truth: Truth::Valid(Box::new(judged)),
                        flavor: Flavor::Fresh,
                    },
                });
            }
            let mut at = i as f64;
            let mut flavor = Flavor::Fresh;
            // Out of order: published later than the customer's next events.
            if rng.chance(0.03) {
                at += rng.range(50, 3000) as f64 + 0.5;
                flavor = Flavor::Delayed;
            }
            let wire = pick_wire(&mut rng);
            let msg = event_to_proto(&event, "CNY");
            let record = WorkRecord {
                topic: topic_of(&event.customer_id, topics),
                key: Some(event.customer_id.clone()),
                payload: Some(encode(&msg, wire)),
                truth: Truth::Valid(Box::new(event)),
                flavor,
            };
            placed.push(Placed { at, record });
        }

        // Exact duplicates, re-sent later.
        let originals = placed.len();
        for _ in 0..duplicates {
            if originals == 0 {
                break;
            }
            let src = rng.range(0, originals as i64) as usize;
            let at = placed[src].at + rng.range(1, 5000) as f64 + 0.25;
            let mut record = placed[src].record.clone();
            record.flavor = Flavor::Duplicate;
            if rng.chance(0.33)
                && let Truth::Valid(ev) = &record.truth
            {
                let wire = match pick_wire(&mut rng) {
                    WireKind::Protobuf => WireKind::Json,
                    WireKind::Json => WireKind::Confluent,
                    WireKind::Confluent => WireKind::Protobuf,
                };
                record.payload = Some(encode(&event_to_proto(ev, "CNY"), wire));
            }
            placed.push(Placed { at, record });
        }

        // Late events: valid, but before the window at `now` (stale when the
        // customer's watermark is already near `now`).
        let policy = spec.policy();
        let rules = policy.fold_rules();
        let window_begins = rules.calendar.day_start(rules.window_start(spec.now));
        for k in 0..late {
            let customer = &customer_ids[rng.range(0, customers as i64) as usize];
            let occurred_at = Timestamp(window_begins.millis() - rng.range(DAY_MS, 400 * DAY_MS));
            let event = Event {
                event_id: format!("late-{}-{k}", spec.seed),
                customer_id: customer.clone(),
                occurred_at,
                source: "legacy-erp".into(),
                kind: EventKind::OrderPlaced {
                    order_id: format!("late-ord-{k}"),
                    amount: Money(rng.range(10_000, 50_000_000)),
                    cost: Some(Money(rng.range(5_000, 10_000))),
                },
            };
            let wire = pick_wire(&mut rng);
            let record = WorkRecord {
                topic: topic_of(customer, topics),
                key: Some(customer.clone()),
                payload: Some(encode(&event_to_proto(&event, "CNY"), wire)),
                truth: Truth::Valid(Box::new(event)),
                flavor: Flavor::Late,
            };
            placed.push(Placed {
                at: rng.unit() * n,
                record,
            });
        }

        // Malformed records, every class in turn.
        for k in 0..malformed {
            let reason = RejectReason::ALL[k % RejectReason::ALL.len()];
            let idx = rng.range(0, customers as i64) as usize;
            let customer = &customer_ids[idx];
            let other =
                &customer_ids[(idx + rng.range(1, customers.max(2) as i64) as usize) % customers];
            let record = malformed_record(&mut rng, &spec, k, reason, customer, other, topics);
            *stats.malformed.entry(reason.as_str()).or_insert(0) += 1;
            placed.push(Placed {
                at: rng.unit() * n,
                record,
            });
        }

        placed.sort_by(|a, b| a.at.total_cmp(&b.at));
        let records: Vec<WorkRecord> = placed.into_iter().map(|p| p.record).collect();

        let mut latest: HashMap<&str, Timestamp> = HashMap::new();
        for r in &records {
            match r.flavor {
                Flavor::Fresh => stats.fresh += 1,
                Flavor::Delayed => stats.delayed += 1,
                Flavor::Duplicate => stats.duplicates += 1,
                Flavor::Late => stats.late += 1,
                Flavor::Malformed => {}
            }
            if let Truth::Valid(ev) = &r.truth {
                let seen = latest
                    .entry(ev.customer_id.as_str())
                    .or_insert(ev.occurred_at);
                if ev.occurred_at < *seen {
                    stats.out_of_order += 1;
                }
                *seen = (*seen).max(ev.occurred_at);
            }
        }
        Self {
            spec,
            records,
            customers: customer_ids,
            stats,
        }
    }

    /// Run tierd's decoder over every record: valid ones must decode to
    /// exactly their event, malformed ones must be rejected for their
    /// reason. Returns the disagreements (empty when the truth holds).
    pub fn self_check(&self) -> Vec<String> {
        let decoder = Decoder::for_policy(&self.spec.policy(), ValidationLimits::default());
        let mut problems = Vec::new();
        for (i, r) in self.records.iter().enumerate() {
            let got = decoder.decode(
                r.key.as_deref().map(str::as_bytes),
                r.payload.as_deref(),
                self.spec.now,
            );
            match (&r.truth, got) {
                (Truth::Valid(want), Ok(d)) if d.event == **want => {}
                (Truth::Malformed(want), Err(e)) if e.reason == *want => {}
                (truth, got) => problems.push(format!(
                    "record {i} ({:?}): expected {truth:?}, the decoder says {got:?}",
                    r.flavor
                )),
            }
        }
        problems
    }
}

/// A valid order for `customer`, as a wire message.
fn order_msg(
    rng: &mut SplitMix64,
    spec: &WorkloadSpec,
    k: usize,
    customer: &str,
) -> ev::CustomerEvent {
    let event = Event {
        event_id: format!("bad-{}-{k}", spec.seed),
        customer_id: customer.to_owned(),
        occurred_at: Timestamp(spec.now.millis() - rng.range(DAY_MS, 200 * DAY_MS)),
        source: "fuzz".into(),
        kind: EventKind::OrderPlaced {
            order_id: format!("bad-ord-{k}"),
            amount: Money(rng.range(10_000, 5_000_000)),
            cost: Some(Money(rng.range(1_000, 10_000))),
        },
    };
    event_to_proto(&event, "CNY")
}

fn order_amount(msg: &mut ev::CustomerEvent) -> Option<&mut ev::Money> {
    match &mut msg.payload {
        Some(Payload::OrderPlaced(o)) => o.amount.as_mut(),
        _ => None,
    }
}

fn malformed_record(
    rng: &mut SplitMix64,
    spec: &WorkloadSpec,
    k: usize,
    reason: RejectReason,
    customer: &str,
    other: &str,
    topics: usize,
) -> WorkRecord {
    let mut msg = order_msg(rng, spec, k, customer);
    let variant = rng.range(0, 3);
    let mut key = Some(customer.to_owned());
    let mut wire = if rng.chance(0.7) {
        WireKind::Protobuf
    } else {
        WireKind::Json
    };
    let payload: Option<Vec<u8>> = match reason {
        RejectReason::Undecodable => match rng.range(0, 4) {
            // A varint that never ends.
            0 => Some(vec![0xFF; 12]),
            // A tombstone.
            1 => None,
            // Truncated JSON.
            2 => Some(format!("{{\"eventId\": \"bad-{k}\", \"customerId\": ").into_bytes()),
            // A Confluent frame naming another message (index [3]).
            _ => {
                let mut out = vec![0x00, 0, 0, 0, 7, 0x02, 0x06];
                msg.encode_raw(&mut out);
                Some(out)
            }
        },
        RejectReason::MissingField => {
            match variant {
                0 => msg.event_id.clear(),
                1 => msg.occurred_at = None,
                _ => {
                    if let Some(Payload::OrderPlaced(o)) = &mut msg.payload {
                        o.amount = None;
                    }
                }
            }
            Some(encode(&msg, wire))
        }
        RejectReason::EmptyPayload => {
            msg.payload = None;
            Some(encode(&msg, wire))
        }
        RejectReason::NegativeAmount => {
            if let Some(m) = order_amount(&mut msg) {
                m.amount_minor = -rng.range(1, 100_000);
            }
            Some(encode(&msg, wire))
        }
        RejectReason::UnknownCurrency => {
            if let Some(m) = order_amount(&mut msg) {
                m.currency = "XYZ".into();
            }
            Some(encode(&msg, wire))
        }
        RejectReason::FutureTimestamp => {
            let at = spec.now.millis() + rng.range(2 * DAY_MS, 60 * DAY_MS);
            msg.occurred_at = Some(prost_types::Timestamp {
                seconds: at / 1000,
                nanos: 0,
            });
            Some(encode(&msg, wire))
        }
        RejectReason::KeyMismatch => {
            key = Some(other.to_owned());
            Some(encode(&msg, wire))
        }
        RejectReason::InvalidField => {
            wire = WireKind::Protobuf;
            match variant {
                0 => msg.event_id = format!("bad-{k}-{}", "x".repeat(300)),
                1 => {
                    msg.payload = Some(Payload::ComplaintOpened(ev::ComplaintOpened {
                        complaint_id: format!("bad-cmp-{k}"),
                        severity: 42,
                        category: "quality".into(),
                    }));
                }
                _ => {
                    if let Some(ts) = &mut msg.occurred_at {
                        ts.nanos = 1_500_000_000;
                    }
                }
            }
            Some(encode(&msg, wire))
        }
    };
    WorkRecord {
        topic: topic_of(customer, topics),
        key,
        payload,
        truth: Truth::Malformed(reason),
        flavor: Flavor::Malformed,
    }
}
