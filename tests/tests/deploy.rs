//! The deployment artifacts (`deploy/`) against a running tierd: every
//! metric the Grafana dashboard and the Prometheus alerts name is on a live
//! `/metrics` scrape, the dashboard JSON parses, and the YAML files have a
//! sound structure. (`promtool check rules|config` and `promtool test
//! rules` run in `.ci/run` when promtool is installed; the workspace has no
//! YAML parser, so the YAML check here is structural.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tier_core::sim::scenario::{stricter_bands, weekly_buyer};
use tier_core::time::date;
use tier_kafka::ManualClock;
use tier_proto::api::admin_service_client::AdminServiceClient;
use tier_proto::api::{ApplyPolicyRequest, GetTierRequest};
use tierd_tests::{Sandbox, Wire, http_get, wait_for};

const T: Duration = Duration::from_secs(60);

/// 2,000,000 CNY a year, in fen: tier B under the default policy.
const B_BUYER: i64 = 200_000_000;

/// The alerts of `deploy/prometheus/alerts.yml`; each has a runbook line
/// in README.md.
const ALERTS: [&str; 7] = [
    "TierdConsumerLagGrowing",
    "TierdDeadLetterSpike",
    "TierdOutboxBacklogStuck",
    "TierdSweeperBehind",
    "TierdDown",
    "TierdNotServing",
    "TierdGrpcErrorRatio",
];

/// Metrics the deploy files may name although this test cannot make them
/// appear, each with the reason.
const NOT_SCRAPED: &[(&str, &str)] = &[(
    "tierd_retries_total",
    "counted only on consume/probe/commit/publish failures (TierdNotServing); \
     tests/tests/faults.rs sees it with a broker fault",
)];

fn deploy_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(deploy_file(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// Every `tierd_[a-z_]+` word of `text`.
fn referenced(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while let Some(at) = text[i..].find("tierd_") {
        let start = i + at;
        let boundary = start == 0 || {
            let c = bytes[start - 1];
            !(c.is_ascii_alphanumeric() || c == b'_')
        };
        let mut end = start + "tierd_".len();
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary && end > start + "tierd_".len() {
            out.insert(text[start..end].to_owned());
        }
        i = end;
    }
    out
}

/// The sample names of a Prometheus text exposition.
fn scraped(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// A histogram's or summary's base name (`x` of `x_bucket`, `x_sum`, `x_count`).
fn base(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

/// Names referenced by the dashboard or the alerts that the scrape lacks.
/// A referenced name must be on the scrape as written: `x_bucket` proves
/// the histogram has buckets (a summary would export no `_bucket`).
fn missing(names: &BTreeSet<String>, exposition: &str) -> Vec<String> {
    let have = scraped(exposition);
    names
        .iter()
        .filter(|n| !have.contains(n.as_str()))
        .filter(|n| !NOT_SCRAPED.iter().any(|(a, _)| *a == base(n)))
        .cloned()
        .collect()
}

/// What YAML structure can be checked without a YAML parser: no tabs,
/// two-space indentation, every line a comment, a `key: value`, a `key:`
/// (a block or null), or a `- ` list item; balanced double quotes; `|`
/// block scalars hold deeper-indented text.
fn check_yaml(rel: &str, text: &str) {
    let indent = |l: &str| l.len() - l.trim_start_matches(' ').len();
    let lines: Vec<&str> = text.lines().collect();
    let mut scalar_at: Option<usize> = None;
    for (n, line) in lines.iter().enumerate() {
        let at = format!("{rel}:{}", n + 1);
        assert!(!line.contains('\t'), "{at}: tab");
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let ind = indent(line);
        if let Some(s) = scalar_at {
            if ind > s {
                continue;
            }
            scalar_at = None;
        }
        if t.starts_with('#') || (t == "---" && ind == 0) {
            continue;
        }
        assert_eq!(ind % 2, 0, "{at}: odd indentation");
        let item = t.strip_prefix("- ").unwrap_or(t);
        // A mapping key ends in `: ` or at a line-ending `:`; other colons
        // belong to scalars (`- ./dir:/mnt:ro`, URLs).
        let key_end = item
            .find(": ")
            .or_else(|| item.ends_with(':').then(|| item.len() - 1));
        let is_scalar_item = t.starts_with("- ") && key_end.is_none();
        assert!(
            key_end.is_some() || is_scalar_item,
            "{at}: neither `key: value` nor a list item: {t}"
        );
        if let Some(k) = key_end {
            let key = &item[..k];
            assert!(
                !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c)),
                "{at}: bad key {key:?}"
            );
            let value = item[k + 1..].trim();
            let key_col = ind + (t.len() - item.len());
            if value == "|" || value == ">" {
                scalar_at = Some(key_col);
            } else if !value.is_empty() {
                let quotes = value.matches('"').count() - value.matches("\\\"").count();
                assert_eq!(quotes % 2, 0, "{at}: unbalanced quotes");
            }
        }
    }
}

/// `key: value` values of `text` for `key`, in order.
fn values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| {
            let t = l.trim().strip_prefix("- ").unwrap_or(l.trim());
            t.strip_prefix(key)?.strip_prefix(':').map(str::trim)
        })
        .collect()
}

fn check_alerts(text: &str) {
    check_yaml("prometheus/alerts.yml", text);
    assert!(
        text.lines().any(|l| l == "groups:"),
        "alerts.yml: no groups"
    );
    let names = values(text, "alert");
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "duplicate alert names: {names:?}"
    );
    assert_eq!(unique, ALERTS.into_iter().collect(), "alerts.yml alerts");
    for key in ["expr", "for", "severity", "summary", "runbook"] {
        assert_eq!(
            values(text, key).len(),
            names.len(),
            "alerts.yml: every alert has `{key}`"
        );
    }
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let ops = readme
        .split("## Operations: alerts")
        .nth(1)
        .expect("README.md has an \"Operations: alerts\" section");
    for alert in ALERTS {
        assert!(ops.contains(alert), "README.md has no runbook for {alert}");
    }
}

fn check_prometheus_config(text: &str) {
    check_yaml("prometheus/prometheus.yml", text);
    assert!(text.contains("rule_files:") && text.contains("- alerts.yml"));
    assert_eq!(values(text, "job_name"), ["tierd"]);
}

/// The dashboard: valid JSON, unique panel ids, every non-row panel on the
/// grid with PromQL targets, and the panels the operations issue lists.
fn check_dashboard(text: &str) {
    let dash: serde_json::Value = serde_json::from_str(text).expect("tierd.json parses");
    assert_eq!(dash["uid"], "tierd");
    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut titles = Vec::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().expect("panel id")), "dup id");
        let g = &p["gridPos"];
        assert!(g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24);
        if p["type"] == "row" {
            continue;
        }
        let title = p["title"].as_str().unwrap();
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no targets");
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            assert!(expr.contains("tierd_"), "{title}: {expr}");
            assert_eq!(
                expr.matches('(').count(),
                expr.matches(')').count(),
                "{title}: {expr}"
            );
        }
        titles.push(title.to_lowercase());
    }
    for want in [
        "ingest rate by topic",
        "consumer lag per partition",
        "dead letters by reason",
        "batch commit latency",
        "state written per record",
        "tier distribution",
        "tier changes by cause",
        "customers at risk",
        "overdue complaints by tier",
        "outbox backlog",
        "sweeper backlog",
        "policy rescore progress",
        "grpc requests",
        "grpc errors",
        "grpc latency",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(want)),
            "the dashboard has no panel {want:?}: {titles:?}"
        );
    }
}

/// The compose file: KRaft Kafka, tierd built from deploy/Dockerfile,
/// Prometheus and Grafana with the files of this directory mounted.
fn check_compose(text: &str) {
    check_yaml("docker-compose.yml", text);
    let services: Vec<&str> = text
        .split("\nservices:\n")
        .nth(1)
        .expect("services:")
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':'))
        .collect();
    assert_eq!(services, ["kafka", "tierd", "prometheus", "grafana"]);
    assert_eq!(
        values(text, "KAFKA_PROCESS_ROLES"),
        ["\"broker,controller\""]
    );
    assert_eq!(values(text, "dockerfile"), ["deploy/Dockerfile"]);
    for mounted in [
        "./prometheus:/etc/prometheus",
        "./grafana/provisioning:/etc/grafana/provisioning",
        "./grafana/tierd.json:/var/lib/grafana/dashboards/tierd.json",
    ] {
        assert!(text.contains(mounted), "compose does not mount {mounted}");
        let local = mounted.split(':').next().unwrap();
        assert!(deploy_file(local).exists(), "{local} does not exist");
    }
    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile.contains("\nUSER 10001"),
        "the image runs as non-root"
    );
    assert!(dockerfile.contains("TIERD_METRICS_LISTEN=0.0.0.0:9464"));
    assert!(text.contains("TIERD_METRICS_LISTEN: \"0.0.0.0:9464\""));
    assert!(read("prometheus/prometheus.yml").contains("\"tierd:9464\""));
}

fn check_provisioning() {
    let ds = read("grafana/provisioning/datasources/prometheus.yml");
    check_yaml("grafana/provisioning/datasources/prometheus.yml", &ds);
    assert_eq!(values(&ds, "type"), ["prometheus"]);
    let dash = read("grafana/provisioning/dashboards/tierd.yml");
    check_yaml("grafana/provisioning/dashboards/tierd.yml", &dash);
    assert_eq!(values(&dash, "type"), ["file"]);
}

#[test]
fn the_scanners_work() {
    let r = referenced("rate(tierd_a_total[5m]) / x_tierd_no + tierd_b_bucket{le=\"1\"} tierd_");
    assert_eq!(
        r.into_iter().collect::<Vec<_>>(),
        ["tierd_a_total", "tierd_b_bucket"]
    );
    let s = scraped("# TYPE tierd_h histogram\ntierd_h_bucket{le=\"1\"} 0\ntierd_c 3\n");
    assert_eq!(
        s.into_iter().collect::<Vec<_>>(),
        ["tierd_c", "tierd_h_bucket"]
    );
    assert_eq!(base("tierd_h_bucket"), "tierd_h");
    let names: BTreeSet<String> = ["tierd_h_bucket", "tierd_h_sum", "tierd_retries_total"]
        .map(str::to_owned)
        .into();
    assert_eq!(
        missing(&names, "tierd_h_bucket{le=\"1\"} 0\n"),
        ["tierd_h_sum"],
        "exact names, allow-listed ones excepted"
    );
    check_yaml("t", "a:\n  b: |\n    x: - : \"\n  c:\n  - d: 1\n");
    let bad = std::panic::catch_unwind(|| check_yaml("t", "a:\n\tb: 1\n"));
    assert!(bad.is_err(), "a tab is refused");
}

#[test]
fn the_files_are_well_formed() {
    check_alerts(&read("prometheus/alerts.yml"));
    check_prometheus_config(&read("prometheus/prometheus.yml"));
    let rule_tests = read("prometheus/alerts_test.yml");
    check_yaml("prometheus/alerts_test.yml", &rule_tests);
    for alert in ALERTS {
        assert!(
            values(&rule_tests, "alertname").contains(&alert),
            "alerts_test.yml does not test {alert}"
        );
    }
    check_dashboard(&read("grafana/tierd.json"));
    check_provisioning();
    check_compose(&read("docker-compose.yml"));
    check_k8s();
    check_ci_runs_the_readme_test_command();
}

/// `.ci/run` runs exactly README's test command (the second command of
/// "Two commands").
fn check_ci_runs_the_readme_test_command() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme.split("## Two commands").nth(1).unwrap();
    let commands: Vec<&str> = section
        .split("```sh\n")
        .skip(1)
        .take(2)
        .map(|b| b.split("```").next().unwrap().trim())
        .collect();
    assert_eq!(commands.len(), 2, "README's two commands");
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == commands[1]),
        ".ci/run does not run README's test command {:?}",
        commands[1]
    );
}

/// The manifests of `deploy/k8s/`, and everything they share with the rest
/// of the repository: the policy ConfigMap is `policy/default.toml`
/// verbatim (and parses), the token Secret parses as a tokens file, the
/// probes name tierd's health services, ports and uid match the
/// Dockerfile, and every mount the arguments read is there.
fn check_k8s() {
    const MANIFESTS: [&str; 5] = [
        "namespace.yaml",
        "policy-configmap.yaml",
        "tokens-secret.yaml",
        "service.yaml",
        "statefulset.yaml",
    ];
    let kustomization = read("k8s/kustomization.yaml");
    check_yaml("k8s/kustomization.yaml", &kustomization);
    for m in MANIFESTS {
        let rel = format!("k8s/{m}");
        check_yaml(&rel, &read(&rel));
        assert!(
            kustomization.lines().any(|l| l.trim() == format!("- {m}")),
            "kustomization.yaml does not list {m}"
        );
    }

    let block = |text: &str, key: &str| -> String {
        let mut lines = text.lines().skip_while(|l| l.trim() != format!("{key}: |"));
        let header = lines
            .next()
            .unwrap_or_else(|| panic!("no `{key}: |` block"));
        let indent = header.len() - header.trim_start().len() + 2;
        let mut out = String::new();
        for l in lines {
            if !l.trim().is_empty() && l.len() - l.trim_start().len() < indent {
                break;
            }
            out.push_str(l.get(indent..).unwrap_or(""));
            out.push('\n');
        }
        out
    };
    let policy = block(&read("k8s/policy-configmap.yaml"), "policy.toml");
    assert_eq!(
        policy,
        read("policy/default.toml"),
        "k8s/policy-configmap.yaml must hold policy/default.toml verbatim"
    );
    tier_core::policy::Policy::from_toml_str(&policy).unwrap();
    let tokens = block(&read("k8s/tokens-secret.yaml"), "tokens.toml");
    let auth = tier_api::auth::Auth::parse(&tokens, std::path::Path::new("tokens.toml")).unwrap();
    assert!(auth.is_configured());

    let sts = read("k8s/statefulset.yaml");
    let docker = read("Dockerfile");
    assert!(
        docker.contains("EXPOSE 50051 9464"),
        "Dockerfile ports moved"
    );
    assert_eq!(values(&sts, "containerPort"), ["50051", "9464"]);
    assert!(docker.contains("--uid 10001") && docker.contains("USER 10001:10001"));
    assert_eq!(values(&sts, "runAsUser"), ["10001"]);
    // Readiness on the whole server, liveness and startup on the service
    // that stays SERVING while tierd catches up.
    assert_eq!(
        values(&sts, "service"),
        [
            "\"\"",
            tier_api::LIVENESS_SERVICE,
            tier_api::LIVENESS_SERVICE
        ]
    );
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        assert_eq!(values(&sts, probe), [""], "{probe}");
    }
    assert_eq!(
        values(&sts, "port")
            .iter()
            .filter(|p| **p == "50051")
            .count(),
        3
    );
    for needed in [
        "volumeClaimTemplates",
        "requests",
        "mountPath: /var/lib/tierd",
        "value: \"/var/lib/tierd/data\"",
        "mountPath: /etc/tierd/policy",
        "\"/etc/tierd/policy/policy.toml\"",
        "name: tierd-policy",
        "mountPath: /etc/tierd/tokens",
        "\"/etc/tierd/tokens/tokens.toml\"",
        "secretName: tierd-tokens",
        "value: \"0.0.0.0:9464\"",
    ] {
        assert!(sts.contains(needed), "statefulset.yaml lacks {needed}");
    }
}

/// Start tierd on a stepped clock and make every referenced metric exist:
/// a buyer (consumed, applied, tier changes, customers per tier, outbox,
/// commit latency, consumer lag), an undecodable record (dead letter),
/// gRPC calls, time moved past the buyer's drop (sweeps, at-risk), and a
/// policy change (rescore progress). Then scrape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_alerts_use_is_exported() {
    let mut names = referenced(&read("grafana/tierd.json"));
    names.extend(referenced(&read("prometheus/alerts.yml")));
    assert!(names.len() >= 10, "{names:?}");
    for (name, _) in NOT_SCRAPED {
        assert!(
            names.iter().any(|n| base(n) == *name),
            "{name} is allow-listed but no longer referenced"
        );
    }

    let last = date(2026, 3, 2);
    let clock = Arc::new(ManualClock::new(last.plus_days(1)));
    let mut sb = Sandbox::new();
    sb.clock = Some(clock.clone());
    let topic = sb.orders_topic().to_owned();
    sb.publish(
        &topic,
        &weekly_buyer("deploy", last, B_BUYER),
        Wire::Protobuf,
    )
    .await;
    sb.publish_raw(&topic, Some("deploy"), b"\xffnot an event")
        .await;
    sb.start().await;
    sb.wait_consumed(T).await;

    let mut client = sb.client().await;
    wait_for("the buyer in tier B", T, || {
        let mut c = client.clone();
        async move {
            let t = c
                .get_tier(GetTierRequest {
                    customer_id: "deploy".into(),
                })
                .await
                .ok()?
                .into_inner();
            (t.tier == "B").then_some(())
        }
    })
    .await;
    let _ = client
        .get_tier(GetTierRequest {
            customer_id: String::new(),
        })
        .await
        .unwrap_err();

    // A year on: the buyer lapses; the sweeper makes the drops.
    let later = last.plus_days(365);
    clock.set(later);
    sb.running().swept_to(later, T).await.unwrap();

    // A policy change: a background rescore.
    let mut admin = AdminServiceClient::connect(format!("http://{}", sb.running().grpc_addr))
        .await
        .unwrap();
    admin
        .apply_policy(ApplyPolicyRequest {
            policy_text: stricter_bands(
                tier_core::policy::DEFAULT_POLICY_TOML,
                "deploy-2027.01",
                2.0,
            ),
        })
        .await
        .unwrap();

    let addr = sb.running().metrics_addr;
    let deadline = Instant::now() + T;
    let scrape = loop {
        let text = http_get(addr, "/metrics").await;
        let lacking = missing(&names, &text);
        if lacking.is_empty() {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "/metrics lacks {lacking:?} (the deploy files name them)"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // The dead letter is counted under its reason.
    assert!(
        scrape.contains("tierd_events_rejected_total{reason="),
        "no dead letter on /metrics"
    );
    sb.stop().await;
}
