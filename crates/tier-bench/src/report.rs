//! Figures, their peers and goals; the table and the JSON line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::config::BenchConfig;

/// Which way a goal points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Goal {
    AtLeast(f64),
    AtMost(f64),
}

impl Goal {
    pub(crate) fn met(self, value: f64) -> bool {
        match self {
            Goal::AtLeast(g) => value >= g,
            Goal::AtMost(g) => value <= g,
        }
    }

    fn describe(self, unit: &str) -> String {
        match self {
            Goal::AtLeast(g) => format!(">= {}{unit}", human(g)),
            Goal::AtMost(g) => format!("<= {}{unit}", human(g)),
        }
    }
}

/// One measured figure (or the reason it could not be measured).
#[derive(Debug, Clone)]
pub(crate) struct Figure {
    /// The JSON key, e.g. `fold_events_per_sec`.
    pub(crate) key: &'static str,
    /// What a reader of the table sees, e.g. `fold + rescore, 1 thread`.
    pub(crate) label: String,
    pub(crate) value: Option<f64>,
    /// Printed after the value in the table (`ev/s`, `ms`, `x`, ...).
    pub(crate) unit: &'static str,
    /// The peer measured in the same run, in words (`bare rdkafka
    /// consumer: 196,000 ev/s`).
    pub(crate) peer: Option<String>,
    pub(crate) goal: Option<Goal>,
    /// Why the value is missing, or a caveat worth printing.
    pub(crate) note: Option<String>,
}

impl Figure {
    pub(crate) fn new(
        key: &'static str,
        label: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) -> Self {
        Self {
            key,
            label: label.into(),
            value: Some(value),
            unit,
            peer: None,
            goal: None,
            note: None,
        }
    }

    /// A figure that could not be measured, and why (null in the JSON).
    pub(crate) fn missing(
        key: &'static str,
        label: impl Into<String>,
        unit: &'static str,
        why: impl Into<String>,
    ) -> Self {
        Self {
            key,
            label: label.into(),
            value: None,
            unit,
            peer: None,
            goal: None,
            note: Some(why.into()),
        }
    }

    pub(crate) fn goal(mut self, goal: Goal) -> Self {
        self.goal = Some(goal);
        self
    }

    pub(crate) fn peer(mut self, peer: impl Into<String>) -> Self {
        self.peer = Some(peer.into());
        self
    }

    pub(crate) fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    fn met(&self) -> Option<bool> {
        Some(self.goal?.met(self.value?))
    }
}

/// Everything a run measured, in the order it was measured.
#[derive(Debug)]
pub(crate) struct Report {
    figures: Vec<Figure>,
    /// Scenario failures: the run exits non-zero when there is one.
    failures: Vec<String>,
    /// Section headings, by the index of their first figure.
    sections: Vec<(usize, &'static str)>,
    context: BTreeMap<&'static str, Value>,
    /// The machine's speed at the start of the run (the line above the
    /// table; `context.machine` in the JSON).
    machine: Option<crate::machine::Machine>,
    started: Instant,
}

impl Report {
    pub(crate) fn new(cfg: &BenchConfig) -> Self {
        let mut context = BTreeMap::new();
        context.insert("quick", json!(cfg.quick));
        context.insert("customers", json!(cfg.customers));
        context.insert("orders", json!(cfg.orders));
        context.insert("state_customers", json!(cfg.state_customers));
        context.insert("hot_customers", json!(cfg.hot_customers));
        context.insert("store_backend", json!(cfg.store_backend.name()));
        context.insert("zipf_s", json!(cfg.zipf_s));
        context.insert(
            "cores",
            json!(std::thread::available_parallelism().map_or(1, |n| n.get())),
        );
        Self {
            figures: Vec::new(),
            failures: Vec::new(),
            sections: Vec::new(),
            context,
            machine: None,
            started: Instant::now(),
        }
    }

    /// Run one group of scenarios; an error is recorded as a failure and
    /// the run goes on with the next group.
    pub(crate) fn section(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut Report) -> anyhow::Result<()>,
    ) {
        self.sections.push((self.figures.len(), name));
        if let Err(e) = f(self) {
            eprintln!("tier-bench: {name}: {e:#}");
            self.failures.push(format!("{name}: {e:#}"));
        }
    }

    /// Record a figure; a later figure with the same key replaces it.
    pub(crate) fn add(&mut self, figure: Figure) {
        let met = match figure.met() {
            Some(true) => " (goal met)",
            Some(false) => " (goal missed)",
            None => "",
        };
        match figure.value {
            Some(v) => eprintln!("  {}: {}{}{met}", figure.key, human(v), figure.unit),
            None => eprintln!(
                "  {}: n/a ({})",
                figure.key,
                figure.note.as_deref().unwrap_or("")
            ),
        }
        self.figures.retain(|f| f.key != figure.key);
        self.figures.push(figure);
    }

    /// A scenario that failed (data lost, a server that would not start):
    /// the run exits non-zero.
    pub(crate) fn fail(&mut self, scenario: &str, why: impl std::fmt::Display) {
        eprintln!("tier-bench: {scenario} failed: {why}");
        self.failures.push(format!("{scenario}: {why}"));
    }

    /// The value of a figure already recorded.
    pub(crate) fn value(&self, key: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.key == key)
            .and_then(|f| f.value)
    }

    /// Record `numerator / denominator` of two recorded figures as a ratio
    /// figure (null when either is missing).
    pub(crate) fn ratio(
        &mut self,
        key: &'static str,
        label: &str,
        numerator: &str,
        denominator: &str,
        goal: Option<Goal>,
    ) {
        let mut figure = match (self.value(numerator), self.value(denominator)) {
            (Some(n), Some(d)) if d > 0.0 => Figure::new(key, label, n / d, "x"),
            _ => Figure::missing(
                key,
                label,
                "x",
                format!("needs {numerator} and {denominator}"),
            ),
        };
        figure.goal = goal;
        self.add(figure);
    }

    /// Extra context for the JSON object (machine, versions, sizes).
    pub(crate) fn context(&mut self, key: &'static str, value: Value) {
        self.context.insert(key, value);
    }

    /// The machine's speed measured at the start of the run.
    pub(crate) fn machine(&mut self, machine: crate::machine::Machine) {
        self.context.insert("machine", machine.json());
        self.machine = Some(machine);
    }

    pub(crate) fn failed(&self) -> bool {
        !self.failures.is_empty()
    }

    pub(crate) fn finish(&mut self) {
        self.context.insert(
            "elapsed_seconds",
            json!(self.started.elapsed().as_secs_f64()),
        );
    }

    /// The human table: figure, value, peer, goal.
    pub(crate) fn table(&self) -> String {
        let rows: Vec<[String; 5]> = self
            .figures
            .iter()
            .map(|f| {
                [
                    f.label.clone(),
                    f.value
                        .map_or_else(|| "n/a".into(), |v| format!("{}{}", human(v), f.unit)),
                    f.peer.clone().unwrap_or_default(),
                    f.goal.map(|g| g.describe(f.unit)).unwrap_or_default(),
                    match f.met() {
                        Some(true) => "met".into(),
                        Some(false) => "MISSED".into(),
                        None => String::new(),
                    },
                ]
            })
            .collect();
        let header = ["figure", "value", "peer (same run)", "goal", ""];
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        if let Some(machine) = &self.machine {
            let _ = writeln!(out, "{}", machine.describe());
        }
        let line = |out: &mut String, cells: &[String; 5]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i == 1 {
                    let _ = write!(s, "{cell:>w$}  ");
                } else {
                    let _ = write!(s, "{cell:<w$}  ");
                }
            }
            let _ = writeln!(out, "{}", s.trim_end());
        };
        line(&mut out, &header.map(String::from));
        let mut sections = self.sections.iter().peekable();
        for (i, row) in rows.iter().enumerate() {
            while let Some((_, name)) = sections.next_if(|(at, _)| *at <= i) {
                let _ = writeln!(out, "-- {name}");
            }
            line(&mut out, row);
        }
        for f in self.figures.iter().filter(|f| f.note.is_some()) {
            let _ = writeln!(
                out,
                "note: {}: {}",
                f.key,
                f.note.as_deref().unwrap_or_default()
            );
        }
        for failure in &self.failures {
            let _ = writeln!(out, "FAILED: {failure}");
        }
        out
    }

    /// One JSON object: every figure by key (null when missing), the goals
    /// and whether they were met, notes, failures and the run's context.
    pub(crate) fn json(&self) -> String {
        let mut obj = Map::new();
        let mut goals = Map::new();
        let mut notes = Map::new();
        for f in &self.figures {
            obj.insert(f.key.into(), f.value.map_or(Value::Null, |v| json!(v)));
            if let Some(goal) = f.goal {
                let (op, v) = match goal {
                    Goal::AtLeast(v) => (">=", v),
                    Goal::AtMost(v) => ("<=", v),
                };
                goals.insert(f.key.into(), json!({ "op": op, "goal": v, "met": f.met() }));
            }
            if let Some(note) = &f.note {
                notes.insert(f.key.into(), json!(note));
            }
        }
        obj.insert("goals".into(), Value::Object(goals));
        obj.insert("notes".into(), Value::Object(notes));
        obj.insert("failures".into(), json!(self.failures));
        obj.insert(
            "context".into(),
            Value::Object(
                self.context
                    .iter()
                    .map(|(k, v)| ((*k).into(), v.clone()))
                    .collect(),
            ),
        );
        Value::Object(obj).to_string()
    }
}

/// `1234567.0` -> `1,234,567`; small values keep three significant digits.
pub(crate) fn human(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.abs() >= 1000.0 {
        let n = v.round() as i64;
        let digits = n.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 { format!("-{out}") } else { out }
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_numbers_read_like_the_readme() {
        assert_eq!(human(1_234_567.4), "1,234,567");
        assert_eq!(human(-2500.0), "-2,500");
        assert_eq!(human(456.7), "457");
        assert_eq!(human(12.34), "12.3");
        assert_eq!(human(0.450), "0.45");
        assert_eq!(human(2.0), "2");
    }

    #[test]
    fn goals_point_the_right_way() {
        assert!(Goal::AtLeast(1.0).met(1.0));
        assert!(!Goal::AtLeast(1.0).met(0.99));
        assert!(Goal::AtMost(2.0).met(2.0));
        assert!(!Goal::AtMost(2.0).met(2.01));
    }
}
