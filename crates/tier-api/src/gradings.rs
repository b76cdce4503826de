//! Population gradings (`abc`, `rfm` in the policy's `[[gradings]]`):
//! rankings of the committed population, kept up to date one customer at
//! a time as views are published, with cut points recomputed on a cadence.
//!
//! The ranking machinery and its tie and rounding rules are tier-core's
//! (`tier_core::rank`); this module only feeds it the read model's views
//! and answers "which class is this customer in". Cut points are recomputed
//! at most every `recut_seconds` of the grading (the policy's; shortest of
//! them) while the population changes, and at once when the gradings of the
//! policy change (a new version), so every answer within a cadence agrees
//! with every other. Classes are those of the
//! committed state: a replay that rebuilds the read model rebuilds them.

use std::time::{Duration, Instant};

use tier_core::policy::{Grading, GradingClass, GradingKind, Policy, RankBy};
use tier_core::rank::{Cuts, Direction, Proportions, Ranking, RfmCuts, RfmRanking, RfmValues};

use crate::read_model::CustomerView;

struct Abc {
    name: String,
    by: RankBy,
    proportions: Proportions,
    classes: Vec<String>,
    ranking: Ranking<String>,
    cuts: Option<Cuts<String>>,
}

struct Rfm {
    name: String,
    ranking: RfmRanking<String>,
    cuts: Option<RfmCuts<String>>,
}

/// The population gradings of one policy version.
#[derive(Default)]
pub(crate) struct Population {
    version: Option<String>,
    abc: Vec<Abc>,
    rfm: Vec<Rfm>,
    /// The population changed since the last recut.
    dirty: bool,
    last_cut: Option<Instant>,
    /// Shortest `recut_seconds` of the policy's population gradings.
    recut_every: Duration,
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

/// The value an `abc` grading ranks a view by (`NaN`: unknown).
fn abc_value(by: &RankBy, view: &CustomerView) -> f64 {
    match by {
        RankBy::Score => view.score,
        RankBy::Indicator(name) => view.indicators.get(*name).unwrap_or(f64::NAN),
    }
}

fn rfm_values(view: &CustomerView) -> RfmValues {
    RfmValues {
        last_order_at: view.relation.last_order_at,
        frequency: view.indicators.order_count_12m,
        monetary: view.indicators.order_amount_12m,
    }
}

impl Population {
    /// Whether this population was built for `policy`'s gradings.
    pub(crate) fn is_for(&self, policy: &Policy) -> bool {
        self.version.as_deref() == Some(policy.version())
    }

    /// Start over for `policy`'s gradings with the views of `all`.
    pub(crate) fn rebuild<'a>(
        &mut self,
        policy: &Policy,
        all: impl IntoIterator<Item = (&'a str, &'a CustomerView)>,
    ) {
        *self = Population {
            version: Some(policy.version().to_owned()),
            recut_every: Duration::from_secs(u64::from(
                policy
                    .gradings()
                    .iter()
                    .filter(|g| g.is_population())
                    .map(|g| g.recut_seconds)
                    .min()
                    .unwrap_or(tier_core::policy::DEFAULT_RECUT_SECONDS),
            )),
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
                            ranking: Ranking::new(Direction::HigherIsBetter),
                            cuts: None,
                        }),
                        Err(e) => {
                            tracing::error!(grading = %g.name, error = %e, "abc grading left out");
                        }
                    }
                }
                GradingKind::Rfm => self.rfm.push(Rfm {
                    name: g.name.clone(),
                    ranking: RfmRanking::new(),
                    cuts: None,
                }),
                GradingKind::Matrix { .. } => {}
            }
        }
        for (id, view) in all {
            self.upsert(id, view);
        }
        self.recut();
    }

    /// A customer's view changed (or is new).
    pub(crate) fn upsert(&mut self, id: &str, view: &CustomerView) {
        if self.abc.is_empty() && self.rfm.is_empty() {
            return;
        }
        for a in &mut self.abc {
            a.ranking.upsert(id, abc_value(&a.by, view));
        }
        for r in &mut self.rfm {
            r.ranking.upsert(id, &rfm_values(view));
        }
        self.dirty = true;
    }

    /// Recompute every cut point now.
    pub(crate) fn recut(&mut self) {
        for a in &mut self.abc {
            a.cuts = Some(a.ranking.cuts(&a.proportions));
        }
        for r in &mut self.rfm {
            r.cuts = Some(r.ranking.cuts());
        }
        self.dirty = false;
        self.last_cut = Some(Instant::now());
    }

    /// Recompute the cut points if the population changed and the last
    /// recut is older than the cadence.
    pub(crate) fn recut_if_due(&mut self) {
        if self.dirty
            && self
                .last_cut
                .is_none_or(|t| t.elapsed() >= self.recut_every)
        {
            self.recut();
        }
    }

    /// The class of `id` in population grading `g`, by its current value
    /// against the last cut points; `None` when ungraded (unknown value,
    /// no order for RFM, not in the population).
    pub(crate) fn class(&self, g: &Grading, id: &str) -> Option<GradingClass> {
        let class = match &g.kind {
            GradingKind::Abc { .. } => {
                let a = self.abc.iter().find(|a| a.name == g.name)?;
                let value = a.ranking.value(id)?;
                let placement = a.cuts.as_ref()?.placement(value, id)?;
                let name = a.classes.get(placement.class)?;
                if placement.flagged_low {
                    format!("{name} (low value)")
                } else {
                    name.clone()
                }
            }
            GradingKind::Rfm => {
                let r = self.rfm.iter().find(|r| r.name == g.name)?;
                let s = r.ranking.score_of(r.cuts.as_ref()?, id)?;
                format!("{}{}{}", s.recency?, s.frequency?, s.monetary?)
            }
            GradingKind::Matrix { .. } => return None,
        };
        Some(GradingClass {
            grading: g.name.clone(),
            kind: g.kind_name().to_owned(),
            class,
        })
    }
}
