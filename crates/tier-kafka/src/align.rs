//! Event-time alignment of the input topics.
//!
//! A customer's events come from the same partition number of every input
//! topic (all keyed by customer), and librdkafka fetches each partition at
//! its own pace: catching up on a backlog (a rebuild from offset 0, a
//! restart after an outage), a small topic is read to its end while a big
//! one is still years behind. Folded in that order, a profile update dated
//! today moves a customer's watermark to today, so its orders of two years
//! ago, still in the backlog, are stale when they arrive; and a payment
//! read ahead of the orders makes time-driven decisions without orders
//! still waiting in Kafka.
//!
//! The [`Aligner`] holds polled records and hands them on merged by event
//! time within each partition number: a record is released once no other
//! topic of its partition number can still deliver an earlier one, that is
//! every other topic of the partition number either holds a record of its
//! own (the earliest is released first), has already delivered one dated
//! as late, or is consumed to its end. Records of one topic partition keep
//! their order (offsets are committed in order). Live, every partition is
//! at its end almost always, so a record is released as soon as it is
//! polled.
//!
//! A topic partition whose end is not known (not reported yet, a topic
//! with fewer partitions, statistics turned off) is not waited for once it
//! delivered nothing for `max_hold`; one known to have records left is
//! waited for, however long the backlog takes.
//!
//! Memory is bounded by pausing, not by giving up the order. Once half of
//! `cap` records are held (a topic whose history starts years after
//! another's) and a partition number's earliest record must wait, its
//! topic partitions holding at least [`Aligner::share`] records are to be
//! paused (from three quarters, every one holding any); one is resumed
//! once it has released all it held (another topic may then wait for it),
//! and all are once a quarter of `cap` or fewer are held
//! ([`Aligner::take_flow`] says which; the pipeline pauses and resumes
//! them in librdkafka, which fetches a resumed partition from the record
//! after the last one polled, so nothing held is fetched twice). Nothing
//! is paused while fewer than half are held, nor, below three quarters, a
//! topic behind that holds fewer than a share while it waits for another:
//! a pause drops what librdkafka fetched ahead, to be fetched again. Only
//! past `cap` all the same do records go on in event-time order without
//! waiting, as they would without alignment.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tier_core::Timestamp;

/// A record handed on by [`Aligner::release`].
#[derive(Debug)]
pub(crate) struct Released<T> {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub item: T,
}

#[derive(Debug)]
struct Held<T> {
    /// The event's `occurred_at`; `None` for a record without one (a dead
    /// letter), released as soon as it heads its queue.
    at: Option<Timestamp>,
    offset: i64,
    item: T,
}

/// The records polled from one topic partition and not yet released.
#[derive(Debug)]
struct Queue<T> {
    topic: Arc<str>,
    items: VecDeque<Held<T>>,
    /// The next offset to poll (the last polled plus one).
    next_offset: Option<i64>,
    /// The event time of the last record polled from it (the last, not the
    /// latest: one record dated ahead does not stop it holding others).
    seen: Option<Timestamp>,
    /// When it last delivered a record (or, before any, when its partition
    /// number was first met).
    last_polled: Instant,
    /// Paused (to be, or already): its records must wait while the
    /// aligner holds half its cap.
    paused: bool,
}

impl<T> Queue<T> {
    fn new(topic: Arc<str>, now: Instant) -> Self {
        Self {
            topic,
            items: VecDeque::new(),
            next_offset: None,
            seen: None,
            last_polled: now,
            paused: false,
        }
    }
}

/// A topic partition to pause (`pause`) or resume, from
/// [`Aligner::take_flow`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flow {
    pub topic: Arc<str>,
    pub partition: i32,
    pub pause: bool,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Aligner<T> {
    topics: Vec<Arc<str>>,
    /// By partition number: one queue per input topic, in `topics` order.
    groups: BTreeMap<i32, Vec<Queue<T>>>,
    held: usize,
    cap: usize,
    /// Queues paused (to be, or already).
    paused: usize,
    max_hold: Duration,
    /// Pauses and resumes not taken yet, in the order they arose.
    flow: Vec<Flow>,
}

impl<T> Aligner<T> {
    pub(crate) fn new(topics: &[String], cap: usize, max_hold: Duration) -> Self {
        Self {
            topics: topics.iter().map(|t| Arc::from(t.as_str())).collect(),
            groups: BTreeMap::new(),
            held: 0,
            cap,
            paused: 0,
            max_hold,
            flow: Vec::new(),
        }
    }

    /// Topic partitions paused (to be, or already).
    pub(crate) fn paused(&self) -> usize {
        self.paused
    }

    /// The pauses and resumes due since the last call: the last word on
    /// each partition, in the order they arose.
    pub(crate) fn take_flow(&mut self) -> Vec<Flow> {
        if self.flow.is_empty() {
            return Vec::new();
        }
        let mut flow = std::mem::take(&mut self.flow);
        // Only the last word on each partition counts.
        let mut seen = std::collections::HashSet::new();
        flow.reverse();
        flow.retain(|f| seen.insert((f.topic.clone(), f.partition)));
        flow.reverse();
        flow
    }

    /// Records held.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// Drop every record held: after a rebalance every assigned partition
    /// is consumed again from the offsets processed, so they come back.
    /// The partitions paused are resumed (librdkafka keeps an
    /// application's pause across assignments).
    pub(crate) fn clear(&mut self) {
        for (partition, group) in std::mem::take(&mut self.groups) {
            for q in group.into_iter().filter(|q| q.paused) {
                self.flow.push(Flow {
                    topic: q.topic,
                    partition,
                    pause: false,
                });
            }
        }
        self.held = 0;
        self.paused = 0;
    }

    /// Hold a polled record of `topic` partition `partition` at `offset`,
    /// dated `at` (`None`: no event time).
    pub(crate) fn push(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        at: Option<Timestamp>,
        item: T,
        now: Instant,
    ) {
        let topics = &self.topics;
        let group = self
            .groups
            .entry(partition)
            .or_insert_with(|| topics.iter().map(|t| Queue::new(t.clone(), now)).collect());
        let i = match group.iter().position(|q| &*q.topic == topic) {
            Some(i) => i,
            None => {
                // A topic the pipeline was not configured with (cannot
                // happen: it subscribes to those only); aligned all the same.
                group.push(Queue::new(Arc::from(topic), now));
                group.len() - 1
            }
        };
        let q = &mut group[i];
        q.next_offset = Some(offset + 1);
        q.last_polled = now;
        if at.is_some() {
            q.seen = at;
        }
        q.items.push_back(Held { at, offset, item });
        self.held += 1;
    }

    /// Hand on, in event-time order within each partition number, at most
    /// `limit` records that can be (see the module docs); returns how many.
    /// `at_end(topic, partition, next_offset)` says whether a topic
    /// partition is consumed to its end, `None` when its end is not known
    /// (`next_offset`: the next offset to poll, `None` if nothing was
    /// polled from it since the last [`Self::clear`]).
    pub(crate) fn release(
        &mut self,
        now: Instant,
        limit: usize,
        mut at_end: impl FnMut(&str, i32, Option<i64>) -> Option<bool>,
        mut out: impl FnMut(Released<T>),
    ) -> usize {
        let mut released = 0;
        let partitions: Vec<i32> = self.groups.keys().copied().collect();
        for partition in partitions {
            released +=
                self.release_partition(partition, now, limit - released, &mut at_end, &mut out);
        }
        released
    }

    /// [`Self::release`] for one partition number: after a push, only its
    /// records can have become free.
    pub(crate) fn release_partition(
        &mut self,
        partition: i32,
        now: Instant,
        limit: usize,
        mut at_end: impl FnMut(&str, i32, Option<i64>) -> Option<bool>,
        mut out: impl FnMut(Released<T>),
    ) -> usize {
        let Some(group) = self.groups.get_mut(&partition) else {
            return 0;
        };
        let mut released = 0;
        // The pass stopped because the earliest record must wait (not at
        // the limit, nor with nothing left).
        let mut blocked = false;
        // The queue whose first record is earliest (no time first).
        while released < limit
            && let Some(i) = (0..group.len())
                .filter(|&i| !group[i].items.is_empty())
                .min_by_key(|&i| group[i].items.front().map(|h| h.at))
        {
            let head_at = group[i].items.front().and_then(|h| h.at);
            if let (Some(at), false) = (head_at, self.held > self.cap) {
                // Another topic of this partition number that may still
                // deliver an earlier record: nothing held, nothing seen
                // as late, and records left (or its end not known and
                // not silent).
                let waits = group.iter().enumerate().any(|(j, q)| {
                    j != i
                        && q.items.is_empty()
                        && q.seen.is_none_or(|s| s < at)
                        && match at_end(&q.topic, partition, q.next_offset) {
                            Some(at_end) => !at_end,
                            None => now.saturating_duration_since(q.last_polled) < self.max_hold,
                        }
                });
                if waits {
                    blocked = true;
                    break;
                }
            }
            let Some(h) = group[i].items.pop_front() else {
                break;
            };
            self.held -= 1;
            released += 1;
            let q = &mut group[i];
            if q.paused && q.items.is_empty() {
                // Another topic may wait for it now; not silent for having
                // been paused.
                q.paused = false;
                q.last_polled = now;
                self.paused -= 1;
                self.flow.push(Flow {
                    topic: q.topic.clone(),
                    partition,
                    pause: false,
                });
            }
            out(Released {
                topic: group[i].topic.clone(),
                partition,
                offset: h.offset,
                item: h.item,
            });
        }
        if blocked && self.held >= self.cap / 2 {
            // What is left must wait: pause the topic partitions that hold
            // a share of it (a topic behind, holding a record or two while
            // it waits for another behind, goes on being fetched), or, at
            // three quarters, every one that holds any (many partitions
            // ahead at once must not reach the cap).
            let share = if self.held >= self.cap / 4 * 3 {
                1
            } else {
                Self::share(self.cap)
            };
            for q in group
                .iter_mut()
                .filter(|q| !q.paused && q.items.len() >= share)
            {
                q.paused = true;
                self.paused += 1;
                self.flow.push(Flow {
                    topic: q.topic.clone(),
                    partition,
                    pause: true,
                });
            }
        } else if self.paused > 0 && self.held <= self.cap / 4 {
            self.resume_all(now);
        }
        released
    }

    /// The records a topic partition must hold to be paused under
    /// pressure: a hundredth of `cap`, at least 64 (at most a quarter of
    /// `cap`).
    pub(crate) fn share(cap: usize) -> usize {
        (cap / 100).max(64).min((cap / 4).max(1))
    }

    /// Resume every topic partition paused (`now`: the instant, from which
    /// each counts as delivering again).
    fn resume_all(&mut self, now: Instant) {
        for (&partition, group) in &mut self.groups {
            for q in group.iter_mut().filter(|q| q.paused) {
                q.paused = false;
                q.last_polled = now;
                self.flow.push(Flow {
                    topic: q.topic.clone(),
                    partition,
                    pause: false,
                });
            }
        }
        self.paused = 0;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const TOPICS: [&str; 3] = ["orders", "invoices", "customers"];
    const HOLD: Duration = Duration::from_secs(2);

    fn aligner(cap: usize) -> Aligner<&'static str> {
        let topics: Vec<String> = TOPICS.iter().map(|t| (*t).to_owned()).collect();
        Aligner::new(&topics, cap, HOLD)
    }

    fn day(d: i64) -> Option<Timestamp> {
        Some(Timestamp::from_millis(d * 86_400_000))
    }

    /// Release everything that can be, the ends as `end` says.
    fn drain_with(
        a: &mut Aligner<&'static str>,
        now: Instant,
        end: impl Fn(&str, i32) -> Option<bool>,
    ) -> Vec<&'static str> {
        let mut out = Vec::new();
        a.release(now, usize::MAX, |t, p, _| end(t, p), |r| out.push(r.item));
        out
    }

    /// [`drain_with`] with the ends of `ended` reached and all others known
    /// to have records left.
    fn drain(
        a: &mut Aligner<&'static str>,
        now: Instant,
        ended: &[(&str, i32)],
    ) -> Vec<&'static str> {
        drain_with(a, now, |t, p| Some(ended.contains(&(t, p))))
    }

    #[test]
    fn a_record_waits_for_the_topics_that_may_still_deliver_an_earlier_one() {
        let now = Instant::now();
        let mut a = aligner(1_000);
        // A profile update dated day 700 is polled first: the orders and
        // invoices of partition 0 may still hold older events.
        a.push("customers", 0, 0, day(700), "profile", now);
        assert!(drain(&mut a, now, &[]).is_empty());
        // The orders of day 10 and 20 come: still waiting for invoices.
        a.push("orders", 0, 0, day(10), "o10", now);
        a.push("orders", 0, 1, day(20), "o20", now);
        assert!(drain(&mut a, now, &[]).is_empty());
        // An invoice of day 15: the earliest of the heads goes first, as
        // far as no topic without a record may deliver an earlier one.
        a.push("invoices", 0, 0, day(15), "i15", now);
        assert_eq!(drain(&mut a, now, &[]), vec!["o10", "i15"]);
        // Invoices (last seen at day 15) may still hold events before day
        // 20: o20 waits, until invoices is at its end.
        assert_eq!(
            drain(&mut a, now, &[("invoices", 0)]),
            vec!["o20"],
            "the orders go on while the profile waits for the orders"
        );
        assert_eq!(
            drain(&mut a, now, &[("invoices", 0), ("orders", 0)]),
            vec!["profile"]
        );
        assert_eq!(a.held(), 0);
    }

    #[test]
    fn partitions_are_aligned_apart_and_a_topic_keeps_its_order() {
        let now = Instant::now();
        let mut a = aligner(1_000);
        a.push("customers", 1, 0, day(700), "p1-profile", now);
        a.push("orders", 0, 0, day(30), "p0-o30", now);
        a.push("orders", 0, 1, day(5), "p0-o5", now);
        // Partition 0 needs nothing from partition 1; within a topic
        // partition the offsets' order holds, whatever the dates.
        let all_ended: Vec<(&str, i32)> = TOPICS.iter().map(|t| (*t, 0)).collect();
        assert_eq!(drain(&mut a, now, &all_ended), vec!["p0-o30", "p0-o5"]);
        assert_eq!(a.held(), 1, "partition 1's profile still waits");
        // Releasing one partition number leaves the others alone.
        let mut out = Vec::new();
        a.release_partition(
            0,
            now,
            usize::MAX,
            |_, _, _| Some(true),
            |r| out.push(r.item),
        );
        assert!(out.is_empty());
        a.release_partition(
            1,
            now,
            usize::MAX,
            |_, _, _| Some(true),
            |r| out.push(r.item),
        );
        assert_eq!(out, vec!["p1-profile"]);
    }

    #[test]
    fn records_without_a_time_pass_at_once_and_topics_seen_as_late_do_not_hold() {
        let now = Instant::now();
        let mut a = aligner(1_000);
        a.push("orders", 0, 0, None, "dead-letter", now);
        assert_eq!(drain(&mut a, now, &[]), vec!["dead-letter"]);
        // Invoices and customers hold later records: an order of day 40
        // goes first; then i50 waits, for orders (seen up to day 40) may
        // still deliver one before it.
        a.push("invoices", 0, 0, day(50), "i50", now);
        a.push("customers", 0, 0, day(60), "c60", now);
        a.push("orders", 0, 1, day(40), "o40", now);
        assert_eq!(drain(&mut a, now, &[]), vec!["o40"]);
        assert_eq!(a.held(), 2);
        // An order of day 55 seen: i50 goes; o55 waits for invoices (seen
        // up to day 50), until invoices is at its end.
        a.push("orders", 0, 2, day(55), "o55", now);
        assert_eq!(drain(&mut a, now, &[]), vec!["i50"]);
        assert_eq!(drain(&mut a, now, &[("invoices", 0)]), vec!["o55"]);
        // c60 waits for orders (seen up to day 55) too.
        assert!(drain(&mut a, now, &[("invoices", 0)]).is_empty());
        assert_eq!(
            drain(&mut a, now, &[("invoices", 0), ("orders", 0)]),
            vec!["c60"]
        );
    }

    /// [`drain_with`] with the ends known for `ended` (reached) and
    /// `behind` (records left); others unknown.
    fn drain_known(
        a: &mut Aligner<&'static str>,
        now: Instant,
        ended: &[(&str, i32)],
        behind: &[(&str, i32)],
    ) -> Vec<&'static str> {
        drain_with(a, now, |t, p| {
            if ended.contains(&(t, p)) {
                Some(true)
            } else if behind.contains(&(t, p)) {
                Some(false)
            } else {
                None
            }
        })
    }

    #[test]
    fn a_partition_with_records_left_is_waited_for_however_long_one_of_unknown_end_is_not() {
        let start = Instant::now();
        let ended = [("invoices", 0)];
        let behind = [("orders", 0)];
        let mut a = aligner(1_000_000);
        a.push("customers", 0, 0, day(730), "profile", start);
        // Ten seconds of orders, older than the profile, in runs with
        // gaps of seconds between them (librdkafka delivers a partition in
        // chunks; the fold may pause on a slow commit): the orders topic
        // has records left, so the profile waits for all of them.
        for k in 0..100 {
            let now = start + Duration::from_millis(100 * k);
            a.push("orders", 0, k as i64, day(k as i64), "order", now);
            assert_eq!(drain_known(&mut a, now, &ended, &behind), vec!["order"]);
            let gap = now + HOLD * 3;
            assert!(
                drain_known(&mut a, gap, &ended, &behind).is_empty(),
                "at {k}"
            );
        }
        // At its end, the orders topic holds the profile no longer.
        let later = start + Duration::from_secs(60);
        assert_eq!(
            drain_known(&mut a, later, &[("invoices", 0), ("orders", 0)], &[]),
            vec!["profile"]
        );
        // A topic of unknown end that delivers nothing is not waited for
        // after `max_hold`, counted from when its partition number was
        // first met.
        let mut a = aligner(1_000);
        a.push("customers", 0, 0, day(730), "profile", start);
        assert!(drain_known(&mut a, start + HOLD / 2, &[], &[]).is_empty());
        assert_eq!(drain_known(&mut a, start + HOLD, &[], &[]), vec!["profile"]);
        // One of unknown end that keeps delivering is waited for.
        let mut a = aligner(1_000);
        a.push("customers", 0, 0, day(730), "profile", start);
        let now = start + HOLD * 2;
        a.push("orders", 0, 0, day(1), "o1", now);
        a.push("invoices", 0, 0, day(2), "i2", now);
        assert_eq!(drain_known(&mut a, now, &[], &[]), vec!["o1"]);
        assert!(drain_known(&mut a, now + HOLD / 2, &[], &[]).is_empty());
    }

    #[test]
    fn a_full_aligner_releases_in_time_order_without_waiting_and_a_limit_holds() {
        let now = Instant::now();
        let mut a = aligner(2);
        a.push("customers", 0, 0, day(700), "c700", now);
        a.push("customers", 0, 1, day(701), "c701", now);
        assert!(drain(&mut a, now, &[]).is_empty(), "at the cap, not over");
        a.push("customers", 0, 2, day(702), "c702", now);
        assert_eq!(drain(&mut a, now, &[]), vec!["c700"], "back to the cap");
        let mut out = Vec::new();
        let n = a.release(now + HOLD, 1, |_, _, _| None, |r| out.push(r.item));
        assert_eq!((n, out), (1, vec!["c701"]), "no more than the limit");
    }

    #[test]
    fn under_memory_pressure_the_partitions_that_must_wait_are_paused_and_the_order_kept() {
        let now = Instant::now();
        // Paused from 100 records held (half the cap), if holding a share
        // (50: at most a quarter of the cap); all resumed at 50.
        let mut a = aligner(200);
        assert_eq!(Aligner::<&str>::share(200), 50);
        let flow = |topic: &str, partition, pause| Flow {
            topic: Arc::from(topic),
            partition,
            pause,
        };
        let ends = |t: &str, _, _| Some(t == "invoices");
        let mut out = Vec::new();
        let mut push = |a: &mut Aligner<&'static str>, topic, partition, offset, d, item| {
            a.push(topic, partition, offset, day(d), item, now);
            a.release_partition(partition, now, usize::MAX, ends, |r| out.push(r.item));
        };
        // Profiles years ahead of the orders, which have records left.
        for k in 0..99 {
            push(&mut a, "customers", 0, k, 700, "profile");
        }
        assert!(a.take_flow().is_empty(), "below half the cap: no pause");
        push(&mut a, "customers", 0, 99, 700, "profile");
        assert_eq!(a.take_flow(), vec![flow("customers", 0, true)]);
        assert_eq!(a.paused(), 1);
        // Paused, not given up: the profiles wait for the orders; an order
        // that can go goes, and its topic is not paused.
        push(&mut a, "orders", 0, 0, 1, "o1");
        assert!(a.take_flow().is_empty());
        // The orders pass day 700: the profiles go, and their topic,
        // emptied, is resumed (another might wait for it now).
        push(&mut a, "orders", 0, 1, 800, "o800");
        assert_eq!(a.take_flow(), vec![flow("customers", 0, false)]);
        assert_eq!(a.paused(), 0);
        assert_eq!(&out[..3], ["o1", "profile", "profile"]);
        assert_eq!(out.len(), 101, "o1 and the profiles; o800 still waits");

        // Under pressure, a topic behind that holds a record while it
        // waits for another behind is not paused: it must go on.
        let mut a = aligner(200);
        for k in 0..100 {
            a.push("customers", 1, k, day(700), "p1", now);
        }
        drain_with(&mut a, now, |_, _| Some(false));
        assert_eq!(a.take_flow(), vec![flow("customers", 1, true)]);
        a.push("orders", 0, 0, day(5), "o5", now);
        drain_with(&mut a, now, |_, _| Some(false));
        assert!(a.take_flow().is_empty(), "orders of partition 0 go on");
        // A pass cut short by the batch limit pauses nothing: its records
        // can go.
        for k in 0..70 {
            a.push("invoices", 2, k, day(5), "i", now);
        }
        a.release(now, 1, |_, _, _| Some(true), |_| {});
        assert!(a.take_flow().is_empty(), "cut by the limit, not waiting");
        // Partition 1 drains to a quarter of the cap or less, partly (a
        // limit): all paused are resumed.
        drain_with(&mut a, now, |_, p| Some(p != 1));
        let mut n = 0;
        a.release(now, 60, |_, _, _| Some(true), |_| n += 1);
        assert_eq!(n, 60);
        assert_eq!(a.take_flow(), vec![flow("customers", 1, false)]);
        assert_eq!(a.paused(), 0);
        // Paused again, then cleared by a rebalance before the pause was
        // taken: the last word, a resume, counts.
        for k in 0..100 {
            a.push("customers", 3, k, day(701), "profile", now);
        }
        drain_with(&mut a, now, |_, _| Some(false));
        a.clear();
        assert_eq!(a.take_flow(), vec![flow("customers", 3, false)]);
        assert_eq!(a.paused(), 0);
    }

    #[test]
    fn from_three_quarters_every_partition_that_must_wait_is_paused() {
        let now = Instant::now();
        let mut a = aligner(200);
        for k in 0..100 {
            a.push("customers", 1, k, day(700), "p1", now);
            a.release_partition(1, now, usize::MAX, |_, _, _| Some(false), |_| {});
        }
        assert_eq!(a.paused(), 1, "a share held at half the cap");
        // Many partitions ahead, each below a share: from 150 held, the
        // next that must wait is paused, whatever it holds.
        let mut paused_at = None;
        for k in 0..60 {
            a.push("customers", 2, k, day(700), "p2", now);
            a.release_partition(2, now, usize::MAX, |_, _, _| Some(false), |_| {});
            if paused_at.is_none() && a.paused() == 2 {
                paused_at = Some(a.held());
            }
        }
        assert_eq!(paused_at, Some(150));
    }

    #[test]
    fn clear_drops_what_is_held() {
        let now = Instant::now();
        let mut a = aligner(10);
        a.push("customers", 0, 0, day(700), "c", now);
        a.clear();
        assert_eq!(a.held(), 0);
        assert!(drain(&mut a, now + HOLD, &[]).is_empty());
    }
}
