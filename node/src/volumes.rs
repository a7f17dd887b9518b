//! Named volumes on this node (Docker's `local` driver): a directory per volume under
//! `<data-root>/volumes/<name>/_data`, with its labels and creation time beside it in
//! `volume.json`. A service's `--mount type=volume` and `docker run -v NAME:/path` make
//! one on first use; it outlives the containers that use it, and goes only when asked.
//!
//! Names are checked as Docker checks them, so a name can never point outside the store.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() >= 2
        && name.len() <= 255
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Refuses a name Docker would refuse.
pub fn check_name(name: &str) -> Result<(), VolumeError> {
    match valid_name(name) {
        true => Ok(()),
        false => Err(VolumeError::InvalidName(name.to_string())),
    }
}

/// A new anonymous volume's name: 64 hex digits, as Docker's.
pub fn anonymous_name() -> String {
    (0..4)
        .map(|_| format!("{:016x}", rand::random::<u64>()))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error(
        "invalid volume name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least two characters"
    )]
    InvalidName(String),
    #[error("get {0}: no such volume")]
    NotFound(String),
    #[error("volume driver {0:?} is not supported by covey: only local volumes")]
    Driver(String),
    #[error("volume option {0:?} is not supported by covey's local driver")]
    Option(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A volume as `volume inspect` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    pub name: String,
    pub mountpoint: PathBuf,
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Default)]
struct Meta {
    created_at: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

pub struct Volumes {
    root: PathBuf,
    /// Held while a volume is made or removed, so two first uses make it once.
    lock: Mutex<()>,
}

impl Volumes {
    pub fn open(data_root: &Path) -> Result<Volumes, VolumeError> {
        let root = data_root.join("volumes");
        std::fs::create_dir_all(&root).map_err(io_error("creating", &root))?;
        Ok(Volumes {
            root,
            lock: Mutex::new(()),
        })
    }

    fn dir(&self, name: &str) -> Result<PathBuf, VolumeError> {
        check_name(name)?;
        Ok(self.root.join(name))
    }

    /// The volume called `name`, made (with `labels`) if there is none; an existing one is
    /// returned as it is, as Docker does. `driver` and `options` must be the local driver's
    /// defaults.
    pub fn create(
        &self,
        name: &str,
        driver: &str,
        options: &BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
    ) -> Result<Volume, VolumeError> {
        if !driver.is_empty() && driver != "local" {
            return Err(VolumeError::Driver(driver.to_string()));
        }
        if let Some(key) = options.keys().next() {
            return Err(VolumeError::Option(key.clone()));
        }
        let dir = self.dir(name)?;
        let _made = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(v) = self.read(name) {
            return Ok(v);
        }
        let data = dir.join("_data");
        std::fs::create_dir_all(&data).map_err(io_error("creating", &data))?;
        let meta = Meta {
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            labels,
        };
        let file = dir.join("volume.json");
        let tmp = dir.join("volume.json.tmp");
        let bytes = serde_json::to_vec(&meta).map_err(|e| VolumeError::Io {
            what: "encoding",
            path: file.clone(),
            source: io::Error::other(e),
        })?;
        std::fs::write(&tmp, bytes).map_err(io_error("writing", &tmp))?;
        std::fs::rename(&tmp, &file).map_err(io_error("writing", &file))?;
        tracing::info!(volume = name, "volume created");
        self.read(name)
    }

    /// `name`'s host directory, the volume made if missing (a mount's first use).
    pub fn ensure(&self, name: &str) -> Result<PathBuf, VolumeError> {
        Ok(self
            .create(name, "", &BTreeMap::new(), BTreeMap::new())?
            .mountpoint)
    }

    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        self.dir(name)?;
        self.read(name)
    }

    fn read(&self, name: &str) -> Result<Volume, VolumeError> {
        let dir = self.root.join(name);
        let data = dir.join("_data");
        if !data.is_dir() {
            return Err(VolumeError::NotFound(name.to_string()));
        }
        // A volume whose file was lost (a power cut as it was made) is still a volume.
        let meta: Meta = std::fs::read(dir.join("volume.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(Volume {
            name: name.to_string(),
            mountpoint: data,
            created_at: meta.created_at,
            labels: meta.labels,
        })
    }

    pub fn list(&self) -> Result<Vec<Volume>, VolumeError> {
        let entries = std::fs::read_dir(&self.root).map_err(io_error("reading", &self.root))?;
        let mut out: Vec<Volume> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| valid_name(n))
            .filter_map(|n| self.read(&n).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes the volume and its data. Whether a container still uses it is the
    /// caller's to check (it knows the containers).
    pub fn remove(&self, name: &str) -> Result<(), VolumeError> {
        let dir = self.dir(name)?;
        let _made = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.read(name)?;
        std::fs::remove_dir_all(&dir).map_err(io_error("removing", &dir))?;
        tracing::info!(volume = name, "volume removed");
        Ok(())
    }
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> VolumeError {
    let path = path.to_path_buf();
    move |source| VolumeError::Io { what, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_leave_the_store() {
        for bad in ["", "a", "../etc", "a/b", ".hidden", "-x", "x y", "vol\0"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        for good in ["data", "db_1", "my.vol-2", "0a"] {
            assert!(valid_name(good), "{good:?}");
        }
    }

    #[test]
    fn a_volume_is_made_once_and_kept_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let volumes = Volumes::open(dir.path()).unwrap();
        let labels = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let v = volumes
            .create("data", "local", &BTreeMap::new(), labels.clone())
            .unwrap();
        std::fs::write(v.mountpoint.join("f"), "kept").unwrap();
        // A second create (or a mount's first use) finds it as it was.
        assert_eq!(volumes.ensure("data").unwrap(), v.mountpoint);
        assert_eq!(volumes.get("data").unwrap().labels, labels);
        assert_eq!(
            std::fs::read_to_string(v.mountpoint.join("f")).unwrap(),
            "kept"
        );
        assert_eq!(volumes.list().unwrap().len(), 1);
        volumes.remove("data").unwrap();
        assert!(matches!(volumes.get("data"), Err(VolumeError::NotFound(_))));
        assert!(matches!(
            volumes.create("x", "nfs", &BTreeMap::new(), BTreeMap::new()),
            Err(VolumeError::InvalidName(_)) | Err(VolumeError::Driver(_))
        ));
        assert!(matches!(
            volumes.create("xy", "nfs", &BTreeMap::new(), BTreeMap::new()),
            Err(VolumeError::Driver(_))
        ));
    }
}
