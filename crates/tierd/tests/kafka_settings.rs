//! `--kafka-consumer` settings reach the input consumer and no producer,
//! `--kafka-producer` settings the producers and not the consumer: the
//! `tierd` binary on its embedded broker, read through librdkafka's own
//! warnings about a property given to a client of the other kind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::File;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Tierd;

/// What librdkafka logs when a client is given a property of the other
/// kind of client.
fn ignored(property: &str, kind: &str, client: &str) -> String {
    format!("{property} is a {kind} property and will be ignored by this {client} instance")
}

#[test]
fn consumer_and_producer_settings_reach_only_their_clients() {
    let dir = tempfile::tempdir().unwrap();
    // tierd logs to stdout.
    let log_path = dir.path().join("stdout.log");
    let (mut tierd, _) = Tierd::start(
        dir.path(),
        &[
            // The consumer's own property, and a producer's: the consumer
            // warns about the second, which shows it was given these.
            "--kafka-consumer",
            "fetch.wait.max.ms=10;batch.num.messages=1000",
            // The producers' own, and a consumer's the producers warn
            // about.
            "--kafka-producer",
            "linger.ms=7;fetch.min.bytes=1",
        ],
        "warn",
        Stdio::from(File::create(&log_path).unwrap()),
    );
    let consumer_given = ignored("batch.num.messages", "producer", "consumer");
    let producers_given = ignored("fetch.min.bytes", "consumer", "producer");
    // The consumer starts on the ingest thread, after the producers.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let log = std::fs::read_to_string(&log_path).unwrap();
        if log.contains(&consumer_given) && log.contains(&producers_given) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the clients never showed their settings:\n{log}"
        );
        assert!(tierd.running(), "tierd exited:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let exit = tierd.stop();
    assert!(exit.success(), "tierd exit status {exit}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        !log.contains(&ignored("fetch.wait.max.ms", "consumer", "producer")),
        "a producer was given the consumer's settings:\n{log}"
    );
    assert!(
        !log.contains(&ignored("linger.ms", "producer", "consumer")),
        "the consumer was given the producers' settings:\n{log}"
    );
}
