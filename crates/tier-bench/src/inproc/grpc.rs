//! `grpc`: the real `TierService` under load, beside a bare tonic server.
//!
//! The run's event workload (`customers` customers) is folded and
//! published into a [`ReadModel`] the way tierd's committer publishes it,
//! and served by tier-api's [`ApiServer`] (auth layer, health, reflection:
//! tierd's stack) on `127.0.0.1:0`, in a tokio runtime of its own. A
//! client in another runtime runs [`CONCURRENCY`] workers for a fixed
//! time, each sending `GetTier` for customers drawn from a Zipf
//! distribution over the customers' activity rank (the busiest customers
//! are asked about most), one request at a time.
//!
//! The workers share ONE HTTP/2 connection (one tonic `Channel`, cloned):
//! that is what a service calling tierd does with tonic's default
//! client, and gRPC multiplexes concurrent calls as streams over it. The
//! figures for 4 connections are in the note, so the effect of the choice
//! is visible.
//!
//! The peer is a trivial tonic server answering `GetTier` with the same
//! response type from a `HashMap` (filled with the real server's own
//! answers, so the messages are byte for byte the same size), served the
//! same way (TCP_NODELAY, no auth layer) and driven by the same client in
//! the same run. The two are measured alternately, [`ROUNDS`] rounds of
//! one then the other, each round a [`ROUNDS`]th of the time, and each
//! figure is over its rounds together: the VM's speed drifts within a
//! minute, and a ratio of two back-to-back runs drifted with it (pairs
//! of rounds in one process gave 0.65 to 0.86 in the fourteenth
//! sitting). `BatchGetTiers` of 1,000 Zipf-drawn ids per call is
//! measured with one caller (latency of one call on an idle server) and
//! with the [`CONCURRENCY`] workers (in the note).
//!
//! Both servers and the client share the machine's cores: on a 2-core
//! machine the client's own work is a large part of each figure.
//!
//! tierd's read model is written while it answers: the committer
//! publishes every durable unit's views, ranking each in the population
//! gradings under their lock. One more run of the real server (1
//! connection, a round's time) has a thread publish [`WRITER_UNIT`]
//! customers' views every [`WRITER_EVERY`] meanwhile, about what a
//! catch-up commits (`get_tier_p99_while_publishing_ms`, no goal): the
//! answers' p99 beside the idle figure shows what they wait for.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use rand_distr::{Distribution as _, Zipf};
use tier_api::{ApiServer, ReadModel, TierServiceImpl, health_pair};
use tier_core::policy::Policy;
use tier_core::projection::CustomerMap;
use tier_core::state::CustomerState;
use tier_proto::api::tier_service_client::TierServiceClient;
use tier_proto::api::{BatchGetTiersRequest, CustomerTier, GetTierRequest};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;
use tonic::codegen::{Body, BoxFuture, Context, Poll, Service, StdError, http};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};

use super::latency::Latencies;
use crate::config::BenchConfig;
use crate::report::{Figure, Goal, Report};
use crate::workload::events;

/// Concurrent callers.
const CONCURRENCY: usize = 32;
/// Ids per `BatchGetTiers` call.
const BATCH_IDS: usize = 1_000;
/// Ids each worker draws up front (cycled), so the clock sees no RNG.
const DRAWS_PER_WORKER: usize = 50_000;
/// Alternated rounds of the real server and the bare peer (see the
/// module docs).
const ROUNDS: u32 = 3;
/// Customers of each unit the writer publishes while GetTier answers.
const WRITER_UNIT: usize = 5_000;
/// How often the writer publishes a unit.
const WRITER_EVERY: Duration = Duration::from_millis(50);

pub(crate) fn run(cfg: &BenchConfig, report: &mut Report) -> Result<()> {
    let duration = Duration::from_secs(if cfg.quick { 3 } else { 10 });
    let warmup = Duration::from_millis(if cfg.quick { 300 } else { 1_000 });
    let policy = Arc::new(Policy::default_policy());
    let read = Arc::new(ReadModel::new());
    let (states, ids) = fill(cfg, &read, &policy);
    eprintln!("  read model: {} customers with a tier", ids.len());
    anyhow::ensure!(!ids.is_empty(), "no customer has a tier to ask for");

    let server_rt = runtime("tier-api")?;
    let client_rt = runtime("client")?;
    let stop = CancellationToken::new();

    // The real service, as tierd serves it.
    let real = server_rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (changes, _) = tokio::sync::broadcast::channel(16);
        let service = TierServiceImpl::new(read.clone(), policy.clone(), changes);
        let (_health, health_service) = health_pair();
        let server = ApiServer::new(service, health_service).grace_period(Duration::from_secs(1));
        tokio::spawn(server.serve(listener, stop.clone()));
        anyhow::Ok(addr)
    })?;

    // The bare peer, answering with the real server's own messages.
    let tiers = client_rt.block_on(answers(real, &ids))?;
    let bare = server_rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let service = BareTierService {
            tiers: Arc::new(tiers),
        };
        let stop = stop.clone();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned()),
        );
        anyhow::Ok(addr)
    })?;

    let draws = Draws::new(cfg, &ids)?;
    let get = |addr: SocketAddr, channels: usize, duration: Duration| -> Result<Recorded> {
        client_rt.block_on(load(
            addr,
            channels,
            CONCURRENCY,
            &draws,
            warmup,
            duration,
            Call::Get,
        ))
    };
    let (mut real_rounds, mut bare_rounds) = (Vec::new(), Vec::new());
    let round = duration / ROUNDS;
    for n in 1..=ROUNDS {
        for (addr, what, rounds) in [
            (real, "GetTier", &mut real_rounds),
            (bare, "bare tonic GetTier", &mut bare_rounds),
        ] {
            let r = get(addr, 1, round)?;
            eprintln!(
                "  {what}, 1 connection, round {n} of {ROUNDS}: {:.0} req/s",
                r.rps()
            );
            rounds.push(r);
        }
    }
    let per_round = |rounds: &[Recorded]| {
        rounds
            .iter()
            .map(|r| format!("{:.0}", r.rps()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (real_per_round, bare_per_round) = (per_round(&real_rounds), per_round(&bare_rounds));
    let get_real = Recorded::merged(real_rounds).run();
    let get_bare = Recorded::merged(bare_rounds).run();
    let get_real_4 = get(real, 4, duration)?.run();
    let get_bare_4 = get(bare, 4, duration)?.run();
    let (get_writing, writes) = {
        let writing = AtomicBool::new(true);
        std::thread::scope(|scope| {
            let writer = scope.spawn(|| write_units(&read, &policy, &states, &writing));
            let r = get(real, 1, round);
            writing.store(false, Ordering::Relaxed);
            let writes = writer
                .join()
                .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
            anyhow::Ok((r?.run(), writes))
        })?
    };
    for (what, r) in [
        ("GetTier, 1 connection", &get_real),
        ("GetTier, 4 connections", &get_real_4),
        ("bare tonic GetTier, 1 connection", &get_bare),
        ("bare tonic GetTier, 4 connections", &get_bare_4),
        ("GetTier, 1 connection, while publishing", &get_writing),
    ] {
        eprintln!(
            "  {what}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms ({} errors)",
            r.rps, r.p50_ms, r.p99_ms, r.errors
        );
    }

    let batch = |concurrency: usize| -> Result<Run> {
        let r = client_rt
            .block_on(load(
                real,
                1,
                concurrency,
                &draws,
                warmup,
                duration,
                Call::Batch,
            ))?
            .run();
        eprintln!(
            "  BatchGetTiers x{BATCH_IDS}, {concurrency} caller(s): {:.0} calls/s, p50 {:.3} ms, p99 {:.3} ms ({} errors)",
            r.rps, r.p50_ms, r.p99_ms, r.errors
        );
        Ok(r)
    };
    let batch_1 = batch(1)?;
    let batch_32 = batch(CONCURRENCY)?;
    stop.cancel();
    drop(client_rt);
    for (what, r) in [
        ("GetTier", &get_real),
        ("GetTier (4 connections)", &get_real_4),
        ("GetTier (while publishing)", &get_writing),
        ("BatchGetTiers", &batch_1),
        ("BatchGetTiers (32 callers)", &batch_32),
    ] {
        if r.errors > 0 {
            report.fail(
                "grpc",
                format!("{} of {} {what} calls failed", r.errors, r.calls),
            );
        }
    }
    server_rt.shutdown_timeout(Duration::from_secs(2));

    let setup = format!(
        "{} customers with a tier (of {}), Zipf s = {} over activity rank, {CONCURRENCY} \
         concurrent callers on 1 HTTP/2 connection for {}s in {ROUNDS} rounds alternated \
         with the bare peer, each after {}ms warm-up; client and server share {} cores",
        ids.len(),
        cfg.customers,
        cfg.zipf_s,
        duration.as_secs(),
        warmup.as_millis(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let errors = |r: &Run| {
        if r.errors > 0 {
            format!("; {} calls failed", r.errors)
        } else {
            String::new()
        }
    };
    report.add(
        Figure::new(
            "get_tier_rps",
            "GetTier, 32 concurrent",
            get_real.rps,
            " req/s",
        )
        .peer(format!("bare tonic + HashMap: {:.0} req/s", get_bare.rps))
        .note(format!(
            "{setup}; {} calls; per round {real_per_round} req/s; with 4 connections: \
             {:.0} req/s, p99 {:.3} ms{}",
            get_real.calls,
            get_real_4.rps,
            get_real_4.p99_ms,
            errors(&get_real)
        )),
    );
    report.add(
        Figure::new(
            "get_tier_p99_ms",
            "GetTier p99, 32 concurrent",
            get_real.p99_ms,
            " ms",
        )
        .peer(format!("bare tonic: {:.3} ms", get_bare.p99_ms))
        .goal(Goal::AtMost(2.0))
        .note(format!(
            "p50 {:.3} ms, p99.9 {:.3} ms",
            get_real.p50_ms, get_real.p999_ms
        )),
    );
    report.add(
        Figure::new(
            "bare_tonic_rps",
            "bare tonic GetTier (HashMap), 32 concurrent",
            get_bare.rps,
            " req/s",
        )
        .note(format!(
            "same client, same messages; per round {bare_per_round} req/s; p99 {:.3} ms; \
             with 4 connections: {:.0} req/s, p99 {:.3} ms{}",
            get_bare.p99_ms,
            get_bare_4.rps,
            get_bare_4.p99_ms,
            errors(&get_bare)
        )),
    );
    report.add(
        Figure::new(
            "get_tier_p99_while_publishing_ms",
            "GetTier p99 while the read model is written",
            get_writing.p99_ms,
            " ms",
        )
        .note(format!(
            "1 connection for {:.1}s while a thread published {} units of {WRITER_UNIT} \
             customers' views (one every {}ms, each {:.1} ms on average, the longest {:.1} ms: \
             views put and ranked in the population gradings); {:.0} req/s, p50 {:.3} ms, \
             p99.9 {:.3} ms{}",
            round.as_secs_f64(),
            writes.units,
            WRITER_EVERY.as_millis(),
            writes.mean_ms(),
            writes.longest.as_secs_f64() * 1e3,
            get_writing.rps,
            get_writing.p50_ms,
            get_writing.p999_ms,
            errors(&get_writing)
        )),
    );
    report.ratio(
        "get_tier_vs_bare_tonic",
        "GetTier rps / bare tonic rps",
        "get_tier_rps",
        "bare_tonic_rps",
        Some(Goal::AtLeast(0.8)),
    );
    report.add(
        Figure::new(
            "batch_get_1000_p99_ms",
            "BatchGetTiers x1000 p99, 1 caller",
            batch_1.p99_ms,
            " ms",
        )
        .goal(Goal::AtMost(10.0))
        .note(format!(
            "one caller, calls back to back: {:.0} calls/s, p50 {:.3} ms; with {CONCURRENCY} \
             callers on one connection: {:.0} calls/s ({:.0} ids/s), p50 {:.3} ms, p99 {:.3} ms{}",
            batch_1.rps,
            batch_1.p50_ms,
            batch_32.rps,
            batch_32.rps * BATCH_IDS as f64,
            batch_32.p50_ms,
            batch_32.p99_ms,
            errors(&batch_1)
        )),
    );
    Ok(())
}

fn runtime(name: &str) -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(name)
        .build()
        .with_context(|| format!("building the {name} runtime"))
}

/// What the writer did while GetTier answered.
struct Writes {
    units: usize,
    busy: Duration,
    longest: Duration,
}

impl Writes {
    fn mean_ms(&self) -> f64 {
        self.busy.as_secs_f64() * 1e3 / self.units.max(1) as f64
    }
}

/// Publish units of [`WRITER_UNIT`] of `states` (cycled) every
/// [`WRITER_EVERY`] while `writing`: the views are published again as
/// they are (equal sequences replace, and each is ranked again), as tierd's
/// committer publishes a unit once it is durable.
fn write_units(
    read: &ReadModel,
    policy: &Policy,
    states: &CustomerMap<CustomerState>,
    writing: &AtomicBool,
) -> Writes {
    let all: Vec<(&str, &CustomerState)> = states.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut units = all.chunks(WRITER_UNIT).cycle();
    let mut done = Writes {
        units: 0,
        busy: Duration::ZERO,
        longest: Duration::ZERO,
    };
    let mut next = Instant::now();
    while writing.load(Ordering::Relaxed) {
        let Some(unit) = units.next() else { break };
        let started = Instant::now();
        read.publish(unit, policy);
        let took = started.elapsed();
        done.units += 1;
        done.busy += took;
        done.longest = done.longest.max(took);
        next += WRITER_EVERY;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    done
}

/// Fold the run's workload and publish every state into `read`; the
/// states, and the ids with a tier, by activity rank (the generator
/// numbers customers by rank, zero-padded, so id order is rank order).
fn fill(
    cfg: &BenchConfig,
    read: &ReadModel,
    policy: &Policy,
) -> (CustomerMap<CustomerState>, Vec<String>) {
    let mut states: CustomerMap<CustomerState> = CustomerMap::default();
    for e in events(cfg) {
        let state = match states.get_mut(e.customer_id.as_str()) {
            Some(s) => s,
            None => states.entry(e.customer_id.as_str().into()).or_default(),
        };
        state.process(&e.customer_id, &e, policy);
    }
    let all: Vec<(&str, &CustomerState)> = states.iter().map(|(k, v)| (k.as_str(), v)).collect();
    for chunk in all.chunks(20_000) {
        read.publish(chunk, policy);
    }
    // As tierd once its start-up fill is published.
    read.prepare_gradings(policy);
    let mut ids: Vec<String> = read.all().into_iter().map(|(id, _)| id).collect();
    ids.sort_unstable();
    (states, ids)
}

/// Pre-drawn customer ids, per worker.
struct Draws {
    per_worker: Vec<Arc<[String]>>,
}

impl Draws {
    fn new(cfg: &BenchConfig, ids: &[String]) -> Result<Self> {
        let zipf = Zipf::new(ids.len() as f64, cfg.zipf_s).context("a Zipf distribution")?;
        let per_worker = (0..CONCURRENCY)
            .map(|w| {
                let mut rng = StdRng::seed_from_u64(cfg.seed ^ (w as u64 + 1));
                (0..DRAWS_PER_WORKER)
                    .map(|_| {
                        let rank = zipf.sample(&mut rng) as usize;
                        ids[rank.clamp(1, ids.len()) - 1].clone()
                    })
                    .collect()
            })
            .collect();
        Ok(Self { per_worker })
    }
}

#[derive(Debug, Clone, Copy)]
enum Call {
    Get,
    Batch,
}

/// What load runs recorded: every latency, the failed calls and the
/// time measured, so alternated rounds add up to one figure.
#[derive(Debug)]
struct Recorded {
    lat: Latencies,
    errors: usize,
    duration: Duration,
}

impl Recorded {
    /// Calls per second of this run alone.
    fn rps(&self) -> f64 {
        self.lat.len() as f64 / self.duration.as_secs_f64()
    }

    /// Rounds taken together: their calls over their summed time.
    fn merged(rounds: Vec<Recorded>) -> Recorded {
        let mut all = Recorded {
            lat: Latencies::default(),
            errors: 0,
            duration: Duration::ZERO,
        };
        for r in rounds {
            all.lat.absorb(r.lat);
            all.errors += r.errors;
            all.duration += r.duration;
        }
        all
    }

    fn run(mut self) -> Run {
        Run {
            calls: self.lat.len(),
            errors: self.errors,
            rps: self.rps(),
            p50_ms: self.lat.percentile_ms(50.0).unwrap_or(f64::NAN),
            p99_ms: self.lat.percentile_ms(99.0).unwrap_or(f64::NAN),
            p999_ms: self.lat.percentile_ms(99.9).unwrap_or(f64::NAN),
        }
    }
}

/// What one figure measured.
#[derive(Debug)]
struct Run {
    calls: usize,
    errors: usize,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
}

async fn connect(addr: SocketAddr) -> Result<Channel> {
    Endpoint::from_shared(format!("http://{addr}"))
        .context("endpoint")?
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connecting to {addr}"))
}

/// `concurrency` workers calling `call` over `channels` connections for
/// `warmup` (not recorded), then for `duration`.
async fn load(
    addr: SocketAddr,
    channels: usize,
    concurrency: usize,
    draws: &Draws,
    warmup: Duration,
    duration: Duration,
    call: Call,
) -> Result<Recorded> {
    let mut conns = Vec::with_capacity(channels);
    for _ in 0..channels {
        conns.push(connect(addr).await?);
    }
    let begin = Instant::now() + warmup;
    let end = begin + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let mut client = TierServiceClient::new(conns[w % channels].clone());
        let ids = draws.per_worker[w % draws.per_worker.len()].clone();
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(1 << 16);
            let mut errors = 0usize;
            let mut i = 0usize;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let ok = match call {
                    Call::Get => {
                        let req = GetTierRequest {
                            customer_id: ids[i % ids.len()].clone(),
                        };
                        i += 1;
                        client.get_tier(req).await.is_ok()
                    }
                    Call::Batch => {
                        let customer_ids = (0..BATCH_IDS)
                            .map(|k| ids[(i + k) % ids.len()].clone())
                            .collect();
                        i += BATCH_IDS;
                        client
                            .batch_get_tiers(BatchGetTiersRequest { customer_ids })
                            .await
                            .is_ok_and(|r| r.get_ref().tiers.len() == BATCH_IDS)
                    }
                };
                if t0 >= begin {
                    samples.push(t0.elapsed());
                    if !ok {
                        errors += 1;
                    }
                }
            }
            (samples, errors)
        }));
    }
    let mut lat = Latencies::default();
    let mut errors = 0;
    for w in workers {
        let (samples, e) = w.await.context("a client worker panicked")?;
        lat.extend(samples);
        errors += e;
    }
    Ok(Recorded {
        lat,
        errors,
        duration,
    })
}

/// The real server's answer for every id (through `BatchGetTiers`).
async fn answers(addr: SocketAddr, ids: &[String]) -> Result<HashMap<String, CustomerTier>> {
    let mut client = TierServiceClient::new(connect(addr).await?);
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(tier_api::MAX_BATCH_IDS) {
        let resp = client
            .batch_get_tiers(BatchGetTiersRequest {
                customer_ids: chunk.to_vec(),
            })
            .await
            .context("BatchGetTiers for the bare server's map")?;
        for t in resp.into_inner().tiers {
            out.insert(t.customer_id.clone(), t);
        }
    }
    Ok(out)
}

/// A trivial `tiering.v1.TierService`: `GetTier` from a `HashMap`, every
/// other method `UNIMPLEMENTED`. Written against tonic's server codec
/// directly, as the generated server would route it.
#[derive(Debug, Clone)]
struct BareTierService {
    tiers: Arc<HashMap<String, CustomerTier>>,
}

impl tonic::server::NamedService for BareTierService {
    const NAME: &'static str = "tiering.v1.TierService";
}

struct GetTierSvc(Arc<HashMap<String, CustomerTier>>);

impl tonic::server::UnaryService<GetTierRequest> for GetTierSvc {
    type Response = CustomerTier;
    type Future = BoxFuture<tonic::Response<CustomerTier>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<GetTierRequest>) -> Self::Future {
        let found = self
            .0
            .get(&request.get_ref().customer_id)
            .cloned()
            .map(tonic::Response::new)
            .ok_or_else(|| tonic::Status::not_found("unknown customer"));
        Box::pin(async move { found })
    }
}

impl<B> Service<http::Request<B>> for BareTierService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() == "/tiering.v1.TierService/GetTier" {
            let svc = GetTierSvc(self.tiers.clone());
            return Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(svc, req).await)
            });
        }
        Box::pin(async move {
            let mut response = http::Response::new(tonic::body::Body::default());
            let headers = response.headers_mut();
            headers.insert(
                tonic::Status::GRPC_STATUS,
                (tonic::Code::Unimplemented as i32).into(),
            );
            headers.insert(
                http::header::CONTENT_TYPE,
                tonic::metadata::GRPC_CONTENT_TYPE,
            );
            Ok(response)
        })
    }
}
