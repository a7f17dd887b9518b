//! What a reference names in its registry, without pulling it: the digest it resolves
//! to and the platforms it offers (the Engine API's distribution inspect). The scheduler
//! places a service's tasks only on nodes whose platform its image offers.

use crate::auth::Credentials;
use crate::digest::Digest;
use crate::manifest::{ImageConfig, Manifest, MAX_MANIFEST_BYTES};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::service::ImageService;
use crate::Error;

#[derive(Clone, Debug)]
pub struct Resolved {
    /// The top manifest's (an index's, for a multi-platform image).
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub platforms: Vec<Platform>,
}

impl ImageService {
    pub async fn resolve(
        &self,
        reference: &Reference,
        credentials: Option<Credentials>,
    ) -> Result<Resolved, Error> {
        let repo = self.registries.repository(reference, credentials)?;
        let (bytes, digest) = repo.manifest(None).await?;
        let size = bytes.len() as u64;
        let (media_type, platforms) = match Manifest::parse(&bytes)? {
            Manifest::Index(index) => (
                index.media_type,
                index
                    .manifests
                    .iter()
                    .filter_map(|m| m.platform.clone())
                    // Attestations are listed as unknown/unknown: no node runs them.
                    .filter(|p| p.os != "unknown")
                    .collect(),
            ),
            Manifest::Image(manifest) => {
                // One platform, named in the config: fetched into the store (verified,
                // and a later pull needs it anyway).
                let _lease = self.gc_lock.read().await;
                self.fetch_config(reference, &repo, &manifest).await?;
                let bytes = self
                    .content
                    .read(&manifest.config.digest, MAX_MANIFEST_BYTES as u64)?;
                let parsed = ImageConfig::parse(&bytes, manifest.layers.len())?;
                (manifest.media_type, vec![parsed.platform()])
            }
        };
        Ok(Resolved {
            digest,
            media_type,
            size,
            platforms,
        })
    }
}
