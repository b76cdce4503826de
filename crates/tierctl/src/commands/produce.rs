//! `produce`: publish `CustomerEvent`s given as proto3 JSON lines (also
//! how a recorded event log is replayed into the input topics, with a
//! progress bar on a terminal).
//!
//! Each line is parsed as the proto3 JSON mapping (unknown fields are
//! errors, as in tierd), re-encoded in `--format` and published keyed by its
//! `customer_id`, to `--topic` or else to its type's topic. Events are not
//! validated beyond that: producing invalid events on purpose is how the
//! dead-letter path is exercised. The whole file is parsed before anything
//! is sent, so a typo on line 900 does not leave 899 events published.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tier_proto::ev::CustomerEvent;
use tier_proto::ev::customer_event::Payload;
use tier_wire::decode::{
    WireFormat, decode_wire, encode_confluent, encode_protobuf, try_encode_json,
};

use super::emit;
use super::kafka::Publisher;
use crate::cli::{EventFormat, Output, ProduceArgs, TopicArgs};
use crate::format::number;

/// What `produce` published.
#[derive(Debug, Clone, PartialEq)]
pub struct ProduceSummary {
    pub events: u64,
    pub per_topic: BTreeMap<String, u64>,
    pub elapsed: Duration,
}

/// The topic for an event's payload type (`None` for an empty payload).
pub fn topic_for_payload<'t>(payload: Option<&Payload>, topics: &'t TopicArgs) -> Option<&'t str> {
    Some(match payload? {
        Payload::OrderPlaced(_) | Payload::OrderCancelled(_) | Payload::OrderReturned(_) => {
            &topics.orders_topic
        }
        Payload::InvoiceIssued(_)
        | Payload::InvoiceCancelled(_)
        | Payload::InvoiceCredited(_)
        | Payload::PaymentReceived(_) => &topics.payments_topic,
        Payload::ComplaintOpened(_) | Payload::ComplaintResolved(_) => &topics.complaints_topic,
        Payload::ProfileUpdated(_) | Payload::CustomerAssessed(_) => &topics.customers_topic,
    })
}

/// Parse proto3 JSON lines; blank lines and `#` comments are skipped.
/// Errors name the line.
pub fn parse_lines(reader: impl std::io::BufRead) -> Result<Vec<CustomerEvent>> {
    let mut events = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("line {}", n + 1))?;
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let (msg, format) = decode_wire(text.as_bytes())
            .map_err(|e| anyhow::anyhow!("line {}: {} ({})", n + 1, e, e.field))?;
        if format != WireFormat::Json {
            bail!("line {}: not a JSON object", n + 1);
        }
        if msg.customer_id.is_empty() {
            bail!(
                "line {}: customer_id is empty (it is the record key)",
                n + 1
            );
        }
        events.push(msg);
    }
    Ok(events)
}

pub async fn run(args: &ProduceArgs) -> Result<ProduceSummary> {
    let path = &args.json_file;
    let events = if path.as_os_str() == "-" {
        parse_lines(std::io::stdin().lock()).context("stdin")?
    } else {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        parse_lines(std::io::BufReader::new(file)).with_context(|| path.display().to_string())?
    };
    let mut routed = Vec::with_capacity(events.len());
    for msg in &events {
        let topic = match &args.topic {
            Some(t) => t.as_str(),
            None => topic_for_payload(msg.payload.as_ref(), &args.topics).with_context(|| {
                format!(
                    "event {:?} has no payload, so it has no topic; pass --topic",
                    msg.event_id
                )
            })?,
        };
        let bytes = match args.format {
            EventFormat::Protobuf => encode_protobuf(msg),
            EventFormat::Confluent => encode_confluent(msg, args.schema_id),
            EventFormat::Json => try_encode_json(msg)
                .with_context(|| format!("cannot encode event {:?} as JSON", msg.event_id))?,
        };
        routed.push((topic, msg.customer_id.as_str(), bytes));
    }
    let progress = super::kafka::events_bar(routed.len() as u64, args.no_progress);
    let mut publisher = Publisher::connect(&args.kafka, progress.clone()).await?;
    let mut per_topic: BTreeMap<String, u64> = BTreeMap::new();
    let started = Instant::now();
    for (topic, key, bytes) in &routed {
        publisher.send(topic, key, bytes).await?;
        *per_topic.entry((*topic).to_owned()).or_default() += 1;
    }
    let events = publisher.finish().await?;
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    Ok(ProduceSummary {
        events,
        per_topic,
        elapsed: started.elapsed(),
    })
}

pub fn print_summary(s: &ProduceSummary, output: Output) -> Result<()> {
    match output {
        Output::Json => {
            let v = serde_json::json!({
                "events": s.events,
                "per_topic": s.per_topic,
                "seconds": s.elapsed.as_secs_f64(),
            });
            emit(&format!("{v}\n"))
        }
        Output::Table => {
            let topics: Vec<String> = s
                .per_topic
                .iter()
                .map(|(t, n)| format!("{t}: {}", number(*n as f64, 0)))
                .collect();
            emit(&format!(
                "sent {} events in {:.2} s ({})\n",
                number(s.events as f64, 0),
                s.elapsed.as_secs_f64(),
                topics.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_parse_and_route() {
        let text = r#"
# a comment
{"eventId":"e1","customerId":"c1","occurredAt":"2026-01-01T00:00:00Z","orderPlaced":{"orderId":"o1","amount":{"amountMinor":"100","currency":"CNY"}}}
{"event_id":"e2","customer_id":"c2","occurred_at":"2026-01-02T00:00:00Z","payment_received":{"invoice_id":"i1","amount":{"amount_minor":5}}}
{"eventId":"e3","customerId":"c2","occurredAt":"2026-01-03T00:00:00Z","invoiceCancelled":{"invoiceId":"i1"}}
{"eventId":"e4","customerId":"c1","occurredAt":"2026-01-04T00:00:00Z","profileUpdated":{"name":"","customerSince":"2010-05-01T00:00:00Z","clearedFields":["region"]}}
"#;
        let events = parse_lines(text.as_bytes()).unwrap();
        assert_eq!(events.len(), 4);
        assert_eq!(events[1].customer_id, "c2");
        let topics = TopicArgs::default();
        assert_eq!(
            topic_for_payload(events[0].payload.as_ref(), &topics),
            Some("orders")
        );
        assert_eq!(
            topic_for_payload(events[1].payload.as_ref(), &topics),
            Some("payments")
        );
        assert_eq!(
            topic_for_payload(events[2].payload.as_ref(), &topics),
            Some("payments")
        );
        assert_eq!(
            topic_for_payload(events[3].payload.as_ref(), &topics),
            Some("customers")
        );
        // A partial profile keeps its presence and cleared fields through
        // the re-encoding `produce` does.
        let Some(Payload::ProfileUpdated(p)) = &events[3].payload else {
            panic!("{:?}", events[3]);
        };
        assert_eq!((p.name.as_deref(), p.industry.as_deref()), (Some(""), None));
        assert_eq!(p.cleared_fields, ["region"]);
        let again = decode_wire(&try_encode_json(&events[3]).unwrap())
            .unwrap()
            .0;
        assert_eq!(again, events[3]);
        assert_eq!(topic_for_payload(None, &topics), None);
    }

    #[test]
    fn bad_lines_are_named() {
        let err = parse_lines(&b"{\"eventId\":\"e1\",\"customerId\":\"c1\"}\n{\"amont\":1}\n"[..])
            .unwrap_err();
        assert!(err.to_string().starts_with("line 2:"), "{err}");
        let err = parse_lines(&b"{\"eventId\":\"e1\"}\n"[..]).unwrap_err();
        assert!(err.to_string().contains("customer_id is empty"), "{err}");
        let err = parse_lines(&b"not json\n"[..]).unwrap_err();
        assert!(err.to_string().starts_with("line 1:"), "{err}");
    }
}
