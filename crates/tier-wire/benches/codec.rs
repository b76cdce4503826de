//! Codec throughput: decoding input records in each wire format tier-wire
//! accepts (binary protobuf, proto3 JSON, Confluent-framed protobuf) into
//! validated domain events, and encoding `TierChanged` (the outbox row's
//! protobuf and the JSON output format). Criterion reports records/s
//! (`thrpt`). Records come from `tier_core::sim`'s generator (the event
//! mix of `tierctl simulate`).
//!
//! `cargo bench -p tier-wire --bench codec`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tier_core::ValidationLimits;
use tier_core::policy::Policy;
use tier_core::projection::CustomerMap;
use tier_core::sim::Workload;
use tier_core::state::{CustomerState, TierChange};
use tier_core::time::date;
use tier_wire::Decoder;
use tier_wire::decode::{encode_confluent, encode_json, encode_protobuf, event_to_proto};
use tier_wire::tier_changed::{encode_row, tier_changed_to_proto};

/// Confluent schema id of the framed records (not looked up).
const SCHEMA_ID: u32 = 42;

fn bench(c: &mut Criterion) {
    let policy = Policy::default_policy();
    let end = date(2026, 11, 1);
    let events = Workload::new(2_000, 3_000, end).generate();
    let protos: Vec<_> = events.iter().map(|e| event_to_proto(e, "CNY")).collect();
    let keys: Vec<&[u8]> = events.iter().map(|e| e.customer_id.as_bytes()).collect();
    let decoder = Decoder::for_policy(&policy, ValidationLimits::default());

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(events.len() as u64));
    let formats: [(&str, Vec<Vec<u8>>); 3] = [
        ("protobuf", protos.iter().map(encode_protobuf).collect()),
        ("json", protos.iter().map(encode_json).collect()),
        (
            "confluent",
            protos
                .iter()
                .map(|m| encode_confluent(m, SCHEMA_ID))
                .collect(),
        ),
    ];
    for (name, payloads) in &formats {
        // Every record decodes: the bench measures the accepted path.
        for (k, p) in keys.iter().zip(payloads) {
            decoder.decode(Some(k), Some(p), end).unwrap();
        }
        group.bench_function(*name, |b| {
            b.iter(|| {
                for (k, p) in keys.iter().zip(payloads) {
                    black_box(decoder.decode(Some(k), Some(p), end).ok());
                }
            });
        });
    }
    group.finish();

    // Tier changes as the fold makes them.
    let mut states: CustomerMap<CustomerState> = CustomerMap::default();
    let mut changes: Vec<TierChange> = Vec::new();
    for e in &events {
        let state = states.entry(e.customer_id.as_str().into()).or_default();
        let processed = state.process(&e.customer_id, e, &policy);
        changes.extend(processed.due_first);
        changes.extend(processed.change);
    }
    assert!(!changes.is_empty(), "the workload changes no tier");
    let mut group = c.benchmark_group("tier_changed");
    group.throughput(Throughput::Elements(changes.len() as u64));
    group.bench_function("protobuf_row", |b| {
        b.iter(|| {
            for ch in &changes {
                black_box(encode_row(ch));
            }
        });
    });
    group.bench_function("json", |b| {
        b.iter(|| {
            for ch in &changes {
                black_box(tier_wire::tier_changed::encode_json(&tier_changed_to_proto(ch)).ok());
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
