//! `tierd-testbroker`: librdkafka's mock cluster in a process of its own, so
//! a test can SIGKILL tierd (or anything else) without losing the log.
//!
//! ```text
//! tierd-testbroker [--brokers N] [--topic NAME:PARTITIONS]...
//! ```
//!
//! Prints `BOOTSTRAP host:port[,host:port...]` on stdout once the cluster
//! runs and the topics exist, then reads one command per line from stdin
//! and answers each with `OK` or `ERR reason`:
//!
//! | command                          | effect                                   |
//! |----------------------------------|------------------------------------------|
//! | `topic NAME PARTITIONS`          | create a topic (replication 1)           |
//! | `down BROKER_ID`                 | take a broker down                       |
//! | `up BROKER_ID`                   | bring it back                            |
//! | `errors API_KEY ERR_CODE...`     | push errors for requests of that API key |
//! | `clear API_KEY`                  | clear the pushed errors of that API key  |
//! | `quit`                           | exit                                     |
//!
//! API keys and error codes are numbers (Kafka's API key numbers; librdkafka
//! error codes, negative for its internal ones, e.g. -195 disconnects the
//! client). The process exits when stdin closes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, Write};

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

/// Kafka API keys in number order (`RDKafkaApiKey` converts only into `i16`).
const API_KEYS: [RDKafkaApiKey; 59] = [
    RDKafkaApiKey::Produce,
    RDKafkaApiKey::Fetch,
    RDKafkaApiKey::ListOffsets,
    RDKafkaApiKey::Metadata,
    RDKafkaApiKey::LeaderAndIsr,
    RDKafkaApiKey::StopReplica,
    RDKafkaApiKey::UpdateMetadata,
    RDKafkaApiKey::ControlledShutdown,
    RDKafkaApiKey::OffsetCommit,
    RDKafkaApiKey::OffsetFetch,
    RDKafkaApiKey::FindCoordinator,
    RDKafkaApiKey::JoinGroup,
    RDKafkaApiKey::Heartbeat,
    RDKafkaApiKey::LeaveGroup,
    RDKafkaApiKey::SyncGroup,
    RDKafkaApiKey::DescribeGroups,
    RDKafkaApiKey::ListGroups,
    RDKafkaApiKey::SaslHandshake,
    RDKafkaApiKey::ApiVersion,
    RDKafkaApiKey::CreateTopics,
    RDKafkaApiKey::DeleteTopics,
    RDKafkaApiKey::DeleteRecords,
    RDKafkaApiKey::InitProducerId,
    RDKafkaApiKey::OffsetForLeaderEpoch,
    RDKafkaApiKey::AddPartitionsToTxn,
    RDKafkaApiKey::AddOffsetsToTxn,
    RDKafkaApiKey::EndTxn,
    RDKafkaApiKey::WriteTxnMarkers,
    RDKafkaApiKey::TxnOffsetCommit,
    RDKafkaApiKey::DescribeAcls,
    RDKafkaApiKey::CreateAcls,
    RDKafkaApiKey::DeleteAcls,
    RDKafkaApiKey::DescribeConfigs,
    RDKafkaApiKey::AlterConfigs,
    RDKafkaApiKey::AlterReplicaLogDirs,
    RDKafkaApiKey::DescribeLogDirs,
    RDKafkaApiKey::SaslAuthenticate,
    RDKafkaApiKey::CreatePartitions,
    RDKafkaApiKey::CreateDelegationToken,
    RDKafkaApiKey::RenewDelegationToken,
    RDKafkaApiKey::ExpireDelegationToken,
    RDKafkaApiKey::DescribeDelegationToken,
    RDKafkaApiKey::DeleteGroups,
    RDKafkaApiKey::ElectLeaders,
    RDKafkaApiKey::IncrementalAlterConfigs,
    RDKafkaApiKey::AlterPartitionReassignments,
    RDKafkaApiKey::ListPartitionReassignments,
    RDKafkaApiKey::OffsetDelete,
    RDKafkaApiKey::DescribeClientQuotas,
    RDKafkaApiKey::AlterClientQuotas,
    RDKafkaApiKey::DescribeUserScramCredentials,
    RDKafkaApiKey::AlterUserScramCredentials,
    RDKafkaApiKey::Vote,
    RDKafkaApiKey::BeginQuorumEpoch,
    RDKafkaApiKey::EndQuorumEpoch,
    RDKafkaApiKey::DescribeQuorum,
    RDKafkaApiKey::AlterIsr,
    RDKafkaApiKey::UpdateFeatures,
    RDKafkaApiKey::Envelope,
];

fn api_key(s: &str) -> Result<RDKafkaApiKey, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("API key {s:?} is not a number"))?;
    let key = *API_KEYS
        .get(n)
        .ok_or_else(|| format!("API key {n} is unknown (0..={})", API_KEYS.len() - 1))?;
    debug_assert_eq!(i16::from(key) as usize, n);
    Ok(key)
}

fn error_code(s: &str) -> Result<RDKafkaRespErr, String> {
    let n: i32 = s
        .parse()
        .map_err(|_| format!("error code {s:?} is not a number"))?;
    RDKafkaRespErr::try_from(n).map_err(|_| format!("error code {n} is unknown to librdkafka"))
}

fn usage() -> ! {
    eprintln!("usage: tierd-testbroker [--brokers N] [--topic NAME:PARTITIONS]...");
    std::process::exit(2);
}

fn parse_topic(spec: &str) -> Result<(String, i32), String> {
    let (name, partitions) = spec
        .rsplit_once(':')
        .ok_or_else(|| format!("--topic {spec:?}: expected NAME:PARTITIONS"))?;
    let partitions: i32 = partitions
        .parse()
        .map_err(|_| format!("--topic {spec:?}: partitions must be a number"))?;
    if name.is_empty() || partitions < 1 {
        return Err(format!("--topic {spec:?}: empty name or no partitions"));
    }
    Ok((name.to_owned(), partitions))
}

/// Run one command line; `Ok(false)` means quit.
fn run_command<C: rdkafka::ClientContext>(
    cluster: &MockCluster<'_, C>,
    line: &str,
) -> Result<bool, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let broker_id = |w: Option<&&str>| -> Result<i32, String> {
        w.ok_or("missing BROKER_ID")?
            .parse()
            .map_err(|_| "BROKER_ID must be a number".to_owned())
    };
    match words.as_slice() {
        ["quit"] => return Ok(false),
        ["topic", name, partitions] => {
            let partitions: i32 = partitions
                .parse()
                .map_err(|_| "PARTITIONS must be a number".to_owned())?;
            cluster
                .create_topic(name, partitions, 1)
                .map_err(|e| format!("create_topic {name}: {e}"))?;
        }
        ["down", rest @ ..] => {
            let id = broker_id(rest.first())?;
            cluster
                .broker_down(id)
                .map_err(|e| format!("broker_down {id}: {e}"))?;
        }
        ["up", rest @ ..] => {
            let id = broker_id(rest.first())?;
            cluster
                .broker_up(id)
                .map_err(|e| format!("broker_up {id}: {e}"))?;
        }
        ["errors", key, codes @ ..] if !codes.is_empty() => {
            let key = api_key(key)?;
            let codes = codes
                .iter()
                .map(|c| error_code(c))
                .collect::<Result<Vec<_>, _>>()?;
            cluster.request_errors(key, &codes);
        }
        ["clear", key] => cluster.clear_request_errors(api_key(key)?),
        [] => return Err("empty command".into()),
        _ => return Err(format!("unknown command {line:?}")),
    }
    Ok(true)
}

fn main() {
    let mut brokers = 1;
    let mut topics = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--brokers" => {
                brokers = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage());
            }
            "--topic" => match args.next().map(|s| parse_topic(&s)) {
                Some(Ok(t)) => topics.push(t),
                Some(Err(e)) => {
                    eprintln!("tierd-testbroker: {e}");
                    std::process::exit(2);
                }
                None => usage(),
            },
            _ => usage(),
        }
    }
    let cluster = match MockCluster::new(brokers) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tierd-testbroker: could not start the mock cluster: {e}");
            std::process::exit(1);
        }
    };
    for (name, partitions) in &topics {
        if let Err(e) = cluster.create_topic(name, *partitions, 1) {
            eprintln!("tierd-testbroker: could not create topic {name}: {e}");
            std::process::exit(1);
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "BOOTSTRAP {}", cluster.bootstrap_servers()).expect("stdout");
    out.flush().expect("stdout");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let reply = match run_command(&cluster, line.trim()) {
            Ok(false) => {
                let _ = writeln!(out, "OK");
                let _ = out.flush();
                break;
            }
            Ok(true) => "OK".to_owned(),
            Err(e) => format!("ERR {}", e.replace('\n', " ")),
        };
        if writeln!(out, "{reply}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    drop(cluster);
}
