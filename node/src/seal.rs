//! Sealing small secrets at rest with an AEAD (ChaCha20-Poly1305, through `ring`, which
//! rustls already brings), as swarmkit's `manager/encryption`: the managers' cluster data
//! key seals secrets before they enter a Raft proposal, and a worker's own key seals the
//! secrets in its saved assignments. A fresh random nonce per seal, kept beside the
//! ciphertext; the context (what the data is, e.g. a secret's id) is authenticated too,
//! so sealed data moved to another place does not open there.

use std::path::Path;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

pub const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the system gave no randomness")]
    Random,
    #[error("sealed data does not open: tampered with, or sealed with another key")]
    Open,
    #[error("{0}: not a {KEY_LEN}-byte key")]
    BadKey(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// A 32-byte symmetric key. Its bytes leave only to be saved (0600) or given to a
/// manager over mutual TLS.
#[derive(Clone)]
pub struct Key {
    bytes: [u8; KEY_LEN],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Data sealed by [`Key::seal`]: the nonce and the ciphertext with its tag.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    #[serde(with = "crate::manager::objects::config::base64_bytes")]
    pub nonce: Vec<u8>,
    #[serde(with = "crate::manager::objects::config::base64_bytes")]
    pub data: Vec<u8>,
}

impl Key {
    pub fn generate() -> Result<Key, SealError> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SealError::Random)?;
        Ok(Key { bytes })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Key, SealError> {
        let bytes = bytes
            .try_into()
            .map_err(|_| SealError::BadKey("the key given".into()))?;
        Ok(Key { bytes })
    }

    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    fn aead(&self) -> LessSafeKey {
        // Only the length can make this fail, and it is CHACHA20_POLY1305's.
        LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, &self.bytes).expect("a 32-byte ChaCha20 key"),
        )
    }

    /// Seals `plain` for `context` under a new random nonce.
    pub fn seal(&self, plain: &[u8], context: &str) -> Result<Sealed, SealError> {
        let (nonce, data) = self.seal_parts(plain, context.as_bytes())?;
        Ok(Sealed {
            nonce: nonce.to_vec(),
            data,
        })
    }

    /// The plaintext of `sealed`, if it was sealed by this key for `context` and not
    /// changed since.
    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<Vec<u8>, SealError> {
        self.open_parts(&sealed.nonce, sealed.data.clone(), context.as_bytes())
    }

    /// As [`Key::seal`], as one byte string (the nonce, then the ciphertext and its
    /// tag): for values with no room for structure, such as the store's rows.
    pub fn seal_bytes(&self, plain: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        let (nonce, data) = self.seal_parts(plain, context)?;
        let mut out = Vec::with_capacity(NONCE_LEN + data.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// The plaintext of what [`Key::seal_bytes`] made for `context`.
    pub fn open_bytes(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        self.open_parts(nonce, data.to_vec(), context)
    }

    fn seal_parts(
        &self,
        plain: &[u8],
        context: &[u8],
    ) -> Result<([u8; NONCE_LEN], Vec<u8>), SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        let mut data = plain.to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut data,
            )
            .map_err(|_| SealError::Random)?;
        Ok((nonce, data))
    }

    fn open_parts(
        &self,
        nonce: &[u8],
        mut data: Vec<u8>,
        context: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::from(context), &mut data)
            .map_err(|_| SealError::Open)?;
        let len = plain.len();
        data.truncate(len);
        Ok(data)
    }

    /// The key kept at `path`, if there is one.
    pub fn load(path: &Path) -> Result<Option<Key>, SealError> {
        match std::fs::read(path) {
            Ok(bytes) => Key::from_bytes(&bytes)
                .map(Some)
                .map_err(|_| SealError::BadKey(path.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SealError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Keeps the key at `path`, readable by root only.
    pub fn save(&self, path: &Path) -> Result<(), SealError> {
        write_private(path, &self.bytes, 0o600).map_err(|source| SealError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// The key at `path`, made there first if there is none.
    pub fn load_or_create(path: &Path) -> Result<Key, SealError> {
        if let Some(key) = Key::load(path)? {
            return Ok(key);
        }
        let key = Key::generate()?;
        key.save(path)?;
        Ok(key)
    }
}

/// Write, sync, rename, the file made with `mode` from the start (never briefly wider):
/// a crash leaves the old file or the new one, never half of one.
pub fn write_private(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_a_fresh_nonce_each_time() {
        let key = Key::generate().unwrap();
        let a = key.seal(b"hunter2", "secret-1").unwrap();
        let b = key.seal(b"hunter2", "secret-1").unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.data, b.data);
        assert!(!a.data.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(key.open(&a, "secret-1").unwrap(), b"hunter2");
        assert_eq!(key.open(&b, "secret-1").unwrap(), b"hunter2");
    }

    #[test]
    fn tampered_data_or_nonce_is_refused() {
        let key = Key::generate().unwrap();
        let sealed = key.seal(b"hunter2", "s").unwrap();
        for i in 0..sealed.data.len() {
            let mut bad = sealed.clone();
            bad.data[i] ^= 1;
            assert!(
                matches!(key.open(&bad, "s"), Err(SealError::Open)),
                "byte {i}"
            );
        }
        let mut bad = sealed.clone();
        bad.nonce[0] ^= 1;
        assert!(key.open(&bad, "s").is_err());
        let mut short = sealed.clone();
        short.nonce.pop();
        assert!(key.open(&short, "s").is_err());
        let mut cut = sealed;
        cut.data.truncate(3);
        assert!(key.open(&cut, "s").is_err());
    }

    #[test]
    fn another_key_or_context_is_refused() {
        let key = Key::generate().unwrap();
        let sealed = key.seal(b"hunter2", "secret-1").unwrap();
        let other = Key::generate().unwrap();
        assert!(matches!(
            other.open(&sealed, "secret-1"),
            Err(SealError::Open)
        ));
        assert!(matches!(
            key.open(&sealed, "secret-2"),
            Err(SealError::Open)
        ));
    }

    #[test]
    fn the_byte_form_round_trips_and_refuses_tampering() {
        let key = Key::generate().unwrap();
        let sealed = key.seal_bytes(b"row", b"o/service/x").unwrap();
        assert_eq!(key.open_bytes(&sealed, b"o/service/x").unwrap(), b"row");
        assert!(key.open_bytes(&sealed, b"o/service/y").is_err());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(key.open_bytes(&bad, b"o/service/x").is_err(), "byte {i}");
        }
        assert!(key.open_bytes(&sealed[..5], b"o/service/x").is_err());
        assert!(key.open_bytes(&[], b"o/service/x").is_err());
    }

    #[test]
    fn a_key_file_is_private_and_kept() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/node.key");
        assert!(Key::load(&path).unwrap().is_none());
        let key = Key::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = Key::load_or_create(&path).unwrap();
        assert_eq!(key.bytes(), again.bytes());
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(Key::load(&path), Err(SealError::BadKey(_))));
    }
}
