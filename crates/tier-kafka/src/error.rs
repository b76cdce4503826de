//! Errors of the Kafka adapter. Kafka failures split into permanent ones
//! (dead-letter the record, move on) and transient ones (retry, do not
//! advance); see [`StreamError::is_transient`].

/// Why the ingest or publish path failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("kafka client error: {0}")]
    Kafka(String),
    #[error("broker error: {0}")]
    Broker(String),
    #[error("state store error: {0}")]
    Store(#[from] tier_store::StoreError),
    #[error("dead-lettering a record failed, the partition will not advance: {0}")]
    DeadLetter(String),
    #[error("the pipeline thread stopped unexpectedly: {0}")]
    Stopped(String),
    #[error(transparent)]
    Commit(#[from] tier_engine::CommitError),
}

impl StreamError {
    /// Transient failures are retried without advancing offsets.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StreamError::Kafka(_) | StreamError::DeadLetter(_) | StreamError::Store(_)
        )
    }
}
