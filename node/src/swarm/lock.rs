//! Autolock, after swarmkit's key encryption key (KEK): while a swarm is autolocked, the
//! keys a manager keeps at rest (its TLS key, the cluster data key, its store key and its
//! worker key) are sealed with the swarm's unlock key, so that a stolen device's disk
//! gives none of them away, and a restarted manager takes no part in the swarm until
//! `swarm unlock` gives the key back. The unlock key itself is kept in the managers'
//! store, which the store key seals: on the device only inside what it locks.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use base64::Engine as _;

use crate::seal::{Key, SealError, KEY_LEN};

/// How Swarm writes unlock keys, so that a key from either reads the same.
const PREFIX: &str = "SWMKEY-1-";
/// The start of a key file sealed with the unlock key; a file without it is in the clear.
const SEALED: &[u8] = b"covey-locked-v1\n";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Docker's words, which scripts and the docker CLI know.
    #[error("Swarm is encrypted and needs to be unlocked before it can be used. Please use \"docker swarm unlock\" to unlock it.")]
    Locked,
    #[error("swarm could not be unlocked: invalid key provided")]
    WrongKey,
    #[error("invalid unlock key: {0}")]
    BadKey(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Seal(#[from] SealError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LockError + '_ {
    move |source| LockError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A new unlock key.
pub fn new_unlock_key() -> Result<Key, LockError> {
    Ok(Key::generate()?)
}

/// An unlock key as users see it: `SWMKEY-1-` and its 32 bytes in base64.
pub fn format_unlock_key(key: &Key) -> String {
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(key.bytes())
    )
}

/// An unlock key as a user typed or pasted it (surrounding space ignored).
pub fn parse_unlock_key(text: &str) -> Result<Key, LockError> {
    let text = text.trim();
    let body = text
        .strip_prefix(PREFIX)
        .ok_or_else(|| LockError::BadKey(format!("it does not start with {PREFIX}")))?;
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(body.trim_end_matches('='))
        .map_err(|e| LockError::BadKey(format!("not base64 after {PREFIX}: {e}")))?;
    if bytes.len() != KEY_LEN {
        return Err(LockError::BadKey(format!(
            "{} bytes where an unlock key has {KEY_LEN}",
            bytes.len()
        )));
    }
    Ok(Key::from_bytes(&bytes)?)
}

/// The node's key files, and the unlock key while the swarm is locked. One lock covers
/// both, so that a file is never written under a key that is being replaced.
#[derive(Default)]
pub struct Vault {
    kek: Mutex<Option<Key>>,
}

impl Vault {
    fn kek(&self) -> MutexGuard<'_, Option<Key>> {
        self.kek.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The unlock key that seals the files now, if any.
    pub fn unlock_key(&self) -> Option<Key> {
        self.kek().clone()
    }

    /// The file at `path` in the clear, if there is one.
    pub fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, LockError> {
        read_with(path, self.kek().as_ref())
    }

    /// Writes `plain` at `path` (with `mode`), sealed if the swarm is locked.
    pub fn write(&self, path: &Path, plain: &[u8], mode: u32) -> Result<(), LockError> {
        write_with(path, plain, mode, self.kek().as_ref())
    }

    /// Checks `key` against a sealed file and, if it opens it, keeps it: `swarm unlock`.
    pub fn unlock(&self, sealed: &Path, key: Key) -> Result<(), LockError> {
        let mut kek = self.kek();
        read_with(sealed, Some(&key))?;
        *kek = Some(key);
        Ok(())
    }

    /// Forgets the unlock key (after a failed start, the node is locked again).
    pub fn forget(&self) {
        *self.kek() = None;
    }

    /// Rewrites `files` (those that exist) under `new`: sealed with it, or in the clear
    /// if none. True if anything changed. Each file is replaced whole (write, sync,
    /// rename), so a power cut leaves it under the old key or the new one; which key
    /// opens which file is read from each, so a half-done rewrite finishes on the next.
    pub fn rekey(&self, files: &[PathBuf], new: Option<Key>) -> Result<bool, LockError> {
        let mut kek = self.kek();
        let same = match (&*kek, &new) {
            (Some(a), Some(b)) => a.bytes() == b.bytes(),
            (None, None) => true,
            _ => false,
        };
        let mut changed = false;
        for path in files {
            let Some(plain) = read_any(path, kek.as_ref(), new.as_ref())? else {
                continue;
            };
            if same && is_sealed(path)? == new.is_some() {
                continue;
            }
            write_with(path, &plain, 0o600, new.as_ref())?;
            changed = true;
        }
        *kek = new;
        Ok(changed || !same)
    }
}

/// True if the file at `path` is sealed with an unlock key.
pub fn is_sealed(path: &Path) -> Result<bool, LockError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes.starts_with(SEALED)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// The context a file is sealed for: its name, so that sealed files cannot be swapped.
fn context(path: &Path) -> Vec<u8> {
    path.file_name()
        .map(|n| n.as_encoded_bytes().to_vec())
        .unwrap_or_default()
}

fn read_with(path: &Path, kek: Option<&Key>) -> Result<Option<Vec<u8>>, LockError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let Some(sealed) = bytes.strip_prefix(SEALED) else {
        return Ok(Some(bytes));
    };
    let kek = kek.ok_or(LockError::Locked)?;
    kek.open_bytes(sealed, &context(path))
        .map(Some)
        .map_err(|_| LockError::WrongKey)
}

/// A file read with whichever of two keys opens it (during a change of key).
fn read_any(path: &Path, a: Option<&Key>, b: Option<&Key>) -> Result<Option<Vec<u8>>, LockError> {
    match read_with(path, a) {
        Err(LockError::WrongKey | LockError::Locked) if b.is_some() => read_with(path, b),
        other => other,
    }
}

fn write_with(path: &Path, plain: &[u8], mode: u32, kek: Option<&Key>) -> Result<(), LockError> {
    let bytes = match kek {
        Some(kek) => {
            let mut out = SEALED.to_vec();
            out.extend(kek.seal_bytes(plain, &context(path))?);
            out
        }
        None => plain.to_vec(),
    };
    crate::seal::write_private(path, &bytes, mode).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlock_keys_read_back_and_bad_ones_are_named() {
        let key = new_unlock_key().unwrap();
        let text = format_unlock_key(&key);
        assert!(text.starts_with("SWMKEY-1-"), "{text}");
        assert_eq!(
            parse_unlock_key(&format!(" {text}\n")).unwrap().bytes(),
            key.bytes()
        );
        // Swarm's own format, as its docs print one.
        assert!(parse_unlock_key("SWMKEY-1-WuYH/IX284+lRcXuoVf38viIDK3HJEKY13MIHX+tTt8").is_ok());
        for bad in [
            "",
            "SWMKEY-1-",
            "SWMKEY-2-abc",
            "SWMKEY-1-!!!",
            "SWMKEY-1-AAAA",
        ] {
            let err = parse_unlock_key(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid unlock key"), "{bad}: {err}");
        }
    }

    #[test]
    fn files_seal_open_only_with_the_key_and_rekey_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.key");
        let b = dir.path().join("b.key");
        let missing = dir.path().join("missing.key");
        let files = vec![a.clone(), b.clone(), missing.clone()];
        let vault = Vault::default();
        vault.write(&a, b"alpha", 0o600).unwrap();
        vault.write(&b, b"beta", 0o600).unwrap();
        assert!(!is_sealed(&a).unwrap());

        let kek = new_unlock_key().unwrap();
        assert!(vault.rekey(&files, Some(kek.clone())).unwrap());
        assert!(is_sealed(&a).unwrap() && is_sealed(&b).unwrap());
        assert!(!std::fs::read(&a).unwrap().windows(5).any(|w| w == b"alpha"));
        assert!(!missing.exists());
        assert_eq!(vault.read(&a).unwrap().unwrap(), b"alpha");

        // After a restart: locked until the right key is given.
        let restarted = Vault::default();
        assert!(matches!(restarted.read(&a), Err(LockError::Locked)));
        let wrong = new_unlock_key().unwrap();
        assert!(matches!(
            restarted.unlock(&a, wrong),
            Err(LockError::WrongKey)
        ));
        restarted.unlock(&a, kek.clone()).unwrap();
        assert_eq!(restarted.read(&b).unwrap().unwrap(), b"beta");

        // A file moved onto another's name does not open.
        std::fs::copy(&a, &b).unwrap();
        assert!(matches!(restarted.read(&b), Err(LockError::WrongKey)));
        restarted.write(&b, b"beta", 0o600).unwrap();

        // Rotated, then off: each file follows, and the old key opens nothing.
        let next = new_unlock_key().unwrap();
        assert!(restarted.rekey(&files, Some(next.clone())).unwrap());
        let fresh = Vault::default();
        assert!(fresh.unlock(&a, kek).is_err());
        fresh.unlock(&a, next).unwrap();
        assert!(fresh.rekey(&files, None).unwrap());
        assert!(!is_sealed(&a).unwrap());
        assert_eq!(std::fs::read(&b).unwrap(), b"beta");
        assert!(
            !fresh.rekey(&files, None).unwrap(),
            "nothing left to change"
        );
    }

    #[test]
    fn a_rekey_cut_short_finishes_on_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.key");
        let b = dir.path().join("b.key");
        let old = new_unlock_key().unwrap();
        let new = new_unlock_key().unwrap();
        write_with(&a, b"alpha", 0o600, Some(&new)).unwrap();
        write_with(&b, b"beta", 0o600, Some(&old)).unwrap();
        let vault = Vault::default();
        vault.unlock(&b, old).unwrap();
        vault
            .rekey(&[a.clone(), b.clone()], Some(new.clone()))
            .unwrap();
        let fresh = Vault::default();
        fresh.unlock(&b, new).unwrap();
        assert_eq!(fresh.read(&a).unwrap().unwrap(), b"alpha");
    }
}
