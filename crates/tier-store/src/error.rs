//! The crate's one error type.

use std::io;
use std::path::PathBuf;

use crate::Backend;

/// Everything that can go wrong in the store, phrased for an operator's log.
///
/// [`StoreError::is_corruption`] splits the variants into "the data on disk
/// cannot be trusted" (quarantine it) and everything else (retry or refuse).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An application record name outside `[A-Za-z0-9_.-]{1,64}`.
    #[error(
        "invalid application record name {name:?}: use 1-64 ASCII letters, digits, '_', '-' or '.'"
    )]
    InvalidMetaName { name: String },

    /// The data directory could not even be listed.
    #[error("could not inspect data dir {}: {source}", dir.display())]
    DataDir {
        /// The data directory.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// sled refused to open the data directory.
    #[error("could not open the sled data dir {}: {source}", dir.display())]
    Open {
        /// The data directory.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: sled::Error,
    },

    /// The directory held files, but sled found no readable log in them and
    /// would have started empty.
    #[error(
        "data dir {} holds files, but sled recovered nothing from them; its log is unreadable",
        dir.display()
    )]
    Unrecoverable {
        /// The data directory.
        dir: PathBuf,
    },

    /// The directory holds data without tier-store's schema marker.
    #[error(
        "data dir {} has data but no schema version; it was not written by tier-store or its metadata is damaged",
        dir.display()
    )]
    SchemaMissing {
        /// The data directory.
        dir: PathBuf,
    },

    /// The directory was written with a schema this build cannot read.
    #[error(
        "data dir {} has schema version {found}, but this build supports only version {supported}",
        dir.display()
    )]
    SchemaMismatch {
        /// The data directory.
        dir: PathBuf,
        /// The version found on disk.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },

    /// A sled operation on an open store failed (for the other backends:
    /// `StoreError::Fjall`, `StoreError::Redb`, with their features).
    #[error("sled I/O failed while {during}: {source}")]
    Sled {
        /// What the store was doing, e.g. "committing a batch".
        during: &'static str,
        /// The underlying error.
        #[source]
        source: sled::Error,
    },

    /// fjall (the `fjall` backend) failed while opening or using the store.
    #[cfg(feature = "fjall")]
    #[error("fjall failed while {during}: {source}")]
    Fjall {
        /// What the store was doing, e.g. "committing a batch".
        during: &'static str,
        /// The underlying error.
        #[source]
        source: fjall::Error,
    },

    /// redb (the `redb` backend) failed while opening or using the store.
    #[cfg(feature = "redb")]
    #[error("redb failed while {during}: {source}")]
    Redb {
        /// What the store was doing, e.g. "committing a batch".
        during: &'static str,
        /// The underlying error.
        #[source]
        source: redb::Error,
    },

    /// The directory holds files, but not the files of this backend's store
    /// (and not those of another backend either).
    #[error(
        "data dir {} holds files, but no {backend} store; it was not written by tier-store or is damaged",
        dir.display()
    )]
    NotAStore {
        /// The data directory.
        dir: PathBuf,
        /// The backend that looked for its files.
        backend: Backend,
    },

    /// The directory holds a store of another backend than the one asked for.
    #[error(
        "data dir {} holds a {found} store, but the configured store backend is {configured}; \
         configure store backend {found} to use it, or move the dir away to rebuild the state from Kafka",
        dir.display()
    )]
    WrongBackend {
        /// The data directory.
        dir: PathBuf,
        /// The backend whose files are in the directory.
        found: Backend,
        /// The backend that was asked for.
        configured: Backend,
    },

    /// A store backend name that is not known at all.
    #[error("unknown store backend {name:?}: this build supports {compiled}")]
    UnknownBackend {
        /// The rejected name.
        name: String,
        /// The backends compiled into this build, e.g. "sled, redb".
        compiled: String,
    },

    /// A store backend that exists but was not compiled into this build.
    #[error(
        "store backend {backend} is not compiled into this build (it needs cargo feature store-{feature} of tierd, {feature} of tier-store); this build supports {compiled}"
    )]
    BackendNotCompiled {
        /// The backend asked for.
        backend: Backend,
        /// The cargo feature that enables it (of tier-store; tierd forwards it as `store-<name>`).
        feature: &'static str,
        /// The backends compiled into this build.
        compiled: String,
    },

    /// A customer state could not be serialized; nothing was written.
    #[error("could not encode the state of customer {id}: {source}")]
    Encode {
        /// The customer id.
        id: String,
        /// The serializer's error.
        #[source]
        source: postcard::Error,
    },

    /// A stored customer state does not decode as the requested type.
    #[error("stored value for customer {id} is corrupt: {source}")]
    Corrupt {
        /// The customer id.
        id: String,
        /// The deserializer's error.
        #[source]
        source: postcard::Error,
    },

    /// A stored customer state's compressed form does not decompress.
    #[error(
        "stored value for customer {id} is corrupt: its compressed form does not decompress ({reason})"
    )]
    Undecompressable {
        /// The customer id.
        id: String,
        /// What zstd or the frame's header said.
        reason: String,
    },

    /// A stored customer state carries a format version this build does not know.
    #[error(
        "stored value for customer {id} has format version {version}, but this build reads versions 1 to {supported}"
    )]
    UnknownFormatVersion {
        /// The customer id.
        id: String,
        /// The version byte found.
        version: u8,
        /// The newest version this build reads.
        supported: u8,
    },

    /// A key or a non-customer value does not follow the layout.
    #[error("entry {key} in the {section} section is malformed: {reason}")]
    MalformedEntry {
        /// "customers", "offsets", "outbox", "meta" or "unknown".
        section: &'static str,
        /// The key, printable (non-UTF-8 bytes escaped).
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A topic name that cannot be part of an offset key.
    #[error("topic name {topic:?} cannot be stored: it is empty or contains a NUL byte")]
    InvalidTopic {
        /// The rejected topic name.
        topic: String,
    },

    /// Kafka partitions are never negative.
    #[error("partition {partition} of topic {topic} is negative")]
    NegativePartition {
        /// The topic.
        topic: String,
        /// The rejected partition.
        partition: i32,
    },

    /// Kafka offsets to consume next are never negative.
    #[error("next offset {offset} for partition {partition} of topic {topic} is negative")]
    NegativeOffset {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The rejected offset.
        offset: i64,
    },

    /// The outbox sequence would wrap around `u64::MAX`.
    #[error("the outbox sequence is exhausted; no more outbox rows can be keyed")]
    OutboxExhausted,

    /// Moving a broken data directory aside failed.
    #[error("could not quarantine data dir {}: {source}", dir.display())]
    Quarantine {
        /// The data directory that should have been moved.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// True when the error means the data on disk cannot be trusted, so the
    /// data dir should be quarantined rather than retried.
    ///
    /// I/O errors (permissions, a lock held by another process, a full disk)
    /// and a schema *newer* than this build (a rollback) are not corruption:
    /// quarantining would throw away good state.
    pub fn is_corruption(&self) -> bool {
        match self {
            Self::Open { source, .. } | Self::Sled { source, .. } => matches!(
                source,
                sled::Error::Corruption { .. }
                    | sled::Error::Unsupported(_)
                    | sled::Error::ReportableBug(_)
            ),
            #[cfg(feature = "fjall")]
            Self::Fjall { source, .. } => crate::fjall_store::is_corruption(source),
            #[cfg(feature = "redb")]
            Self::Redb { source, .. } => crate::redb_store::is_corruption(source),
            Self::SchemaMismatch {
                found, supported, ..
            } => found < supported,
            Self::Unrecoverable { .. }
            | Self::SchemaMissing { .. }
            | Self::Corrupt { .. }
            | Self::Undecompressable { .. }
            | Self::UnknownFormatVersion { .. }
            | Self::MalformedEntry { .. }
            | Self::NotAStore { .. } => true,
            Self::DataDir { .. }
            | Self::Encode { .. }
            | Self::InvalidTopic { .. }
            | Self::NegativePartition { .. }
            | Self::NegativeOffset { .. }
            | Self::OutboxExhausted
            | Self::InvalidMetaName { .. }
            | Self::Quarantine { .. }
            | Self::WrongBackend { .. }
            | Self::UnknownBackend { .. }
            | Self::BackendNotCompiled { .. } => false,
        }
    }
}
