//! TLS for QUIC between nodes: TLS 1.3 only, ALPN `covey/1`, certificates under the
//! cluster CA, always with the *ring* provider passed explicitly (never the process
//! default).
//!
//! A server presents its node certificate and the CA certificate, so a joining node can
//! pin the CA from the chain by the join token's digest ([`join_client_config`]). Servers
//! verify client certificates against the CA but also admit anonymous clients, since a
//! joining node has no certificate yet: the application refuses anonymous peers
//! ([`peer_certificate`] is `None`) for everything but joining.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::manager::ca::{CaDigest, NodeCertificate};

/// The ALPN protocol of covey's node-to-node QUIC.
pub const ALPN: &[u8] = b"covey/1";
/// The ALPN protocol of the overlay's QUIC data path (`network::tunnel`).
pub const DATA_ALPN: &[u8] = b"covey-data/1";

/// Errors building TLS configurations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid certificate PEM: {0}")]
    CertificatePem(String),
    #[error("invalid key PEM: {0}")]
    KeyPem(String),
    #[error("invalid CA certificate: {0}")]
    Ca(rustls::Error),
    #[error(transparent)]
    Tls(#[from] rustls::Error),
    #[error("building the certificate verifier: {0}")]
    Verifier(String),
    #[error(transparent)]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A node's certificate chain and private key, as TLS presents them.
pub struct Identity {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    /// The identity from PEM: one or more certificates (the node's first), and its key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Identity> {
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::CertificatePem(e.to_string()))?;
        if certs.is_empty() {
            return Err(Error::CertificatePem("no certificate found".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| Error::KeyPem(e.to_string()))?;
        Ok(Identity { certs, key })
    }
}

impl Clone for Identity {
    fn clone(&self) -> Identity {
        Identity {
            certs: self.certs.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// Shows the certificate count only: the key is a credential.
impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("certs", &self.certs.len())
            .finish_non_exhaustive()
    }
}

/// Requests one peer may have in flight on a connection.
pub const MAX_BIDI_STREAMS: u32 = 64;
/// Batches of Raft messages one peer may have in flight on a connection.
pub const MAX_UNI_STREAMS: u32 = 256;

/// QUIC transport settings for lossy, high-latency links (cellular, LoRa gateways, Wi-Fi
/// at the edge of range).
pub fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    // Keep NAT bindings open and notice a dead peer well before the idle timeout.
    transport.keep_alive_interval(Some(Duration::from_secs(2)));
    transport.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
        30_000,
    ))));
    // Quinn's default (333 ms) is close; an explicit 300 ms keeps the first handshake on a
    // slow link from retransmitting needlessly, and documents the intent.
    transport.initial_rtt(Duration::from_millis(300));
    // What one peer may have open at once: a request is a bidirectional stream, a batch of
    // Raft messages a unidirectional one. Covey sends no datagrams, so none are buffered.
    transport.max_concurrent_bidi_streams(quinn::VarInt::from_u32(MAX_BIDI_STREAMS));
    transport.max_concurrent_uni_streams(quinn::VarInt::from_u32(MAX_UNI_STREAMS));
    transport.datagram_receive_buffer_size(None);
    // Loss-based congestion control (Cubic, NewReno) reads a lossy radio link as
    // congestion and shrinks to two packets a round trip, starving Raft's heartbeats;
    // BBR paces by measured bandwidth and round trip, which loss leaves alone.
    transport.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    Arc::new(transport)
}

/// The server side: presents `identity`'s node certificate followed by the CA certificate;
/// verifies client certificates against the CA and admits anonymous clients.
pub fn server_config(ca_der: &[u8], identity: &Identity) -> Result<quinn::ServerConfig> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(root_store(ca_der)?),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| Error::Verifier(e.to_string()))?;
    let chain = vec![
        identity.certs[0].clone(),
        CertificateDer::from(ca_der.to_vec()),
    ];
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, identity.key.clone_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    config.transport_config(transport_config());
    config.migration(false);
    Ok(config)
}

/// The overlay data path's transport: datagrams only (Ethernet frames), no streams; MTU
/// discovery up to a 1500-byte IPv4 underlay's UDP payload, so that most frames go whole.
pub fn data_transport_config() -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_secs(5)));
    transport.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
        30_000,
    ))));
    transport.max_concurrent_bidi_streams(quinn::VarInt::from_u32(0));
    transport.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    // About a round trip of frames at a few hundred Mb/s: past that, a queue only adds
    // latency, and the oldest frames are dropped as a switch would.
    transport.datagram_receive_buffer_size(Some(1 << 20));
    transport.datagram_send_buffer_size(1 << 20);
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(1472);
    transport.mtu_discovery_config(Some(mtu));
    Arc::new(transport)
}

/// The data path's server side: as [`server_config`], but a client certificate is
/// required: frames come only from nodes of the cluster.
pub fn data_server_config(ca_der: &[u8], identity: &Identity) -> Result<quinn::ServerConfig> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(root_store(ca_der)?),
        provider.clone(),
    )
    .build()
    .map_err(|e| Error::Verifier(e.to_string()))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.certs.clone(), identity.key.clone_key())?;
    tls.alpn_protocols = vec![DATA_ALPN.to_vec()];
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    config.transport_config(data_transport_config());
    config.migration(false);
    Ok(config)
}

/// The data path's client side: connect with the peer's node id as the server name, so
/// that only that node's certificate is taken.
pub fn data_client_config(ca_der: &[u8], identity: &Identity) -> Result<quinn::ClientConfig> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(root_store(ca_der)?)
        .with_client_auth_cert(identity.certs.clone(), identity.key.clone_key())?;
    tls.alpn_protocols = vec![DATA_ALPN.to_vec()];
    let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    config.transport_config(data_transport_config());
    Ok(config)
}

/// The client side: verifies the server against the CA, with its server name (connect with
/// `Role::Manager.server_name()` to require a manager); presents `identity` if given.
pub fn client_config(ca_der: &[u8], identity: Option<&Identity>) -> Result<quinn::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(root_store(ca_der)?);
    let tls = match identity {
        Some(identity) => {
            builder.with_client_auth_cert(identity.certs.clone(), identity.key.clone_key())?
        }
        None => builder.with_no_client_auth(),
    };
    quic_client_config(tls)
}

/// The client side for `swarm join`, before the node has the CA certificate: no client
/// certificate; the server's chain must hold a certificate whose digest is the join token's,
/// and the server's certificate must verify under it. After the handshake the CA
/// certificate is the second of the peer's chain (`peer_identity()`).
pub fn join_client_config(digest: CaDigest) -> Result<quinn::ClientConfig> {
    let provider = provider();
    let verifier = Arc::new(PinnedCaVerifier {
        digest,
        provider: provider.clone(),
    });
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    quic_client_config(tls)
}

/// The peer's node certificate, as TLS verified it; `None` for an anonymous peer.
pub fn peer_certificate(conn: &quinn::Connection) -> Option<NodeCertificate> {
    let chain = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    match NodeCertificate::parse(chain.first()?) {
        Ok(cert) => Some(cert),
        Err(e) => {
            tracing::warn!(peer = %conn.remote_address(), "peer certificate: {e}");
            None
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn root_store(ca_der: &[u8]) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .map_err(Error::Ca)?;
    Ok(roots)
}

fn quic_client_config(mut tls: rustls::ClientConfig) -> Result<quinn::ClientConfig> {
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    config.transport_config(transport_config());
    Ok(config)
}

/// Verifies a server against the CA certificate its chain presents, provided that
/// certificate's digest is the pinned one (the join token's).
#[derive(Debug)]
struct PinnedCaVerifier {
    digest: CaDigest,
    provider: Arc<CryptoProvider>,
}

/// Why a joining node refuses the manager.
#[derive(thiserror::Error)]
#[error("the manager's CA does not match the join token")]
struct CaMismatch;

/// The message again: rustls shows a `CertificateError::Other` with `Debug`.
impl fmt::Debug for CaMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|cert| CaDigest::of(cert) == self.digest)
            .ok_or_else(|| {
                rustls::Error::InvalidCertificate(rustls::CertificateError::Other(
                    rustls::OtherError(Arc::new(CaMismatch)),
                ))
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use quinn::{ConnectionError, Endpoint};

    use super::*;
    use crate::manager::ca::{JoinToken, Role, RootCa, DEFAULT_CERT_VALIDITY};

    const CLUSTER: &str = "cluster1";

    fn identity(ca: &RootCa, node_id: &str, role: Role) -> Identity {
        let keys = ca
            .issue(node_id, role, CLUSTER, DEFAULT_CERT_VALIDITY)
            .unwrap();
        Identity::from_pem(&keys.cert_pem, &keys.key_pem).unwrap()
    }

    fn localhost() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    fn server(ca: &RootCa, identity: &Identity) -> Endpoint {
        let config = server_config(ca.cert_der(), identity).unwrap();
        Endpoint::server(config, localhost()).unwrap()
    }

    type Outcome = Result<quinn::Connection, ConnectionError>;

    /// Connects a new client endpoint to `server` and accepts on it: both sides' outcomes.
    async fn handshake(
        server: &Endpoint,
        client: quinn::ClientConfig,
        server_name: &str,
    ) -> (Outcome, Outcome) {
        let endpoint = Endpoint::client(localhost()).unwrap();
        let addr = server.local_addr().unwrap();
        let connecting = endpoint.connect_with(client, addr, server_name).unwrap();
        let accepting = async { server.accept().await.unwrap().await };
        let both = async { tokio::join!(connecting, accepting) };
        tokio::time::timeout(Duration::from_secs(10), both)
            .await
            .expect("handshake timed out")
    }

    /// Whether the connection fails, at once or soon after: a server may refuse a client
    /// certificate after the client considers its handshake done.
    async fn fails(outcome: Outcome) -> bool {
        match outcome {
            Err(_) => true,
            Ok(conn) => tokio::time::timeout(Duration::from_secs(10), conn.closed())
                .await
                .is_ok(),
        }
    }

    #[tokio::test]
    async fn servers_learn_their_clients_role() {
        let ca = RootCa::generate(CLUSTER).unwrap();
        let server = server(&ca, &identity(&ca, "manager1", Role::Manager));
        for (node_id, role) in [("worker1", Role::Worker), ("manager2", Role::Manager)] {
            let client = client_config(ca.cert_der(), Some(&identity(&ca, node_id, role)));
            let (client, accepted) =
                handshake(&server, client.unwrap(), Role::Manager.server_name()).await;
            let (client, accepted) = (client.unwrap(), accepted.unwrap());
            let peer = peer_certificate(&accepted).unwrap();
            assert_eq!((peer.node_id.as_str(), peer.role), (node_id, role));
            assert_eq!(peer.cluster_id, CLUSTER);
            let manager = peer_certificate(&client).unwrap();
            assert_eq!(manager.node_id, "manager1");
            assert_eq!(manager.role, Role::Manager);
        }
    }

    #[tokio::test]
    async fn anonymous_clients_are_admitted_as_anonymous() {
        let ca = RootCa::generate(CLUSTER).unwrap();
        let server = server(&ca, &identity(&ca, "manager1", Role::Manager));
        let client = client_config(ca.cert_der(), None).unwrap();
        let (client, accepted) = handshake(&server, client, "swarm-manager").await;
        client.unwrap();
        assert_eq!(peer_certificate(&accepted.unwrap()), None);
    }

    #[tokio::test]
    async fn clients_of_another_ca_are_refused() {
        let ca = RootCa::generate(CLUSTER).unwrap();
        let other = RootCa::generate(CLUSTER).unwrap();
        let server = server(&ca, &identity(&ca, "manager1", Role::Manager));
        // Trusts the right CA but holds a certificate from another.
        let stranger = identity(&other, "worker1", Role::Worker);
        let client = client_config(ca.cert_der(), Some(&stranger)).unwrap();
        let (client, accepted) = handshake(&server, client, "swarm-manager").await;
        assert!(accepted.is_err());
        assert!(fails(client).await);
    }

    #[tokio::test]
    async fn a_worker_cannot_pass_for_a_manager() {
        let ca = RootCa::generate(CLUSTER).unwrap();
        let server = server(&ca, &identity(&ca, "worker1", Role::Worker));
        let client = client_config(ca.cert_der(), None).unwrap();
        let (client, _) = handshake(&server, client.clone(), "swarm-manager").await;
        let err = client.unwrap_err().to_string();
        assert!(err.contains("certificate"), "{err}");
        // The same server is fine for a client that asks for a worker.
        let (client, _) = handshake(
            &server,
            client_config(ca.cert_der(), None).unwrap(),
            "swarm-worker",
        )
        .await;
        client.unwrap();
    }

    #[tokio::test]
    async fn joining_pins_the_ca_by_digest() {
        let ca = RootCa::generate(CLUSTER).unwrap();
        let server = server(&ca, &identity(&ca, "manager1", Role::Manager));
        let token = JoinToken::generate(&ca);

        let client = join_client_config(token.ca_digest()).unwrap();
        let (client, accepted) = handshake(&server, client, "swarm-manager").await;
        let client = client.unwrap();
        assert_eq!(peer_certificate(&accepted.unwrap()), None);
        let chain = client
            .peer_identity()
            .unwrap()
            .downcast::<Vec<CertificateDer<'static>>>()
            .unwrap();
        assert_eq!(chain[1].as_ref(), ca.cert_der());

        let wrong = JoinToken::generate(&RootCa::generate(CLUSTER).unwrap());
        let client = join_client_config(wrong.ca_digest()).unwrap();
        let (client, _) = handshake(&server, client, "swarm-manager").await;
        let err = client.unwrap_err().to_string();
        assert!(err.contains("does not match the join token"), "{err}");
    }

    #[test]
    fn identities_need_a_certificate_and_a_key() {
        let ca = RootCa::generate(CLUSTER).unwrap();
        let keys = ca
            .issue("node1", Role::Worker, CLUSTER, DEFAULT_CERT_VALIDITY)
            .unwrap();
        assert!(matches!(
            Identity::from_pem("", &keys.key_pem),
            Err(Error::CertificatePem(_))
        ));
        assert!(matches!(
            Identity::from_pem(&keys.cert_pem, &keys.cert_pem),
            Err(Error::KeyPem(_))
        ));
        assert!(client_config(b"not a certificate", None).is_err());
    }
}
