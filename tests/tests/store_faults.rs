//! A data dir that cannot be opened or fails its integrity check is
//! quarantined (renamed, never deleted) and state is rebuilt from Kafka.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use tier_core::{Event, EventKind, Money, Timestamp};
use tier_proto::api::GetTierRequest;
use tierd_tests::{Sandbox, Wire, http_get, wait_for};

const T: Duration = Duration::from_secs(60);

fn orders(customer: &str, n: usize) -> Vec<Event> {
    let at = Timestamp::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            - 3_600_000,
    );
    (0..n)
        .map(|i| Event {
            event_id: format!("{customer}-{i}"),
            customer_id: customer.into(),
            occurred_at: at,
            source: "test".into(),
            kind: EventKind::OrderPlaced {
                order_id: format!("{customer}-o{i}"),
                amount: Money(100_000_000),
                cost: Some(Money(60_000_000)),
            },
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn quarantined_next_to(dir: &Path) -> Vec<PathBuf> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{name}.quarantined-"))
        })
        .collect()
}

async fn tier(sb: &Sandbox, customer: &str) -> Option<String> {
    let mut c = sb.client().await;
    c.get_tier(GetTierRequest {
        customer_id: customer.into(),
    })
    .await
    .ok()
    .map(|r| r.into_inner().tier)
}

/// Run tierd on `dir`, expecting it to quarantine it and rebuild `customer`.
async fn expect_rebuild(sb: &mut Sandbox, dir: PathBuf, customer: &str) {
    sb.config.data_dir = dir.clone();
    sb.start().await;
    let moved = quarantined_next_to(&dir);
    assert_eq!(
        moved.len(),
        1,
        "exactly one quarantined copy of {}",
        dir.display()
    );
    assert!(
        moved[0].join("db").exists() || moved[0].read_dir().unwrap().next().is_some(),
        "the quarantined dir keeps its files"
    );
    wait_for("state rebuilt from the log", T, || async {
        tier(sb, customer).await.filter(|t| t == "A")
    })
    .await;
    let metrics = http_get(sb.running().metrics_addr, "/metrics").await;
    assert!(
        metrics.contains("tierd_store_quarantined_total"),
        "metric missing"
    );
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_data_dirs_are_quarantined_and_rebuilt_from_kafka() {
    let mut sb = Sandbox::new();
    sb.start().await;
    sb.publish(sb.topic(0), &orders("q-big", 8), Wire::Protobuf)
        .await;
    wait_for("tier A", T, || async {
        tier(&sb, "q-big").await.filter(|t| t == "A")
    })
    .await;
    sb.stop().await;
    let original = sb.config.data_dir.clone();

    // 1. A value that no longer decodes: the integrity check fails.
    let bad_value = sb.dir.path().join("bad-value");
    copy_dir(&original, &bad_value);
    {
        let db = sled::Config::new()
            .path(&bad_value)
            .segment_size(tier_store::SLED_SEGMENT_BYTES)
            .open()
            .unwrap();
        let tree = db.open_tree("tierd-state").unwrap();
        // Layout: `c/`, the input partition (4 bytes), the id.
        let key = tree
            .scan_prefix(b"c/")
            .keys()
            .map(Result::unwrap)
            .find(|k| k.len() == 2 + 4 + 5 && k.ends_with(b"q-big"))
            .expect("layout assumption: c/<scope><id> keys");
        tree.insert(key, &b"\x01\xff\xff\xff garbage"[..]).unwrap();
        db.flush().unwrap();
    }
    expect_rebuild(&mut sb, bad_value, "q-big").await;

    // 2. Garbage over the sled files: the store cannot be opened.
    let bad_files = sb.dir.path().join("bad-files");
    copy_dir(&original, &bad_files);
    for entry in std::fs::read_dir(&bad_files).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let len = std::fs::metadata(&path).unwrap().len() as usize;
            std::fs::write(&path, vec![0xA5u8; len.max(64)]).unwrap();
        }
    }
    expect_rebuild(&mut sb, bad_files, "q-big").await;

    // The original data dir was never touched.
    sb.config.data_dir = original;
    sb.start().await;
    assert_eq!(tier(&sb, "q-big").await.as_deref(), Some("A"));
    assert!(quarantined_next_to(&sb.config.data_dir).is_empty());
    sb.stop().await;
}
