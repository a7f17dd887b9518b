//! The crate's error: each module's error gathered in one, with a kind for the API to map
//! to a status code. Retryable versus final is a property here, never a string match.

use crate::{
    archive::ArchiveError, auth::AuthError, content::ContentError, digest::DigestError,
    distribution::DistributionError, layers::LayerError, manifest::ManifestError,
    metadata::CorruptMetadata, platform::PlatformError, reference::ReferenceError,
    snapshot::SnapshotError, unpack::UnpackError,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Distribution(#[from] DistributionError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Metadata(#[from] CorruptMetadata),
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
}

/// What kind of failure, for callers that answer users (the API's status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request named something malformed.
    InvalidInput,
    NotFound,
    /// The request conflicts with what exists (an image in use).
    Conflict,
    /// Content from a registry or an archive is bad: corrupt or hostile.
    BadContent,
    /// A registry or the network failed; trying again may work.
    Unavailable,
    Unauthorized,
    Internal,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind::*;
        match self {
            Error::Reference(_)
            | Error::Digest(_)
            | Error::Platform(PlatformError::Malformed(_)) => InvalidInput,
            Error::Platform(PlatformError::NoMatch { .. }) => NotFound,
            Error::NoSuchImage(_) | Error::Distribution(DistributionError::NotFound(_)) => NotFound,
            Error::Snapshot(SnapshotError::NotFound(_)) => NotFound,
            Error::Snapshot(SnapshotError::InvalidId(_)) => InvalidInput,
            Error::Conflict(_) | Error::Snapshot(SnapshotError::Exists(_)) => Conflict,
            Error::Distribution(DistributionError::Unauthorized { .. }) => Unauthorized,
            Error::Distribution(d) if d.is_retryable() => Unavailable,
            Error::Content(c) if c.is_retryable() => Unavailable,
            Error::Content(ContentError::GaveUp { .. }) => Unavailable,
            Error::Auth(_) | Error::Metadata(_) | Error::Internal(_) => Internal,
            Error::Content(ContentError::Io { .. }) => Internal,
            Error::Unpack(u) if !u.is_bad_content() => Internal,
            Error::Archive(ArchiveError::Io { .. }) => Internal,
            _ => BadContent,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Unavailable
    }
}
