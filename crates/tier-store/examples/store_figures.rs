//! The storage figures behind the choice of the default backend, for every
//! backend compiled in: bulk-load speed, bytes on disk per customer and
//! space amplification after loading a population, then the commit rate of
//! the committer's path (prepare + apply + sync) on that loaded store.
//!
//! Per backend, in a fresh temporary dir (deleted afterwards):
//! 1. bulk load: CUSTOMERS new customers in batches of 10,000 with `apply`,
//!    one `sync` at the end;
//! 2. disk use: the data dir's allocated size (like `du`) right after that
//!    sync, and again after closing the store; logical bytes are the keys
//!    plus encoded values of the customers;
//! 3. commit rate: BATCHES batches of 500 updated customers (drawn from the
//!    population), 16 partition offsets and 4 outbox rows each, every one
//!    prepared, applied and synced (an fsync per batch), the previous
//!    batch's outbox rows deleted as the publisher would.
//!
//! Customer states are ~300-600 bytes encoded (uniformly spread), numbers
//! of the kind a projection holds; ids are 12 bytes.
//!
//! ```text
//! cargo run --release -p tier-store --all-features --example store_figures [CUSTOMERS] [BATCHES]
//! ```

use std::error::Error;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use tier_store::{
    AnyStore, Backend, CommitBatch, FlushPolicy, PreparedBatch, Scope, Store, StoreOptions,
};

const LOAD_BATCH: usize = 10_000;
const COMMIT_CUSTOMERS: usize = 500;
const PARTITIONS: i32 = 16;
const OUTBOX_ROWS: usize = 4;

/// A stand-in for the customer projection: counters, money, timestamps and
/// per-window figures.
#[derive(Serialize)]
struct FigState {
    revenue_minor: i64,
    orders: u32,
    open_complaints: u16,
    tier: u8,
    sequence: u64,
    last_event_ms: u64,
    account_manager: String,
    windows: Vec<u32>,
}

/// SplitMix64: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn customer_id(i: u64) -> String {
    format!("cust-{i:07}")
}

/// A state of about 300-600 encoded bytes (format byte + postcard).
fn state(rng: &mut Rng, i: u64) -> FigState {
    let target = 300 + rng.below(301) as usize;
    // ~36 bytes of fixed fields; window figures encode to ~2 bytes each.
    let windows = (0..(target - 36) / 2)
        .map(|_| 128 + rng.below(16_000) as u32)
        .collect();
    FigState {
        revenue_minor: rng.below(50_000_000) as i64,
        orders: rng.below(2_000) as u32,
        open_complaints: rng.below(4) as u16,
        tier: rng.below(4) as u8,
        sequence: rng.below(10_000),
        last_event_ms: 1_750_000_000_000 + rng.below(10_000_000_000),
        account_manager: format!("am-{:03}", i % 400),
        windows,
    }
}

/// Allocated bytes of every file under `dir` (what `du` reports).
fn disk_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.blocks() * 512;
            }
        }
    }
    Ok(total)
}

struct Figures {
    backend: Backend,
    load_secs: f64,
    logical: u64,
    disk_open: u64,
    disk_closed: u64,
    commits_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

fn run(backend: Backend, customers: u64, batches: usize) -> Result<Figures, Box<dyn Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("data");
    let opts = StoreOptions {
        flush: FlushPolicy::EveryCommit,
        ..StoreOptions::default()
    };
    let store = AnyStore::open(backend, &dir, opts)?;
    let mut rng = Rng(0x5eed);

    // 1. Bulk load.
    let started = Instant::now();
    let mut logical = 0u64;
    let mut next = 0u64;
    while next < customers {
        let end = (next + LOAD_BATCH as u64).min(customers);
        let ids: Vec<String> = (next..end).map(customer_id).collect();
        let states: Vec<FigState> = (next..end).map(|i| state(&mut rng, i)).collect();
        let batch = CommitBatch {
            customers: scoped(&ids, &states),
            offsets: vec![("orders", 0, end as i64)],
            ..CommitBatch::new()
        };
        let prepared = PreparedBatch::prepare(&batch)?;
        logical += prepared.customer_bytes() as u64
            + ids.iter().map(|id| 2 + id.len() as u64).sum::<u64>();
        store.apply(prepared)?;
        next = end;
    }
    store.sync()?;
    let load_secs = started.elapsed().as_secs_f64();
    let disk_open = disk_bytes(&dir)?;

    // 3. Commit rate on the loaded store.
    let mut latencies = Vec::with_capacity(batches);
    let mut previous_rows: Vec<u64> = Vec::new();
    let started = Instant::now();
    for b in 0..batches {
        let picks: Vec<u64> = (0..COMMIT_CUSTOMERS)
            .map(|_| rng.below(customers))
            .collect();
        let ids: Vec<String> = picks.iter().map(|&i| customer_id(i)).collect();
        let states: Vec<FigState> = picks.iter().map(|&i| state(&mut rng, i)).collect();
        let outbox = (0..OUTBOX_ROWS).map(|r| vec![r as u8; 120]).collect();
        let batch = CommitBatch {
            customers: scoped(&ids, &states),
            moved: Vec::new(),
            offsets: (0..PARTITIONS)
                .map(|p| ("orders", p, (b as i64 + 1) * 10_000))
                .collect(),
            outbox,
            meta: Vec::new(),
        };
        let t = Instant::now();
        let prepared = PreparedBatch::prepare(&batch)?;
        let receipt = store.apply(prepared)?;
        store.sync()?;
        latencies.push(t.elapsed());
        store.outbox_delete(&previous_rows)?;
        previous_rows = receipt.outbox_keys.collect();
    }
    let commits_per_sec = batches as f64 / started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let (p50, p99) = (pct(0.5), pct(0.99));

    store.flush()?;
    drop(store);
    let disk_closed = disk_bytes(&dir)?;
    Ok(Figures {
        backend,
        load_secs,
        logical,
        disk_open,
        disk_closed,
        commits_per_sec,
        p50,
        p99,
    })
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let customers: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let batches: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(300);
    println!(
        "{customers} customers (~300-600 B states, 12 B ids) loaded in batches of {LOAD_BATCH}; \
         then {batches} commits of {COMMIT_CUSTOMERS} customers + {PARTITIONS} offsets + \
         {OUTBOX_ROWS} outbox rows, each prepare + apply + sync\n"
    );
    println!(
        "| backend | bulk load (customers/s) | logical MB | disk MB open / closed | bytes/customer (closed) | space amp (closed) | commits/s (500-customer batches) | commit p50 / p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for backend in Backend::compiled_in() {
        let f = run(backend, customers, batches)?;
        let mb = |b: u64| b as f64 / 1e6;
        println!(
            "| {} | {:.0} | {:.0} | {:.0} / {:.0} | {:.0} | {:.2} | {:.1} | {:.1?} / {:.1?} |",
            f.backend,
            customers as f64 / f.load_secs,
            mb(f.logical),
            mb(f.disk_open),
            mb(f.disk_closed),
            f.disk_closed as f64 / customers as f64,
            f.disk_closed as f64 / f.logical as f64,
            f.commits_per_sec,
            f.p50,
            f.p99,
        );
    }
    Ok(())
}

/// `(scope, id, state)` rows for a commit: one scope, as the figures do not
/// depend on it.
fn scoped<'a>(ids: &'a [String], states: &'a [FigState]) -> Vec<(Scope, &'a str, &'a FigState)> {
    ids.iter()
        .zip(states)
        .map(|(id, s)| (Scope::UNSCOPED, id.as_str(), s))
        .collect()
}
