//! Manifests, indexes and image configs: Docker schema 2 and OCI, parsed from hostile bytes.
//! Pure types: no IO here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::platform::Platform;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1";

/// Media types we ask registries for, best first.
pub const ACCEPTED: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// Manifests and configs are small; anything larger is refused before parsing.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// A layer tar's path inside an archive or a layer list longer than this is not an image.
pub const MAX_LAYERS: usize = 256;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

/// What a manifest endpoint can return.
#[derive(Clone, Debug)]
pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is {0} bytes, over the {MAX_MANIFEST_BYTES} byte limit")]
    TooLarge(usize),
    #[error("malformed manifest: {0}")]
    Malformed(String),
    #[error(
        "docker schema 1 manifests are not supported; push the image again with a current client"
    )]
    Schema1,
    #[error("unsupported manifest media type {0:?}")]
    MediaType(String),
    #[error("malformed image config: {0}")]
    Config(String),
    #[error("layer {layer} is a foreign (non-distributable) layer, which only Windows images use")]
    ForeignLayer { layer: Digest },
    #[error("image has {0} layers, more than the {MAX_LAYERS} allowed")]
    TooManyLayers(usize),
    #[error("image config lists {diff_ids} layer diff IDs but the manifest has {layers} layers")]
    LayerCount { diff_ids: usize, layers: usize },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    fs_layers: Option<serde_json::Value>,
}

impl Manifest {
    /// Parses a manifest or an index, telling them apart by media type or, where a registry
    /// or an OCI layout leaves it out, by shape.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let probe: Probe =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        let mt = probe.media_type.unwrap_or_default();
        if probe.schema_version == Some(1)
            || mt.starts_with(DOCKER_SCHEMA1)
            || probe.fs_layers.is_some()
        {
            return Err(ManifestError::Schema1);
        }
        let malformed = |e: serde_json::Error| ManifestError::Malformed(e.to_string());
        match mt.as_str() {
            OCI_INDEX | DOCKER_LIST => Ok(Manifest::Index(
                serde_json::from_slice(bytes).map_err(malformed)?,
            )),
            OCI_MANIFEST | DOCKER_MANIFEST => Ok(Manifest::Image(
                serde_json::from_slice(bytes).map_err(malformed)?,
            )),
            "" if probe.manifests.is_some() => Ok(Manifest::Index(
                serde_json::from_slice(bytes).map_err(malformed)?,
            )),
            "" => Ok(Manifest::Image(
                serde_json::from_slice(bytes).map_err(malformed)?,
            )),
            other => Err(ManifestError::MediaType(other.to_string())),
        }
        .and_then(|m| {
            if let Manifest::Image(im) = &m {
                im.check()?;
            }
            Ok(m)
        })
    }
}

impl ImageManifest {
    fn check(&self) -> Result<(), ManifestError> {
        if self.layers.len() > MAX_LAYERS {
            return Err(ManifestError::TooManyLayers(self.layers.len()));
        }
        if let Some(l) = self
            .layers
            .iter()
            .find(|l| l.media_type.contains("foreign"))
        {
            return Err(ManifestError::ForeignLayer {
                layer: l.digest.clone(),
            });
        }
        Ok(())
    }
}

/// The parts of an image config covey reads. The raw config is kept as well, so that
/// nothing in it is lost for `image inspect` and the runtime.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    pub rootfs: RootFs,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

impl ImageConfig {
    pub fn parse(bytes: &[u8], layers: usize) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let c: ImageConfig =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Config(e.to_string()))?;
        if c.rootfs.diff_ids.len() != layers {
            return Err(ManifestError::LayerCount {
                diff_ids: c.rootfs.diff_ids.len(),
                layers,
            });
        }
        Ok(c)
    }

    pub fn platform(&self) -> Platform {
        Platform::new(&self.os, &self.architecture, self.variant.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn tells_index_from_manifest() {
        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":1,"platform":{{"os":"linux","architecture":"arm64"}}}}]}}"#
        );
        assert!(matches!(
            Manifest::parse(idx.as_bytes()),
            Ok(Manifest::Index(_))
        ));
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"x","digest":"{D}","size":2}},"layers":[]}}"#
        );
        assert!(matches!(
            Manifest::parse(m.as_bytes()),
            Ok(Manifest::Image(_))
        ));
    }

    #[test]
    fn refuses_hostile_and_old() {
        assert!(matches!(
            Manifest::parse(br#"{"schemaVersion":1,"fsLayers":[]}"#),
            Err(ManifestError::Schema1)
        ));
        let bad_digest =
            r#"{"schemaVersion":2,"config":{"digest":"sha256:../../etc","size":2},"layers":[]}"#;
        assert!(matches!(
            Manifest::parse(bad_digest.as_bytes()),
            Err(ManifestError::Malformed(_))
        ));
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(matches!(
            Manifest::parse(&big),
            Err(ManifestError::TooLarge(_))
        ));
        assert!(matches!(
            Manifest::parse(b"not json"),
            Err(ManifestError::Malformed(_))
        ));
        let odd = r#"{"schemaVersion":2,"mediaType":"text/html"}"#;
        assert!(matches!(
            Manifest::parse(odd.as_bytes()),
            Err(ManifestError::MediaType(_))
        ));
    }

    #[test]
    fn config_layer_count_must_match() {
        let c = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{D}"]}}}}"#
        );
        assert!(ImageConfig::parse(c.as_bytes(), 1).is_ok());
        assert!(matches!(
            ImageConfig::parse(c.as_bytes(), 2),
            Err(ManifestError::LayerCount { .. })
        ));
    }
}
