//! Store tests: scenarios written once and run against every backend, the
//! sled-only cases (reopen on disk, damage, quarantine), and a property test
//! that both backends end in the same observable state.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns fail the test by panicking"
)]

mod common;
mod equivalence;
mod scenarios;
mod sled_only;
