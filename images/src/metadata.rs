//! The local image records: which images exist, their names, layers and sizes. One JSON
//! file written atomically (write, sync, rename), so a crash leaves the old or the new
//! version, never a torn one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::content::{io_err, ContentError};
use crate::digest::Digest;
use crate::platform::Platform;
use crate::reference::Reference;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerRecord {
    /// The blob as distributed (compressed).
    pub blob: Digest,
    pub blob_size: u64,
    /// The uncompressed tar's digest, which names the unpacked layer.
    pub diff_id: Digest,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config digest, Docker's image ID.
    pub id: Digest,
    pub manifest: Digest,
    #[serde(default)]
    pub index: Option<Digest>,
    /// Fully qualified `registry/repo:tag` names.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Fully qualified `registry/repo@digest` names.
    #[serde(default)]
    pub digests: Vec<String>,
    pub platform: Platform,
    pub layers: Vec<LayerRecord>,
    #[serde(default)]
    pub created: Option<String>,
    /// Bytes of the unpacked layers.
    pub size: u64,
    /// When this node got the image, in seconds since the epoch.
    pub added: i64,
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    images: BTreeMap<String, ImageRecord>,
}

pub struct Metadata {
    path: PathBuf,
    file: File,
}

#[derive(Debug, thiserror::Error)]
#[error("{path} is corrupt ({message}); it was left as it is: move it aside to start over")]
pub struct CorruptMetadata {
    pub path: PathBuf,
    pub message: String,
}

impl Metadata {
    pub fn load(root: &Path) -> Result<Self, crate::Error> {
        let path = root.join("images.json");
        let file = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| CorruptMetadata {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(e) => return Err(io_err(&path)(e).into()),
        };
        Ok(Self { path, file })
    }

    pub fn save(&self) -> Result<(), ContentError> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(&self.file).map_err(|e| io_err(&self.path)(e.into()))?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(&bytes).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io_err(&self.path))
    }

    pub fn images(&self) -> impl Iterator<Item = &ImageRecord> {
        self.file.images.values()
    }

    pub fn get(&self, id: &Digest) -> Option<&ImageRecord> {
        self.file.images.get(id.hex())
    }

    /// Adds or merges `record`, moving each of its tags off any other image, as `docker
    /// pull` does when a tag now names a newer image.
    pub fn insert(&mut self, mut record: ImageRecord) {
        for other in self.file.images.values_mut() {
            if other.id != record.id {
                other.tags.retain(|t| !record.tags.contains(t));
            }
        }
        if let Some(old) = self.file.images.get(record.id.hex()) {
            for t in &old.tags {
                if !record.tags.contains(t) {
                    record.tags.push(t.clone());
                }
            }
            for d in &old.digests {
                if !record.digests.contains(d) {
                    record.digests.push(d.clone());
                }
            }
            record.added = old.added;
        }
        record.tags.sort();
        record.digests.sort();
        self.file.images.insert(record.id.hex().to_string(), record);
    }

    pub fn remove(&mut self, id: &Digest) -> Option<ImageRecord> {
        self.file.images.remove(id.hex())
    }

    pub fn untag(&mut self, id: &Digest, name: &str) {
        if let Some(r) = self.file.images.get_mut(id.hex()) {
            r.tags.retain(|t| t != name);
            r.digests.retain(|t| t != name);
        }
    }

    /// Finds an image by name (`busybox`, `busybox:1`, `host/x@sha256:…`), by full ID
    /// or by an unambiguous ID prefix, as the docker CLI accepts them. Returns the record
    /// and the name it was found by, if it was a name.
    pub fn resolve(&self, query: &str) -> Option<(&ImageRecord, Option<String>)> {
        if let Ok(r) = query.parse::<Reference>() {
            let name = r.to_string();
            let by_digest = r
                .digest()
                .map(|_| r.name() + "@" + &r.digest().map(|d| d.to_string()).unwrap_or_default());
            for img in self.file.images.values() {
                if img.tags.contains(&name) {
                    return Some((img, Some(name)));
                }
                if let Some(d) = &by_digest {
                    if img.digests.contains(d) {
                        return Some((img, Some(d.clone())));
                    }
                }
            }
        }
        let hex = query.strip_prefix("sha256:").unwrap_or(query);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found = self
                .file
                .images
                .range(hex.to_string()..)
                .take_while(|(k, _)| k.starts_with(hex));
            if let (Some((_, img)), None) = (found.next(), found.next()) {
                return Some((img, None));
            }
        }
        None
    }
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
