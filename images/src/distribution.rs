//! The distribution client: manifests and blobs from registries, through `oci-client`.
//! Plain HTTP is used only for loopback registries and those marked insecure, as dockerd.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol, LayerDescriptor};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;

use crate::auth::{self, Credentials};
use crate::content::{BlobSource, ContentError, Opened};
use crate::digest::Digest;
use crate::manifest::{ACCEPTED, MAX_MANIFEST_BYTES};
use crate::reference::{is_loopback_registry, Reference};

#[derive(Debug, thiserror::Error)]
pub enum DistributionError {
    #[error("{reference}: {message}")]
    Registry {
        reference: String,
        message: String,
        retryable: bool,
    },
    #[error("No such image: {0}")]
    NotFound(String),
    #[error("{reference}: unauthorized: authentication required or access denied")]
    Unauthorized { reference: String },
    #[error("manifest for {reference} has digest {actual}, not the {expected} asked for")]
    ManifestDigest {
        reference: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("manifest for {reference} is over the {MAX_MANIFEST_BYTES} byte limit")]
    ManifestTooLarge { reference: String },
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
}

impl DistributionError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            DistributionError::Registry {
                retryable: true,
                ..
            }
        )
    }
}

#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Registries reached over plain HTTP besides loopback ones (`--insecure-registry`).
    pub insecure: Vec<String>,
    /// The docker config file with credentials; `None` for anonymous access only.
    pub docker_config: Option<PathBuf>,
}

/// Clients per registry and credentials, so that tokens are reused across pulls.
pub struct Registries {
    options: RegistryOptions,
    clients: Mutex<HashMap<(String, Credentials), Arc<oci_client::Client>>>,
}

/// An authenticated view of one repository.
#[derive(Clone)]
pub struct Repository {
    client: Arc<oci_client::Client>,
    auth: RegistryAuth,
    reference: Reference,
}

impl Registries {
    pub fn new(options: RegistryOptions) -> Self {
        install_crypto_provider();
        Self {
            options,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn plain_http(&self, registry: &str) -> bool {
        is_loopback_registry(registry) || self.options.insecure.iter().any(|r| r == registry)
    }

    /// Opens `reference`'s repository with `credentials`, or with those of the docker
    /// config file when none are given.
    pub fn repository(
        &self,
        reference: &Reference,
        credentials: Option<Credentials>,
    ) -> Result<Repository, DistributionError> {
        let registry = reference.registry().to_string();
        let credentials = match (credentials, &self.options.docker_config) {
            (Some(c), _) => c,
            (None, Some(path)) => auth::lookup(path, &registry)?,
            (None, None) => Credentials::Anonymous,
        };
        let auth = match &credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Credentials::IdentityToken(t) => RegistryAuth::Basic("<token>".into(), t.clone()),
        };
        let client = {
            let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            let protocol = if self.plain_http(&registry) {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            };
            clients
                .entry((registry, credentials))
                .or_insert_with(|| {
                    Arc::new(oci_client::Client::new(ClientConfig {
                        protocol,
                        connect_timeout: Some(std::time::Duration::from_secs(15)),
                        read_timeout: Some(std::time::Duration::from_secs(60)),
                        ..Default::default()
                    }))
                })
                .clone()
        };
        Ok(Repository {
            client,
            auth,
            reference: reference.clone(),
        })
    }
}

impl Repository {
    fn oci_ref(&self, digest: Option<&Digest>) -> oci_client::Reference {
        let r = &self.reference;
        let (reg, repo) = (r.registry().to_string(), r.repository().to_string());
        match (digest.or(r.digest()), r.tag()) {
            (Some(d), _) => oci_client::Reference::with_digest(reg, repo, d.to_string()),
            (None, Some(t)) => oci_client::Reference::with_tag(reg, repo, t.to_string()),
            (None, None) => oci_client::Reference::with_tag(reg, repo, "latest".into()),
        }
    }

    /// Fetches the manifest or index named by the reference (or by `digest` in the same
    /// repository), verifying its digest when one was asked for.
    pub async fn manifest(
        &self,
        digest: Option<&Digest>,
    ) -> Result<(Vec<u8>, Digest), DistributionError> {
        let name = match digest {
            Some(d) => self.reference.with_digest(d.clone()).to_string(),
            None => self.reference.to_string(),
        };
        let (bytes, _) = self
            .client
            .pull_manifest_raw(&self.oci_ref(digest), &self.auth, ACCEPTED)
            .await
            .map_err(|e| classify(&name, e))?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(DistributionError::ManifestTooLarge { reference: name });
        }
        // The registry's Docker-Content-Digest header is not trusted: we hash what came.
        let actual = Digest::of(&bytes);
        if let Some(expected) = digest.or(self.reference.digest()) {
            if &actual != expected {
                return Err(DistributionError::ManifestDigest {
                    reference: name,
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        Ok((bytes.to_vec(), actual))
    }

    /// A source for one blob of this repository, for the content store.
    pub fn blob(&self, digest: &Digest) -> RegistryBlob {
        RegistryBlob {
            repo: self.clone(),
            digest: digest.clone(),
            digest_str: digest.to_string(),
        }
    }
}

pub struct RegistryBlob {
    repo: Repository,
    digest: Digest,
    digest_str: String,
}

impl BlobSource for RegistryBlob {
    fn open(&self, offset: u64) -> BoxFuture<'_, Result<Opened, ContentError>> {
        Box::pin(async move {
            let desc = LayerDescriptor {
                digest: &self.digest_str,
                urls: &None,
            };
            let oci_ref = self.repo.oci_ref(None);
            let resp = self
                .repo
                .client
                .pull_blob_stream_partial(&oci_ref, &desc, offset, None)
                .await
                .map_err(|e| {
                    let retryable = classify(&self.digest_str, e);
                    ContentError::Fetch {
                        digest: self.digest.clone(),
                        retryable: retryable.is_retryable(),
                        message: retryable.to_string(),
                    }
                })?;
            Ok(match resp {
                oci_client::client::BlobResponse::Full(s) => Opened {
                    offset: 0,
                    stream: s.stream.boxed(),
                },
                oci_client::client::BlobResponse::Partial(s) => Opened {
                    offset,
                    stream: s.stream.boxed(),
                },
            })
        })
    }
}

/// Sorts oci-client's errors into what a user can act on, and what is worth retrying.
fn classify(reference: &str, e: OciDistributionError) -> DistributionError {
    use OciDistributionError as E;
    match &e {
        E::ImageManifestNotFoundError(_) => DistributionError::NotFound(reference.to_string()),
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => {
            DistributionError::Unauthorized {
                reference: reference.to_string(),
            }
        }
        E::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|x| {
                matches!(
                    x.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                )
            }) =>
        {
            DistributionError::NotFound(reference.to_string())
        }
        E::ServerError { code, .. } => DistributionError::Registry {
            reference: reference.to_string(),
            message: e.to_string(),
            retryable: *code >= 500 || *code == 429,
        },
        E::RequestError(re) => DistributionError::Registry {
            reference: reference.to_string(),
            message: describe_request_error(re),
            retryable: true,
        },
        _ => DistributionError::Registry {
            reference: reference.to_string(),
            message: e.to_string(),
            retryable: false,
        },
    }
}

/// reqwest's top-level message hides the cause ("error sending request"); name it.
fn describe_request_error(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// rustls needs one process-wide crypto provider; ring is the one quinn will share.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_insecure() {
        let regs = Registries::new(RegistryOptions {
            insecure: vec!["edge-registry.lan:5000".into()],
            docker_config: None,
        });
        assert!(regs.plain_http("127.0.0.1:5000"));
        assert!(regs.plain_http("localhost:5000"));
        assert!(regs.plain_http("edge-registry.lan:5000"));
        assert!(!regs.plain_http("edge-registry.lan:5001"));
        assert!(!regs.plain_http("docker.io"));
        assert!(!regs.plain_http("192.168.1.10:5000"));
    }
}
