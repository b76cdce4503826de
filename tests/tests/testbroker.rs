//! The `tierd-testbroker` helper process answers its commands and serves
//! the Kafka protocol.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tierd_tests::TestBroker;
use tierd_tests::fault::kafka::watermarks;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_answer_and_the_log_outlives_its_clients() {
    let broker = TestBroker::spawn(
        Path::new(env!("CARGO_BIN_EXE_tierd-testbroker")),
        2,
        &[("tb.a", 3)],
    )
    .unwrap();
    assert_eq!(broker.bootstrap_servers().split(',').count(), 2);
    broker.create_topic("tb.b", 2).unwrap();
    broker.broker_down(2).unwrap();
    broker.broker_up(2).unwrap();
    // Produce: one NOT_LEADER_FOR_PARTITION, then success on retry.
    broker.request_errors(0, &[6]).unwrap();
    broker.clear_request_errors(0).unwrap();
    let err = broker.command("errors 99 1").unwrap_err().to_string();
    assert!(err.contains("API key 99"), "{err}");
    assert!(broker.command("frobnicate").is_err());
    assert!(broker.command("topic tb.c many").is_err());

    for _ in 0..2 {
        // A fresh client each time: the log lives in the broker process.
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .create()
            .unwrap();
        producer
            .send(
                FutureRecord::to("tb.b").partition(1).key("k").payload("v"),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let marks = watermarks(broker.bootstrap_servers(), "tb.b", 2).unwrap();
    assert_eq!(marks, vec![(0, 0), (0, 2)]);
    let pid = broker.pid();
    drop(broker);
    // Dropping kills and reaps the process.
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}
