//! Store tests: scenarios written once and run against every backend
//! compiled in, the on-disk cases (damage, foreign data, quarantine, locks,
//! background sync) for every disk backend plus the sled-only ones, and a
//! property test that each disk backend ends in the same observable state
//! as the in-memory one.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns fail the test by panicking"
)]

mod common;
mod equivalence;
mod every_disk;
mod scenarios;
mod sled_only;
