//! A metrics recorder for tests: counters recorded anywhere in the test
//! binary, readable by name. Included with `#[path]` by the test files
//! that check what the server counts.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Counters recorded anywhere in this test binary, keyed `name{k=v,..}`.
pub(crate) type Counters = Mutex<HashMap<String, Arc<AtomicU64>>>;

#[derive(Default)]
struct TestRecorder {
    counters: Arc<Counters>,
}

impl metrics::Recorder for TestRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let mut counters = self.counters.lock().unwrap();
        metrics::Counter::from_arc(Arc::clone(counters.entry(name).or_default()))
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

pub(crate) fn metrics_recorder() -> &'static Counters {
    static COUNTERS: OnceLock<Arc<Counters>> = OnceLock::new();
    COUNTERS.get_or_init(|| {
        let recorder = TestRecorder::default();
        let counters = Arc::clone(&recorder.counters);
        metrics::set_global_recorder(recorder).unwrap();
        counters
    })
}

/// The counter `name{k=v,..}` (0 when never recorded).
pub(crate) fn counter(name: &str) -> u64 {
    metrics_recorder()
        .lock()
        .unwrap()
        .get(name)
        .map_or(0, |c| c.load(Ordering::Relaxed))
}
