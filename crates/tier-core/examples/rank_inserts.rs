//! The read model's rankings as a fresh ingest fills them, without
//! criterion, for quick A/B runs: three `Ranked<CustomerId>` (like RFM's
//! frequency, recency and monetary inputs: 80% of customers at one
//! order, recency in days, money nearly distinct) filled one customer
//! at a time in random order, then every customer moved once. Prints
//! the mean cost of an insert per ranking and of an update.
//!
//! `cargo run --release -p tier-core --example rank_inserts -- [customers] [reps]`

use std::time::Instant;

use tier_core::projection::CustomerId;
use tier_core::rank::{Direction, Ranked};

/// xorshift64: the same inputs on every run, no dependency.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().ok());
    let n = args.next().flatten().unwrap_or(1_000_000).max(1);
    let reps = args.next().flatten().unwrap_or(3).max(1);
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
    let mut customers: Vec<(CustomerId, [f64; 3])> = (0..n)
        .map(|i| {
            let frequency = match rng.next() % 100 {
                0..80 => 1,
                80..92 => 2,
                _ => 3 + rng.next() % 20,
            };
            let recency = rng.next() % 365;
            let monetary = rng.next() % 10_000_000;
            let id = CustomerId::from(format!("cust-{i:07}").as_str());
            (id, [frequency as f64, recency as f64, monetary as f64])
        })
        .collect();
    for i in (1..customers.len()).rev() {
        let j = usize::try_from(rng.next() % (i as u64 + 1)).unwrap_or(0);
        customers.swap(i, j);
    }
    let directions = [
        Direction::HigherIsBetter,
        Direction::LowerIsBetter,
        Direction::HigherIsBetter,
    ];
    for _ in 0..reps {
        let mut rankings = directions.map(Ranked::new);
        let mut insert_ns = [0.0; 3];
        for (k, ranking) in rankings.iter_mut().enumerate() {
            let started = Instant::now();
            for (id, values) in &customers {
                ranking.insert(id.clone(), values[k]);
            }
            insert_ns[k] = started.elapsed().as_nanos() as f64 / n as f64;
        }
        let started = Instant::now();
        for (id, values) in &customers {
            for (ranking, value) in rankings.iter_mut().zip(values) {
                ranking.update(id.as_str(), *value, value + 1.0);
            }
        }
        let update_ns = started.elapsed().as_nanos() as f64 / (3 * n) as f64;
        println!(
            "{n} customers: insert {:.0} / {:.0} / {:.0} ns (frequency / recency / monetary), update {update_ns:.0} ns",
            insert_ns[0], insert_ns[1], insert_ns[2]
        );
    }
}
