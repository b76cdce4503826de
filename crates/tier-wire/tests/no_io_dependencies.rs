//! The codecs stay pure: no Kafka client, async runtime, store or gRPC
//! stack may enter the dependency tree through tier-wire.
//!
//! One known exception is pruned: `tier-proto` carries the generated gRPC
//! service stubs, so it depends on tonic (and through it tokio and hyper)
//! unconditionally. tier-wire uses only its message types; the prune keeps
//! that path out of the check while still catching any other way in. Once
//! tier-proto puts its gRPC code behind a feature, drop the prune.

// The helper outside the #[test] fns panics on purpose too.
#![allow(clippy::expect_used)]

fn tree(extra: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "-p",
            "tier-wire",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        tree.contains("prost"),
        "unexpected cargo tree output:\n{tree}"
    );
    tree
}

fn crate_names(tree: &str) -> impl Iterator<Item = &str> {
    tree.lines()
        .map(|line| line.split_whitespace().next().unwrap_or_default())
}

#[test]
fn the_codecs_have_no_io_dependencies() {
    let tree = tree(&["--prune", "tier-proto"]);
    for name in crate_names(&tree) {
        for forbidden in ["rdkafka", "tokio", "sled", "tonic", "hyper", "mio"] {
            assert!(
                !name.starts_with(forbidden),
                "tier-wire depends on {name}: the codecs must stay free of IO"
            );
        }
    }
}

#[test]
fn neither_kafka_nor_the_store_is_reachable_at_all() {
    let tree = tree(&[]);
    for name in crate_names(&tree) {
        for forbidden in ["rdkafka", "sled", "tier-kafka", "tier-store"] {
            assert!(
                !name.starts_with(forbidden),
                "tier-wire depends on {name}: the codecs must stay free of IO"
            );
        }
    }
}
