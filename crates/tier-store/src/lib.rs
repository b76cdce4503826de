//! tierd's durable state: per-customer state, consumed Kafka offsets and the
//! tier-change outbox, committed together in one atomic batch.
//!
//! # What this crate owns
//! - The on-disk layout in sled and its schema version ([`SCHEMA_VERSION`]).
//! - The one atomic write, [`Store::commit`]: customer upserts, the next
//!   offsets to consume and new outbox rows become visible (and durable, per
//!   [`FlushPolicy`]) together or not at all. This is what lets a crash at any
//!   point neither lose nor double-count an event.
//! - Reads for start-up (warm the in-memory map, seek to stored offsets), the
//!   outbox drain (oldest first, idempotent delete), integrity checks
//!   ([`Store::verify`]) and quarantining a broken data dir ([`quarantine`],
//!   [`SledStore::open_or_quarantine`]).
//!
//! # What it must not do
//! No Kafka, no gRPC, no async runtime, no domain logic: customer states are
//! an opaque `S: Serialize + DeserializeOwned` and outbox rows are opaque
//! bytes. The store never decides what a tier is, never publishes, and never
//! deletes data it cannot read (it quarantines it). All calls block; async
//! callers use `spawn_blocking`.
//!
//! # Backends
//! [`Store`] is the narrow interface; [`SledStore`] is the default backend
//! and [`MemStore`] an in-memory one with the same semantics, including
//! atomicity and the value encoding. Two alternatives sit behind cargo
//! features, with the same layout and semantics: `FjallStore` (feature
//! `fjall`, an LSM tree) and `RedbStore` (feature `redb`, a copy-on-write
//! B-tree); both are written once over a small key-value engine trait in
//! the private `kv` module. [`Backend`] names a backend (parsed from
//! configuration, refusing backends not compiled in) and [`AnyStore`]
//! opens and dispatches to the chosen one, since [`Store`] is not
//! object-safe. A data dir holds one backend's files; [`Backend::detect`]
//! tells which, and opening it as another backend is refused
//! ([`StoreError::WrongBackend`]) rather than quarantined. Store scenarios
//! in `tests/` run against every compiled-in backend.
//!
//! The figures comparing them (commit rate of the committer's path, bulk
//! load, bytes on disk per customer, space amplification) come from
//! `examples/store_figures.rs` (1,000,000 customers) and the criterion bench
//! `benches/commit.rs`; run both with `--all-features`.
//!
//! # Value format
//! Customer states are one format-version byte followed by postcard
//! (format 6, what the engine encodes and holds), written compressed as
//! format 7 (zstd with a dictionary built into the binary) where that is
//! shorter; formats 1 to 5 are still read (see `codec`). An unknown
//! version is [`StoreError::UnknownFormatVersion`], a compressed value that
//! does not decompress [`StoreError::Undecompressable`]; an upcaster for
//! an old version goes into `codec::decode`.
//!
//! # Layout: one tree, prefixed keys, one `apply_batch` per commit
//! All keys live in a single sled tree, `tierd-state` (fjall: one keyspace,
//! redb: one table of the same name, with the same keys and values):
//!
//! | prefix | key after the prefix               | value                                  |
//! |--------|------------------------------------|----------------------------------------|
//! | `c/`   | scope (input partition, u32 BE; `u32::MAX` unscoped), customer id (UTF-8) | format byte + postcard state (formats 5 and 7: zstd-compressed) |
//! | `o/`   | topic, `0x00`, partition (i32 BE)  | next offset to consume (i64 BE)        |
//! | `y/`   | first outbox sequence of a pack (u64 BE) | up to 256 outbox rows: (sequence offset, length, opaque bytes) each, see the `outbox` module |
//! | `x/`   | outbox sequence (u64 BE)           | one outbox row (stores written before packing) |
//! | `m/`   | `schema`, `outbox_next`, `created_at_ms`, `created_by` | u32 BE, u64 BE, u64 BE, UTF-8 |
//!
//! A commit encodes and validates everything first (so a state that fails to
//! serialize changes nothing), then writes one `sled::Batch` with
//! `Tree::apply_batch`, which sled applies atomically, also across a crash.
//! The outbox counter (`m/outbox_next`) is written in the same batch, so
//! outbox keys are never reused, even after every row was deleted and the
//! store reopened.
//!
//! Why not four trees and a multi-tree transaction: measured on the 2-core
//! development machine with the `commit_rate` example's workload (200 batches
//! of 5,000 distinct customers out of 100,000, 191-byte values, 8 offsets and
//! 50 outbox rows per batch, workspace release profile), run interleaved so
//! both saw the same (busy) machine, the single tree was faster in all six
//! pairs, by 12–69% (median about 1.35x). Most of the time is sled's per-key
//! tree update either way; the transaction adds its own write buffering and
//! validation on top. The single tree is also simpler: no transaction
//! closure that may rerun, no conflict errors, one atomic primitive. Counting
//! customers or outbox rows is a prefix scan either way.
//!
//! `commit_rate` itself (5,000-customer batches) measured 231k–239k
//! customers/s with `EveryCommit` and 213k–264k with `IntervalMs(500)` at a
//! load average of about 3 on the 2 cores, and 125k–171k / 175k–241k at about
//! 5; the in-memory store does 500k–890k. At this batch size an fsync per
//! commit costs little.
//!
//! Since the cost is per written key, the caller must coalesce events per
//! customer before committing (DESIGN.md); end-to-end events/s is then the
//! store's customers/s times the events folded per customer per batch.

mod any_store;
mod backend;
mod batch;
mod codec;
mod error;
#[cfg(feature = "fjall")]
mod fjall_store;
#[cfg(any(feature = "fjall", feature = "redb"))]
mod kv;
mod layout;
mod mem_store;
mod options;
mod outbox;
mod quarantine;
#[cfg(feature = "redb")]
mod redb_store;
mod sled_blobs;
mod sled_store;
mod store;

pub use any_store::AnyStore;
pub use backend::Backend;
pub use batch::{CommitBatch, CommitReceipt, EncodedCustomers, PreparedBatch, VerifyReport};
pub use codec::{current_body, postcard_after};
pub use error::StoreError;
#[cfg(feature = "fjall")]
pub use fjall_store::FjallStore;
pub use layout::{SCHEMA_VERSION, Scope};
pub use mem_store::MemStore;
pub use options::{FlushPolicy, StoreOptions};
pub use quarantine::quarantine;
#[cfg(feature = "redb")]
pub use redb_store::RedbStore;
pub use sled_store::{SLED_SEGMENT_BYTES, SledStore};
pub use store::Store;
