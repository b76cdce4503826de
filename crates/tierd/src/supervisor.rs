//! tierd's parts and the one order they stop in.
//!
//! tierd runs several parts at once: the ingest pipeline (with the
//! engine's committer), the outbox publisher, the gRPC API, the `/metrics`
//! endpoint, the health follower, and finally the store and the embedded
//! broker. Stopping them in the wrong order loses work or answers wrongly:
//! the publisher must outlive the last commit (or the last tier changes
//! wait for the next start), the API must outlive the engine (commands in
//! flight get their reply), and the store is flushed only once nothing
//! writes to it any more.
//!
//! A [`Supervisor`] holds the parts in the order they must stop, which is
//! the order they are added. [`Supervisor::stop`] asks one part to stop,
//! waits until it has, and only then asks the next, so each part may rely
//! on every later one still running. A part that fails to stop cleanly is
//! reported and does not keep the later parts from stopping.

use std::future::Future;
use std::pin::Pin;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

type StopFn = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send>;

struct Part {
    name: &'static str,
    stop: StopFn,
}

/// The parts of a running tierd, in stop order. See the module docs.
#[derive(Default)]
pub struct Supervisor {
    parts: Vec<Part>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field(
                "parts",
                &self.parts.iter().map(|p| p.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What a part's task ends with: nothing, or a result.
pub trait Outcome: Send + 'static {
    fn into_result(self) -> anyhow::Result<()>;
}

impl Outcome for () {
    fn into_result(self) -> anyhow::Result<()> {
        Ok(())
    }
}

impl<T: Send + 'static, E: Into<anyhow::Error> + Send + 'static> Outcome for Result<T, E> {
    fn into_result(self) -> anyhow::Result<()> {
        self.map(drop).map_err(Into::into)
    }
}

/// How one part stopped.
#[derive(Debug)]
pub struct Stopped {
    pub part: &'static str,
    pub result: anyhow::Result<()>,
}

impl Supervisor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a part that stops by running `stop` to completion; it is asked
    /// after every part added before it has stopped.
    pub fn then<F, Fut>(&mut self, name: &'static str, stop: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.parts.push(Part {
            name,
            stop: Box::new(move || Box::pin(stop())),
        });
    }

    /// Adds a task that stops when `token` is cancelled: stopping it
    /// cancels the token and waits for the task.
    pub fn task<R: Outcome>(
        &mut self,
        name: &'static str,
        token: CancellationToken,
        task: JoinHandle<R>,
    ) {
        self.then(name, move || async move {
            token.cancel();
            match task.await {
                Ok(outcome) => outcome.into_result(),
                Err(e) => Err(anyhow::anyhow!("the {name} task failed: {e}")),
            }
        });
    }

    /// The parts' names, in stop order.
    pub fn order(&self) -> Vec<&'static str> {
        self.parts.iter().map(|p| p.name).collect()
    }

    /// Stops every part, one after the other, in the order added. Returns
    /// how each stopped, in that order; a failure is logged and does not
    /// keep the later parts from stopping.
    pub async fn stop(self) -> Vec<Stopped> {
        let mut out = Vec::with_capacity(self.parts.len());
        for part in self.parts {
            tracing::debug!(part = part.name, "stopping");
            let result = (part.stop)().await;
            if let Err(e) = &result {
                tracing::warn!(part = part.name, error = %format!("{e:#}"), "stopped with an error");
            }
            out.push(Stopped {
                part: part.name,
                result,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    type Log = Arc<Mutex<Vec<String>>>;

    /// A task that logs when it is asked to stop and when it has stopped,
    /// taking `linger` in between (finishing its work in hand).
    fn worker(
        log: &Log,
        name: &'static str,
        linger: Duration,
    ) -> (CancellationToken, JoinHandle<anyhow::Result<()>>) {
        let token = CancellationToken::new();
        let t = token.clone();
        let log = log.clone();
        let task = tokio::spawn(async move {
            t.cancelled().await;
            log.lock().unwrap().push(format!("{name} asked"));
            tokio::time::sleep(linger).await;
            log.lock().unwrap().push(format!("{name} stopped"));
            Ok(())
        });
        (token, task)
    }

    #[tokio::test]
    async fn each_part_stops_only_after_the_one_before_has_stopped() {
        let log = Log::default();
        let mut sup = Supervisor::new();
        // The first part lingers: a later part must still not be asked.
        let (t, h) = worker(&log, "ingest", Duration::from_millis(50));
        sup.task("ingest", t, h);
        let (t, h) = worker(&log, "publisher", Duration::from_millis(10));
        sup.task("publisher", t, h);
        let (t, h) = worker(&log, "api", Duration::ZERO);
        sup.task("api", t, h);
        let l = log.clone();
        sup.then("store", move || async move {
            l.lock().unwrap().push("store flushed".into());
            Ok(())
        });
        assert_eq!(sup.order(), ["ingest", "publisher", "api", "store"]);
        let stopped = sup.stop().await;
        assert!(stopped.iter().all(|s| s.result.is_ok()));
        assert_eq!(
            *log.lock().unwrap(),
            [
                "ingest asked",
                "ingest stopped",
                "publisher asked",
                "publisher stopped",
                "api asked",
                "api stopped",
                "store flushed",
            ]
        );
    }

    #[tokio::test]
    async fn a_failing_part_is_reported_and_the_rest_still_stop() {
        let log = Log::default();
        let mut sup = Supervisor::new();
        let failing: JoinHandle<Result<(), std::io::Error>> =
            tokio::spawn(async { Err(std::io::Error::other("commit failed")) });
        sup.task("ingest", CancellationToken::new(), failing);
        let panicking: JoinHandle<anyhow::Result<()>> = tokio::spawn(async { panic!("boom") });
        sup.task("publisher", CancellationToken::new(), panicking);
        let (t, h) = worker(&log, "api", Duration::ZERO);
        sup.task("api", t, h);
        let stopped = sup.stop().await;
        let names: Vec<_> = stopped.iter().map(|s| s.part).collect();
        assert_eq!(names, ["ingest", "publisher", "api"]);
        let ingest = stopped[0].result.as_ref().unwrap_err().to_string();
        assert!(ingest.contains("commit failed"), "{ingest}");
        let publisher = stopped[1].result.as_ref().unwrap_err().to_string();
        assert!(
            publisher.contains("the publisher task failed"),
            "{publisher}"
        );
        assert!(stopped[2].result.is_ok());
        assert_eq!(*log.lock().unwrap(), ["api asked", "api stopped"]);
    }
}
