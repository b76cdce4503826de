//! `tierd check-config`: resolve the configuration exactly as a start
//! would (defaults < `--config` file < environment < flags), validate every
//! part that can be checked without a broker, and report the effective
//! settings with secrets masked and every problem at once, so an operator
//! fixes a deployment in one round instead of one error per restart.
//!
//! Checked: the settings themselves (types, unknown keys, the store
//! backend), the policy file (line and field), the auth tokens file, the
//! `--kafka` settings, topic names, the data dir, numeric bounds, the
//! OTLP endpoint (and that this build can export). Not
//! checked: anything needing the network (brokers, ports in use).

use std::fmt::Write as _;
use std::path::Path;

use crate::config::{Cli, Config, MAX_SWEEP_GRACE_MS};

/// librdkafka settings whose values are secrets: shown as `****`.
const SECRET_KEYS: [&str; 6] = [
    "password",
    "secret",
    "sasl.jaas.config",
    "ssl.key.pem",
    "ssl.keystore",
    "token",
];

/// What `check-config` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// The effective settings as TOML, secrets masked; `None` when they
    /// could not be resolved at all.
    pub effective: Option<String>,
    /// Every problem found, each naming the setting.
    pub errors: Vec<String>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// The report for people: the settings, then the problems.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(effective) = &self.effective {
            let _ = writeln!(
                out,
                "# effective configuration (secrets masked)\n{effective}"
            );
        }
        if self.errors.is_empty() {
            out.push_str("configuration OK\n");
        } else {
            let _ = writeln!(out, "{} problem(s):", self.errors.len());
            for e in &self.errors {
                let _ = writeln!(out, "  - {e}");
            }
        }
        out
    }
}

/// Whether librdkafka setting `key` holds a secret.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| key.contains(s))
}

/// Check `cli` as tierd would start with it.
pub fn check(cli: &Cli) -> CheckReport {
    let mut report = CheckReport::default();
    let config = match cli.resolve() {
        Ok(c) => c,
        Err(e) => {
            match e.downcast_ref::<figment::Error>() {
                // Figment keeps every error it met; report them all.
                Some(errors) => report
                    .errors
                    .extend(errors.clone().into_iter().map(|e| format!("settings: {e}"))),
                None => report.errors.push(format!("settings: {e:#}")),
            }
            return report;
        }
    };
    report.effective = Some(render_masked(&config));
    let errors = &mut report.errors;

    if let Err(e) = crate::load_policy_text(config.policy.as_deref()) {
        errors.push(format!("policy: {e:#}"));
    }
    if let Some(path) = &config.auth_tokens_file
        && let Err(e) = tier_api::Auth::from_file(path)
    {
        errors.push(format!("auth_tokens_file: {e}"));
    }
    match config.grpc_tls() {
        Ok(Some(files)) => {
            if let Err(e) = tier_api::ApiTls::from_files(&files) {
                errors.push(format!("grpc_tls: {e}"));
            }
        }
        Ok(None) => {}
        Err(e) => errors.push(format!("grpc_tls: {e:#}")),
    }
    if let Err(e) = crate::telemetry::check(&config) {
        errors.push(format!("otlp_endpoint: {e:#}"));
    }
    if let Err(e) = config.kafka_settings() {
        errors.push(format!("kafka: {e:#}"));
    }
    check_topics(&config, errors);
    check_data_dir(&config.data_dir, errors);
    let positive = [
        ("batch_max_records", config.batch_max_records as u64),
        ("align_max_held", config.align_max_held as u64),
        ("engine_slice", config.engine_slice as u64),
        ("hot_customers", config.hot_customers as u64),
        ("hot_mib", config.hot_mib),
        ("store_cache_mib", config.store_cache_mib),
        ("partitions", u64::try_from(config.partitions).unwrap_or(0)),
        (
            "replication",
            u64::try_from(config.replication).unwrap_or(0),
        ),
        ("session_timeout_ms", u64::from(config.session_timeout_ms)),
        ("stall_after_ms", config.stall_after_ms),
        (
            "grpc_max_request_bytes",
            config.grpc_max_request_bytes as u64,
        ),
        (
            "grpc_concurrency_per_connection",
            config.grpc_concurrency_per_connection as u64,
        ),
        ("grpc_request_timeout_ms", config.grpc_request_timeout_ms),
    ];
    for (name, value) in positive {
        if value == 0 {
            errors.push(format!("{name}: must be at least 1"));
        }
    }
    if config.sweep_grace_ms > MAX_SWEEP_GRACE_MS {
        errors.push(format!(
            "sweep_grace_ms: {} is more than a day ({MAX_SWEEP_GRACE_MS}): time-driven \
             decisions would be made a day late",
            config.sweep_grace_ms
        ));
    }
    if config.grpc_listen == config.metrics_listen && config.grpc_listen.port() != 0 {
        errors.push(format!(
            "metrics_listen: {} is also grpc_listen",
            config.metrics_listen
        ));
    }
    report
}

/// Kafka topic names: 1-249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn check_topics(config: &Config, errors: &mut Vec<String>) {
    if config.topics.is_empty() {
        errors.push("topics: at least one input topic is needed".into());
    }
    let named = config.topics.iter().map(|t| ("topics", t)).chain([
        ("dlq_topic", &config.dlq_topic),
        ("tier_changes_topic", &config.tier_changes_topic),
    ]);
    for (field, topic) in named {
        if !valid_topic(topic) {
            errors.push(format!(
                "{field}: {topic:?} is not a valid Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)"
            ));
        }
    }
    for (field, out) in [
        ("dlq_topic", &config.dlq_topic),
        ("tier_changes_topic", &config.tier_changes_topic),
    ] {
        if config.topics.contains(out) {
            errors.push(format!(
                "{field}: {out:?} is also an input topic: tierd would read its own output"
            ));
        }
    }
}

fn check_data_dir(dir: &Path, errors: &mut Vec<String>) {
    if dir.exists() {
        if !dir.is_dir() {
            errors.push(format!("data_dir: {} is not a directory", dir.display()));
        } else if std::fs::metadata(dir).is_ok_and(|m| m.permissions().readonly()) {
            errors.push(format!("data_dir: {} is read-only", dir.display()));
        }
        return;
    }
    // Created at start: its nearest existing ancestor must be a directory.
    let parent = dir
        .ancestors()
        .skip(1)
        .find(|p| p.as_os_str().is_empty() || p.exists());
    if let Some(p) = parent
        && !p.as_os_str().is_empty()
        && !p.is_dir()
    {
        errors.push(format!(
            "data_dir: {} cannot be created: {} is not a directory",
            dir.display(),
            p.display()
        ));
    }
}

/// `config` as TOML, the librdkafka settings' secrets masked.
fn render_masked(config: &Config) -> String {
    let mut masked = config.clone();
    for kv in masked
        .kafka
        .iter_mut()
        .chain(&mut masked.kafka_consumer)
        .chain(&mut masked.kafka_producer)
    {
        if let Some((k, _)) = kv.split_once('=')
            && is_secret(k)
        {
            *kv = format!("{}=****", k.trim());
        }
    }
    toml::to_string(&masked).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn check_args(args: &[&str]) -> CheckReport {
        let mut full = vec!["tierd"];
        full.extend_from_slice(args);
        check(&Cli::try_parse_from(full).unwrap())
    }

    #[test]
    fn the_defaults_pass_and_are_shown() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let r = check_args(&["--data-dir", data.to_str().unwrap()]);
        assert!(r.is_ok(), "{}", r.render());
        let shown = r.effective.clone().unwrap();
        assert!(
            shown.contains("grpc_listen = \"127.0.0.1:50051\""),
            "{shown}"
        );
        assert!(shown.contains("sweep_grace_ms = 60000"), "{shown}");
        assert!(r.render().contains("configuration OK"));
    }

    #[test]
    fn every_problem_is_reported_at_once_and_secrets_are_masked() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, "version = \"x\"\nwindow_months = 99\n").unwrap();
        let tokens = dir.path().join("tokens.toml");
        std::fs::write(&tokens, "[[token]]\nscope = \"root\"\ntoken = \"x\"\n").unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let r = check_args(&[
            "--policy",
            policy.to_str().unwrap(),
            "--auth-tokens-file",
            tokens.to_str().unwrap(),
            "--kafka",
            "sasl.password=hunter2hunter2;security.protocol=SASL_SSL;oops",
            "--kafka-producer",
            "sasl.password=producer-secret",
            "--topics",
            "orders,bad topic",
            "--dlq-topic",
            "orders",
            "--data-dir",
            file.to_str().unwrap(),
            "--batch-max-records",
            "0",
            "--store-cache-mib",
            "0",
            "--align-max-held",
            "0",
            "--sweep-grace-ms",
            "90000000",
        ]);
        let text = r.render();
        for expected in [
            "policy:",
            "auth_tokens_file:",
            "kafka:",
            "\"bad topic\" is not a valid Kafka topic name",
            "dlq_topic: \"orders\" is also an input topic",
            "is not a directory",
            "batch_max_records: must be at least 1",
            "store_cache_mib: must be at least 1",
            "align_max_held: must be at least 1",
            "sweep_grace_ms: 90000000 is more than a day",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        assert_eq!(r.errors.len(), 10, "{text}");
        assert!(!text.contains("hunter2"), "a secret leaked:\n{text}");
        assert!(
            !text.contains("producer-secret"),
            "a secret leaked:\n{text}"
        );
        assert!(text.contains("sasl.password=****"), "{text}");
        assert!(text.contains("security.protocol=SASL_SSL"), "{text}");
    }

    #[test]
    fn unreadable_settings_are_all_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tierd.toml");
        std::fs::write(&file, "partitions = \"many\"\nno_such_setting = 1\n").unwrap();
        let r = check_args(&["--config", file.to_str().unwrap()]);
        assert!(r.effective.is_none());
        let text = r.render();
        assert!(
            text.contains("partitions") || text.contains("no_such_setting"),
            "{text}"
        );
        assert!(!r.is_ok());
    }

    #[test]
    fn the_otlp_endpoint_is_shown_and_refused_by_builds_without_the_feature() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let r = check_args(&[
            "--data-dir",
            data.to_str().unwrap(),
            "--otlp-endpoint",
            "http://collector.example:4318",
        ]);
        let text = r.render();
        assert!(
            text.contains("otlp_endpoint = \"http://collector.example:4318\""),
            "{text}"
        );
        if crate::telemetry::OTLP_COMPILED_IN {
            assert!(r.is_ok(), "{text}");
        } else {
            assert!(
                text.contains("otlp_endpoint: set to \"http://collector.example:4318\", but this tierd was built without the otlp feature"),
                "{text}"
            );
        }
        for (bad, why) in [
            ("https://collector:4318", "https is not supported"),
            ("collector:4318", "expected an http:// URL"),
        ] {
            let r = check_args(&["--data-dir", data.to_str().unwrap(), "--otlp-endpoint", bad]);
            let text = r.render();
            assert!(text.contains("otlp_endpoint: "), "{text}");
            if crate::telemetry::OTLP_COMPILED_IN {
                assert!(text.contains(why), "{text}");
            }
        }
    }

    #[test]
    fn secret_keys_are_recognised() {
        assert!(is_secret("sasl.password"));
        assert!(is_secret("SSL.KEY.PASSWORD"));
        assert!(is_secret("sasl.jaas.config"));
        assert!(!is_secret("security.protocol"));
        assert!(!is_secret("sasl.mechanisms"));
    }
}
