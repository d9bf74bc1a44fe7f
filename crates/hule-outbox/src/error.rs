//! Errors of the outbox: storing, preparing and relaying events.

/// An outbox operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The event could not be prepared (key, size, encoding).
    #[error("cannot prepare event {event}: {reason}")]
    Prepare {
        /// The event name.
        event: &'static str,
        /// Why.
        reason: String,
    },
    /// The database refused or failed.
    #[error("outbox database error during {op}: {}", hule_secrets::error_chain(source.as_ref()))]
    Database {
        /// The operation.
        op: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A `COMMIT` (or a statement sent with it) got no answer that says how it ended — the connection lost while
    /// it was sent or answered, or a server error that may follow the commit (PANIC, FATAL): the transaction may or
    /// may not have committed. Retrying blindly may write everything twice; look first (the event ids are known).
    #[error("outbox commit outcome unknown (no answer that says how the COMMIT ended): {}", hule_secrets::error_chain(source.as_ref()))]
    CommitOutcomeUnknown {
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A bad configuration value (URL, option).
    #[error("invalid outbox configuration: {0}")]
    Config(String),
    /// The publisher is unusable (a fatal client error); the relay stops instead of failing every row.
    #[error("the relay's publisher failed fatally: {0}")]
    PublisherFatal(String),
    /// Another relay leads the outbox now (this one's lease ran out while it stalled): this relay completes and
    /// publishes nothing more and stands by.
    #[error("another relay leads this outbox now; this relay's batch is left to it")]
    LeadershipLost,
}

impl StoreError {
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    pub(crate) fn db(op: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Database {
            op,
            source: Box::new(e),
        }
    }
}

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
