//! The store's error type, below every file that returns it so none of them has to
//! reach up into `mod.rs` for it.

use std::path::PathBuf;

/// What can go wrong opening or waiting on the journal. Errors in the writer thread
/// are not returned anywhere (appends never fail): they mark the journal failed,
/// see [`Journal::is_failed`](super::Journal::is_failed).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("journal I/O failed ({op} {path}): {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("journal directory {0} is in use by another process or handle")]
    Locked(PathBuf),
    #[error("invalid journal configuration: {0}")]
    Config(String),
    /// The journal stopped (I/O error in the writer, or closed) before the awaited
    /// record became durable.
    #[error("journal failed or closed before the record became durable")]
    NotDurable,
    /// A replicated record does not continue the journal where it ends.
    #[error("replicated record has LSN {got}, the journal continues at {expected}")]
    OutOfSequence { expected: u64, got: u64 },
    /// A replicated frame or a segment read back for replication is not valid.
    #[error("journal frame at LSN {lsn} is damaged: {why}")]
    BadFrame { lsn: u64, why: &'static str },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
