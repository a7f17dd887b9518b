use super::Kind;

/// Why a read or a write of the store failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{kind} {id} not found")]
    NotFound { kind: Kind, id: String },
    #[error("{kind} {id} already exists")]
    Exists { kind: Kind, id: String },
    /// swarmkit's "update out of sequence": the object changed since the caller read it.
    #[error("update out of sequence: {kind} {id} changed since it was read (version {expected}, now {actual})")]
    OutOfSequence {
        kind: Kind,
        id: String,
        expected: u64,
        actual: u64,
    },
    #[error("the store's database failed: {0}")]
    Db(#[from] sled::Error),
    #[error("a stored {kind} is unreadable: {source}")]
    Corrupt {
        kind: Kind,
        #[source]
        source: serde_json::Error,
    },
    /// A row that does not open with this manager's key: tampered with, or written
    /// under another key.
    #[error("the stored row {row} does not open with this manager's data key")]
    Sealed { row: String },
    #[error("an entry is unreadable: {0}")]
    Codec(#[source] serde_json::Error),
    /// No leader now, or the write could not reach it: worth retrying.
    #[error("{0}")]
    Unavailable(String),
    /// An error from the leader, passed back through the manager that forwarded to it.
    #[error("{message}")]
    Remote { kind: ErrorKind, message: String },
}

/// What kind of failure, for callers that map errors to statuses or retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    Conflict,
    Unavailable,
    Internal,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Exists { .. } | Error::OutOfSequence { .. } => ErrorKind::Conflict,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Db(_) | Error::Corrupt { .. } | Error::Sealed { .. } | Error::Codec(_) => {
                ErrorKind::Internal
            }
            Error::Remote { kind, .. } => *kind,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Unavailable)
    }
}
