//! Images imported offline: `docker save` tarballs and OCI layouts (a directory, or a tar
//! of one). The archive is hostile like any layer: it is extracted with the same care, and
//! every blob is checked against its digest before it enters the store.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::digest::Digest;
use crate::manifest::{self, Descriptor, ImageManifest, Manifest, MAX_LAYERS, MAX_MANIFEST_BYTES};
use crate::platform::Platform;
use crate::reference::Reference;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("archive entry {entry:?}: {reason}")]
    Entry { entry: String, reason: &'static str },
    #[error("archive expands past {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("not an image archive: it has neither manifest.json (docker save) nor index.json (OCI layout)")]
    Unrecognized,
    #[error("archive file {file}: {message}")]
    Malformed { file: String, message: String },
    #[error("archive names {0:?}, which it does not contain")]
    Missing(String),
    #[error("archive blob {expected} has digest {actual}")]
    Digest { expected: Digest, actual: Digest },
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error(transparent)]
    Platform(#[from] crate::platform::PlatformError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.into(),
        source,
    }
}

/// An image found in an archive, ready to be committed.
pub struct Found {
    pub manifest: ImageManifest,
    pub manifest_bytes: Vec<u8>,
    pub manifest_digest: Digest,
    pub index_digest: Option<Digest>,
    /// Files holding the config and layer blobs, with the digest each must have, or
    /// `None` where the archive format names blobs by path (docker save).
    pub blobs: Vec<(PathBuf, Option<Digest>)>,
    pub names: Vec<Reference>,
}

/// Extracts a tar of regular files and directories into `dest`, refusing anything else.
pub fn extract(reader: impl Read, dest: &Path, limit: u64) -> Result<(), ArchiveError> {
    let mut archive = tar::Archive::new(reader);
    let mut total = 0u64;
    for entry in archive.entries().map_err(io(dest))? {
        let mut entry = entry.map_err(io(dest))?;
        let raw = entry.path().map_err(io(dest))?.into_owned();
        let name = raw.display().to_string();
        let rel = safe_relative(&raw).ok_or(ArchiveError::Entry {
            entry: name.clone(),
            reason: "absolute paths and '..' are not allowed",
        })?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(&rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => std::fs::create_dir_all(&target).map_err(io(&target))?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                }
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(io(&target))?;
                let budget = limit.saturating_sub(total);
                let n = std::io::copy(&mut (&mut entry).take(budget + 1), &mut out)
                    .map_err(io(&target))?;
                total += n;
                if total > limit {
                    return Err(ArchiveError::TooLarge { limit });
                }
            }
            _ => {
                return Err(ArchiveError::Entry {
                    entry: name,
                    reason: "only files and directories are allowed in an image archive",
                })
            }
        }
    }
    Ok(())
}

fn safe_relative(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(x) => out.push(x),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

fn read_small(dir: &Path, rel: &str) -> Result<Vec<u8>, ArchiveError> {
    let rel_path = safe_relative(Path::new(rel)).ok_or_else(|| ArchiveError::Malformed {
        file: rel.into(),
        message: "path escapes the archive".into(),
    })?;
    let path = dir.join(rel_path);
    let file = std::fs::File::open(&path).map_err(|_| ArchiveError::Missing(rel.into()))?;
    let mut buf = Vec::new();
    file.take(MAX_MANIFEST_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(io(&path))?;
    if buf.len() > MAX_MANIFEST_BYTES {
        return Err(ArchiveError::Malformed {
            file: rel.into(),
            message: "too large".into(),
        });
    }
    Ok(buf)
}

/// Finds the images in an extracted archive or an OCI layout directory.
pub fn scan(dir: &Path, platform: &Platform) -> Result<Vec<Found>, ArchiveError> {
    if dir.join("manifest.json").is_file() {
        scan_docker(dir)
    } else if dir.join("index.json").is_file() {
        scan_oci(dir, platform)
    } else {
        Err(ArchiveError::Unrecognized)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn scan_docker(dir: &Path) -> Result<Vec<Found>, ArchiveError> {
    let bytes = read_small(dir, "manifest.json")?;
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(&bytes).map_err(|e| ArchiveError::Malformed {
            file: "manifest.json".into(),
            message: e.to_string(),
        })?;
    let mut digests: HashMap<String, (Digest, u64)> = HashMap::new();
    let mut hash = |rel: &str| -> Result<(PathBuf, Digest, u64), ArchiveError> {
        let path =
            dir.join(
                safe_relative(Path::new(rel)).ok_or_else(|| ArchiveError::Malformed {
                    file: "manifest.json".into(),
                    message: format!("path {rel:?} escapes the archive"),
                })?,
            );
        if let Some((d, n)) = digests.get(rel) {
            return Ok((path, d.clone(), *n));
        }
        let mut file = std::fs::File::open(&path).map_err(|_| ArchiveError::Missing(rel.into()))?;
        let mut hasher = crate::digest::HashingReader::new(&mut file);
        std::io::copy(&mut hasher, &mut std::io::sink()).map_err(io(&path))?;
        let n = hasher.count();
        let (d, _) = hasher.finish();
        digests.insert(rel.into(), (d.clone(), n));
        Ok((path, d, n))
    };
    let mut found = Vec::new();
    for e in entries {
        if e.layers.len() > MAX_LAYERS {
            return Err(manifest::ManifestError::TooManyLayers(e.layers.len()).into());
        }
        let (config_path, config_digest, config_size) = hash(&e.config)?;
        let mut blobs = vec![(config_path, None)];
        let mut layers = Vec::new();
        for l in &e.layers {
            let (path, digest, size) = hash(l)?;
            layers.push(descriptor(layer_media_type(&path), digest, size));
            blobs.push((path, None));
        }
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: manifest::OCI_MANIFEST.into(),
            config: descriptor(manifest::OCI_CONFIG.into(), config_digest, config_size),
            layers,
        };
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| ArchiveError::Malformed {
                file: "manifest.json".into(),
                message: e.to_string(),
            })?;
        let names = e
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| t.parse::<Reference>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| ArchiveError::Malformed {
                file: "manifest.json".into(),
                message: err.to_string(),
            })?;
        found.push(Found {
            manifest_digest: Digest::of(&manifest_bytes),
            manifest_bytes,
            manifest,
            index_digest: None,
            blobs,
            names,
        });
    }
    Ok(found)
}

fn descriptor(media_type: String, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type,
        digest,
        size,
        platform: None,
        annotations: Default::default(),
        urls: None,
    }
}

fn layer_media_type(path: &Path) -> String {
    let mut magic = [0u8; 4];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut magic))
        .unwrap_or(0);
    match &magic[..n] {
        [0x1f, 0x8b, ..] => manifest::OCI_LAYER_GZIP.into(),
        [0x28, 0xb5, 0x2f, 0xfd] => "application/vnd.oci.image.layer.v1.tar+zstd".into(),
        _ => "application/vnd.oci.image.layer.v1.tar".into(),
    }
}

fn scan_oci(dir: &Path, platform: &Platform) -> Result<Vec<Found>, ArchiveError> {
    let blob_path = |d: &Digest| dir.join("blobs/sha256").join(d.hex());
    let read_blob = |d: &Digest| -> Result<Vec<u8>, ArchiveError> {
        let bytes = read_small(dir, &format!("blobs/sha256/{}", d.hex()))?;
        let actual = Digest::of(&bytes);
        if &actual != d {
            return Err(ArchiveError::Digest {
                expected: d.clone(),
                actual,
            });
        }
        Ok(bytes)
    };
    let top = match Manifest::parse(&read_small(dir, "index.json")?)? {
        Manifest::Index(i) => i,
        Manifest::Image(_) => {
            return Err(ArchiveError::Malformed {
                file: "index.json".into(),
                message: "is a manifest, not an index".into(),
            })
        }
    };
    let mut found = Vec::new();
    for entry in top.manifests.iter().take(MAX_LAYERS) {
        let names: Vec<Reference> = [
            "io.containerd.image.name",
            "org.opencontainers.image.ref.name",
        ]
        .iter()
        .filter_map(|k| entry.annotations.get(*k))
        .filter(|n| n.contains(':') || n.contains('/'))
        .filter_map(|n| n.parse().ok())
        .take(1)
        .collect();
        let mut bytes = read_blob(&entry.digest)?;
        let mut digest = entry.digest.clone();
        let mut index_digest = None;
        // A multi-platform image is an index inside the layout's index: choose one.
        let manifest = loop {
            match Manifest::parse(&bytes)? {
                Manifest::Image(m) => break m,
                Manifest::Index(idx) if index_digest.is_none() => {
                    let unknown = Platform::new("unknown", "unknown", None);
                    let chosen = platform.select(
                        idx.manifests
                            .iter()
                            .map(|m| (m.platform.as_ref().unwrap_or(&unknown), m)),
                    )?;
                    index_digest = Some(digest);
                    digest = chosen.digest.clone();
                    bytes = read_blob(&digest)?;
                }
                Manifest::Index(_) => {
                    return Err(ArchiveError::Malformed {
                        file: format!("blobs/sha256/{}", digest.hex()),
                        message: "indexes nested more than two deep".into(),
                    })
                }
            }
        };
        let blobs = std::iter::once(&manifest.config)
            .chain(&manifest.layers)
            .map(|d| (blob_path(&d.digest), Some(d.digest.clone())))
            .collect();
        found.push(Found {
            manifest,
            manifest_bytes: bytes,
            manifest_digest: digest,
            index_digest,
            blobs,
            names,
        });
    }
    Ok(found)
}
