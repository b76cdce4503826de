//! # tier-core: the pure tiering domain
//!
//! Owns the event model and its validation, the per-customer projection and
//! its fold, rolling windows, the scoring policy (parse, validate, score,
//! decide with hysteresis) and explanations.
//!
//! Must not do IO: no tokio, sled, rdkafka or tonic in its dependency tree,
//! and it never reads a clock. Every function that depends on time takes
//! `now` as an argument, so replays are deterministic and tests control time.
//!
//! ## The clock model (what "now" is)
//! - **Event time decides.** Each customer's projection has a *watermark*,
//!   the latest `occurred_at` it applied ([`projection`]). A tier decision
//!   is made at the customer's *decision instant*: the latest of its
//!   watermark and its previous decision ([`state`]). The processing
//!   clock (when tierd happens to see an event) never enters a figure,
//!   a score, a `since` or a hysteresis count, so a replay of the same log
//!   on any later day ends exactly where live processing ended.
//! - **The window** is anchored at the watermark: a fixed number of
//!   business days ([`time::Window`]) in the policy's time zone
//!   ([`time::BusinessCalendar`]).
//! - **An event far older than the window** (before the window at the
//!   watermark) is stale and changes nothing; payments, credit notes and
//!   complaint resolutions still close records that are open.
//! - **Time passing without events** is a rescore at a later instant
//!   ([`state::CustomerState::reevaluate`]), which the service drives.
//!
//! `crates/tier-core/tests/semantics.rs` states each rule of DOMAIN.md's
//! "Semantics a manager can trust" as a given/when/then example.

pub mod error;
pub mod event;
pub mod indicators;
pub mod overrides;
pub mod policy;
pub mod projection;
pub mod rank;
pub mod sim;
pub mod state;
pub mod time;
mod varint;

pub use error::{InvalidEvent, RejectReason};
pub use event::{
    Amount, Currency, CurrencyRules, Event, EventKind, Money, Profile, ProfileField, ProfileUpdate,
    Severity, Text, ValidationLimits,
};
pub use indicators::{IndicatorName, Indicators};
pub use time::{BusinessCalendar, Day, Month, Timestamp, Window};
