//! Population gradings (`abc`, `rfm` in the policy's `[[gradings]]`):
//! rankings of the committed population, kept up to date one customer at
//! a time as views are published, with cut points recomputed on a cadence.
//!
//! The ranking machinery and its tie and rounding rules are tier-core's
//! (`tier_core::rank`); this module only feeds it the read model's views
//! and answers "which class is this customer in". Cut points are recomputed
//! at most every `recut_seconds` of the grading (the policy's; shortest of
//! them) while the population changes, and at once when the gradings of the
//! policy change, so every answer within a cadence agrees with every
//! other. The rankings are built in one sort each over every view: once
//! tierd's start-up fill is published (`ReadModel::prepare_gradings`), and
//! by the publish that brings a policy whose population gradings differ;
//! a new version that keeps them keeps the rankings (they rank the views'
//! figures, not the policy's). Classes are those of the committed state:
//! a replay that rebuilds the read model rebuilds them.
//!
//! An answer classes a view by the figures it shows, against the cut
//! points of the last recut ([`GradingCuts`]): a customer's class is
//! where its own value falls among them, which the rankings' copy of that
//! value would give too, so classing a view looks nothing up by id. The
//! cut points are shared: a reader takes the population's lock once for
//! them and classes any number of views without it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tier_core::Indicators;
use tier_core::policy::{Grading, GradingClass, GradingKind, Policy, RankBy, abc_rank_value};
use tier_core::projection::CustomerId;
use tier_core::rank::{
    Cuts, Direction, Placement, Proportions, Ranked, RfmCuts, RfmScore, RfmValues,
};

use crate::read_model::View;

struct Abc {
    name: String,
    by: RankBy,
    proportions: Proportions,
    classes: Vec<String>,
    ranked: Ranked<CustomerId>,
}

struct Rfm {
    name: String,
    /// Recency, frequency and monetary ([`RfmValues::ranked`]).
    ranked: [Ranked<CustomerId>; 3],
}

/// The population gradings of one policy version.
#[derive(Default)]
pub(crate) struct Population {
    version: Option<String>,
    /// The policy's population gradings the rankings were built for.
    gradings: Vec<Grading>,
    abc: Vec<Abc>,
    rfm: Vec<Rfm>,
    /// The cut points of the last recut.
    cuts: Arc<GradingCuts>,
    /// The population changed since the last recut.
    dirty: bool,
    last_cut: Option<Instant>,
    /// Shortest `recut_seconds` of the policy's population gradings.
    recut_every: Duration,
    /// What the cadence reads the time from.
    clock: Monotonic,
}

/// The monotonic clock the recut cadence reads: the system's
/// (`Instant::now`) unless a test sets one it moves by hand.
#[derive(Clone)]
pub(crate) struct Monotonic(Arc<dyn Fn() -> Instant + Send + Sync>);

impl Monotonic {
    #[cfg(test)]
    pub(crate) fn new(now: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    pub(crate) fn now(&self) -> Instant {
        (self.0)()
    }
}

impl Default for Monotonic {
    fn default() -> Self {
        Self(Arc::new(Instant::now))
    }
}

impl std::fmt::Debug for Monotonic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Monotonic(..)")
    }
}

impl std::fmt::Debug for Population {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Population")
            .field("version", &self.version)
            .field("abc", &self.abc.len())
            .field("rfm", &self.rfm.len())
            .finish_non_exhaustive()
    }
}

/// The cut points of one policy version's population gradings at their
/// last recut, with what it takes to name a class: what every answer
/// classes a view against (see the module docs).
#[derive(Debug, Default)]
pub struct GradingCuts {
    abc: Vec<AbcCuts>,
    rfm: Vec<(String, RfmCuts<CustomerId>)>,
}

#[derive(Debug)]
struct AbcCuts {
    name: String,
    by: RankBy,
    classes: Vec<String>,
    cuts: Cuts<CustomerId>,
}

impl GradingCuts {
    /// The class of customer `id`, whose view is `view` (with its
    /// `indicators` unpacked), in population grading `g`: where the
    /// view's value falls among the cut points. `None` when ungraded (an
    /// unknown value, no order for RFM, a grading these cuts do not
    /// have).
    pub fn class(
        &self,
        g: &Grading,
        id: &str,
        view: &View,
        indicators: &Indicators,
    ) -> Option<GradingClass> {
        let class = match &g.kind {
            GradingKind::Abc { .. } => {
                let a = self.abc(g)?;
                let value = abc_value(&a.by, view, indicators);
                abc_class(&a.classes, a.cuts.placement(value, id)?)?
            }
            GradingKind::Rfm => {
                let cuts = self.rfm(g)?;
                rfm_class(cuts.score(&rfm_values(view, indicators), id))?
            }
            GradingKind::Matrix { .. } => return None,
        };
        Some(graded(g, class))
    }

    fn abc(&self, g: &Grading) -> Option<&AbcCuts> {
        self.abc.iter().find(|a| a.name == g.name)
    }

    fn rfm(&self, g: &Grading) -> Option<&RfmCuts<CustomerId>> {
        self.rfm
            .iter()
            .find(|(name, _)| *name == g.name)
            .map(|(_, cuts)| cuts)
    }
}

/// The name of an `abc` class at `placement`.
fn abc_class(classes: &[String], placement: Placement) -> Option<String> {
    let name = classes.get(placement.class)?;
    Some(if placement.flagged_low {
        format!("{name} (low value)")
    } else {
        name.clone()
    })
}

/// An RFM class: the three scores, `None` when one is unknown.
fn rfm_class(s: RfmScore) -> Option<String> {
    Some(format!("{}{}{}", s.recency?, s.frequency?, s.monetary?))
}

fn graded(g: &Grading, class: String) -> GradingClass {
    GradingClass {
        grading: g.name.clone(),
        kind: g.kind_name().to_owned(),
        class,
    }
}

/// The value an `abc` grading ranks a view by (`NaN`: not ranked): by
/// tier-core's rule for the `abc` method ([`abc_rank_value`]), so a
/// grading and an `abc` tier rank the same customers. Not ranked: an
/// unknown figure, and any figure of a customer with no order in the
/// window (a prospect, a lapsed customer): ranked at the bottom, such
/// customers' block of equal figures was split across classes by id, and
/// ranked at all they pushed the customers who buy into better classes
/// (a score they all have, a prospect's purchase potential, as much as
/// the 0 of their revenue).
fn abc_value(by: &RankBy, view: &View, indicators: &Indicators) -> f64 {
    let figure = match by {
        RankBy::Score => Some(view.score),
        RankBy::Indicator(name) => indicators.get(*name),
    };
    abc_rank_value(figure, indicators).unwrap_or(f64::NAN)
}

/// The recency, frequency and monetary rankings of `values` (each
/// customer's [`RfmValues::ranked`]; ids distinct).
fn rfm_ranked(values: &[(CustomerId, [f64; 3])]) -> [Ranked<CustomerId>; 3] {
    [0, 1, 2].map(|i| {
        Ranked::from_values(
            Direction::HigherIsBetter,
            values.iter().map(|(id, v)| (id.clone(), v[i])),
        )
    })
}

fn rfm_values(view: &View, indicators: &Indicators) -> RfmValues {
    RfmValues::of(
        view.last_order_at(),
        indicators.order_count_12m,
        indicators.order_amount_12m,
    )
}

impl Population {
    /// An empty population whose cadence reads `clock`.
    pub(crate) fn with_clock(clock: Monotonic) -> Self {
        Self {
            clock,
            ..Self::default()
        }
    }

    /// Whether this population was ever built (for any policy).
    pub(crate) fn is_built(&self) -> bool {
        self.version.is_some()
    }

    /// Whether this population was built for `policy`'s gradings.
    pub(crate) fn is_for(&self, policy: &Policy) -> bool {
        self.version.as_deref() == Some(policy.version())
    }

    /// Become the population of `policy` by keeping the rankings, when
    /// its population gradings are exactly the ones they were built for:
    /// they rank the views' own figures, which a new version alone does
    /// not change, so a rebuild would rank the same values (and the views
    /// the new version republishes update them one by one). Returns
    /// whether it did; a population built for nothing yet never does.
    pub(crate) fn carry_to(&mut self, policy: &Policy) -> bool {
        if self.version.is_none() || !policy.population_gradings().eq(&self.gradings) {
            return false;
        }
        self.version = Some(policy.version().to_owned());
        true
    }

    /// Start over for `policy`'s gradings with the views of `all`.
    pub(crate) fn rebuild<'a>(
        &mut self,
        policy: &Policy,
        all: impl IntoIterator<Item = (&'a CustomerId, &'a View)>,
    ) {
        *self = Population {
            version: Some(policy.version().to_owned()),
            gradings: policy.population_gradings().cloned().collect(),
            recut_every: Duration::from_secs(u64::from(
                policy
                    .population_gradings()
                    .map(|g| g.recut_seconds)
                    .min()
                    .unwrap_or(tier_core::policy::DEFAULT_RECUT_SECONDS),
            )),
            clock: self.clock.clone(),
            ..Population::default()
        };
        for g in policy.gradings() {
            match &g.kind {
                GradingKind::Abc {
                    by,
                    shares,
                    classes,
                    low_value_share,
                } => {
                    // The policy validated the shares; should they still be
                    // refused here, the grading is left out, loudly.
                    let proportions =
                        Proportions::new(shares).and_then(|p| match low_value_share {
                            Some(s) => p.with_low_share(*s),
                            None => Ok(p),
                        });
                    match proportions {
                        Ok(proportions) => self.abc.push(Abc {
                            name: g.name.clone(),
                            by: by.clone(),
                            proportions,
                            classes: classes.clone(),
                            ranked: Ranked::new(Direction::HigherIsBetter),
                        }),
                        Err(e) => {
                            tracing::error!(grading = %g.name, error = %e, "abc grading left out");
                        }
                    }
                }
                GradingKind::Rfm => self.rfm.push(Rfm {
                    name: g.name.clone(),
                    ranked: rfm_ranked(&[]),
                }),
                GradingKind::Matrix { .. } => {}
            }
        }
        // One sort per ranking, not one insert per customer: at a million
        // customers well under a second against some fifteen.
        let mut abc_inputs: Vec<Vec<(CustomerId, f64)>> =
            self.abc.iter().map(|_| Vec::new()).collect();
        let mut rfm_inputs: Vec<(CustomerId, [f64; 3])> = Vec::new();
        for (id, view) in all {
            let indicators = view.indicators();
            let id = id.clone();
            for (a, inputs) in self.abc.iter().zip(&mut abc_inputs) {
                inputs.push((id.clone(), abc_value(&a.by, view, &indicators)));
            }
            if !self.rfm.is_empty() {
                rfm_inputs.push((id, rfm_values(view, &indicators).ranked()));
            }
        }
        // The view map's ids are distinct, as `Ranked::from_values` needs.
        for (a, inputs) in self.abc.iter_mut().zip(abc_inputs) {
            a.ranked = Ranked::from_values(Direction::HigherIsBetter, inputs);
        }
        for r in &mut self.rfm {
            r.ranked = rfm_ranked(&rfm_inputs);
        }
        self.recut();
    }

    /// Customer `id`'s view `old` (`None`: it had none) was replaced by
    /// `new`: move it in every ranking. The rankings hold no values of
    /// their own; they find a customer by the value its old view gave, so
    /// the read model calls this exactly when it replaces a view.
    pub(crate) fn replace(&mut self, id: &str, old: Option<&View>, new: &View) {
        if self.abc.is_empty() && self.rfm.is_empty() {
            return;
        }
        // Most views a unit replaces keep their figures (a confirmed
        // customer of a policy rescore keeps all of them): nothing to
        // unpack or move.
        if old.is_some_and(|old| old.same_figures(new)) {
            return;
        }
        let indicators = new.indicators();
        let old = old.map(|view| (view, view.indicators()));
        let mut moved = false;
        for a in &mut self.abc {
            let value = abc_value(&a.by, new, &indicators);
            moved |= match &old {
                Some((view, was)) => a.ranked.update(id, abc_value(&a.by, view, was), value),
                None => {
                    a.ranked.insert(CustomerId::from(id), value);
                    true
                }
            };
        }
        if !self.rfm.is_empty() {
            let values = rfm_values(new, &indicators).ranked();
            let was = old
                .as_ref()
                .map(|(view, was)| rfm_values(view, was).ranked());
            for r in &mut self.rfm {
                for (i, ranked) in r.ranked.iter_mut().enumerate() {
                    moved |= match &was {
                        Some(was) => ranked.update(id, was[i], values[i]),
                        None => {
                            ranked.insert(CustomerId::from(id), values[i]);
                            true
                        }
                    };
                }
            }
        }
        self.dirty |= moved;
    }

    /// Customer `id`, whose view was `view`, left this instance.
    pub(crate) fn remove(&mut self, id: &str, view: &View) {
        if self.abc.is_empty() && self.rfm.is_empty() {
            return;
        }
        let indicators = view.indicators();
        for a in &mut self.abc {
            a.ranked.remove(id, abc_value(&a.by, view, &indicators));
        }
        let values = rfm_values(view, &indicators).ranked();
        for r in &mut self.rfm {
            for (ranked, value) in r.ranked.iter_mut().zip(values) {
                ranked.remove(id, value);
            }
        }
        self.dirty = true;
    }

    /// Recompute every cut point now.
    pub(crate) fn recut(&mut self) {
        self.cuts = Arc::new(GradingCuts {
            abc: self
                .abc
                .iter()
                .map(|a| AbcCuts {
                    name: a.name.clone(),
                    by: a.by.clone(),
                    classes: a.classes.clone(),
                    cuts: a.ranked.cuts(&a.proportions),
                })
                .collect(),
            rfm: self
                .rfm
                .iter()
                .map(|r| {
                    let [recency, frequency, monetary] = &r.ranked;
                    (r.name.clone(), RfmCuts::of([recency, frequency, monetary]))
                })
                .collect(),
        });
        self.dirty = false;
        self.last_cut = Some(self.clock.now());
    }

    /// Recompute the cut points if the population changed and the last
    /// recut is older than the cadence.
    pub(crate) fn recut_if_due(&mut self) {
        if self.dirty
            && self
                .last_cut
                .is_none_or(|t| self.clock.now().duration_since(t) >= self.recut_every)
        {
            self.recut();
        }
    }

    /// The cut points of the last recut.
    pub(crate) fn cuts(&self) -> Arc<GradingCuts> {
        Arc::clone(&self.cuts)
    }

    /// The policy version the population is for (`None`: never built).
    pub(crate) fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Whether the population changed since the last recut.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// From when a changed population is due a recut (`None`: never cut,
    /// due now).
    pub(crate) fn recut_at(&self) -> Option<Instant> {
        self.last_cut.map(|t| t + self.recut_every)
    }

    /// The class of `id` whose view is `view` when every ranking of
    /// grading `g` holds it at the view's value, `None` when one does not
    /// (or it is ungraded): tests hold the rankings to the views with it.
    #[cfg(test)]
    pub(crate) fn ranked_class(&self, g: &Grading, id: &str, view: &View) -> Option<GradingClass> {
        let indicators = view.indicators();
        let class = match &g.kind {
            GradingKind::Abc { .. } => {
                let a = self.abc.iter().find(|a| a.name == g.name)?;
                let value = abc_value(&a.by, view, &indicators);
                a.ranked.position(id, value)?;
                let cuts = &self.cuts.abc(g)?.cuts;
                abc_class(&a.classes, cuts.placement(value, id)?)?
            }
            GradingKind::Rfm => {
                let r = self.rfm.iter().find(|r| r.name == g.name)?;
                let values = rfm_values(view, &indicators);
                for (ranked, value) in r.ranked.iter().zip(values.ranked()) {
                    ranked.position(id, value)?;
                }
                rfm_class(self.cuts.rfm(g)?.score(&values, id))?
            }
            GradingKind::Matrix { .. } => return None,
        };
        Some(graded(g, class))
    }

    /// Customers ranked by each ranking (all equal: one per view).
    #[cfg(test)]
    pub(crate) fn ranked_lens(&self) -> Vec<usize> {
        self.abc
            .iter()
            .map(|a| a.ranked.len())
            .chain(
                self.rfm
                    .iter()
                    .flat_map(|r| r.ranked.iter().map(Ranked::len)),
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use proptest::prelude::*;
    use tier_core::policy::DEFAULT_POLICY_TOML;
    use tier_core::{Indicators, Timestamp};

    use super::*;
    use crate::read_model::{Book, CustomerView, Relation};

    fn view(score: f64, revenue: f64, orders: f64, last_order_day: Option<i64>) -> View {
        let full = CustomerView {
            tier: "C".into(),
            score,
            since: Timestamp::from_millis(0),
            sequence: 1,
            indicators: Indicators {
                order_amount_12m: revenue,
                order_count_12m: orders,
                ..Indicators::default()
            },
            scored_at: Timestamp::from_millis(0),
            policy_version: "v".into(),
            overridden: false,
            relation: Relation {
                last_order_at: last_order_day.map(|d| Timestamp::from_millis(d * 86_400_000)),
                ..Relation::default()
            },
        };
        View::new(full, Book::default())
    }

    fn policy() -> Policy {
        let base = DEFAULT_POLICY_TOML
            .split("# --- Secondary gradings")
            .next()
            .unwrap_or_default();
        Policy::from_toml_str(&format!(
            "{base}
[[gradings]]
name = \"abc\"
kind = \"abc\"
by = \"score\"
shares = [20, 30, 50]
classes = [\"A\", \"B\", \"C\"]
low_value_share = 10

[[gradings]]
name = \"revenue\"
kind = \"abc\"
by = \"order_amount_12m\"
shares = [10, 90]
classes = [\"top\", \"rest\"]

[[gradings]]
name = \"rfm\"
kind = \"rfm\"
"
        ))
        .unwrap()
    }

    #[test]
    fn customers_without_an_order_are_not_in_the_rfm_population() {
        // Given five buyers (1-5 orders) and five prospects (a profile,
        // no order ever), then the buyers are scored among themselves:
        // the smallest is 111, the middle one 333, and a prospect is not
        // graded (a prospect ranked at the bottom of frequency and
        // revenue would lift every buyer into a better fifth).
        let p = policy();
        let mut ids = Vec::new();
        let mut views = Vec::new();
        for i in 0..5i64 {
            ids.push(CustomerId::from(format!("c{i}")));
            views.push(view(
                50.0,
                1000.0 * (i + 1) as f64,
                (i + 1) as f64,
                Some(i + 1),
            ));
        }
        for i in 0..5 {
            ids.push(CustomerId::from(format!("p{i}")));
            views.push(view(50.0, 0.0, 0.0, None));
        }
        let mut pop = Population::default();
        pop.rebuild(&p, ids.iter().zip(&views));
        let cuts = pop.cuts();
        let g = p.gradings().iter().find(|g| g.name == "rfm").unwrap();
        let class = |i: usize| {
            cuts.class(g, &ids[i], &views[i], &views[i].indicators())
                .map(|c| c.class)
        };
        assert_eq!(class(0).as_deref(), Some("111"));
        assert_eq!(class(2).as_deref(), Some("333"));
        assert_eq!(class(4).as_deref(), Some("555"));
        assert_eq!(class(5), None);
    }

    type Customer = (f64, f64, f64, Option<i64>);

    fn customer() -> impl Strategy<Value = Customer> {
        (
            prop_oneof![Just(50.0), 0.0..100.0f64],
            prop_oneof![Just(1_000.0), 0.0..1e9f64],
            (0u32..60).prop_map(f64::from),
            prop::option::weighted(0.9, 0..400i64),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// The shared harness of the gradings: every class is a configured
        /// one (an RFM class is three scores 1-5), a population built one
        /// update at a time (with values changing and customers leaving
        /// on the way; every ranking holds each customer once, at its
        /// view's value) classes
        /// every customer exactly as one rebuilt from the final views (what
        /// a restart or a replay does), and classing a view by its figures
        /// gives the class the rankings' copy of its value gives.
        #[test]
        fn classes_are_configured_and_incremental_equals_replay(
            finals in prop::collection::vec(customer(), 0..60),
            earlier in prop::collection::vec((0usize..60, prop::option::weighted(0.8, customer())), 0..40),
        ) {
            let p = policy();
            let ids: Vec<CustomerId> = (0..finals.len()).map(|i| CustomerId::from(format!("c{i:03}"))).collect();
            let views: Vec<View> = finals
                .iter()
                .map(|&(s, r, o, l)| view(s, r, o, l))
                .collect();

            // The views held, as the read model holds them: the rankings
            // find a customer by its replaced view's values.
            let mut held: std::collections::HashMap<CustomerId, View> = Default::default();
            let mut incremental = Population::default();
            incremental.rebuild(&p, std::iter::empty());
            for (i, c) in &earlier {
                let Some(id) = ids.get(*i) else { continue };
                match c {
                    Some(c) => {
                        let v = view(c.0, c.1, c.2, c.3);
                        incremental.replace(id, held.get(id), &v);
                        held.insert(id.clone(), v);
                    }
                    None => {
                        if let Some(old) = held.remove(id) {
                            incremental.remove(id, &old);
                        }
                    }
                }
            }
            for (id, v) in ids.iter().zip(&views) {
                incremental.replace(id, held.get(id), v);
                held.insert(id.clone(), v.clone());
            }
            incremental.recut();
            prop_assert!(incremental.ranked_lens().iter().all(|&n| n == ids.len()));

            let mut replay = Population::default();
            replay.rebuild(&p, ids.iter().zip(&views));

            let (incremental_cuts, replay_cuts) = (incremental.cuts(), replay.cuts());
            for g in p.gradings() {
                for (id, v) in ids.iter().zip(&views) {
                    let indicators = v.indicators();
                    let a = incremental_cuts.class(g, id, v, &indicators);
                    prop_assert_eq!(&a, &replay_cuts.class(g, id, v, &indicators));
                    prop_assert_eq!(&a, &incremental.ranked_class(g, id, v));
                    let Some(a) = a else { continue };
                    match &g.kind {
                        GradingKind::Abc { classes, .. } => {
                            let name = a.class.trim_end_matches(" (low value)");
                            prop_assert!(classes.iter().any(|c| c == name), "{}", a.class);
                        }
                        GradingKind::Rfm => {
                            prop_assert_eq!(a.class.len(), 3);
                            prop_assert!(a.class.bytes().all(|b| (b'1'..=b'5').contains(&b)), "{}", a.class);
                        }
                        GradingKind::Matrix { .. } => prop_assert!(false, "not a population grading"),
                    }
                }
            }
        }
    }
}
