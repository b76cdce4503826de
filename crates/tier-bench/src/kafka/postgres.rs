//! The peer a capable team would build instead of tierd: the same bare
//! consumer, each poll batch decoded (tierd's own decoder) and
//! pre-aggregated per customer (orders, amounts, costs, cancellations,
//! returns, invoices, payments, complaints, profile updates, last event
//! time), then upserted into PostgreSQL projections with ONE statement per
//! batch (`INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE`) that
//! also stores the consumed offsets (a data-modifying CTE in the same
//! statement, so the same transaction), with `synchronous_commit = on`.
//!
//! Batches close like tierd's: 20,000 records or 50 ms. Timed like the
//! ingest figure: from the assignment to the last committed batch.
//!
//! The cluster is a throwaway one: `initdb` in a temp dir, `pg_ctl start`
//! listening only on a unix socket in that dir, stopped and removed at the
//! end. PostgreSQL refuses to run as root, so when the suite runs as root
//! the cluster runs as the `postgres` user (`runuser -u postgres --`), its
//! dir handed to that user.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use postgres::types::ToSql;
use postgres::{Client, NoTls};
use tier_core::policy::Policy;
use tier_core::{EventKind, Timestamp, ValidationLimits};
use tier_wire::decode::Decoder;

use super::broker::Broker;
use super::consume::{IDLE_LIMIT, Timing, backlog_consumer};

/// Records per batch, most.
const BATCH_MAX_RECORDS: usize = 20_000;
/// Longest a batch waits for more records.
const BATCH_MAX_WAIT: Duration = Duration::from_millis(50);

/// The directory of PostgreSQL's server binaries (`initdb`, `pg_ctl`):
/// the newest `/usr/lib/postgresql/*/bin` (Debian), else `PATH`.
pub(crate) fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    })
}

/// Output of `id` with these arguments, as a number.
fn id(args: &[&str]) -> Result<u32> {
    let out = Command::new("id")
        .args(args)
        .output()
        .with_context(|| format!("running id {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "id {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .with_context(|| format!("id {} printed no number", args.join(" ")))
}

/// A throwaway PostgreSQL cluster; stopped and removed on drop.
#[derive(Debug)]
pub(crate) struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// Run server commands as the `postgres` user (we are root).
    as_postgres: bool,
    running: bool,
    pub(crate) version: String,
}

impl Cluster {
    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The unix socket directory.
    pub(crate) fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, mut cmd: Command, what: &str) -> Result<()> {
        let out = cmd.output().with_context(|| format!("running {what}"))?;
        if !out.status.success() {
            bail!(
                "{what} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// `initdb` and start a cluster with binaries from `bin`.
    pub(crate) fn start(bin: PathBuf) -> Result<Self> {
        let as_postgres = id(&["-u"])? == 0;
        // In the system temp dir (world-traversable), not the run's work
        // dir (private to root): the postgres user must reach it.
        let dir = tempfile::Builder::new()
            .prefix("tier-bench-pg-")
            .tempdir()
            .context("creating the PostgreSQL dir")?;
        if as_postgres {
            let uid = id(&["-u", "postgres"]).context(
                "running as root, PostgreSQL needs the `postgres` user (install the postgresql package)",
            )?;
            let gid = id(&["-g", "postgres"])?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .context("handing the PostgreSQL dir to the postgres user")?;
        }
        let version = Command::new(bin.join("postgres"))
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let mut cluster = Self {
            bin,
            dir,
            as_postgres,
            running: false,
            version,
        };
        let mut initdb = cluster.command("initdb");
        initdb.arg("-D").arg(cluster.data()).args([
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            "--no-sync",
        ]);
        cluster.run(initdb, "initdb")?;
        let options = format!(
            "-c listen_addresses='' -k {} -c synchronous_commit=on -c fsync=on -c shared_buffers=256MB -c max_wal_size=2GB",
            cluster.socket_dir().display()
        );
        let mut start = cluster.command("pg_ctl");
        start
            .arg("-D")
            .arg(cluster.data())
            .args(["-w", "-t", "60", "-l"])
            .arg(cluster.dir.path().join("server.log"))
            .arg("-o")
            .arg(options)
            .arg("start");
        cluster.run(start, "pg_ctl start")?;
        cluster.running = true;
        Ok(cluster)
    }

    pub(crate) fn connect(&self) -> Result<Client> {
        postgres::Config::new()
            .host_path(self.socket_dir())
            .user("postgres")
            .dbname("postgres")
            .connect(NoTls)
            .context("connecting to PostgreSQL")
    }

    /// Stop the server (fast shutdown).
    pub(crate) fn stop(&mut self) -> Result<()> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "-t", "60", "stop"]);
        self.run(stop, "pg_ctl stop")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("tier-bench: stopping PostgreSQL: {e:#}");
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE customer_projection (
    customer_id text PRIMARY KEY,
    orders bigint NOT NULL,
    order_amount bigint NOT NULL,
    order_cost bigint NOT NULL,
    cancellations bigint NOT NULL,
    returned_amount bigint NOT NULL,
    invoices bigint NOT NULL,
    invoiced_amount bigint NOT NULL,
    payments bigint NOT NULL,
    paid_amount bigint NOT NULL,
    complaints_opened bigint NOT NULL,
    complaints_resolved bigint NOT NULL,
    profile_updates bigint NOT NULL,
    last_event_ms bigint NOT NULL
);
CREATE TABLE consumer_offsets (
    topic text NOT NULL,
    partition int NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);";

/// One statement: the offsets and every customer of the batch.
const UPSERT: &str = "
WITH stored AS (
    INSERT INTO consumer_offsets (topic, partition, next_offset)
    SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[])
    ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset
)
INSERT INTO customer_projection AS p
SELECT * FROM unnest($4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[],
    $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[],
    $15::bigint[], $16::bigint[], $17::bigint[])
ON CONFLICT (customer_id) DO UPDATE SET
    orders = p.orders + EXCLUDED.orders,
    order_amount = p.order_amount + EXCLUDED.order_amount,
    order_cost = p.order_cost + EXCLUDED.order_cost,
    cancellations = p.cancellations + EXCLUDED.cancellations,
    returned_amount = p.returned_amount + EXCLUDED.returned_amount,
    invoices = p.invoices + EXCLUDED.invoices,
    invoiced_amount = p.invoiced_amount + EXCLUDED.invoiced_amount,
    payments = p.payments + EXCLUDED.payments,
    paid_amount = p.paid_amount + EXCLUDED.paid_amount,
    complaints_opened = p.complaints_opened + EXCLUDED.complaints_opened,
    complaints_resolved = p.complaints_resolved + EXCLUDED.complaints_resolved,
    profile_updates = p.profile_updates + EXCLUDED.profile_updates,
    last_event_ms = GREATEST(p.last_event_ms, EXCLUDED.last_event_ms)";

/// Number of bigint columns of a customer's row.
const SUMS: usize = 13;

/// One batch, pre-aggregated.
#[derive(Debug, Default)]
struct Batch {
    records: u64,
    invalid: u64,
    /// Next offset per partition.
    offsets: BTreeMap<(String, i32), i64>,
    customers: HashMap<String, [i64; SUMS]>,
}

impl Batch {
    fn add(&mut self, decoder: &Decoder, now: Timestamp, m: &impl rdkafka::message::Message) {
        self.records += 1;
        self.offsets
            .insert((m.topic().to_owned(), m.partition()), m.offset() + 1);
        let Ok(d) = decoder.decode(m.key(), m.payload(), now) else {
            // A dead letter for the peer too: counted, not projected.
            self.invalid += 1;
            return;
        };
        let e = d.event;
        let row = self.customers.entry(e.customer_id).or_insert([0; SUMS]);
        match e.kind {
            EventKind::OrderPlaced { amount, cost, .. } => {
                row[0] += 1;
                row[1] += amount.minor();
                row[2] += cost.map_or(0, |c| c.minor());
            }
            EventKind::OrderCancelled { .. } => row[3] += 1,
            EventKind::OrderReturned { amount, .. } => row[4] += amount.minor(),
            EventKind::InvoiceIssued { amount, .. } => {
                row[5] += 1;
                row[6] += amount.minor();
            }
            EventKind::InvoiceCancelled { .. } => row[5] -= 1,
            // Counted toward the invoice's cover as a payment is (the
            // generated workload sends none).
            EventKind::InvoiceCredited { amount, .. } => row[8] += amount.minor(),
            EventKind::PaymentReceived { amount, .. } => {
                row[7] += 1;
                row[8] += amount.minor();
            }
            EventKind::ComplaintOpened { .. } => row[9] += 1,
            EventKind::ComplaintResolved { .. } => row[10] += 1,
            EventKind::ProfileUpdated(_) | EventKind::CustomerAssessed { .. } => row[11] += 1,
        }
        row[12] = row[12].max(e.occurred_at.millis());
    }

    /// Run the one statement (autocommit: its own transaction).
    fn commit(&mut self, client: &mut Client) -> Result<()> {
        let topics: Vec<String> = self.offsets.keys().map(|(t, _)| t.clone()).collect();
        let partitions: Vec<i32> = self.offsets.keys().map(|(_, p)| *p).collect();
        let next: Vec<i64> = self.offsets.values().copied().collect();
        let ids: Vec<String> = self.customers.keys().cloned().collect();
        let columns: Vec<Vec<i64>> = (0..SUMS)
            .map(|c| self.customers.values().map(|row| row[c]).collect())
            .collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&topics, &partitions, &next, &ids];
        for c in &columns {
            params.push(c);
        }
        client
            .execute(UPSERT, &params)
            .context("upserting a batch")?;
        self.customers.clear();
        self.offsets.clear();
        self.records = 0;
        Ok(())
    }
}

/// Consume the backlog into PostgreSQL; `expected` records.
pub(crate) fn run(broker: &Broker, cluster: &Cluster, expected: u64) -> Result<Timing> {
    let mut client = cluster.connect()?;
    client
        .batch_execute(SCHEMA)
        .context("creating the schema")?;
    let sync: String = client
        .query_one("SHOW synchronous_commit", &[])
        .context("reading synchronous_commit")?
        .get(0);
    if sync != "on" {
        bail!("synchronous_commit is {sync}, not on");
    }
    let decoder = Decoder::for_policy(&Policy::default_policy(), ValidationLimits::default());
    let started = Instant::now();
    let consumer = backlog_consumer(broker, "tier-bench-postgres")?;
    let assigned = Instant::now();
    let mut batch = Batch::default();
    let mut committed = 0u64;
    let mut invalid = 0u64;
    let mut batches = 0u64;
    let mut first: Option<(Instant, u64)> = None;
    let mut last_seen = Instant::now();
    let mut done = started;
    while committed < expected {
        let opened = Instant::now();
        let now = Timestamp::from_millis(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        );
        while batch.records < BATCH_MAX_RECORDS as u64
            && committed + batch.records < expected
            && opened.elapsed() < BATCH_MAX_WAIT
        {
            let wait = BATCH_MAX_WAIT.saturating_sub(opened.elapsed());
            match consumer.poll(wait) {
                Some(Ok(m)) => {
                    batch.add(&decoder, now, &m);
                    last_seen = Instant::now();
                }
                Some(Err(e)) => return Err(e).context("consuming the backlog"),
                None => {}
            }
        }
        if batch.records == 0 {
            if last_seen.elapsed() > IDLE_LIMIT {
                bail!(
                    "committed {committed} of {expected} records, then nothing for {} s",
                    IDLE_LIMIT.as_secs()
                );
            }
            continue;
        }
        let records = batch.records;
        invalid += batch.invalid;
        batch.invalid = 0;
        batch.commit(&mut client)?;
        committed += records;
        batches += 1;
        done = Instant::now();
        first.get_or_insert((done, records));
    }
    // Check what PostgreSQL holds: the offsets add up to the backlog.
    let stored: i64 = client
        .query_one(
            "SELECT COALESCE(sum(next_offset), 0)::bigint FROM consumer_offsets",
            &[],
        )
        .context("reading the stored offsets")?
        .get(0);
    if u64::try_from(stored).ok() != Some(expected) {
        bail!("PostgreSQL stored offsets for {stored} records, {expected} were produced");
    }
    let customers: i64 = client
        .query_one("SELECT count(*) FROM customer_projection", &[])
        .context("counting customers")?
        .get(0);
    eprintln!(
        "    postgres: {committed} records in {batches} batches, {customers} customers, {invalid} invalid"
    );
    let (first_at, at_first) = first.unwrap_or((done, 0));
    Ok(Timing {
        records: committed,
        assigned_to_last: done - assigned,
        first_to_last: done - first_at,
        at_first,
        start_to_last: done - started,
        cpu: None,
        writes: None,
    })
}
