//! A config, as swarmkit's `Config`: a named blob (at most 500 KiB) that services' tasks
//! get as a file. Its data never changes once made; only its labels do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::manager::store::{object, Kind, Meta};

/// Swarm's limit on a config's data.
pub const MAX_CONFIG_SIZE: usize = 500 * 1024;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Config {
    pub id: String,
    pub meta: Meta,
    pub spec: ConfigSpec,
}

object!(Config, Kind::Config);

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConfigSpec {
    #[serde(flatten)]
    pub annotations: Annotations,
    /// The content, as given (the API carries it in base64).
    #[serde(default, with = "base64_bytes")]
    pub data: Vec<u8>,
}

/// What names a config or a secret, as swarmkit's `Annotations`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Annotations {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Bytes kept as base64 in the store's JSON, not as an array of numbers.
pub(crate) mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(data))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}
