//! Pulling: reference → manifest (choosing a platform from an index) → config → layers,
//! fetched into the content store and unpacked, a few at a time.

use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{stream, StreamExt, TryStreamExt};

use crate::auth::Credentials;
use crate::digest::Digest;
use crate::manifest::{ImageConfig, ImageManifest, Manifest, MAX_MANIFEST_BYTES};
use crate::metadata::ImageRecord;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::service::ImageService;
use crate::Error;

/// Layers fetched at once: enough to fill a link, few enough for a small board's memory.
const PARALLEL_LAYERS: usize = 3;
/// Download progress is reported at most this often (in bytes), to keep streams light.
const PROGRESS_STEP: u64 = 256 * 1024;

/// What a pull is doing, for progress displays. Layers are named by their blob digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    Resolved {
        reference: Reference,
    },
    LayerQueued {
        layer: Digest,
        size: u64,
    },
    LayerExists {
        layer: Digest,
    },
    Downloading {
        layer: Digest,
        current: u64,
        total: u64,
    },
    Downloaded {
        layer: Digest,
        fetched: u64,
    },
    Extracting {
        layer: Digest,
    },
    Extracted {
        layer: Digest,
    },
}

pub type ProgressFn<'a> = &'a (dyn Fn(Progress) + Send + Sync);

#[derive(Clone, Debug)]
pub struct Pulled {
    pub image: ImageRecord,
    /// The digest the reference resolved to (the index's, for a multi-platform image).
    pub digest: Digest,
    /// False if the image was already here under that name.
    pub updated: bool,
}

impl ImageService {
    /// Pulls `reference` for `platform` (the node's own if `None`).
    pub async fn pull(
        &self,
        reference: &Reference,
        platform: Option<&Platform>,
        credentials: Option<Credentials>,
        progress: ProgressFn<'_>,
    ) -> Result<Pulled, Error> {
        let _lease = self.gc_lock.read().await;
        let platform = platform.unwrap_or(&self.options.platform);
        let repo = self.registries.repository(reference, credentials)?;
        let (bytes, top_digest) = repo.manifest(None).await?;
        let (manifest, manifest_bytes, manifest_digest, index_digest) =
            match Manifest::parse(&bytes)? {
                Manifest::Image(m) => (m, bytes, top_digest.clone(), None),
                Manifest::Index(idx) => {
                    let unknown = Platform::new("unknown", "unknown", None);
                    let chosen = platform
                        .select(
                            idx.manifests
                                .iter()
                                .map(|m| (m.platform.as_ref().unwrap_or(&unknown), m)),
                        )
                        .map_err(Error::Platform)?;
                    let (mbytes, mdigest) = repo.manifest(Some(&chosen.digest)).await?;
                    match Manifest::parse(&mbytes)? {
                        Manifest::Image(m) => {
                            self.content.put(&top_digest, &bytes)?;
                            (m, mbytes, mdigest, Some(top_digest.clone()))
                        }
                        Manifest::Index(_) => {
                            return Err(Error::Internal(format!(
                                "{reference}: an index entry for {platform} is itself an index"
                            )))
                        }
                    }
                }
            };
        self.content.put(&manifest_digest, &manifest_bytes)?;
        // Announced only once the image is known to exist for this platform, so that the
        // API can still answer "not found" as an error rather than mid-stream.
        progress(Progress::Resolved {
            reference: reference.clone(),
        });

        let config = &manifest.config;
        self.fetch_config(reference, &repo, &manifest).await?;

        let already = self.with_meta(|m| {
            m.get(&config.digest).is_some_and(|img| {
                img.tags.contains(&reference.to_string()) || reference.tag().is_none()
            })
        });
        let image = self
            .commit(
                &manifest,
                &manifest_digest,
                index_digest.clone(),
                reference_names(reference, index_digest.as_ref().unwrap_or(&manifest_digest)),
                |layer| repo.blob(layer),
                progress,
            )
            .await?;
        self.notify(crate::service::ImageEvent::Pulled {
            reference: reference.clone(),
            image: image.id.clone(),
        });
        Ok(Pulled {
            image,
            digest: index_digest.unwrap_or(manifest_digest),
            updated: !already,
        })
    }

    /// Fetches (where a source is given) and unpacks an image's layers, then records it.
    /// Pulls and archive loads both end here.
    pub(crate) async fn commit<S, F>(
        &self,
        manifest: &ImageManifest,
        manifest_digest: &Digest,
        index_digest: Option<Digest>,
        (tags, digests): (Vec<String>, Vec<String>),
        source: F,
        progress: ProgressFn<'_>,
    ) -> Result<ImageRecord, Error>
    where
        S: crate::content::BlobSource,
        F: Fn(&Digest) -> S,
    {
        let config_bytes = self
            .content
            .read(&manifest.config.digest, MAX_MANIFEST_BYTES as u64)?;
        let config = ImageConfig::parse(&config_bytes, manifest.layers.len())?;
        // Collected first: a lazy iterator of async blocks makes the future not provably Send.
        let jobs: Vec<_> = manifest
            .layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .map(|(layer, diff_id)| {
                let source = source(&layer.digest);
                async move {
                    let d = &layer.digest;
                    if self.layers.contains(diff_id) {
                        progress(Progress::LayerExists { layer: d.clone() });
                        return Ok::<_, Error>(());
                    }
                    progress(Progress::LayerQueued {
                        layer: d.clone(),
                        size: layer.size,
                    });
                    let last = AtomicU64::new(0);
                    let report = |current: u64| {
                        if current == layer.size
                            || current >= last.load(Ordering::Relaxed) + PROGRESS_STEP
                        {
                            last.store(current, Ordering::Relaxed);
                            progress(Progress::Downloading {
                                layer: d.clone(),
                                current,
                                total: layer.size,
                            });
                        }
                    };
                    let got = self.content.ingest(d, layer.size, &source, &report).await?;
                    progress(Progress::Downloaded {
                        layer: d.clone(),
                        fetched: got.fetched,
                    });
                    progress(Progress::Extracting { layer: d.clone() });
                    let (layers, blob_path, limits) = (
                        self.layers.clone(),
                        self.content.path(d),
                        self.options.unpack_limits(),
                    );
                    let (d2, diff) = (d.clone(), diff_id.clone());
                    tokio::task::spawn_blocking(move || {
                        layers.unpack(&d2, &blob_path, &diff, &limits)
                    })
                    .await
                    .map_err(|e| Error::Internal(format!("unpack task: {e}")))??;
                    progress(Progress::Extracted { layer: d.clone() });
                    Ok(())
                }
            })
            .collect();
        stream::iter(jobs)
            .buffer_unordered(PARALLEL_LAYERS)
            .try_collect::<Vec<()>>()
            .await?;

        let record = ImageRecord {
            id: manifest.config.digest.clone(),
            manifest: manifest_digest.clone(),
            index: index_digest,
            tags,
            digests,
            platform: config.platform(),
            layers: manifest
                .layers
                .iter()
                .zip(&config.rootfs.diff_ids)
                .map(|(l, diff_id)| crate::metadata::LayerRecord {
                    blob: l.digest.clone(),
                    blob_size: l.size,
                    diff_id: diff_id.clone(),
                })
                .collect(),
            created: config.created.clone(),
            size: self.layers_size(&config.rootfs.diff_ids),
            added: crate::metadata::now(),
        };
        let id = record.id.clone();
        self.with_meta(|m| {
            m.insert(record);
            m.save()?;
            m.get(&id)
                .cloned()
                .ok_or_else(|| Error::Internal("image vanished while recording it".into()))
        })
    }
}

impl ImageService {
    /// Fetches `manifest`'s config into the store (bounded, verified by its digest).
    pub(crate) async fn fetch_config(
        &self,
        reference: &Reference,
        repo: &crate::distribution::Repository,
        manifest: &ImageManifest,
    ) -> Result<(), Error> {
        let config = &manifest.config;
        if config.size > MAX_MANIFEST_BYTES as u64 {
            return Err(Error::Internal(format!(
                "{reference}: image config is {} bytes",
                config.size
            )));
        }
        self.content
            .ingest(
                &config.digest,
                config.size,
                &repo.blob(&config.digest),
                &|_| {},
            )
            .await?;
        Ok(())
    }
}

/// The names a pulled image is recorded under: its tag, and its repository digest.
fn reference_names(reference: &Reference, digest: &Digest) -> (Vec<String>, Vec<String>) {
    let tags = reference
        .tag()
        .map(|t| format!("{}:{t}", reference.name()))
        .into_iter()
        .collect();
    (tags, vec![format!("{}@{digest}", reference.name())])
}
