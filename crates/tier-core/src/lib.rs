//! # tier-core: the pure tiering domain
//!
//! Owns the event model and its validation, the per-customer projection and
//! its fold, rolling windows, the scoring policy (parse, validate, score,
//! decide with hysteresis) and explanations.
//!
//! Must not do IO: no tokio, sled, rdkafka or tonic in its dependency tree,
//! and it never reads a clock. Every function that depends on time takes
//! `now` as an argument, so replays are deterministic and tests control time.

pub mod error;
pub mod event;
pub mod indicators;
pub mod policy;
pub mod projection;
pub mod sim;
pub mod state;
pub mod time;

pub use error::{InvalidEvent, RejectReason};
pub use event::{
    Amount, Currency, CurrencyRules, Event, EventKind, Money, Profile, ProfileField, ProfileUpdate,
    Severity, ValidationLimits,
};
pub use indicators::{IndicatorName, Indicators};
pub use time::{BusinessCalendar, Day, Month, Timestamp, Window};
