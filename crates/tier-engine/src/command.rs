//! What the outside world asks of the engine, and how it hears back.
//!
//! Commands travel on a bounded channel to the task that owns the engine
//! and are applied between batches, inside a commit unit. A command's
//! reply is sent only once that unit is durable, so a caller that got an
//! answer can rely on it surviving a crash. Replies are plain callbacks,
//! so this crate needs no async runtime.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::{ArcSwap, ArcSwapOption};
use sha2::{Digest as _, Sha256};
use tier_core::policy::Policy;
use tier_core::state::TierChange;

use crate::{CommandError, DryRun, PolicyStatus, SetOverride};

/// A callback that receives a command's outcome.
pub type Reply<T> = Box<dyn FnOnce(T) + Send>;

/// The outcome of an override command: the change of the effective tier,
/// if it moved.
pub type OverrideOutcome = Result<Option<TierChange>, CommandError>;

/// One request to the engine.
pub enum Command {
    SetOverride {
        cmd: SetOverride,
        reply: Reply<OverrideOutcome>,
    },
    ClearOverride {
        customer_id: String,
        reason: String,
        author: String,
        reply: Reply<OverrideOutcome>,
    },
    SetAssessment {
        cmd: crate::SetAssessment,
        reply: Reply<OverrideOutcome>,
    },
    /// Make `policy` the policy in force (already validated).
    ApplyPolicy {
        policy: Arc<ActivePolicy>,
        /// Refused when another change put the same version in force
        /// after the caller checked it (see `is_changed_by`).
        reply: Reply<Result<PolicyStatus, PolicyChangeRefused>>,
    },
    /// What applying `policy` would do now; changes nothing.
    DryRun {
        policy: Arc<Policy>,
        sample: usize,
        reply: Reply<DryRun>,
    },
    /// `command`, sent under the trace context of the request that asked
    /// for it: the changes it makes at once carry a child of `trace`.
    Traced {
        trace: tier_wire::trace::TraceParent,
        command: Box<Command>,
    },
}

impl Command {
    /// `self`, traced by `trace` when there is one.
    pub fn traced(self, trace: Option<tier_wire::trace::TraceParent>) -> Self {
        match trace {
            Some(trace) => Command::Traced {
                trace,
                command: Box::new(self),
            },
            None => self,
        }
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::SetOverride { cmd, .. } => f.debug_tuple("SetOverride").field(cmd).finish(),
            Command::SetAssessment { cmd, .. } => {
                f.debug_tuple("SetAssessment").field(cmd).finish()
            }
            Command::ClearOverride { customer_id, .. } => {
                f.debug_tuple("ClearOverride").field(customer_id).finish()
            }
            Command::ApplyPolicy { policy, .. } => f
                .debug_tuple("ApplyPolicy")
                .field(&policy.policy.version())
                .finish(),
            Command::DryRun { policy, .. } => {
                f.debug_tuple("DryRun").field(&policy.version()).finish()
            }
            Command::Traced { trace, command } => f
                .debug_struct("Traced")
                .field("trace", trace)
                .field("command", command)
                .finish(),
        }
    }
}

/// Why a command could not be handed to the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the engine has {0} commands waiting; try again shortly")]
    Busy(usize),
    #[error("the engine has stopped")]
    Stopped,
}

/// Hands commands to the engine (cheap to clone).
#[derive(Debug, Clone)]
pub struct CommandSender {
    tx: SyncSender<Command>,
    capacity: usize,
}

impl CommandSender {
    pub fn send(&self, c: Command) -> Result<(), SendError> {
        self.tx.try_send(c).map_err(|e| match e {
            TrySendError::Full(_) => SendError::Busy(self.capacity),
            TrySendError::Disconnected(_) => SendError::Stopped,
        })
    }
}

/// A bounded command channel.
pub fn channel(capacity: usize) -> (CommandSender, Receiver<Command>) {
    let (tx, rx) = sync_channel(capacity);
    (CommandSender { tx, capacity }, rx)
}

/// A policy with the text it was parsed from.
#[derive(Debug, Clone)]
pub struct ActivePolicy {
    pub policy: Arc<Policy>,
    pub text: String,
    /// SHA-256 of `text`, lowercase hex.
    pub hash: String,
    /// SHA-256 of the `--policy` file (or built-in default) this policy
    /// was last loaded from; an applied policy keeps its file's hash.
    pub source_hash: String,
    /// The text of the policy (of another version) this one replaced, as
    /// the change recorded it: a restart during the rescore explains the
    /// decisions not rescored yet by it ([`PolicyHandle::keep_replaced`]).
    pub replaced: Option<String>,
    /// The text each version put in force so far named, this one's
    /// included: a version names one policy for the data dir's life.
    pub versions: PolicyVersions,
}

impl ActivePolicy {
    pub fn new(policy: Policy, text: String, source_hash: String) -> Self {
        let hash = sha256_hex(&text);
        let mut versions = PolicyVersions::default();
        versions.record(policy.version(), &hash);
        Self {
            policy: Arc::new(policy),
            hash,
            text,
            source_hash,
            replaced: None,
            versions,
        }
    }

    /// This policy as the change from `previous` (the policy in force):
    /// its text is recorded with it, unless the version is the same, and
    /// it knows the versions `previous` knew.
    #[must_use]
    pub fn replacing(mut self, previous: &ActivePolicy) -> Self {
        if previous.policy.version() != self.policy.version() {
            self.replaced = Some(previous.text.clone());
        }
        let mut versions = previous.versions.clone();
        versions.record(self.policy.version(), &self.hash);
        self.versions = versions;
        self
    }
}

/// The text (its SHA-256) each policy version named when it was put in
/// force, recorded with every change
/// ([`crate::committer::META_POLICY_VERSIONS`]).
///
/// Every decision, history entry and `TierChanged` records the version
/// that made it, and a rescore takes a customer decided under the version
/// in force as decided by it: a version put in force again must be the
/// same text (v1, v2, v1 again is a change back), never an edit under a
/// version used before.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PolicyVersions(std::collections::BTreeMap<String, String>);

impl PolicyVersions {
    /// The SHA-256 of the text `version` named, if it was ever in force.
    pub fn hash_of(&self, version: &str) -> Option<&str> {
        self.0.get(version).map(String::as_str)
    }

    /// `version` names the text whose SHA-256 is `hash`.
    pub fn record(&mut self, version: &str, hash: &str) {
        if self.hash_of(version) != Some(hash) {
            self.0.insert(version.to_owned(), hash.to_owned());
        }
    }

    /// Refuses `version` for a text (SHA-256 `hash`) other than it named.
    pub fn check(&self, version: &str, hash: &str) -> Result<(), PolicyChangeRefused> {
        match self.hash_of(version) {
            Some(named) if named != hash => Err(PolicyChangeRefused::VersionUsed {
                version: version.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn encode(&self) -> Vec<u8> {
        // A map of strings always encodes.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// `None` for bytes no build wrote.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes).ok()
    }
}

/// Why a policy cannot replace the one in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyChangeRefused {
    /// A changed text under the version in force.
    #[error(
        "version {version:?} is the version in force with a different text; give the changed policy a new version (every decision records the version that made it)"
    )]
    VersionReused { version: String },
    /// A changed text under a version put in force before.
    #[error(
        "version {version:?} was in force before with a different text; give the changed policy a new version (every decision and history entry records the version that made it, so a version names one policy)"
    )]
    VersionUsed { version: String },
    /// A change of what the stored figures were folded by: the day buckets
    /// are of the policy's business days, and what lies before the window
    /// was dropped as the window moved.
    #[error(
        "{field} {from} is what every stored figure was folded by; {to} needs them folded again: rebuild the data dir from Kafka (stop tierd, move the data dir away, start it with the new policy as --policy: it consumes the input from the earliest offsets), or keep {field} {from}"
    )]
    FoldChanged {
        field: &'static str,
        from: String,
        to: String,
    },
}

impl PolicyChangeRefused {
    /// The policy field the refusal is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::VersionReused { .. } | Self::VersionUsed { .. } => "version",
            Self::FoldChanged { field, .. } => field,
        }
    }
}

impl ActivePolicy {
    /// Whether `text` (parsed as `policy`) would change the policy in
    /// force: `Ok(false)` for the same text, an error for a different text
    /// under the same version or under a version in force before
    /// ([`PolicyVersions`]), or, once customers are `folded` under the
    /// policy in force, for another window, time zone or base currency,
    /// which their stored figures cannot follow. The one rule for `ApplyPolicy`,
    /// SIGHUP and a start with a changed policy file.
    pub fn is_changed_by(
        &self,
        policy: &Policy,
        text: &str,
        folded: bool,
    ) -> Result<bool, PolicyChangeRefused> {
        if text == self.text {
            return Ok(false);
        }
        let current = &self.policy;
        if policy.version() == current.version() {
            return Err(PolicyChangeRefused::VersionReused {
                version: policy.version().to_owned(),
            });
        }
        self.versions.check(policy.version(), &sha256_hex(text))?;
        if folded {
            self.folds_as(policy)?;
        }
        Ok(true)
    }

    /// Whether `policy` folds events as the policy in force does (the same
    /// window, time zone and base currency): what the stored figures can
    /// be read by. A
    /// dry run of another is refused too; its answer would read them.
    pub fn folds_as(&self, policy: &Policy) -> Result<(), PolicyChangeRefused> {
        let current = &self.policy;
        if policy.window_months() != current.window_months() {
            return Err(PolicyChangeRefused::FoldChanged {
                field: "window_months",
                from: current.window_months().to_string(),
                to: policy.window_months().to_string(),
            });
        }
        if policy.calendar() != current.calendar() {
            return Err(PolicyChangeRefused::FoldChanged {
                field: "time_zone",
                from: format!("{:?}", current.calendar().name()),
                to: format!("{:?}", policy.calendar().name()),
            });
        }
        // Every stored sum is in minor units of the base currency it was
        // folded in: another base would relabel them unconverted (and add
        // new events in other units to them).
        let (from, to) = (
            current.currency_rules().base(),
            policy.currency_rules().base(),
        );
        if from != to {
            return Err(PolicyChangeRefused::FoldChanged {
                field: "currency",
                from: format!("{from:?}"),
                to: format!("{to:?}"),
            });
        }
        Ok(())
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The one policy handle every reader of the policy uses: the policy in
/// force (replaced only once a new one is durably recorded) and its rescore
/// progress.
///
/// The policy is read on every request: it is held in an [`ArcSwap`], so
/// a reader takes no lock and, through [`Self::with_policy`], touches no
/// reference count the other threads share.
///
/// While the rescore of a policy change has not reached every customer,
/// some decisions were made under the policy before; the handle keeps that
/// one until the rescore is done, so that an explanation of such a
/// decision is the one of the policy that made it ([`Self::policy_of`]).
#[derive(Debug)]
pub struct PolicyHandle {
    current: ArcSwap<ActivePolicy>,
    /// The policy in force before the last change of version, while the
    /// rescore of that change runs.
    previous: ArcSwapOption<Policy>,
    status: Mutex<PolicyStatus>,
}

impl PolicyHandle {
    pub fn new(active: Arc<ActivePolicy>) -> Self {
        let status = PolicyStatus {
            version: active.policy.version().to_owned(),
            rescoring: false,
            rescored: 0,
            total: 0,
            changed: 0,
            applied_at: None,
        };
        Self {
            current: ArcSwap::new(active),
            previous: ArcSwapOption::empty(),
            status: Mutex::new(status),
        }
    }

    pub fn active(&self) -> Arc<ActivePolicy> {
        self.current.load_full()
    }

    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.current.load().policy)
    }

    /// `f` of the policy in force, without taking a reference of it: for
    /// what runs on every request.
    pub fn with_policy<R>(&self, f: impl FnOnce(&Arc<Policy>) -> R) -> R {
        f(&self.current.load().policy)
    }

    /// Put `active` in force. A new version keeps the one it replaces
    /// for the decisions made under it, until the rescore of the change
    /// is done ([`Self::release_replaced`]).
    pub fn set(&self, active: Arc<ActivePolicy>) {
        let version_changed = active.policy.version() != self.current.load().policy.version();
        let replaced = self.current.swap(active);
        if version_changed {
            self.previous.store(Some(Arc::clone(&replaced.policy)));
        }
    }

    /// New population cut points (`abc`, RFM) of the policy in force: the
    /// same text and version, `cut` carrying them. A cut of another
    /// version (one replaced meanwhile) is ignored.
    pub fn set_cuts(&self, cut: Arc<Policy>) {
        let current = self.active();
        if current.policy.version() == cut.version() {
            self.set(Arc::new(ActivePolicy {
                policy: cut,
                text: current.text.clone(),
                hash: current.hash.clone(),
                source_hash: current.source_hash.clone(),
                replaced: current.replaced.clone(),
                versions: current.versions.clone(),
            }));
        }
    }

    /// The policy a decision recorded under `version` was made by: the
    /// policy in force, or the one before it while the rescore of the
    /// change has not reached every customer. For a version neither is
    /// (decided before a restart under an older policy, the rescore of
    /// the newer one pending), the policy in force.
    pub fn policy_of(&self, version: &str) -> Arc<Policy> {
        let current = self.policy();
        if current.version() == version {
            return current;
        }
        match self.previous.load_full() {
            Some(p) if p.version() == version => p,
            _ => current,
        }
    }

    pub fn status(&self) -> PolicyStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_status(&self, s: PolicyStatus) {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = s;
    }

    /// Keep `replaced` for the decisions made under it (see
    /// [`Self::policy_of`]) until the rescore of the policy in force is
    /// done: at start, the policy the data dir recorded and the file
    /// replaces, or the one a change recorded replaced when its rescore
    /// was cut short. The same version as the policy in force is ignored.
    pub fn keep_replaced(&self, replaced: Arc<Policy>) {
        if replaced.version() != self.current.load().policy.version() {
            self.previous.store(Some(replaced));
        }
    }

    /// Let the replaced policy go once `status` says its rescore is done
    /// and the views of the unit that finished it are published (the
    /// committer calls this after them): every decision then readers see
    /// is the policy in force's.
    pub fn release_replaced(&self, status: &PolicyStatus) {
        if !status.rescoring && status.version == self.current.load().policy.version() {
            self.previous.store(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(text: &str) -> ActivePolicy {
        ActivePolicy::new(
            Policy::from_toml_str(text).unwrap(),
            text.to_owned(),
            String::new(),
        )
    }

    fn status(version: &str, rescoring: bool) -> PolicyStatus {
        PolicyStatus {
            version: version.to_owned(),
            rescoring,
            rescored: 0,
            total: 0,
            changed: 0,
            applied_at: None,
        }
    }

    #[test]
    fn decisions_of_the_replaced_policy_find_it_until_the_rescore_is_done() {
        let base = tier_core::policy::DEFAULT_POLICY_TOML;
        let v1 = active(base);
        let handle = PolicyHandle::new(Arc::new(v1));
        let v1_version = handle.policy().version().to_owned();
        assert!(Arc::ptr_eq(
            &handle.policy_of(&v1_version),
            &handle.policy()
        ));
        let text = base
            .replace("default-2027.01", "v2")
            .replace("min_score = 80", "min_score = 95");
        handle.set(Arc::new(active(&text)));
        handle.set_status(status("v2", true));
        // A decision not rescored yet is v1's; a rescored one is v2's.
        assert_eq!(handle.policy_of(&v1_version).version(), v1_version);
        assert_eq!(handle.policy_of("v2").version(), "v2");
        assert_eq!(handle.policy_of("older").version(), "v2");
        // New cut points of v2 (same version) keep v1 for its decisions.
        handle.set(Arc::new(active(&text)));
        assert_eq!(handle.policy_of(&v1_version).version(), v1_version);
        // Progress keeps it too; the end of the rescore lets it go.
        handle.release_replaced(&status("v2", true));
        assert_eq!(handle.policy_of(&v1_version).version(), v1_version);
        handle.release_replaced(&status("v1", false));
        assert_eq!(handle.policy_of(&v1_version).version(), v1_version);
        handle.release_replaced(&status("v2", false));
        assert_eq!(handle.policy_of(&v1_version).version(), "v2");
    }

    #[test]
    fn a_changed_text_needs_a_new_version_and_the_same_text_changes_nothing() {
        let base = tier_core::policy::DEFAULT_POLICY_TOML;
        let current = active(base);
        assert_eq!(
            current.is_changed_by(&current.policy, base, true),
            Ok(false)
        );
        let same_version = base.replace("min_score = 80", "min_score = 81");
        let p = Policy::from_toml_str(&same_version).unwrap();
        let err = current.is_changed_by(&p, &same_version, true).unwrap_err();
        assert!(err.to_string().contains("new version"), "{err}");
        let renamed = same_version.replace("default-2027.01", "default-2027.02");
        let p = Policy::from_toml_str(&renamed).unwrap();
        assert_eq!(current.is_changed_by(&p, &renamed, true), Ok(true));
    }

    #[test]
    fn a_version_in_force_before_names_its_text_for_good() {
        // A v1, then B v2, then A edited under v1: refused (the customers
        // B's rescore has not reached would count as decided by it); A
        // again, the same text, is a change back.
        let a = tier_core::policy::DEFAULT_POLICY_TOML;
        let v1 = Policy::default_policy().version().to_owned();
        let b = a
            .replace(&v1, "v2")
            .replace("min_score = 80", "min_score = 90");
        let current = active(&b).replacing(&active(a));
        assert_eq!(current.versions.len(), 2);
        let edited = a.replace("min_score = 80", "min_score = 70");
        let p = Policy::from_toml_str(&edited).unwrap();
        let err = current.is_changed_by(&p, &edited, true).unwrap_err();
        assert_eq!(err, PolicyChangeRefused::VersionUsed { version: v1 });
        assert_eq!(err.field(), "version");
        let p = Policy::from_toml_str(a).unwrap();
        assert_eq!(current.is_changed_by(&p, a, true), Ok(true));
        // What a change records reads back.
        let back = active(a).replacing(&current);
        let decoded = PolicyVersions::decode(&back.versions.encode()).unwrap();
        assert_eq!(decoded, current.versions);
    }

    #[test]
    fn another_window_time_zone_or_currency_is_refused_naming_the_field() {
        // The stored figures are day buckets of the policy's business days,
        // and what lay before the window was dropped: a 24-month window
        // would read 12 months of history for every customer already
        // folded (a rebuild would read 24).
        let base = tier_core::policy::DEFAULT_POLICY_TOML;
        let current = active(base);
        let next = base.replace("default-2027.01", "default-2027.02");
        for (from, to, field) in [
            ("window_months = 12", "window_months = 24", "window_months"),
            (
                "time_zone = \"Asia/Shanghai\"",
                "time_zone = \"Europe/Berlin\"",
                "time_zone",
            ),
            ("currency = \"CNY\"", "currency = \"USD\"", "currency"),
        ] {
            let text = next.replace(from, to);
            assert_ne!(text, next);
            let p = Policy::from_toml_str(&text).unwrap();
            let err = current.is_changed_by(&p, &text, true).unwrap_err();
            assert_eq!(err.field(), field);
            assert!(err.to_string().contains("rebuild the data dir"), "{err}");
            // Nothing folded yet: nothing to fold again.
            assert_eq!(current.is_changed_by(&p, &text, false), Ok(true));
        }
    }
}
