//! Root filesystems for containers: an overlay mount of an image's layers with a
//! per-container upper directory, or a full copy where the kernel has no overlayfs.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

use crate::content::{io_err, ContentError};
use crate::digest::Digest;
use crate::unpack::{self, UnpackError};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("invalid snapshot id {0:?}: use 1-128 letters, digits, '_', '-' or '.'")]
    InvalidId(String),
    #[error("snapshot {0} already exists")]
    Exists(String),
    #[error("no such snapshot: {0}")]
    NotFound(String),
    #[error("mounting the overlay for snapshot {id}: {source}")]
    Mount { id: String, source: nix::Error },
    #[error("copying layers into snapshot {id}: {source}")]
    Copy { id: String, source: UnpackError },
    #[error("overlay mount options for {id} are {len} bytes, over the kernel's page-size limit; the image has too many layers for an overlay")]
    TooManyLayers { id: String, len: usize },
    #[error(transparent)]
    Content(#[from] ContentError),
}

/// How snapshots are made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotMode {
    /// Overlay where the kernel has it, else copy.
    #[default]
    Auto,
    Overlay,
    Copy,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub id: String,
    pub image: Digest,
    /// Diff IDs of the layers, bottom first: what garbage collection must keep.
    pub layers: Vec<Digest>,
    pub mode: SnapshotMode,
}

#[derive(Clone, Debug)]
pub struct Snapshot {
    pub info: SnapshotInfo,
    pub rootfs: PathBuf,
}

pub struct Snapshotter {
    root: PathBuf,
    mode: SnapshotMode,
}

const INFO: &str = "snapshot.json";
/// The kernel reads mount options from one page.
const MAX_MOUNT_DATA: usize = 4095;

impl Snapshotter {
    pub fn open(root: &Path, mode: SnapshotMode) -> Result<Self, ContentError> {
        let root = root.join("snapshots");
        std::fs::create_dir_all(&root).map_err(io_err(&root))?;
        let mode = match mode {
            SnapshotMode::Auto if overlay_available() => SnapshotMode::Overlay,
            SnapshotMode::Auto => SnapshotMode::Copy,
            m => m,
        };
        Ok(Self { root, mode })
    }

    pub fn mode(&self) -> SnapshotMode {
        self.mode
    }

    fn dir(&self, id: &str) -> Result<PathBuf, SnapshotError> {
        let ok = !id.is_empty()
            && id.len() <= 128
            && !id.starts_with('.')
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if !ok {
            return Err(SnapshotError::InvalidId(id.to_string()));
        }
        Ok(self.root.join(id))
    }

    /// Makes the root filesystem `id` from `layers` (directories, bottom first). The
    /// record is written before the mount, so that garbage collection sees the layers in
    /// use from the start. Blocking.
    pub fn prepare(
        &self,
        id: &str,
        image: &Digest,
        layers: &[(Digest, PathBuf)],
    ) -> Result<Snapshot, SnapshotError> {
        let dir = self.dir(id)?;
        if dir.exists() {
            return Err(SnapshotError::Exists(id.to_string()));
        }
        let info = SnapshotInfo {
            id: id.to_string(),
            image: image.clone(),
            layers: layers.iter().map(|(d, _)| d.clone()).collect(),
            mode: self.mode,
        };
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).map_err(io_err(&rootfs))?;
        let record = dir.join(INFO);
        let json = serde_json::to_vec_pretty(&info).unwrap_or_default();
        std::fs::write(&record, json).map_err(io_err(&record))?;
        let made = match self.mode {
            SnapshotMode::Copy => self.copy(id, layers, &rootfs),
            _ => self.overlay(id, layers, &dir, &rootfs),
        };
        if let Err(e) = made {
            let _ = self.remove(id);
            return Err(e);
        }
        Ok(Snapshot { info, rootfs })
    }

    fn overlay(
        &self,
        id: &str,
        layers: &[(Digest, PathBuf)],
        dir: &Path,
        rootfs: &Path,
    ) -> Result<(), SnapshotError> {
        let (upper, work) = (dir.join("upper"), dir.join("work"));
        for d in [&upper, &work] {
            std::fs::create_dir_all(d).map_err(io_err(d))?;
        }
        // overlayfs lists lower directories top first.
        let lower: Vec<String> = layers
            .iter()
            .rev()
            .map(|(_, p)| p.display().to_string())
            .collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            upper.display(),
            work.display()
        );
        if data.len() > MAX_MOUNT_DATA {
            return Err(SnapshotError::TooManyLayers {
                id: id.into(),
                len: data.len(),
            });
        }
        mount(
            Some("overlay"),
            rootfs,
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|source| SnapshotError::Mount {
            id: id.into(),
            source,
        })
    }

    fn copy(
        &self,
        id: &str,
        layers: &[(Digest, PathBuf)],
        rootfs: &Path,
    ) -> Result<(), SnapshotError> {
        for (_, layer) in layers {
            unpack::apply_layer_dir(layer, rootfs).map_err(|source| SnapshotError::Copy {
                id: id.into(),
                source,
            })?;
        }
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Snapshot, SnapshotError> {
        let dir = self.dir(id)?;
        let record = dir.join(INFO);
        let bytes = std::fs::read(&record).map_err(|_| SnapshotError::NotFound(id.into()))?;
        let info: SnapshotInfo =
            serde_json::from_slice(&bytes).map_err(|_| SnapshotError::NotFound(id.into()))?;
        Ok(Snapshot {
            info,
            rootfs: dir.join("rootfs"),
        })
    }

    /// Unmounts and deletes snapshot `id`. Blocking.
    pub fn remove(&self, id: &str) -> Result<(), SnapshotError> {
        let dir = self.dir(id)?;
        if !dir.exists() {
            return Err(SnapshotError::NotFound(id.into()));
        }
        let rootfs = dir.join("rootfs");
        // Detach: a process still holding a file open must not keep the snapshot alive.
        // Repeat: mounts may be stacked on the rootfs (propagated from a container).
        for _ in 0..16 {
            match umount2(&rootfs, MntFlags::MNT_DETACH) {
                Ok(()) => continue,
                Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => break,
                Err(source) => {
                    return Err(SnapshotError::Mount {
                        id: id.into(),
                        source,
                    })
                }
            }
        }
        // Never delete through a mount: that would delete what it shows.
        if is_mount_point(&rootfs) {
            return Err(SnapshotError::Mount {
                id: id.into(),
                source: nix::Error::EBUSY,
            });
        }
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(())
    }

    /// Every snapshot, for garbage collection. Unreadable records count as in use of
    /// nothing but are reported.
    pub fn list(&self) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        let entries = std::fs::read_dir(&self.root).map_err(io_err(&self.root))?;
        let mut out = Vec::new();
        for e in entries.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            match self.get(&id) {
                Ok(s) => out.push(s.info),
                Err(err) => tracing::warn!(snapshot = %id, "unreadable snapshot record: {err}"),
            }
        }
        Ok(out)
    }
}

/// Whether something is mounted at `path`: its device differs from its parent's.
fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(me), Some(Ok(parent))) = (
        std::fs::symlink_metadata(path),
        path.parent().map(std::fs::symlink_metadata),
    ) else {
        return false;
    };
    me.dev() != parent.dev()
}

fn overlay_available() -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .map(|s| {
            s.lines()
                .any(|l| l.trim_end().ends_with("\toverlay") || l.trim() == "nodev\toverlay")
        })
        .unwrap_or(false)
}
