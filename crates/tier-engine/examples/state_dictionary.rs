//! Trains the zstd dictionary the store compresses customer states with
//! (`crates/tier-store/src/states.zdict`) and reports what it gives.
//!
//! The states are the ones tierd holds: the bench suite's `state`
//! workload (1.2 orders per customer over a year, Zipf-skewed at
//! s = 1.1) folded through the engine in 20,000-record units, each
//! sealed, then swept to the workload's end. Every customer's postcard
//! body (the stored value without its format byte) is a sample.
//!
//! A stored value names the dictionary it was compressed with by its
//! format byte, so the committed dictionary never changes: a better one
//! is a new file and a new format (see tier-store's `codec`). This
//! example is how the committed one was made, and how to judge another:
//!
//! `cargo run --release -p tier-engine --example state_dictionary -- OUT [customers] [dictionary bytes]`

use std::sync::Arc;
use std::time::Instant;

use tier_core::policy::Policy;
use tier_core::sim::{Generator, Workload};
use tier_core::time::date;
use tier_engine::{Engine, Unit};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .ok_or("usage: state_dictionary OUT [customers] [dictionary bytes]")?;
    let customers: usize = args.next().map_or(Ok(200_000), |a| a.parse())?;
    let dict_bytes: usize = args.next().map_or(Ok(16 * 1024), |a| a.parse())?;

    let mut w = Workload::new(customers, customers + customers / 5, date(2026, 11, 1));
    w.zipf_s = 1.1;
    let end = w.end;
    let mut engine = Engine::new(Arc::new(Policy::default_policy()), Vec::new(), end);
    let mut unit = Unit::new();
    let mut in_unit = 0;
    for event in Generator::new(&w) {
        engine.fold(&mut unit, &event);
        in_unit += 1;
        if in_unit == 20_000 {
            engine.seal(&unit);
            unit = Unit::new();
            in_unit = 0;
        }
    }
    engine.seal(&unit);
    loop {
        let mut unit = Unit::new();
        let n = engine.sweep(&mut unit, end, 4096);
        engine.seal(&unit);
        if n == 0 {
            break;
        }
    }

    let bodies: Vec<Vec<u8>> = engine
        .customers()
        .map(|(_, state)| tier_store::postcard_after(&[], state.as_ref()))
        .collect::<Result<_, _>>()?;
    // Train on every other customer, judge on the rest.
    let (train, judge): (Vec<_>, Vec<_>) = bodies.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let train: Vec<&[u8]> = train.into_iter().map(|(_, b)| b.as_slice()).collect();
    let judge: Vec<&[u8]> = judge.into_iter().map(|(_, b)| b.as_slice()).collect();
    let dictionary = zstd::dict::from_samples(&train, dict_bytes)?;
    std::fs::write(&out, &dictionary)?;

    let raw: usize = judge.iter().map(|b| b.len()).sum();
    println!(
        "{} customers; dictionary of {} bytes written to {out}; judged on {} states of {:.1} bytes on average",
        bodies.len(),
        dictionary.len(),
        judge.len(),
        raw as f64 / judge.len().max(1) as f64
    );
    for level in [1, 3, 6] {
        let mut c = zstd::bulk::Compressor::with_dictionary(level, &dictionary)?;
        c.include_checksum(false)?;
        c.include_dictid(false)?;
        let started = Instant::now();
        let packed: Vec<Vec<u8>> = judge
            .iter()
            .map(|b| c.compress(b))
            .collect::<Result<_, _>>()?;
        let secs = started.elapsed().as_secs_f64();
        let stored: usize = packed
            .iter()
            .zip(&judge)
            .map(|(p, b)| p.len().min(b.len()))
            .sum();
        let mut d = zstd::bulk::Decompressor::with_dictionary(&dictionary)?;
        let started = Instant::now();
        for (p, b) in packed.iter().zip(&judge) {
            let back = d.decompress(p, b.len())?;
            assert_eq!(&back, b, "round trip");
        }
        let dsecs = started.elapsed().as_secs_f64();
        println!(
            "level {level}: {:.1} bytes on average ({:.0}% of the body), compress {:.2} µs, decompress {:.2} µs a state",
            stored as f64 / judge.len().max(1) as f64,
            100.0 * stored as f64 / raw.max(1) as f64,
            secs * 1e6 / judge.len().max(1) as f64,
            dsecs * 1e6 / judge.len().max(1) as f64,
        );
    }
    Ok(())
}
