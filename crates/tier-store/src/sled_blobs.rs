//! The blob files sled does not sync.
//!
//! sled 0.34.7 writes a page over a quarter of a log segment (a leaf
//! holding a busy customer's state) to a file of its own under `blobs/`,
//! and never syncs those files: only its log. Once the log is durable, a
//! power loss could leave it pointing at a blob still in the page cache,
//! for as long as the kernel's writeback delay (about 30 s by default);
//! sled's recovery then skips a missing blob or stops at one it cannot
//! read, losing that commit and those after it. [`BlobSyncer`] closes most
//! of that window: a thread of its own syncs the filesystem holding the
//! dir (`syncfs`: one call, where syncing each new file would cost a
//! journal commit each) after commits' flushes, and every interval when
//! sled flushes on its own timer, whenever `blobs/` holds any file.
//!
//! A sync starts at least [`SYNC_GAP`] after the last one started: each
//! sync's journal commit queues with sled's own log syncs, and at a
//! steady 5,000 events/s (about eighty commits a second) a sync after
//! every commit put the 99th percentile of an event's time to its
//! published tier change at 82-154 ms (median 103, six runs), against
//! 65-130 ms (median 77) with syncs at most every 50 ms (the same
//! binary, runs alternated). The window left runs from sled's write of a
//! log record to the end of the next sync: at most [`SYNC_GAP`] and the
//! sync's own time. The sync is off the commit path: done on the
//! committing thread, it made a replay from offset 0 about 9% slower. An
//! explicit [`BlobSyncer::sync_now`] (the store's `flush`, used at
//! shutdown) syncs on the caller's thread.
//!
//! A failed sync is kept: every later commit fails with it, as every
//! write fails once sled's own log sync has failed (after a failed
//! writeback the kernel may have marked the pages clean, so a later sync
//! that succeeds proves nothing).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The least time from the start of one sync to the start of the next
/// (see the module docs).
pub(crate) const SYNC_GAP: Duration = Duration::from_millis(50);

/// Syncs the filesystem under a sled dir's blob files (see the module
/// docs), on a thread of its own, and once more when dropped.
pub(crate) struct BlobSyncer {
    dir: PathBuf,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    /// The data dir, open: `syncfs` reports a writeback error to the
    /// descriptors open when it happened (Linux 5.8 and later).
    fd: File,
    state: Mutex<State>,
    wake: Condvar,
    /// Syncs done (for tests).
    syncs: AtomicU64,
    /// When each sync began.
    #[cfg(test)]
    began: Mutex<Vec<Instant>>,
}

#[derive(Default)]
struct State {
    /// A flush happened since the last sync began.
    pending: bool,
    /// The syncer is being dropped.
    stop: bool,
    /// The first sync that failed: reported from then on.
    failed: Option<(io::ErrorKind, String)>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is three plain fields, each written whole: a panic
        // elsewhere cannot leave it half-changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The kept failure, as an error to return.
    fn failure(state: &State) -> io::Result<()> {
        match &state.failed {
            Some((kind, message)) => Err(io::Error::new(
                *kind,
                format!("an earlier sync of sled's blob files failed: {message}"),
            )),
            None => Ok(()),
        }
    }

    /// One sync, its failure kept.
    fn sync(&self, dir: &Path) -> io::Result<()> {
        #[cfg(test)]
        self.began
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Instant::now());
        let done = sync_blobs(dir, &self.fd);
        self.syncs.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = &done {
            let mut state = self.lock();
            if state.failed.is_none() {
                state.failed = Some((error.kind(), error.to_string()));
            }
        }
        done
    }
}

impl BlobSyncer {
    /// The syncer of the sled dir `dir`, whose first sync (of what an
    /// earlier process or the open itself wrote) is already pending.
    /// `every`: sled flushes on its own timer at that interval
    /// (`FlushPolicy::IntervalMs`), and the blobs are synced as often (at
    /// most every [`SYNC_GAP`]). Without its thread (the system would not
    /// start one) each flush syncs on the caller's thread.
    pub(crate) fn start(dir: &Path, every: Option<Duration>) -> io::Result<Self> {
        Self::with_gap(dir, every, SYNC_GAP)
    }

    /// [`Self::start`] with syncs at most every `gap`.
    fn with_gap(dir: &Path, every: Option<Duration>, gap: Duration) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            fd: File::open(dir)?,
            state: Mutex::new(State {
                pending: true,
                ..State::default()
            }),
            wake: Condvar::new(),
            syncs: AtomicU64::new(0),
            #[cfg(test)]
            began: Mutex::default(),
        });
        let thread = std::thread::Builder::new()
            .name("tier-store-sled-blobs".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                let dir = dir.to_owned();
                move || run(&dir, &shared, every, gap)
            })
            .inspect_err(|error| {
                tracing::warn!(%error, "no thread for syncing sled's blob files: syncing on commit");
            })
            .ok();
        Ok(Self {
            dir: dir.to_owned(),
            shared,
            thread,
        })
    }

    /// The kept failure of an earlier sync, if any: checked before a
    /// commit writes anything.
    pub(crate) fn check(&self) -> io::Result<()> {
        Shared::failure(&self.shared.lock())
    }

    /// sled has just flushed its log: have the blob files it may point at
    /// synced. Returns the kept failure of an earlier sync.
    pub(crate) fn flushed(&self) -> io::Result<()> {
        if self.thread.as_ref().is_none_or(JoinHandle::is_finished) {
            // No thread (or it panicked): sync here.
            return self.sync_now();
        }
        let mut state = self.shared.lock();
        Shared::failure(&state)?;
        state.pending = true;
        drop(state);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Sync the blob files on the caller's thread (an explicit flush of
    /// the store).
    pub(crate) fn sync_now(&self) -> io::Result<()> {
        self.check()?;
        self.shared.sync(&self.dir)
    }

    #[cfg(test)]
    fn syncs(&self) -> u64 {
        self.shared.syncs.load(Ordering::Relaxed)
    }
}

impl Drop for BlobSyncer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the sled blob sync thread panicked");
        }
        if let Err(error) = self.sync_now() {
            tracing::error!(%error, dir = %self.dir.display(), "syncing sled's blob files on close failed");
        }
    }
}

/// The thread: a sync whenever a flush is pending (or, with `every`, at
/// that interval), starting at least `gap` after the last one started,
/// until stopped (the syncer's drop syncs once more on its own thread).
fn run(dir: &Path, shared: &Shared, every: Option<Duration>, gap: Duration) {
    let mut last: Option<Instant> = None;
    loop {
        let mut state = shared.lock();
        loop {
            if state.stop {
                return;
            }
            if state.pending {
                let early = last
                    .and_then(|last| (last + gap).checked_duration_since(Instant::now()))
                    .filter(|wait| !wait.is_zero());
                match early {
                    None => break,
                    // Too soon after the last: wait out the gap (or a stop).
                    Some(wait) => {
                        state = shared
                            .wake
                            .wait_timeout(state, wait)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                        continue;
                    }
                }
            }
            match every {
                None => {
                    state = shared
                        .wake
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                Some(every) => {
                    let (woken, timeout) = shared
                        .wake
                        .wait_timeout(state, every)
                        .unwrap_or_else(PoisonError::into_inner);
                    state = woken;
                    state.pending |= timeout.timed_out();
                }
            }
        }
        state.pending = false;
        drop(state);
        last = Some(Instant::now());
        // Kept in the shared state, and reported by the next commit.
        let _ = shared.sync(dir);
    }
}

/// Sync the filesystem holding `dir` (open as `fd`) when `dir/blobs`
/// holds any file.
fn sync_blobs(dir: &Path, fd: &File) -> io::Result<()> {
    let blobs = dir.join("blobs");
    let holds_any = match std::fs::read_dir(&blobs) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    if holds_any {
        sync_filesystem(&blobs, fd)?;
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn sync_filesystem(_blobs: &Path, fd: &File) -> io::Result<()> {
    Ok(rustix::fs::syncfs(fd)?)
}

/// Without `syncfs`: each blob file, then the directory.
#[cfg(not(target_os = "linux"))]
fn sync_filesystem(blobs: &Path, _fd: &File) -> io::Result<()> {
    for entry in std::fs::read_dir(blobs)? {
        File::open(entry?.path())?.sync_all()?;
    }
    File::open(blobs)?.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Waits until `done` holds, failing after ten seconds.
    fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "never: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A dir whose `blobs/` holds one file, as sled leaves it.
    fn with_a_blob() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("blobs")).unwrap();
        std::fs::write(tmp.path().join("blobs").join("42"), b"a page").unwrap();
        tmp
    }

    #[test]
    fn a_failed_sync_fails_every_later_commit() {
        let tmp = tempfile::tempdir().unwrap();
        // `blobs` is a file: listing it fails, as a failing disk would.
        let blobs = tmp.path().join("blobs");
        std::fs::write(&blobs, b"not a directory").unwrap();
        let syncer = BlobSyncer::start(tmp.path(), None).unwrap();
        eventually("the failure is reported", || syncer.flushed().is_err());
        let error = syncer.check().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotADirectory, "{error}");
        // The disk "recovers": the failure is still reported.
        std::fs::remove_file(&blobs).unwrap();
        assert!(syncer.flushed().is_err());
        assert!(syncer.sync_now().is_err());
        assert!(syncer.check().is_err());
    }

    #[test]
    fn each_flush_is_followed_by_a_sync_and_close_syncs_once_more() {
        let tmp = with_a_blob();
        let syncer = BlobSyncer::start(tmp.path(), None).unwrap();
        eventually("the sync at open", || syncer.syncs() >= 1);
        for round in 0..5 {
            let before = syncer.syncs();
            syncer.flushed().unwrap();
            eventually(&format!("a sync after flush {round}"), || {
                syncer.syncs() > before
            });
        }
        let shared = Arc::clone(&syncer.shared);
        let before = shared.syncs.load(Ordering::Relaxed);
        drop(syncer);
        assert!(shared.syncs.load(Ordering::Relaxed) > before, "close syncs");
    }

    #[test]
    fn flushes_within_the_gap_are_synced_once_after_it() {
        let tmp = with_a_blob();
        let gap = Duration::from_millis(300);
        let syncer = BlobSyncer::with_gap(tmp.path(), None, gap).unwrap();
        eventually("the sync at open", || syncer.syncs() >= 1);
        for _ in 0..5 {
            syncer.flushed().unwrap();
        }
        eventually("a sync after the flushes", || syncer.syncs() >= 2);
        std::thread::sleep(gap);
        assert_eq!(syncer.syncs(), 2, "five flushes, one sync");
        let began = syncer.shared.began.lock().unwrap().clone();
        assert!(began[1] - began[0] >= gap, "{:?}", began[1] - began[0]);
    }

    #[test]
    fn a_stop_does_not_wait_out_the_gap_and_close_syncs_what_was_pending() {
        let tmp = with_a_blob();
        let syncer = BlobSyncer::with_gap(tmp.path(), None, Duration::from_secs(3600)).unwrap();
        eventually("the sync at open", || syncer.syncs() >= 1);
        syncer.flushed().unwrap();
        let shared = Arc::clone(&syncer.shared);
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        std::thread::spawn({
            let closed = Arc::clone(&closed);
            move || {
                drop(syncer);
                closed.store(true, Ordering::Relaxed);
            }
        });
        eventually("the close", || closed.load(Ordering::Relaxed));
        assert_eq!(
            shared.syncs.load(Ordering::Relaxed),
            2,
            "the pending flush, synced on close"
        );
    }

    #[test]
    fn with_an_interval_the_blobs_are_synced_without_flushes() {
        let tmp = tempfile::tempdir().unwrap();
        let syncer = BlobSyncer::start(tmp.path(), Some(Duration::from_millis(5))).unwrap();
        eventually("several timed syncs", || syncer.syncs() >= 3);
    }
}
