//! `--kafka-consumer` settings reach the input consumer and no producer,
//! `--kafka-producer` settings the producers and not the consumer: the
//! `tierd` binary on its embedded broker, read through librdkafka's own
//! warnings about a property given to a client of the other kind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What librdkafka logs when a client is given a property of the other
/// kind of client.
fn ignored(property: &str, kind: &str, client: &str) -> String {
    format!("{property} is a {kind} property and will be ignored by this {client} instance")
}

fn stop(tierd: &mut Child) {
    let status = Command::new("kill")
        .args(["-TERM", &tierd.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while tierd.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "tierd did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn consumer_and_producer_settings_reach_only_their_clients() {
    let dir = tempfile::tempdir().unwrap();
    // tierd logs to stdout.
    let log_path = dir.path().join("stdout.log");
    let mut tierd = Command::new(env!("CARGO_BIN_EXE_tierd"))
        .current_dir(dir.path())
        .args([
            "--grpc-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            // The consumer's own property, and a producer's: the consumer
            // warns about the second, which shows it was given these.
            "--kafka-consumer",
            "fetch.wait.max.ms=10;batch.num.messages=1000",
            // The producers' own, and a consumer's the producers warn
            // about.
            "--kafka-producer",
            "linger.ms=7;fetch.min.bytes=1",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::from(File::create(&log_path).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
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
        assert!(tierd.try_wait().unwrap().is_none(), "tierd exited:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(&mut tierd);
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
