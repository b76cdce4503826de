//! The core stays pure: no async runtime, store, Kafka or gRPC crate may
//! appear anywhere in its normal dependency tree.

#[test]
fn the_core_has_no_io_dependencies() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "-p",
            "tier-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        tree.contains("serde"),
        "unexpected cargo tree output:\n{tree}"
    );
    for line in tree.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        for forbidden in ["tokio", "sled", "rdkafka", "tonic", "hyper", "mio", "prost"] {
            assert!(
                !name.starts_with(forbidden),
                "tier-core depends on {name}: the core must stay free of IO"
            );
        }
    }
}
