//! Confirmed decisions: a policy rescore that rewrites only what it moves.
//!
//! Applying a policy re-decides every customer, but most decisions stand
//! (a band moved by five points moves about one customer in two hundred).
//! A customer whose rescore changes nothing the store keeps but the
//! decision instant and the policy version (`CustomerState::rescore_policy`
//! says `confirmed`) is not written again: its stored state stays as it
//! was, and memory marks it confirmed (see the `task` module).
//!
//! What makes that durable is one application record, [`META_CONFIRMED`]:
//! the policy version and, per scope, the instant of the rescore that
//! covered it. Once a rescore has visited every customer in memory, the
//! unit that finishes it writes the record with every scope then held
//! (a scope keeps the instant of the first rescore that covered it). On
//! start, a stored customer decided under another version whose scope the
//! record covers is loaded confirmed (`CustomerState::confirm` at the
//! scope's instant), exactly the state a rewrite would have stored; any
//! other is queued for a rescore, as before. A crash before the record is
//! written leaves no record for the new version, so everyone not
//! rewritten is rescored again on start (confirming changes nothing, so
//! it is safe to repeat). The unit that applies a policy resets the
//! record to that version with no scope and the rescore's instant, so a
//! rescore a crash interrupted resumes at that same instant: a customer
//! confirmed before the crash is confirmed again exactly as the read side
//! was shown it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tier_core::Timestamp;
use tier_core::state::CustomerState;
use tier_store::Scope;

/// Application record: the scopes whose customers the policy in force
/// confirmed, and when (see the module docs).
pub const META_CONFIRMED: &str = "policy.confirmed";

/// The scopes whose customers `version` confirmed, each at its rescore's
/// instant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Confirmed {
    pub version: String,
    /// The instant the policy's rescore decides at (recorded with the
    /// policy; `None` for a policy recorded otherwise).
    pub at: Option<Timestamp>,
    pub scopes: BTreeMap<Scope, Timestamp>,
}

/// The stored form: scopes by input partition (`None`: unscoped).
#[derive(Serialize, Deserialize)]
struct Record {
    version: String,
    at: Option<Timestamp>,
    scopes: Vec<(Option<i32>, Timestamp)>,
}

impl Confirmed {
    /// Nothing confirmed yet under `version`.
    pub fn none(version: &str) -> Self {
        Self {
            version: version.to_owned(),
            at: None,
            scopes: BTreeMap::new(),
        }
    }

    /// The instant `scope`'s customers decided under another version than
    /// `version` were confirmed, if they were.
    pub fn at(&self, version: &str, scope: Scope) -> Option<Timestamp> {
        if self.version != version {
            return None;
        }
        self.scopes.get(&scope).copied()
    }

    /// Load `state`, stored under `scope`, as this record says: decided
    /// under another version in a covered scope, it is confirmed at the
    /// scope's instant (`CustomerState::confirm`). Returns whether it is
    /// now decided under the record's version.
    pub fn apply(&self, scope: Scope, state: &mut CustomerState) -> bool {
        if state.policy_version == self.version {
            return true;
        }
        match self.at(&self.version, scope) {
            Some(at) => {
                state.confirm(&self.version, at);
                true
            }
            None => false,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let record = Record {
            version: self.version.clone(),
            at: self.at,
            scopes: self
                .scopes
                .iter()
                .map(|(s, at)| (s.as_partition(), *at))
                .collect(),
        };
        // Strings, integers and a sequence: postcard cannot fail on them.
        postcard::to_allocvec(&record).unwrap_or_default()
    }

    /// The record in `bytes`; `None` when they are not one (a record this
    /// build cannot read confirms nothing: everyone is rescored).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let record: Record = postcard::from_bytes(bytes).ok()?;
        let scopes = record
            .scopes
            .into_iter()
            .map(|(p, at)| {
                let scope = match p {
                    None => Some(Scope::UNSCOPED),
                    Some(p) => Scope::partition(p),
                };
                scope.map(|s| (s, at))
            })
            .collect::<Option<_>>()?;
        Some(Self {
            version: record.version,
            at: record.at,
            scopes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_and_answers_only_for_its_version() {
        let mut c = Confirmed::none("v2");
        c.at = Some(Timestamp::from_millis(5));
        c.scopes
            .insert(Scope::partition(3).unwrap(), Timestamp::from_millis(7));
        c.scopes.insert(Scope::UNSCOPED, Timestamp::from_millis(9));
        let back = Confirmed::decode(&c.encode()).unwrap();
        assert_eq!(back, c);
        assert_eq!(
            back.at("v2", Scope::partition(3).unwrap()),
            Some(Timestamp::from_millis(7))
        );
        assert_eq!(
            back.at("v2", Scope::UNSCOPED),
            Some(Timestamp::from_millis(9))
        );
        assert_eq!(back.at("v2", Scope::partition(4).unwrap()), None);
        assert_eq!(back.at("v1", Scope::partition(3).unwrap()), None);
        assert_eq!(Confirmed::decode(b"\xff\xff"), None);
    }

    #[test]
    fn a_state_loads_confirmed_only_in_a_covered_scope() {
        let mut c = Confirmed::none("v2");
        c.scopes
            .insert(Scope::partition(3).unwrap(), Timestamp::from_millis(7));
        let mut old = CustomerState::default();
        old.policy_version = "v1".into();
        let mut covered = old.clone();
        assert!(c.apply(Scope::partition(3).unwrap(), &mut covered));
        assert_eq!(covered.policy_version, "v2");
        assert_eq!(covered.decided_at, Timestamp::from_millis(7));
        let mut other = old.clone();
        assert!(!c.apply(Scope::partition(4).unwrap(), &mut other));
        assert_eq!(other, old, "left as stored");
        let mut current = CustomerState::default();
        current.policy_version = "v2".into();
        assert!(c.apply(Scope::partition(4).unwrap(), &mut current));
        assert_eq!(current.decided_at, Timestamp::default(), "left as stored");
    }
}
