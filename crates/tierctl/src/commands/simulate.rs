//! `simulate`: generate a realistic workload and publish it to Kafka.
//!
//! Events come from [`tier_core::sim::Generator`] in time order (no event
//! after `--end`) and are streamed, never held in memory all at once. Each
//! goes to its type's topic: orders (placed, cancelled, returned) ->
//! `--orders-topic`, invoices (issued, cancelled) and payments ->
//! `--payments-topic`,
//! complaints -> `--complaints-topic`, profiles -> `--customers-topic`.
//! The record key is the customer id, so with a key-hashing partitioner
//! one customer's records of one topic share a partition and keep their
//! order (records of different topics are not ordered relative to each
//! other; that is Kafka's contract, and tierd's to cope with).
//!
//! The Kafka record timestamp is left to the producer (the time of
//! sending): stamping records with the simulated `occurred_at`, up to a
//! year old, would let a broker's time-based retention delete them at once.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use tier_core::sim::{Generator, Workload};
use tier_core::{Currency, Event, EventKind, Timestamp};
use tier_wire::decode::{encode_confluent, encode_protobuf, event_to_proto, try_encode_json};

use super::emit;
use super::kafka::Publisher;
use crate::cli::{EventFormat, Output, SimulateArgs, TopicArgs};
use crate::format::{Table, key_values, money_minor, number};

/// What a simulation published.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Records acknowledged by the brokers (= events generated).
    pub events: u64,
    /// Records per topic.
    pub per_topic: BTreeMap<String, u64>,
    /// Events per type (`order_placed`, ...).
    pub per_kind: BTreeMap<&'static str, u64>,
    pub customers: u64,
    pub format: EventFormat,
    /// Time of the first and last event published.
    pub first_event: Option<Timestamp>,
    pub last_event: Option<Timestamp>,
    /// From the first send to the last acknowledgement.
    pub elapsed: Duration,
    /// Customers worth a `tierctl explain`, with why.
    pub notable: Vec<Notable>,
}

impl Summary {
    /// Acknowledged records per second of [`Summary::elapsed`].
    pub fn events_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.events as f64 / secs
        } else {
            0.0
        }
    }
}

/// A customer worth explaining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notable {
    pub customer_id: String,
    /// `top key account`, `late payer`, ...
    pub role: &'static str,
    /// Figures backing the role, for people.
    pub detail: String,
}

/// The topic of an event, by its type.
pub fn topic_for<'t>(kind: &EventKind, topics: &'t TopicArgs) -> &'t str {
    match kind {
        EventKind::OrderPlaced { .. }
        | EventKind::OrderCancelled { .. }
        | EventKind::OrderReturned { .. } => &topics.orders_topic,
        EventKind::InvoiceIssued { .. }
        | EventKind::InvoiceCancelled { .. }
        | EventKind::InvoiceCredited { .. }
        | EventKind::PaymentReceived { .. } => &topics.payments_topic,
        EventKind::ComplaintOpened { .. } | EventKind::ComplaintResolved { .. } => {
            &topics.complaints_topic
        }
        EventKind::ProfileUpdated(_) | EventKind::CustomerAssessed { .. } => {
            &topics.customers_topic
        }
    }
}

/// The workload `args` describe, with `end` resolved.
pub fn workload(args: &SimulateArgs) -> Result<Workload> {
    let customers = usize::try_from(args.customers).context("--customers is too large")?;
    let orders = usize::try_from(args.orders).context("--orders is too large")?;
    if !(args.zipf.is_finite() && args.zipf >= 0.0) {
        anyhow::bail!("--zipf must be a finite number >= 0, got {}", args.zipf);
    }
    let currency = Currency::parse(&args.currency).with_context(|| {
        format!(
            "--currency must be an ISO 4217 code such as CNY (the policy's base currency), got {:?}",
            args.currency
        )
    })?;
    let mut w = Workload::new(customers, orders, args.end.resolve());
    w.currency = currency;
    w.seed = args.seed;
    w.days = args.days;
    w.zipf_s = args.zipf;
    w.id_prefix = args.id_prefix.clone();
    Ok(w)
}

/// Encode one event in `format`.
pub fn encode(
    event: &Event,
    format: EventFormat,
    currency: &str,
    schema_id: u32,
) -> Result<Vec<u8>> {
    let msg = event_to_proto(event, currency);
    Ok(match format {
        EventFormat::Protobuf => encode_protobuf(&msg),
        EventFormat::Confluent => encode_confluent(&msg, schema_id),
        EventFormat::Json => try_encode_json(&msg)
            .with_context(|| format!("cannot encode event {} as JSON", event.event_id))?,
    })
}

/// Generate the workload and publish it; returns once every record is
/// acknowledged, or with the first failure.
pub async fn run(args: &SimulateArgs) -> Result<Summary> {
    let workload = workload(args)?;
    // Generating twice is cheap next to publishing, and gives an honest
    // bar with an ETA.
    let progress = if args.no_progress {
        None
    } else {
        super::kafka::events_bar(Generator::new(&workload).count() as u64, false)
    };

    let mut publisher = Publisher::connect(&args.kafka, progress.clone()).await?;
    let missing = publisher.missing_topics(&args.topics.all()).await?;
    if !missing.is_empty() {
        eprintln!(
            "warning: topic(s) {} not found at {}; relying on the broker to auto-create them",
            missing.join(", "),
            args.kafka.brokers
        );
    }

    let mut per_topic: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut stats = Stats::default();
    let mut first_event = None;
    let mut last_event = None;
    let started = Instant::now();
    for event in Generator::new(&workload) {
        let topic = topic_for(&event.kind, &args.topics);
        let payload = encode(&event, args.format, &args.currency, args.schema_id)?;
        publisher.send(topic, &event.customer_id, &payload).await?;
        *per_topic.entry(topic.to_owned()).or_default() += 1;
        *per_kind.entry(event.kind.type_name()).or_default() += 1;
        first_event.get_or_insert(event.occurred_at);
        last_event = Some(event.occurred_at);
        stats.observe(&event);
    }
    let events = publisher.finish().await?;
    let elapsed = started.elapsed();
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    Ok(Summary {
        events,
        per_topic,
        per_kind,
        customers: args.customers,
        format: args.format,
        first_event,
        last_event,
        elapsed,
        notable: stats.notable(workload.end, &args.currency),
    })
}

/// Print the summary: counts, rate, and customers worth explaining.
pub fn print_summary(s: &Summary, output: Output) -> Result<()> {
    match output {
        Output::Json => {
            let v = serde_json::json!({
                "events": s.events,
                "per_topic": s.per_topic,
                "per_kind": s.per_kind,
                "customers": s.customers,
                "format": format!("{:?}", s.format).to_lowercase(),
                "first_event": s.first_event.map(|t| t.to_string()),
                "last_event": s.last_event.map(|t| t.to_string()),
                "seconds": s.elapsed.as_secs_f64(),
                "events_per_sec": s.events_per_sec(),
                "notable": s.notable.iter().map(|n| serde_json::json!({
                    "customer_id": n.customer_id,
                    "role": n.role,
                    "detail": n.detail,
                })).collect::<Vec<_>>(),
            });
            emit(&format!("{v}\n"))
        }
        Output::Table => emit(&render_summary(s)),
    }
}

/// The human summary.
pub fn render_summary(s: &Summary) -> String {
    let mut out = format!(
        "sent {} events for {} customers in {:.2} s ({} events/s)\n",
        number(s.events as f64, 0),
        number(s.customers as f64, 0),
        s.elapsed.as_secs_f64(),
        number(s.events_per_sec(), 0),
    );
    if let (Some(a), Some(b)) = (s.first_event, s.last_event) {
        out.push_str(&format!("event time {a} .. {b}\n"));
    }
    out.push('\n');
    let mut topics = Table::new(["topic", "records"]).right(&[1]);
    for (t, n) in &s.per_topic {
        topics.row([t.clone(), number(*n as f64, 0)]);
    }
    out.push_str(&topics.render());
    out.push('\n');
    let mut kinds = Table::new(["event", "count"]).right(&[1]);
    for (k, n) in &s.per_kind {
        kinds.row([(*k).to_owned(), number(*n as f64, 0)]);
    }
    out.push_str(&kinds.render());
    if !s.notable.is_empty() {
        out.push_str("\nworth explaining (tierctl explain <id>):\n");
        let pairs: Vec<(&str, String)> = s
            .notable
            .iter()
            .map(|n| (n.customer_id.as_str(), format!("{}: {}", n.role, n.detail)))
            .collect();
        for line in key_values(&pairs).lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Per-customer figures gathered while publishing, to name customers
/// worth explaining.
#[derive(Debug, Default)]
struct Stats {
    index: HashMap<String, usize>,
    customers: Vec<CustomerStats>,
    /// Open invoices: id -> (customer index, due time).
    open_invoices: HashMap<String, (usize, Timestamp)>,
}

#[derive(Debug, Default, Clone)]
struct CustomerStats {
    id: String,
    orders: u64,
    /// Placed minus returned, minor units (cancellations ignored: rare).
    net_amount: i64,
    invoices_due: u64,
    late: u64,
    complaints: u64,
    complaints_weighted: u64,
}

impl Stats {
    fn customer(&mut self, id: &str) -> usize {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = self.customers.len();
        self.index.insert(id.to_owned(), i);
        self.customers.push(CustomerStats {
            id: id.to_owned(),
            ..CustomerStats::default()
        });
        i
    }

    fn observe(&mut self, e: &Event) {
        let c = self.customer(&e.customer_id);
        match &e.kind {
            EventKind::OrderPlaced { amount, .. } => {
                self.customers[c].orders += 1;
                self.customers[c].net_amount += amount.minor();
            }
            EventKind::OrderReturned { amount, .. } => {
                self.customers[c].net_amount -= amount.minor();
            }
            EventKind::InvoiceIssued {
                invoice_id, due_at, ..
            } => {
                self.open_invoices.insert(invoice_id.clone(), (c, *due_at));
            }
            // A credit note: nothing is owed any more, so it is never late.
            EventKind::InvoiceCancelled { invoice_id } => {
                self.open_invoices.remove(invoice_id);
            }
            EventKind::PaymentReceived { invoice_id, .. } => {
                if let Some((c, due)) = self.open_invoices.remove(invoice_id) {
                    self.customers[c].invoices_due += 1;
                    if e.occurred_at > due {
                        self.customers[c].late += 1;
                    }
                }
            }
            EventKind::ComplaintOpened { severity, .. } => {
                self.customers[c].complaints += 1;
                self.customers[c].complaints_weighted += u64::from(severity.weight());
            }
            // The simulation sends no partial credit notes (it bills
            // orders net of their returns).
            EventKind::OrderCancelled { .. }
            | EventKind::InvoiceCredited { .. }
            | EventKind::ComplaintResolved { .. }
            | EventKind::ProfileUpdated(_)
            | EventKind::CustomerAssessed { .. } => {}
        }
    }

    /// The top three accounts by net amount, the biggest late payer, the
    /// worst complainer and a long-tail customer.
    fn notable(mut self, end: Timestamp, currency: &str) -> Vec<Notable> {
        // Invoices past due and unpaid at the end count as late.
        for (c, due) in self.open_invoices.values() {
            if *due < end {
                self.customers[*c].invoices_due += 1;
                self.customers[*c].late += 1;
            }
        }
        let orders_text = |c: &CustomerStats| {
            format!(
                "{} orders, net {currency} {}",
                number(c.orders as f64, 0),
                money_minor(c.net_amount)
            )
        };
        let mut out: Vec<Notable> = Vec::new();
        let mut by_amount: Vec<&CustomerStats> =
            self.customers.iter().filter(|c| c.orders > 0).collect();
        by_amount.sort_by(|a, b| b.net_amount.cmp(&a.net_amount).then(a.id.cmp(&b.id)));
        for c in by_amount.iter().take(3) {
            out.push(Notable {
                customer_id: c.id.clone(),
                role: "top key account",
                detail: orders_text(c),
            });
        }
        let named = |out: &[Notable], id: &str| out.iter().any(|n| n.customer_id == id);
        // Late share first, then the larger account: a big customer who
        // pays late is the interesting case.
        let late = self
            .customers
            .iter()
            .filter(|c| c.invoices_due >= 3 && c.late * 2 > c.invoices_due)
            .filter(|c| !named(&out, &c.id))
            .max_by(|a, b| {
                (a.late * b.invoices_due)
                    .cmp(&(b.late * a.invoices_due))
                    .then(a.net_amount.cmp(&b.net_amount))
                    .then(b.id.cmp(&a.id))
            });
        if let Some(c) = late {
            out.push(Notable {
                customer_id: c.id.clone(),
                role: "late payer",
                detail: format!(
                    "{} of {} invoices paid late or overdue, {}",
                    c.late,
                    c.invoices_due,
                    orders_text(c)
                ),
            });
        }
        let complainer = self
            .customers
            .iter()
            .filter(|c| c.complaints > 0 && !named(&out, &c.id))
            .max_by(|a, b| {
                a.complaints_weighted
                    .cmp(&b.complaints_weighted)
                    .then(b.id.cmp(&a.id))
            });
        if let Some(c) = complainer {
            out.push(Notable {
                customer_id: c.id.clone(),
                role: "complainer",
                detail: format!(
                    "{} complaints (severity weight {}), {}",
                    c.complaints,
                    c.complaints_weighted,
                    orders_text(c)
                ),
            });
        }
        // The median ordering customer: an ordinary case for comparison.
        if by_amount.len() >= 10 {
            let c = by_amount[by_amount.len() / 2];
            if !named(&out, &c.id) {
                out.push(Notable {
                    customer_id: c.id.clone(),
                    role: "typical customer",
                    detail: orders_text(c),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use tier_core::time::date;

    use super::*;
    use crate::cli::EndTime;

    fn small_args() -> SimulateArgs {
        let mut args = SimulateArgs::new("unused:9092");
        args.customers = 60;
        args.orders = 600;
        args.end = EndTime::At(date(2026, 11, 1));
        args
    }

    #[test]
    fn every_event_type_has_a_topic() {
        let args = small_args();
        let topics = TopicArgs::default();
        let mut seen = BTreeMap::new();
        for e in Generator::new(&workload(&args).unwrap()) {
            seen.insert(e.kind.type_name(), topic_for(&e.kind, &topics).to_owned());
        }
        assert_eq!(seen["order_placed"], "orders");
        assert_eq!(seen["order_returned"], "orders");
        assert_eq!(seen["invoice_issued"], "payments");
        assert_eq!(seen["payment_received"], "payments");
        assert_eq!(seen["complaint_opened"], "complaints");
        assert_eq!(seen["profile_updated"], "customers");
    }

    #[test]
    fn currency_is_an_iso_code_used_for_invoices_too() {
        let mut args = small_args();
        args.currency = "USD".into();
        let w = workload(&args).unwrap();
        assert_eq!(w.currency.as_str(), "USD");
        let decoder = tier_wire::decode::Decoder::new(
            tier_core::CurrencyRules::new("USD"),
            tier_core::ValidationLimits::default(),
        );
        let mut invoices = 0;
        for e in Generator::new(&w).take(300) {
            let bytes = encode(&e, EventFormat::Json, "USD", 1).unwrap();
            let decoded = decoder
                .decode(None, Some(&bytes), date(2026, 11, 1))
                .unwrap();
            assert_eq!(decoded.event, e);
            if let EventKind::InvoiceIssued { billed, .. } = &e.kind {
                assert_eq!(billed.currency.as_str(), "USD");
                invoices += 1;
            }
        }
        assert!(invoices > 0);
        for bad in ["", "usd", "EURO"] {
            args.currency = bad.into();
            let err = workload(&args).unwrap_err();
            assert!(err.to_string().contains("--currency"), "{err}");
        }
    }

    #[test]
    fn encodings_decode_back() {
        let args = small_args();
        let decoder = tier_wire::decode::Decoder::new(
            tier_core::CurrencyRules::new("CNY"),
            tier_core::ValidationLimits::default(),
        );
        let end = date(2026, 11, 1);
        for e in Generator::new(&workload(&args).unwrap()).take(200) {
            for format in [
                EventFormat::Protobuf,
                EventFormat::Json,
                EventFormat::Confluent,
            ] {
                let bytes = encode(&e, format, "CNY", 7).unwrap();
                let decoded = decoder
                    .decode(Some(e.customer_id.as_bytes()), Some(&bytes), end)
                    .unwrap();
                assert_eq!(decoded.event, e, "{format:?}");
            }
        }
    }

    #[test]
    fn notable_customers_are_named() {
        let mut default_size = SimulateArgs::new("unused:9092");
        default_size.end = EndTime::At(date(2026, 11, 1));
        for args in [small_args(), default_size] {
            let w = workload(&args).unwrap();
            let mut stats = Stats::default();
            for e in Generator::new(&w) {
                stats.observe(&e);
            }
            let notable = stats.notable(w.end, "CNY");
            let roles: Vec<&str> = notable.iter().map(|n| n.role).collect();
            assert_eq!(&roles[..3], ["top key account"; 3]);
            assert!(roles.contains(&"late payer"), "{notable:?}");
            assert!(roles.contains(&"complainer"), "{notable:?}");
            let mut ids: Vec<&str> = notable.iter().map(|n| n.customer_id.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), notable.len(), "no customer named twice");
        }
    }

    #[test]
    fn summary_text() {
        let s = Summary {
            events: 12_345,
            per_topic: [
                ("orders".to_owned(), 10_000),
                ("payments".to_owned(), 2_345),
            ]
            .into(),
            per_kind: [("order_placed", 12_345)].into(),
            customers: 100,
            format: EventFormat::Protobuf,
            first_event: Some(date(2025, 11, 1)),
            last_event: Some(date(2026, 11, 1)),
            elapsed: Duration::from_millis(2_500),
            notable: vec![Notable {
                customer_id: "cust-000000".into(),
                role: "top key account",
                detail: "3 orders".into(),
            }],
        };
        assert!((s.events_per_sec() - 4_938.0).abs() < 1e-9);
        let text = render_summary(&s);
        assert!(
            text.starts_with("sent 12,345 events for 100 customers in 2.50 s (4,938 events/s)\n"),
            "{text}"
        );
        assert!(text.contains("orders     10,000"), "{text}");
        assert!(
            text.contains("  cust-000000  top key account: 3 orders"),
            "{text}"
        );
    }
}
