//! The batch peer of `rescore`: DuckDB recomputing every customer's tier
//! from the raw events in one SQL query.
//!
//! The population's events are written as CSV while they are folded
//! ([`prepare`] decides whether to). The query runs through Python's
//! `duckdb` module, or the `duckdb` CLI when the module is missing; with
//! neither, the figure is null ("duckdb not installed").
//!
//! The SQL approximates the policy the rescore applies (the default policy
//! with every band 5 points stricter) as of the same instant (the end of
//! the workload): the same curves, weights, complaint penalty, bands and
//! gates, but calendar days instead of Shanghai business days, "orders per
//! month" over the span from the first order, and no hysteresis (the held
//! tier is not known to a batch job). Agreement with tierd, customer by
//! customer, is in the note. Timed: the query alone (it reads the CSV),
//! not writing the CSV.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result};

use super::rescore::Tiers;
use crate::config::BenchConfig;
use crate::report::{Figure, Report};

/// How the query is run.
#[derive(Debug, Clone, Copy)]
enum Runner {
    Python,
    Cli,
}

/// Where the events go, and how DuckDB will read them.
#[derive(Debug)]
pub(crate) struct Csv {
    pub(crate) events: PathBuf,
    dir: PathBuf,
    runner: Runner,
}

const KEY: &str = "duckdb_recompute_seconds";
const LABEL: &str = "DuckDB: same tiers from raw events, 1 SQL query";

fn runner() -> Option<Runner> {
    let ok = |cmd: &mut Command| {
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ok(Command::new("python3").args(["-c", "import duckdb"])) {
        Some(Runner::Python)
    } else if ok(Command::new("duckdb").arg("-version")) {
        Some(Runner::Cli)
    } else {
        None
    }
}

/// The CSV to write while folding, when DuckDB is available.
pub(crate) fn prepare(cfg: &BenchConfig) -> Result<Option<Csv>> {
    let Some(runner) = runner() else {
        return Ok(None);
    };
    let dir = cfg.scratch("duckdb")?;
    Ok(Some(Csv {
        events: dir.join("events.csv"),
        dir,
        runner,
    }))
}

pub(crate) fn run(
    cfg: &BenchConfig,
    csv: Option<&Csv>,
    tierd: &Tiers,
    report: &mut Report,
) -> Result<()> {
    let Some(csv) = csv else {
        report.add(Figure::missing(
            KEY,
            LABEL,
            " s",
            "duckdb not installed (neither `python3 -c 'import duckdb'` nor a `duckdb` CLI; \
             `pip install duckdb` installs the module)",
        ));
        return Ok(());
    };
    let at_ms = crate::workload::workload(cfg, 1, 0).end.millis();
    let out = csv.dir.join("tiers.csv");
    let sql = query(&csv.events, &out, at_ms);
    let (secs, how) = match csv.runner {
        Runner::Python => (run_python(&csv.dir, &sql)?, "Python duckdb module"),
        Runner::Cli => (
            run_cli(&csv.dir, &sql)?,
            "duckdb CLI (process start included)",
        ),
    };
    let theirs = read_tiers(&out)?;
    let csv_mib = std::fs::metadata(&csv.events).map_or(0.0, |m| m.len() as f64 / 1048576.0);
    let mut same = 0usize;
    let mut both = 0usize;
    let mut count_tierd: BTreeMap<&str, u64> = BTreeMap::new();
    let mut count_duck: BTreeMap<&str, u64> = BTreeMap::new();
    for (id, tier) in tierd {
        *count_tierd.entry(tier.as_str()).or_insert(0) += 1;
        if let Some(t) = theirs.get(id) {
            both += 1;
            if t == tier {
                same += 1;
            }
        }
    }
    for tier in theirs.values() {
        *count_duck.entry(tier.as_str()).or_insert(0) += 1;
    }
    let fmt = |m: &BTreeMap<&str, u64>| {
        m.iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    report.add(
        Figure::new(KEY, LABEL, secs, " s")
            .peer(format!(
                "tierd rescore: {:.2} s",
                report.value("rescore_1m_seconds").unwrap_or(f64::NAN)
            ))
            .note(format!(
                "{how}, one query over a {csv_mib:.0} MiB CSV of {} customers' events, as of the \
                 end of the workload, under an SQL approximation of the rescore's policy \
                 (calendar not business days, no hysteresis); tiers: tierd [{}], DuckDB [{}]; \
                 same tier for {same} of {both} customers both graded ({:.1}%)",
                tierd.len(),
                fmt(&count_tierd),
                fmt(&count_duck),
                100.0 * same as f64 / both.max(1) as f64,
            )),
    );
    if std::env::var_os("TIER_BENCH_KEEP_CSV").is_some() {
        let _ = std::fs::copy(&csv.events, "/tmp/events.csv");
        let _ = std::fs::copy(csv.dir.join("query.sql"), "/tmp/query.sql");
    }
    let _ = std::fs::remove_file(&csv.events);
    Ok(())
}

/// Run `sql` in Python's duckdb, timing the query alone.
fn run_python(dir: &Path, sql: &str) -> Result<f64> {
    let script = dir.join("query.py");
    std::fs::write(
        &script,
        "import duckdb, sys, time\n\
         con = duckdb.connect()\n\
         sql = open(sys.argv[1]).read()\n\
         t = time.perf_counter()\n\
         con.execute(sql)\n\
         print(time.perf_counter() - t)\n",
    )
    .context("writing the DuckDB script")?;
    let sql_path = dir.join("query.sql");
    std::fs::write(&sql_path, sql).context("writing the SQL")?;
    let out = Command::new("python3")
        .arg(&script)
        .arg(&sql_path)
        .output()
        .context("running python3")?;
    if !out.status.success() {
        anyhow::bail!(
            "the DuckDB query failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("reading the query time")
}

/// Run `sql` with the duckdb CLI, timing the whole process.
fn run_cli(dir: &Path, sql: &str) -> Result<f64> {
    let sql_path = dir.join("query.sql");
    std::fs::write(&sql_path, sql).context("writing the SQL")?;
    let started = std::time::Instant::now();
    let out = Command::new("duckdb")
        .arg("-c")
        .arg(format!(".read {}", sql_path.display()))
        .output()
        .context("running duckdb")?;
    if !out.status.success() {
        anyhow::bail!(
            "the DuckDB query failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(started.elapsed().as_secs_f64())
}

fn read_tiers(path: &Path) -> Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (id, tier) = l.split_once(',')?;
            Some((id.to_owned(), tier.trim().to_owned()))
        })
        .collect())
}

/// A piecewise-linear curve of `(value, points)` knots, capped at both
/// ends, as SQL; NULL (unknown) for a NULL value.
fn curve(x: &str, knots: &[(f64, f64)]) -> String {
    let mut s = format!("CASE WHEN {x} IS NULL THEN NULL");
    let (first, last) = (knots[0], knots[knots.len() - 1]);
    s += &format!(" WHEN {x} <= {} THEN {}", first.0, first.1);
    for w in knots.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        s += &format!(" WHEN {x} <= {x1} THEN {y0} + ({x} - {x0}) * ({y1} - {y0}) / ({x1} - {x0})");
    }
    s += &format!(" ELSE {} END", last.1);
    s
}

/// The whole recompute as one statement (a `COPY` of one `SELECT`).
fn query(events: &Path, out: &Path, at_ms: i64) -> String {
    const DAY: i64 = 86_400_000;
    // The window: 12 months back from `at` (365 days, calendar).
    let from = at_ms - 365 * DAY;
    let margin = curve(
        "margin",
        &[
            (0.0, 0.0),
            (5e6, 20.0),
            (2e7, 50.0),
            (5e7, 80.0),
            (1e8, 100.0),
        ],
    );
    let mrate = curve(
        "margin_rate",
        &[(0.0, 0.0), (0.10, 40.0), (0.25, 80.0), (0.40, 100.0)],
    );
    let amount = curve(
        "amount",
        &[
            (0.0, 0.0),
            (1e7, 30.0),
            (5e7, 60.0),
            (2e8, 90.0),
            (5e8, 100.0),
        ],
    );
    let freq = curve(
        "per_month",
        &[(0.0, 0.0), (1.0, 30.0), (4.0, 80.0), (8.0, 100.0)],
    );
    let ontime = curve(
        "on_time",
        &[(0.5, 0.0), (0.8, 50.0), (0.95, 90.0), (1.0, 100.0)],
    );
    let late = curve(
        "days_late",
        &[(0.0, 100.0), (7.0, 70.0), (30.0, 20.0), (90.0, 0.0)],
    );
    // Business days approximated as 5/7 of calendar days.
    format!(
        r#"COPY (
WITH ev AS (
  SELECT * FROM read_csv('{events}', header = true, all_varchar = false,
    columns = {{'customer_id': 'VARCHAR', 'kind': 'VARCHAR', 'at_ms': 'BIGINT',
      'ref_id': 'VARCHAR', 'order_id': 'VARCHAR', 'amount': 'BIGINT', 'cost': 'BIGINT',
      'due_ms': 'BIGINT', 'severity': 'VARCHAR'}})
  WHERE at_ms <= {at_ms}
),
cancelled AS (SELECT DISTINCT customer_id, order_id FROM ev WHERE kind = 'order_cancelled'),
orders AS (
  SELECT o.customer_id, o.order_id, o.at_ms, o.amount, o.cost
  FROM ev o ANTI JOIN cancelled c USING (customer_id, order_id)
  WHERE o.kind = 'order_placed' AND o.at_ms > {from}
),
returns AS (
  SELECT customer_id, order_id, sum(amount) AS r_amount, sum(cost) AS r_cost
  FROM ev WHERE kind = 'order_returned' GROUP BY ALL
),
sales AS (
  SELECT o.customer_id,
    sum(o.amount - coalesce(r.r_amount, 0)) AS amount,
    sum(CASE WHEN o.cost IS NOT NULL THEN o.amount - coalesce(r.r_amount, 0) END) AS costed,
    sum(CASE WHEN o.cost IS NOT NULL THEN (o.amount - coalesce(r.r_amount, 0)) - (o.cost - coalesce(r.r_cost, 0)) END) AS margin,
    count(*) AS orders,
    min(o.at_ms) AS first_order
  FROM orders o LEFT JOIN returns r USING (customer_id, order_id)
  GROUP BY o.customer_id
),
paid AS (
  SELECT customer_id, ref_id AS invoice_id, sum(amount) AS paid, max(at_ms) AS paid_at
  FROM ev WHERE kind = 'payment_received' GROUP BY ALL
),
invoices AS (
  SELECT i.customer_id, i.amount, i.due_ms, p.paid, p.paid_at,
    (coalesce(p.paid, 0) >= i.amount) AS settled
  FROM ev i LEFT JOIN paid p ON p.customer_id = i.customer_id AND p.invoice_id = i.ref_id
  WHERE i.kind = 'invoice_issued' AND i.due_ms <= {at_ms} AND i.amount > 0
),
credit AS (
  SELECT customer_id,
    avg(CASE WHEN settled AND paid_at <= due_ms THEN 1.0 ELSE 0.0 END) AS on_time,
    avg(greatest(0, (CASE WHEN settled THEN paid_at ELSE {at_ms} END) - due_ms) / {DAY} * 5.0 / 7.0) AS days_late,
    coalesce(max(CASE WHEN NOT settled THEN ({at_ms} - due_ms) / {DAY} * 5.0 / 7.0 END), 0) AS oldest_overdue
  FROM invoices GROUP BY customer_id
),
complaints AS (
  SELECT customer_id, least(30, sum(CASE severity WHEN 'critical' THEN 15 WHEN 'high' THEN 8
    WHEN 'medium' THEN 3 ELSE 1 END)) AS penalty
  FROM ev WHERE kind = 'complaint_opened' AND at_ms > {from} GROUP BY customer_id
),
customers AS (SELECT DISTINCT customer_id FROM ev),
figures AS (
  SELECT c.customer_id,
    coalesce(s.amount, 0) AS amount,
    s.margin AS margin,
    CASE WHEN s.costed > 0 THEN s.margin / s.costed END AS margin_rate,
    coalesce(s.orders, 0) / greatest(1.0, least(12.0, ({at_ms} - s.first_order) / ({DAY} * 30.44))) AS per_month,
    cr.on_time, cr.days_late, coalesce(cr.oldest_overdue, 0) AS oldest_overdue,
    coalesce(k.penalty, 0) AS penalty
  FROM customers c
  LEFT JOIN sales s USING (customer_id)
  LEFT JOIN credit cr USING (customer_id)
  LEFT JOIN complaints k USING (customer_id)
),
scored AS (
  SELECT customer_id, on_time, oldest_overdue,
    greatest(0, least(100, round(
      0.48 * coalesce({margin}, 0) + 0.12 * coalesce({mrate}, 0)
      + 0.21 * ({amount}) + 0.09 * ({freq})
      + 0.06 * coalesce({ontime}, 50) + 0.04 * coalesce({late}, 50)
      - penalty, 2))) AS score
  FROM figures
)
SELECT customer_id,
  CASE
    WHEN score >= 85 AND coalesce(on_time, 1) >= 0.8 AND oldest_overdue <= 60 THEN 'A'
    WHEN score >= 65 AND oldest_overdue <= 90 THEN 'B'
    WHEN score >= 45 THEN 'C'
    ELSE 'D'
  END AS tier
FROM scored
) TO '{out}' (HEADER, DELIMITER ',');
"#,
        events = events.display(),
        out = out.display(),
    )
}
