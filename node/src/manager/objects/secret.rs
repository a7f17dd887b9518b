//! A secret, as swarmkit's `Secret`: a config whose data is sealed under the cluster data
//! key before it is proposed, so neither the Raft log nor sled holds it in the clear. Only
//! the leader's dispatcher opens it, for the assignments of nodes that run a task using it.

use serde::{Deserialize, Serialize};

use super::config::Annotations;
use crate::manager::store::{object, Kind, Meta};
use crate::seal::{Key, SealError, Sealed};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Secret {
    pub id: String,
    pub meta: Meta,
    pub spec: SecretSpec,
}

object!(Secret, Kind::Secret);

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SecretSpec {
    #[serde(flatten)]
    pub annotations: Annotations,
    /// The content, sealed for the secret's id (so it opens only as that secret).
    pub data: Sealed,
}

impl Secret {
    /// A new secret, its data sealed under `key`.
    pub fn seal(
        id: String,
        annotations: Annotations,
        data: &[u8],
        key: &Key,
    ) -> Result<Secret, SealError> {
        let data = key.seal(data, &id)?;
        Ok(Secret {
            id,
            meta: Meta::default(),
            spec: SecretSpec { annotations, data },
        })
    }

    /// The secret's content, in the clear.
    pub fn open(&self, key: &Key) -> Result<Vec<u8>, SealError> {
        key.open(&self.spec.data, &self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_holds_no_plaintext_and_opens_only_as_itself() {
        let key = Key::generate().unwrap();
        let name = Annotations {
            name: "db".into(),
            labels: Default::default(),
        };
        let secret = Secret::seal("s1".into(), name, b"pa55w0rd", &key).unwrap();
        let stored = serde_json::to_string(&secret).unwrap();
        assert!(!stored.contains("pa55w0rd"), "{stored}");
        let read: Secret = serde_json::from_str(&stored).unwrap();
        assert_eq!(read.open(&key).unwrap(), b"pa55w0rd");
        // Another secret's sealed data moved into this one does not open.
        let mut moved = read.clone();
        moved.id = "s2".into();
        assert!(moved.open(&key).is_err());
    }
}
