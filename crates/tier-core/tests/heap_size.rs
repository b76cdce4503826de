//! `CustomerState::heap_size` against what decoding a state really
//! allocates (counted by dhat's allocator in this test binary): the engine bounds
//! the customers it holds decoded by the estimate, so the estimate must
//! follow the real figure for light customers and for the busiest.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use tier_core::policy::Policy;
use tier_core::sim::Workload;
use tier_core::state::CustomerState;
use tier_core::time::date;

/// dhat's allocator counts the bytes allocated and not yet freed.
#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

fn live() -> isize {
    dhat::HeapStats::get().curr_bytes as isize
}

/// One test only: the count is process-wide, so nothing else may
/// allocate while a state is decoded.
#[test]
fn the_heap_size_of_a_decoded_state_follows_what_decoding_allocates() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let policy = Policy::default_policy();
    let workload = Workload {
        zipf_s: 1.1,
        ..Workload::new(3_000, 20_000, date(2026, 11, 30))
    };
    let mut states: HashMap<String, CustomerState> = HashMap::new();
    for event in workload.generate() {
        let id = event.customer_id.clone();
        states
            .entry(id.clone())
            .or_default()
            .process(&id, &event, &policy);
    }
    let encoded: Vec<Vec<u8>> = states
        .values()
        .map(|s| postcard::to_allocvec(s).unwrap())
        .collect();

    let (mut estimated, mut allocated) = (0usize, 0isize);
    let mut busiest: Option<(usize, isize, usize)> = None;
    for bytes in &encoded {
        let before = live();
        // Boxed, as the engine holds a decoded state.
        let state: Box<CustomerState> = postcard::from_bytes(bytes).unwrap();
        let real = live() - before;
        let estimate = state.heap_size();
        estimated += estimate;
        allocated += real;
        if busiest.is_none_or(|(_, r, _)| real > r) {
            busiest = Some((estimate, real, bytes.len()));
        }
        drop(state);
    }
    let ratio = estimated as f64 / allocated as f64;
    assert!(
        (0.85..=1.15).contains(&ratio),
        "{} states: estimated {estimated} B, decoding allocated {allocated} B",
        encoded.len()
    );
    let (estimate, real, encoded_len) = busiest.unwrap();
    let ratio = estimate as f64 / real as f64;
    assert!(
        (0.8..=1.2).contains(&ratio),
        "the busiest customer ({encoded_len} B encoded): estimated {estimate} B, decoding allocated {real} B"
    );
    assert!(
        real > 2 * encoded_len as isize,
        "the busiest customer holds much more decoded than encoded: {real} B against {encoded_len} B"
    );
}
