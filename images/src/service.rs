//! The images service: what the daemon calls. It owns the content store, the unpacked
//! layers, the snapshots and the image records, and keeps them consistent: garbage
//! collection never deletes what an image or a container (snapshot) still uses.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::archive;
use crate::content::{BlobSource, ContentError, ContentStore, Opened};
use crate::digest::Digest;
use crate::distribution::{Registries, RegistryOptions};
use crate::layers::LayerStore;
use crate::metadata::{ImageRecord, Metadata};
use crate::platform::Platform;
use crate::pull::ProgressFn;
use crate::reference::Reference;
use crate::snapshot::{Snapshot, SnapshotMode, Snapshotter};
use crate::unpack::UnpackLimits;
use crate::Error;

#[derive(Clone, Debug)]
pub struct ImageOptions {
    pub registries: RegistryOptions,
    /// The platform pulled when none is asked for: the node's own.
    pub platform: Platform,
    pub max_layer_bytes: u64,
    pub max_layer_entries: u64,
    /// Bound on an archive given to `load`, unpacked.
    pub max_archive_bytes: u64,
    pub snapshots: SnapshotMode,
}

impl Default for ImageOptions {
    fn default() -> Self {
        let limits = UnpackLimits::default();
        Self {
            registries: RegistryOptions::default(),
            platform: Platform::host(),
            max_layer_bytes: limits.max_bytes,
            max_layer_entries: limits.max_entries,
            max_archive_bytes: limits.max_bytes,
            snapshots: SnapshotMode::Auto,
        }
    }
}

impl ImageOptions {
    pub(crate) fn unpack_limits(&self) -> UnpackLimits {
        UnpackLimits {
            max_bytes: self.max_layer_bytes,
            max_entries: self.max_layer_entries,
        }
    }
}

/// An image imported from an archive, and the names the archive gave it.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub image: ImageRecord,
    pub names: Vec<String>,
}

/// What `remove` did, in the order Docker reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removed {
    Untagged(String),
    Deleted(Digest),
}

/// A change to the image store, for whoever reports it (the daemon's `events`): pulls by
/// anyone (the API, a node's agent), removals, loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageEvent {
    /// `reference` now names `image`, pulled from its registry.
    Pulled {
        reference: Reference,
        image: Digest,
    },
    /// Loaded from an archive, under these names.
    Loaded {
        image: Digest,
        names: Vec<String>,
    },
    /// A name (as stored, full) no longer names `image`.
    Untagged {
        name: String,
        image: Digest,
    },
    Deleted {
        image: Digest,
    },
}

/// Told of each [`ImageEvent`] as it happens, on the caller's task: it must not block.
pub type Observer = Box<dyn Fn(ImageEvent) + Send + Sync>;

#[derive(Clone, Debug, Default)]
pub struct PruneReport {
    pub deleted: Vec<Digest>,
    pub reclaimed: u64,
}

pub struct ImageService {
    root: PathBuf,
    pub(crate) options: ImageOptions,
    pub(crate) content: ContentStore,
    pub(crate) layers: Arc<LayerStore>,
    pub(crate) registries: Registries,
    snapshots: Snapshotter,
    /// Image records; a std mutex since no await happens while it is held.
    meta: std::sync::Mutex<Metadata>,
    /// Pulls and loads hold it shared for their whole run, garbage collection exclusively,
    /// so that blobs a pull has fetched but not yet recorded are never collected.
    pub(crate) gc_lock: tokio::sync::RwLock<()>,
    /// Set once by the daemon; none in tests and tools that report nothing.
    observer: std::sync::OnceLock<Observer>,
}

impl ImageService {
    /// Opens (creating if needed) the image store under `root`.
    pub fn open(root: &Path, options: ImageOptions) -> Result<Self, Error> {
        std::fs::create_dir_all(root).map_err(|e| ContentError::Io {
            path: root.into(),
            source: e,
        })?;
        let content = ContentStore::open(root)?;
        Ok(Self {
            layers: Arc::new(LayerStore::open(root)?),
            snapshots: Snapshotter::open(root, options.snapshots)?,
            meta: std::sync::Mutex::new(Metadata::load(root)?),
            registries: Registries::new(options.registries.clone()),
            root: root.to_path_buf(),
            options,
            content,
            gc_lock: tokio::sync::RwLock::new(()),
            observer: std::sync::OnceLock::new(),
        })
    }

    /// Has `observer` told of every change from now on. Only the first one set is kept.
    pub fn observe(&self, observer: Observer) {
        if self.observer.set(observer).is_err() {
            tracing::warn!("the image store already has an observer");
        }
    }

    pub(crate) fn notify(&self, event: ImageEvent) {
        if let Some(observe) = self.observer.get() {
            observe(event);
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn default_platform(&self) -> &Platform {
        &self.options.platform
    }

    pub fn snapshot_mode(&self) -> SnapshotMode {
        self.snapshots.mode()
    }

    pub(crate) fn with_meta<T>(&self, f: impl FnOnce(&mut Metadata) -> T) -> T {
        let mut guard = self.meta.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    fn meta(&self) -> std::sync::MutexGuard<'_, Metadata> {
        self.meta.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn layers_size(&self, diff_ids: &[Digest]) -> u64 {
        diff_ids.iter().map(|d| self.layers.size(d)).sum()
    }

    pub fn list(&self) -> Vec<ImageRecord> {
        let mut all: Vec<_> = self.meta().images().cloned().collect();
        all.sort_by(|a, b| b.added.cmp(&a.added).then(a.id.cmp(&b.id)));
        all
    }

    /// Finds an image by name or ID, as `docker image inspect` does.
    pub fn get(&self, name_or_id: &str) -> Result<ImageRecord, Error> {
        self.meta()
            .resolve(name_or_id)
            .map(|(r, _)| r.clone())
            .ok_or_else(|| Error::NoSuchImage(name_or_id.to_string()))
    }

    /// The image's config, as the registry or archive gave it.
    pub fn config(&self, image: &ImageRecord) -> Result<Vec<u8>, Error> {
        Ok(self
            .content
            .read(&image.id, crate::manifest::MAX_MANIFEST_BYTES as u64)?)
    }

    /// Images that a snapshot (a container's root filesystem) is made from.
    fn images_in_use(&self) -> Result<HashSet<Digest>, Error> {
        Ok(self
            .snapshots
            .list()?
            .into_iter()
            .map(|s| s.image)
            .collect())
    }

    /// Removes a name, and the image when no name is left, as `docker rmi`: an ID with
    /// several names needs `force`; an image a container uses is never deleted.
    pub async fn remove(&self, name_or_id: &str, force: bool) -> Result<Vec<Removed>, Error> {
        let _gc = self.gc_lock.write().await;
        let in_use = self.images_in_use()?;
        let mut actions = Vec::new();
        let deleted = {
            let mut meta = self.meta();
            let (image, by_name) = meta
                .resolve(name_or_id)
                .map(|(r, n)| (r.clone(), n))
                .ok_or_else(|| Error::NoSuchImage(name_or_id.to_string()))?;
            let names: Vec<String> = match by_name {
                Some(n)
                    if image.tags.len() + image.digests.len() > 1 && image.tags.contains(&n) =>
                {
                    vec![n]
                }
                _ => {
                    if !force && image.tags.len() > 1 {
                        return Err(Error::Conflict(format!(
                            "unable to delete {} (must be forced) - image is referenced in multiple repositories",
                            image.id.short()
                        )));
                    }
                    image.tags.iter().chain(&image.digests).cloned().collect()
                }
            };
            let deleting = names.len() == image.tags.len() + image.digests.len()
                || image.tags.iter().all(|t| names.contains(t));
            if deleting && in_use.contains(&image.id) {
                return Err(Error::Conflict(format!(
                    "unable to remove {name_or_id}: image {} is being used by a container",
                    image.id.short()
                )));
            }
            for n in &names {
                meta.untag(&image.id, n);
                actions.push(Removed::Untagged(crate::reference::familiar(n)));
            }
            if deleting {
                meta.remove(&image.id);
                actions.push(Removed::Deleted(image.id.clone()));
            }
            meta.save()?;
            for n in &names {
                self.notify(ImageEvent::Untagged {
                    name: n.clone(),
                    image: image.id.clone(),
                });
            }
            if deleting {
                self.notify(ImageEvent::Deleted {
                    image: image.id.clone(),
                });
            }
            deleting
        };
        if deleted {
            self.collect_garbage()?;
        }
        Ok(actions)
    }

    /// Deletes images with no name that no container uses, then unused blobs and layers.
    pub async fn prune(&self) -> Result<PruneReport, Error> {
        let _gc = self.gc_lock.write().await;
        let in_use = self.images_in_use()?;
        let mut report = PruneReport::default();
        {
            let mut meta = self.meta();
            let dangling: Vec<ImageRecord> = meta
                .images()
                .filter(|i| i.tags.is_empty() && !in_use.contains(&i.id))
                .cloned()
                .collect();
            for img in dangling {
                meta.remove(&img.id);
                report.deleted.push(img.id.clone());
            }
            meta.save()?;
            for image in &report.deleted {
                self.notify(ImageEvent::Deleted {
                    image: image.clone(),
                });
            }
        }
        report.reclaimed = self.collect_garbage()?;
        self.content.clear_ingest()?;
        Ok(report)
    }

    /// Deletes every blob and layer that no image record and no snapshot names. Called with
    /// the gc lock held exclusively. Returns the bytes of layers reclaimed.
    fn collect_garbage(&self) -> Result<u64, Error> {
        let mut blobs: HashSet<Digest> = HashSet::new();
        let mut layers: HashSet<Digest> = HashSet::new();
        for img in self.meta().images() {
            blobs.extend([img.id.clone(), img.manifest.clone()]);
            blobs.extend(img.index.clone());
            for l in &img.layers {
                blobs.insert(l.blob.clone());
                layers.insert(l.diff_id.clone());
            }
        }
        for s in self.snapshots.list()? {
            layers.extend(s.layers);
        }
        for d in self.content.list()? {
            if !blobs.contains(&d) {
                self.content.delete(&d)?;
            }
        }
        let mut reclaimed = 0;
        for d in self.layers.list()? {
            if !layers.contains(&d) {
                reclaimed += self.layers.size(&d);
                self.layers.delete(&d)?;
            }
        }
        Ok(reclaimed)
    }

    /// Imports the images in a `docker save` tarball or a tar of an OCI layout. Blocking
    /// reads of `archive` happen on a blocking thread.
    pub async fn load(
        &self,
        archive: impl std::io::Read + Send + 'static,
        progress: ProgressFn<'_>,
    ) -> Result<Vec<Loaded>, Error> {
        let work = tempdir_in(&self.root.join("tmp"))?;
        let (dir, limit) = (work.clone(), self.options.max_archive_bytes);
        tokio::task::spawn_blocking(move || archive::extract(archive, &dir, limit))
            .await
            .map_err(|e| Error::Internal(format!("archive task: {e}")))??;
        let result = self.load_dir(&work, progress).await;
        let _ = std::fs::remove_dir_all(&work);
        result
    }

    /// Imports the images of an OCI layout directory (or an extracted docker save).
    pub async fn load_dir(
        &self,
        dir: &Path,
        progress: ProgressFn<'_>,
    ) -> Result<Vec<Loaded>, Error> {
        let _lease = self.gc_lock.read().await;
        let found = archive::scan(dir, &self.options.platform)?;
        let mut loaded = Vec::new();
        for f in found {
            for (path, expected) in &f.blobs {
                let actual = self.content.put_file_copy(path)?;
                if let Some(expected) = expected {
                    if &actual != expected {
                        return Err(archive::ArchiveError::Digest {
                            expected: expected.clone(),
                            actual,
                        }
                        .into());
                    }
                }
            }
            self.content.put(&f.manifest_digest, &f.manifest_bytes)?;
            let tags: Vec<String> = f
                .names
                .iter()
                .filter_map(|n| n.tag().map(|t| format!("{}:{t}", n.name())))
                .collect();
            let image = self
                .commit(
                    &f.manifest,
                    &f.manifest_digest,
                    f.index_digest.clone(),
                    (tags.clone(), Vec::new()),
                    |d| NotInArchive(d.clone()),
                    progress,
                )
                .await?;
            self.notify(ImageEvent::Loaded {
                image: image.id.clone(),
                names: tags.clone(),
            });
            loaded.push(Loaded { image, names: tags });
        }
        Ok(loaded)
    }

    /// Makes a container's root filesystem from an image. The image's layers stay in use
    /// (safe from garbage collection) until the snapshot is removed.
    pub async fn prepare_snapshot(&self, id: &str, image: &str) -> Result<Snapshot, Error> {
        let _lease = self.gc_lock.read().await;
        let image = self.get(image)?;
        let layers: Vec<(Digest, PathBuf)> = image
            .layers
            .iter()
            .map(|l| (l.diff_id.clone(), self.layers.path(&l.diff_id)))
            .collect();
        if let Some((d, _)) = layers.iter().find(|(_, p)| !p.is_dir()) {
            return Err(Error::Internal(format!(
                "layer {d} of image {} is missing; pull it again",
                image.id.short()
            )));
        }
        let snapshots = &self.snapshots;
        Ok(tokio::task::block_in_place(|| {
            snapshots.prepare(id, &image.id, &layers)
        })?)
    }

    pub async fn remove_snapshot(&self, id: &str) -> Result<(), Error> {
        Ok(tokio::task::block_in_place(|| self.snapshots.remove(id))?)
    }

    /// The IDs of every snapshot (container root filesystem) there is.
    pub fn snapshot_ids(&self) -> Result<Vec<String>, Error> {
        Ok(self.snapshots.list()?.into_iter().map(|s| s.id).collect())
    }

    pub fn snapshot(&self, id: &str) -> Result<Snapshot, Error> {
        Ok(self.snapshots.get(id)?)
    }
}

fn tempdir_in(parent: &Path) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(parent).map_err(|e| ContentError::Io {
        path: parent.into(),
        source: e,
    })?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = parent.join(format!("load-{}-{stamp}", std::process::id()));
    std::fs::create_dir(&dir).map_err(|e| ContentError::Io {
        path: dir.clone(),
        source: e,
    })?;
    Ok(dir)
}

/// Archive loads put every blob in the store before layers are committed, so a blob asked
/// of this source is one the archive lacks.
struct NotInArchive(Digest);

impl BlobSource for NotInArchive {
    fn open(
        &self,
        _offset: u64,
    ) -> futures_util::future::BoxFuture<'_, Result<Opened, ContentError>> {
        let digest = self.0.clone();
        Box::pin(async move {
            Err(ContentError::Fetch {
                digest,
                message: "the archive does not contain this blob".into(),
                retryable: false,
            })
        })
    }
}
