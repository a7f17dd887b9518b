//! Unpacked layers, one directory per diff ID (`layers/sha256/<hex>`), ready to be
//! overlayfs lower directories. A layer is unpacked into a temporary directory and renamed
//! into place only once its diff ID is verified, so a half-unpacked layer is never used.

use std::path::{Path, PathBuf};

use crate::content::{io_err, ContentError};
use crate::digest::Digest;
use crate::unpack::{self, UnpackError, UnpackLimits};

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer {blob}: {source}")]
    Unpack { blob: Digest, source: UnpackError },
    #[error("layer {blob} has diff ID {actual}, but the image config says {expected}")]
    DiffId {
        blob: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error(transparent)]
    Content(#[from] ContentError),
}

pub struct LayerStore {
    root: PathBuf,
    tmp: PathBuf,
}

impl LayerStore {
    pub fn open(root: &Path) -> Result<Self, ContentError> {
        let (root, tmp) = (root.join("layers/sha256"), root.join("layers/tmp"));
        for dir in [&root, &tmp] {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        // Whatever is in tmp was cut short by a crash.
        for e in std::fs::read_dir(&tmp).map_err(io_err(&tmp))?.flatten() {
            let _ = std::fs::remove_dir_all(e.path());
        }
        Ok(Self { root, tmp })
    }

    pub fn path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join(diff_id.hex())
    }

    pub fn contains(&self, diff_id: &Digest) -> bool {
        self.path(diff_id).is_dir()
    }

    /// Unpacks the layer blob at `blob_path` and checks it against `diff_id`. Blocking.
    pub fn unpack(
        &self,
        blob: &Digest,
        blob_path: &Path,
        diff_id: &Digest,
        limits: &UnpackLimits,
    ) -> Result<u64, LayerError> {
        let dest = self.path(diff_id);
        if dest.is_dir() {
            return Ok(0);
        }
        let tmp = self
            .tmp
            .join(format!("{}-{}", diff_id.short(), std::process::id()))
            .with_extension(format!("{:x}", rand_suffix()));
        std::fs::create_dir(&tmp).map_err(io_err(&tmp))?;
        let result = (|| {
            let file = std::fs::File::open(blob_path).map_err(io_err(blob_path))?;
            let reader = std::io::BufReader::with_capacity(64 * 1024, file);
            let got = unpack::unpack_layer(reader, &tmp, limits).map_err(|source| {
                LayerError::Unpack {
                    blob: blob.clone(),
                    source,
                }
            })?;
            if &got.diff_id != diff_id {
                return Err(LayerError::DiffId {
                    blob: blob.clone(),
                    expected: diff_id.clone(),
                    actual: got.diff_id,
                });
            }
            let sidecar = self.root.join(format!("{}.size", diff_id.hex()));
            std::fs::write(&sidecar, got.bytes.to_string()).map_err(io_err(&sidecar))?;
            Ok(got.bytes)
        })();
        match result {
            Ok(bytes) => {
                if let Err(e) = std::fs::rename(&tmp, &dest) {
                    // Another pull unpacked the same layer first: theirs is as good as ours.
                    let _ = std::fs::remove_dir_all(&tmp);
                    if !dest.is_dir() {
                        return Err(io_err(&dest)(e).into());
                    }
                }
                Ok(bytes)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(e)
            }
        }
    }

    /// Bytes of the unpacked layer, as counted when it was unpacked.
    pub fn size(&self, diff_id: &Digest) -> u64 {
        std::fs::read_to_string(self.root.join(format!("{}.size", diff_id.hex())))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn delete(&self, diff_id: &Digest) -> Result<(), ContentError> {
        let _ = std::fs::remove_file(self.root.join(format!("{}.size", diff_id.hex())));
        let path = self.path(diff_id);
        match std::fs::remove_dir_all(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path)(e)),
            _ => Ok(()),
        }
    }

    pub fn list(&self) -> Result<Vec<Digest>, ContentError> {
        let entries = std::fs::read_dir(&self.root).map_err(io_err(&self.root))?;
        Ok(entries
            .flatten()
            .filter_map(|e| Digest::parse_lenient(&e.file_name().to_string_lossy()).ok())
            .collect())
    }
}

/// Distinguishes concurrent unpacks of one layer within a process.
fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
