//! Population cut points kept across restarts.
//!
//! An `abc` method's band cut points and the RFM quintiles are derived
//! from the whole population and recomputed on a cadence
//! ([`Engine::recut`]). Every customer is graded against the cut points in
//! force, so a restart must know them: if tierd stopped after the
//! population moved but before the next recut, the cut made at start
//! moves some customers, and exactly those must be rescored (cause
//! `RANK`), as a recut would have.
//!
//! The committer stores the cut points with every unit that publishes new
//! ones (application record [`META_CUTS`], in the same atomic commit);
//! on start the adapter hands them back with [`Engine::restore_cuts`],
//! which puts them in force again and makes the first recut compare the
//! fresh cut points against them.
//!
//! Format: the policy version (u32 BE length + UTF-8), then four f64
//! lists (u32 BE count + f64 BE each): abc cut points, RFM recency,
//! frequency, monetary.

use tier_core::policy::Policy;
use tier_core::rank::RfmQuintiles;

use crate::Engine;

/// The application record holding the cut points in force.
pub const META_CUTS: &str = "cuts";

/// Stored cut points, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCuts {
    /// The version of the policy they were cut for.
    pub version: String,
    pub rank: Vec<f64>,
    pub rfm: RfmQuintiles,
}

/// Encodes the cut points `policy` holds.
pub fn encode(policy: &Policy) -> Vec<u8> {
    let mut out = Vec::new();
    let version = policy.version().as_bytes();
    out.extend_from_slice(&(version.len() as u32).to_be_bytes());
    out.extend_from_slice(version);
    let rfm = policy.rfm_cuts();
    for list in [
        policy.rank_cuts(),
        &rfm.recency,
        &rfm.frequency,
        &rfm.monetary,
    ] {
        out.extend_from_slice(&(list.len() as u32).to_be_bytes());
        for v in list {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    out
}

/// Decodes what [`encode`] wrote; `None` for anything else (a record
/// that cannot be read is ignored: the start-up cut then stands, as
/// before cut points were stored).
pub fn decode(bytes: &[u8]) -> Option<StoredCuts> {
    let mut rest = bytes;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(head)
    };
    let len = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
    let version = std::str::from_utf8(take(len)?).ok()?.to_owned();
    let mut lists = Vec::with_capacity(4);
    for _ in 0..4 {
        let n = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
        let mut list = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            list.push(f64::from_be_bytes(take(8)?.try_into().ok()?));
        }
        lists.push(list);
    }
    if !rest.is_empty() {
        return None;
    }
    let monetary = lists.pop()?;
    let frequency = lists.pop()?;
    let recency = lists.pop()?;
    let rank = lists.pop()?;
    Some(StoredCuts {
        version,
        rank,
        rfm: RfmQuintiles {
            recency,
            frequency,
            monetary,
        },
    })
}

impl Engine {
    /// Puts the cut points in force before a restart back in force (when
    /// they were cut for the policy in force now), so the first
    /// [`Engine::recut`] compares the fresh cut points against them and
    /// rescores exactly the customers they move. Returns whether it did.
    pub fn restore_cuts(&mut self, stored: &StoredCuts) -> bool {
        if self.ranking.is_none() && self.rfm.is_none() {
            return false;
        }
        if stored.version != self.policy.version() {
            // A policy applied while tierd was down: its apply rescored
            // (or will rescore) everyone.
            return false;
        }
        let mut policy = (*self.policy).clone();
        if self.ranking.is_some() && stored.rank.len() == policy.rank_cuts().len() {
            policy = policy.with_rank_cuts(stored.rank.clone());
        }
        if self.rfm.is_some() {
            policy = policy.with_rfm_cuts(stored.rfm.clone());
        }
        self.policy = std::sync::Arc::new(policy);
        self.ranking_moved = self.ranking.is_some();
        self.rfm_moved = self.rfm.is_some();
        self.last_cut = None;
        self.cut_unpublished = true;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let policy = Policy::default_policy();
        let bytes = encode(&policy);
        let back = decode(&bytes).expect("decodes");
        assert_eq!(back.version, policy.version());
        assert!(back.rank.is_empty());
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_none());
        assert!(decode(b"").is_none());
    }
}
