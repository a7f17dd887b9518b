//! The content-addressed blob store: `blobs/sha256/<hex>`, every blob verified by size and
//! digest before it is committed. Downloads land in `ingest/<hex>.partial` and resume from
//! there after a broken connection; the same blob asked for twice at once is fetched once.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::digest::{Digest, Hasher};

/// How many times a blob download is retried after a network error, resuming each time.
/// Edge links drop often; the backoff keeps a long outage from being hammered.
const MAX_ATTEMPTS: u32 = 10;
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("blob {expected} failed verification: its content has digest {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {digest} is {actual} bytes, but {expected} were expected")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {digest} is {size} bytes, over the {limit} byte limit for this kind of blob")]
    TooLarge {
        digest: Digest,
        size: u64,
        limit: u64,
    },
    #[error("fetching blob {digest}: {message}")]
    Fetch {
        digest: Digest,
        message: String,
        retryable: bool,
    },
    #[error("fetching blob {digest}: gave up after {attempts} attempts: {last}")]
    GaveUp {
        digest: Digest,
        attempts: u32,
        last: String,
    },
}

impl ContentError {
    /// Whether trying again could succeed; a verification failure never does.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ContentError::Fetch {
                retryable: true,
                ..
            }
        )
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ContentError + '_ {
    move |source| ContentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A blob's bytes starting at `offset`; `offset` is 0 when the source ignored the range.
pub struct Opened {
    pub offset: u64,
    pub stream: BoxStream<'static, std::io::Result<Bytes>>,
}

/// Where a blob's bytes come from: a registry, in practice.
pub trait BlobSource: Send + Sync {
    /// Opens the blob from `offset`; the source may start from 0 instead.
    fn open(&self, offset: u64) -> BoxFuture<'_, Result<Opened, ContentError>>;
}

/// What an ingest did, for progress and for the resume tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    /// Bytes received from the source by this call.
    pub fetched: u64,
    /// True if the blob was already in the store.
    pub existed: bool,
}

pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
    /// One lock per blob being fetched, so concurrent pulls of one blob fetch it once.
    inflight: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

impl ContentStore {
    pub fn open(root: &Path) -> Result<Self, ContentError> {
        let blobs = root.join("blobs/sha256");
        let ingest = root.join("ingest");
        for dir in [&blobs, &ingest] {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        Ok(Self {
            blobs,
            ingest,
            inflight: Mutex::new(HashMap::new()),
        })
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    fn partial(&self, digest: &Digest) -> PathBuf {
        self.ingest.join(format!("{}.partial", digest.hex()))
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Reads a small blob (a manifest or a config), refusing one larger than `limit`.
    pub fn read(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, ContentError> {
        let path = self.path(digest);
        let file = std::fs::File::open(&path).map_err(io_err(&path))?;
        let mut buf = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(io_err(&path))?;
        if buf.len() as u64 > limit {
            return Err(ContentError::TooLarge {
                digest: digest.clone(),
                size: buf.len() as u64,
                limit,
            });
        }
        Ok(buf)
    }

    /// Stores `bytes` under `expected` if they hash to it.
    pub fn put(&self, expected: &Digest, bytes: &[u8]) -> Result<(), ContentError> {
        let actual = Digest::of(bytes);
        if &actual != expected {
            return Err(ContentError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        if self.contains(expected) {
            return Ok(());
        }
        // Its own temporary name: two pulls of one image put the same manifest at once,
        // and a shared name would let one rename away the other's file.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self
            .partial(expected)
            .with_extension(format!("put-{}-{n}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
        self.commit(&tmp, expected).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }

    /// Adds a file to the store under its digest (a hard link where it can, else a copy);
    /// for imports.
    pub fn put_file_copy(&self, src: &Path) -> Result<Digest, ContentError> {
        let mut file = std::fs::File::open(src).map_err(io_err(src))?;
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf).map_err(io_err(src))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let digest = hasher.finish();
        if !self.contains(&digest) {
            let dest = self.path(&digest);
            if std::fs::hard_link(src, &dest).is_err() {
                std::fs::copy(src, &dest).map_err(io_err(&dest))?;
            }
        }
        Ok(digest)
    }

    fn commit(&self, tmp: &Path, digest: &Digest) -> Result<(), ContentError> {
        let dest = self.path(digest);
        std::fs::rename(tmp, &dest).map_err(io_err(&dest))
    }

    pub fn delete(&self, digest: &Digest) -> Result<(), ContentError> {
        let path = self.path(digest);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path)(e)),
            _ => Ok(()),
        }
    }

    /// Every blob in the store, for garbage collection. Names that are not digests are
    /// not ours and are left alone.
    pub fn list(&self) -> Result<Vec<Digest>, ContentError> {
        let entries = std::fs::read_dir(&self.blobs).map_err(io_err(&self.blobs))?;
        Ok(entries
            .filter_map(|e| e.ok())
            .filter_map(|e| Digest::parse_lenient(&e.file_name().to_string_lossy()).ok())
            .collect())
    }

    /// Removes partial downloads left behind: nothing resumes them once their pull is gone.
    pub fn clear_ingest(&self) -> Result<(), ContentError> {
        let entries = std::fs::read_dir(&self.ingest).map_err(io_err(&self.ingest))?;
        for e in entries.filter_map(|e| e.ok()) {
            let _ = std::fs::remove_file(e.path());
        }
        Ok(())
    }

    async fn lock(&self, digest: &Digest) -> InflightGuard<'_> {
        let lock = {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(digest.clone()).or_default().clone()
        };
        let guard = lock.clone().lock_owned().await;
        InflightGuard {
            store: self,
            digest: digest.clone(),
            lock,
            _guard: guard,
        }
    }

    /// Fetches a blob of known digest and size from `source` into the store, resuming after
    /// network errors, and reporting the bytes held so far through `progress`.
    pub async fn ingest(
        &self,
        digest: &Digest,
        size: u64,
        source: &dyn BlobSource,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Ingested, ContentError> {
        let _flight = self.lock(digest).await;
        if self.contains(digest) {
            progress(size);
            return Ok(Ingested {
                fetched: 0,
                existed: true,
            });
        }
        let partial = self.partial(digest);
        let (mut hasher, mut have) = rehash(&partial)?;
        if have > size {
            let _ = std::fs::remove_file(&partial);
            (hasher, have) = (Hasher::new(), 0);
        }
        let mut fetched = 0u64;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self
                .fetch_into(
                    digest,
                    size,
                    source,
                    &partial,
                    &mut hasher,
                    &mut have,
                    &mut fetched,
                    progress,
                )
                .await
            {
                Ok(()) => break,
                Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                    let wait = Duration::from_millis(200 << attempt.min(5)).min(MAX_BACKOFF);
                    tracing::warn!(%digest, attempt, offset = have, "blob fetch failed, resuming: {e}");
                    tokio::time::sleep(wait).await;
                }
                Err(e) if e.is_retryable() => {
                    return Err(ContentError::GaveUp {
                        digest: digest.clone(),
                        attempts: attempt,
                        last: e.to_string(),
                    })
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(e);
                }
            }
        }
        let actual = hasher.finish();
        if &actual != digest {
            let _ = std::fs::remove_file(&partial);
            return Err(ContentError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        self.commit(&partial, digest)?;
        Ok(Ingested {
            fetched,
            existed: false,
        })
    }

    /// One attempt: appends to the partial file from `have` until the stream ends.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_into(
        &self,
        digest: &Digest,
        size: u64,
        source: &dyn BlobSource,
        partial: &Path,
        hasher: &mut Hasher,
        have: &mut u64,
        fetched: &mut u64,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), ContentError> {
        if *have == size {
            return Ok(());
        }
        let opened = source.open(*have).await?;
        if opened.offset != *have {
            // The source ignored the range: start over.
            *hasher = Hasher::new();
            *have = 0;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(partial)
            .await
            .map_err(io_err(partial))?;
        file.set_len(*have).await.map_err(io_err(partial))?;
        let mut file = tokio::io::BufWriter::with_capacity(64 * 1024, file);
        tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(*have))
            .await
            .map_err(io_err(partial))?;
        let mut stream = opened.stream;
        let mut result = Ok(());
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    // A client that verified the whole blob itself may fail only at the end;
                    // with every byte here, our own check below gives the real answer.
                    if *have != size {
                        result = Err(ContentError::Fetch {
                            digest: digest.clone(),
                            message: e.to_string(),
                            retryable: true,
                        });
                    }
                    break;
                }
            };
            if *have + chunk.len() as u64 > size {
                result = Err(ContentError::SizeMismatch {
                    digest: digest.clone(),
                    expected: size,
                    actual: *have + chunk.len() as u64,
                });
                break;
            }
            file.write_all(&chunk).await.map_err(io_err(partial))?;
            hasher.update(&chunk);
            *have += chunk.len() as u64;
            *fetched += chunk.len() as u64;
            progress(*have);
        }
        file.flush().await.map_err(io_err(partial))?;
        result?;
        if *have < size {
            return Err(ContentError::Fetch {
                digest: digest.clone(),
                message: format!("connection closed at byte {have} of {size}"),
                retryable: true,
            });
        }
        // One sync per blob: enough to survive a power cut without wearing an SD card.
        file.get_ref().sync_data().await.map_err(io_err(partial))?;
        Ok(())
    }
}

/// Hashes what a previous attempt (or a previous daemon) left in a partial file.
fn rehash(partial: &Path) -> Result<(Hasher, u64), ContentError> {
    let mut hasher = Hasher::new();
    let mut file = match std::fs::File::open(partial) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((hasher, 0)),
        Err(e) => return Err(io_err(partial)(e)),
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut n_total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_err(partial))?;
        if n == 0 {
            return Ok((hasher, n_total));
        }
        hasher.update(&buf[..n]);
        n_total += n as u64;
    }
}

struct InflightGuard<'a> {
    store: &'a ContentStore,
    digest: Digest,
    lock: Arc<tokio::sync::Mutex<()>>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        let mut map = self
            .store
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // The map, this guard's two handles and each waiter hold the lock: drop the entry
        // when no one waits.
        if Arc::strong_count(&self.lock) <= 3 {
            map.remove(&self.digest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    #[test]
    fn concurrent_puts_of_one_blob_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let bytes = vec![7u8; 100_000];
        let digest = Digest::of(&bytes);
        std::thread::scope(|s| {
            let puts: Vec<_> = (0..8)
                .map(|_| s.spawn(|| store.put(&digest, &bytes)))
                .collect();
            for put in puts {
                put.join().unwrap().unwrap();
            }
        });
        assert_eq!(store.read(&digest, 1 << 20).unwrap(), bytes);
        assert_eq!(
            std::fs::read_dir(dir.path().join("ingest"))
                .unwrap()
                .count(),
            0
        );
    }

    /// Serves `data`, cutting the first `cuts` connections after `cut_at` bytes.
    struct Flaky {
        data: Bytes,
        cut_at: usize,
        cuts: AtomicU32,
        opens: AtomicU32,
        served: AtomicU64,
        honor_range: bool,
    }

    impl BlobSource for Flaky {
        fn open(&self, offset: u64) -> BoxFuture<'_, Result<Opened, ContentError>> {
            Box::pin(async move {
                self.opens.fetch_add(1, Ordering::SeqCst);
                let offset = if self.honor_range { offset } else { 0 };
                let mut body = self.data.slice(offset as usize..);
                let cut = self.cuts.load(Ordering::SeqCst) > 0;
                if cut {
                    self.cuts.fetch_sub(1, Ordering::SeqCst);
                    body = body.slice(..self.cut_at.min(body.len()));
                }
                self.served.fetch_add(body.len() as u64, Ordering::SeqCst);
                let chunks: Vec<std::io::Result<Bytes>> = body
                    .chunks(1000)
                    .map(|c| Ok(Bytes::copy_from_slice(c)))
                    .chain(cut.then(|| Err(std::io::Error::other("reset"))))
                    .collect();
                Ok(Opened {
                    offset,
                    stream: futures_util::stream::iter(chunks).boxed(),
                })
            })
        }
    }

    fn flaky(data: &[u8], cut_at: usize, cuts: u32, honor_range: bool) -> Flaky {
        Flaky {
            data: Bytes::copy_from_slice(data),
            cut_at,
            cuts: AtomicU32::new(cuts),
            opens: AtomicU32::new(0),
            served: AtomicU64::new(0),
            honor_range,
        }
    }

    #[tokio::test]
    async fn resumes_with_only_missing_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let data: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let d = Digest::of(&data);
        let src = flaky(&data, 12_000, 2, true);
        let got = store
            .ingest(&d, data.len() as u64, &src, &|_| {})
            .await
            .unwrap();
        assert_eq!(
            got,
            Ingested {
                fetched: data.len() as u64,
                existed: false
            }
        );
        assert_eq!(src.served.load(Ordering::SeqCst), data.len() as u64);
        assert_eq!(src.opens.load(Ordering::SeqCst), 3);
        assert_eq!(std::fs::read(store.path(&d)).unwrap(), data);
        let again = store
            .ingest(&d, data.len() as u64, &src, &|_| {})
            .await
            .unwrap();
        assert!(again.existed);
    }

    #[tokio::test]
    async fn restarts_when_range_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let data = vec![7u8; 10_000];
        let d = Digest::of(&data);
        let src = flaky(&data, 4_000, 1, false);
        store
            .ingest(&d, data.len() as u64, &src, &|_| {})
            .await
            .unwrap();
        assert_eq!(std::fs::read(store.path(&d)).unwrap(), data);
    }

    #[tokio::test]
    async fn refuses_wrong_bytes_and_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let claimed = Digest::of(b"the real blob");
        let src = flaky(b"an evil blob!", 0, 0, true);
        let err = store.ingest(&claimed, 13, &src, &|_| {}).await.unwrap_err();
        assert!(matches!(err, ContentError::DigestMismatch { .. }), "{err}");
        assert!(!store.contains(&claimed));
        assert_eq!(
            std::fs::read_dir(dir.path().join("ingest"))
                .unwrap()
                .count(),
            0
        );
        let long = flaky(b"far too long for the size", 0, 0, true);
        let err = store
            .ingest(&claimed, 13, &long, &|_| {})
            .await
            .unwrap_err();
        assert!(matches!(err, ContentError::SizeMismatch { .. }), "{err}");
        assert!(store.put(&claimed, b"not it").is_err());
    }

    #[tokio::test]
    async fn one_fetch_for_concurrent_ingests() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ContentStore::open(dir.path()).unwrap());
        let data = vec![1u8; 100_000];
        let d = Digest::of(&data);
        let src = Arc::new(flaky(&data, 0, 0, true));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (store, src, d) = (store.clone(), src.clone(), d.clone());
                tokio::spawn(async move { store.ingest(&d, 100_000, &*src, &|_| {}).await })
            })
            .collect();
        let mut fresh = 0;
        for t in tasks {
            if !t.await.unwrap().unwrap().existed {
                fresh += 1;
            }
        }
        assert_eq!(fresh, 1);
        assert_eq!(src.opens.load(Ordering::SeqCst), 1);
        assert!(store.inflight.lock().unwrap().is_empty());
    }
}
