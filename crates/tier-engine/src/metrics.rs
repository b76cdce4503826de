//! Metric names of the ingest and publish paths. Every name is prefixed
//! `tierd_`; counters end in `_total`. Recorded only through this module.

pub const EVENTS_CONSUMED: &str = "tierd_events_consumed_total";
pub const EVENTS_APPLIED: &str = "tierd_events_applied_total";
pub const EVENTS_REJECTED: &str = "tierd_events_rejected_total";
pub const EVENTS_DUPLICATE: &str = "tierd_events_duplicate_total";
pub const EVENTS_STALE: &str = "tierd_events_stale_total";
pub const BATCH_COMMIT_SECONDS: &str = "tierd_batch_commit_duration_seconds";
pub const BATCH_SIZE: &str = "tierd_batch_records";
/// Customer states written by commits (a customer a batch touched is
/// written whole, once per batch).
pub const STATES_WRITTEN: &str = "tierd_states_written_total";
/// Bytes of those states as encoded (before the store compresses them,
/// about half as many reach the disk): against the records consumed,
/// what one record costs the store in writes.
pub const STATE_BYTES_WRITTEN: &str = "tierd_state_bytes_written_total";
pub const CONSUMER_LAG: &str = "tierd_consumer_lag";
/// Input partitions paused for being ahead of their partition number's
/// other topics while catching up.
pub const ALIGN_PAUSED: &str = "tierd_align_paused_partitions";
pub const TIER_CHANGES: &str = "tierd_tier_changes_total";
pub const CUSTOMERS_PER_TIER: &str = "tierd_customers";
pub const OUTBOX_BACKLOG: &str = "tierd_outbox_backlog";
pub const OUTBOX_PUBLISHED: &str = "tierd_outbox_published_total";
pub const RETRIES: &str = "tierd_retries_total";
pub const OFFSET_RESETS: &str = "tierd_offset_resets_total";
/// Customers due for a time-driven decision the sweeper has not reached.
pub const SWEEP_BACKLOG: &str = "tierd_sweep_backlog";
/// Customers advanced by sweeps.
pub const SWEPT: &str = "tierd_swept_customers_total";
/// Customers with a foreseeable time-driven downgrade announced.
pub const AT_RISK: &str = "tierd_customers_at_risk";
/// Share of customers rescored under the policy in force (1 when done).
pub const POLICY_RESCORE_PROGRESS: &str = "tierd_policy_rescore_progress";
/// Open complaints past their resolution deadline, by the tier that set it.
pub const COMPLAINTS_OVERDUE: &str = "tierd_complaints_overdue";
/// Commands (overrides, policy changes) applied, by kind and outcome.
pub const COMMANDS: &str = "tierd_commands_total";

/// Buckets for the commit latency histogram, in seconds.
pub const COMMIT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Buckets for batch sizes, in records.
pub const BATCH_BUCKETS: &[f64] = &[1.0, 10.0, 100.0, 1_000.0, 5_000.0, 10_000.0, 50_000.0];

/// Describe every metric once (help texts for /metrics).
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        EVENTS_CONSUMED,
        "Records consumed, by topic and event type."
    );
    describe_counter!(
        EVENTS_APPLIED,
        "Events that changed a projection, by event type."
    );
    describe_counter!(EVENTS_REJECTED, "Records dead-lettered, by reason.");
    describe_counter!(EVENTS_DUPLICATE, "Events ignored as re-sent duplicates.");
    describe_counter!(EVENTS_STALE, "Events ignored as older than the window.");
    describe_histogram!(
        BATCH_COMMIT_SECONDS,
        "Latency of one atomic state + offsets + outbox commit."
    );
    describe_histogram!(BATCH_SIZE, "Records per processed batch.");
    describe_counter!(
        STATES_WRITTEN,
        "Customer states written by commits (each customer a batch touched, whole, once)."
    );
    describe_counter!(
        STATE_BYTES_WRITTEN,
        "Bytes of customer state written by commits, as encoded (before the store compresses them)."
    );
    describe_gauge!(
        CONSUMER_LAG,
        "Records behind the partition's high watermark, by topic and partition."
    );
    describe_gauge!(
        ALIGN_PAUSED,
        "Input partitions paused while catching up for being ahead of their partition number's other topics."
    );
    describe_counter!(TIER_CHANGES, "Tier changes, by from and to tier.");
    describe_gauge!(CUSTOMERS_PER_TIER, "Customers per tier.");
    describe_gauge!(
        OUTBOX_BACKLOG,
        "Tier changes committed but not yet acknowledged by the broker."
    );
    describe_counter!(
        OUTBOX_PUBLISHED,
        "Tier changes published to the tier-changes topic."
    );
    describe_gauge!(
        COMPLAINTS_OVERDUE,
        "Open complaints past their resolution deadline, by the tier whose SLA set it."
    );
    describe_counter!(RETRIES, "Retried operations, by operation and reason.");
    describe_counter!(
        OFFSET_RESETS,
        "Stored offsets reset because the log no longer has them, by topic."
    );
}
