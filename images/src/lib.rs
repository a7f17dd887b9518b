//! covey-images: OCI images for covey. Knows nothing of clusters.
//!
//! # Layout
//! Pure types, no IO:
//! - [`digest`]: `sha256:` digests and hashing readers.
//! - [`reference`]: image references parsed as Docker parses them.
//! - [`platform`]: platforms and choosing one from an index.
//! - [`manifest`]: manifests, indexes and configs (Docker schema 2 and OCI).
//!
//! IO:
//! - [`auth`]: credentials from the docker config file.
//! - [`distribution`]: the registry client (over `oci-client`).
//! - [`content`]: the verified, content-addressed blob store with resumable downloads.
//! - [`unpack`]: safe unpacking of hostile layer tars into overlay-ready directories.
//! - [`layers`]: unpacked layers by diff ID.
//! - [`snapshot`]: container root filesystems (overlay, or copy).
//! - [`archive`]: `docker save` tarballs and OCI layouts.
//! - [`metadata`]: the image records.
//! - [`service`] and [`pull`]: [`ImageService`], what the daemon calls.

pub mod archive;
pub mod auth;
pub mod content;
pub mod digest;
pub mod distribution;
mod error;
pub mod layers;
pub mod manifest;
pub mod metadata;
pub mod platform;
pub mod pull;
pub mod reference;
pub mod resolve;
pub mod service;
pub mod snapshot;
pub mod unpack;

pub use auth::Credentials;
pub use digest::Digest;
pub use distribution::RegistryOptions;
pub use error::{Error, ErrorKind};
pub use metadata::ImageRecord;
pub use platform::Platform;
pub use pull::{Progress, Pulled};
pub use reference::Reference;
pub use service::{ImageEvent, ImageOptions, ImageService, Loaded, PruneReport, Removed};
pub use snapshot::{Snapshot, SnapshotMode};
