//! The API over TCP, as dockerd's `-H tcp://… --tlsverify`: TLS 1.2 or 1.3 with the
//! *ring* provider, and only for clients whose certificate the given CA signed. There is
//! no plaintext mode: whoever reaches the API owns the node.
//!
//! Handshakes run on their own tasks, so a client that connects and says nothing holds
//! up no one; the server only sees connections that finished theirs.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// A client must finish its handshake within this.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Connections past their handshake, waiting for the server to take them.
const READY: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {message}")]
    Pem { path: String, message: String },
    #[error("{0} holds no certificate")]
    NoCertificate(String),
    #[error("the client CA: {0}")]
    Verifier(String),
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |e: rustls::pki_types::pem::Error| TlsError::Pem {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.display().to_string()));
    }
    Ok(certs)
}

/// The server's TLS: its certificate and key, and client certificates required.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in certificates(&files.ca)? {
        roots.add(ca)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Pem {
        path: files.key.display().to_string(),
        message: e.to_string(),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certificates(&files.cert)?, key)?;
    // The Engine API is HTTP/1.1 (attach and exec hijack the connection).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// TCP connections that completed a TLS handshake, for `axum::serve`.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub async fn bind(addr: SocketAddr, files: &TlsFiles) -> Result<Self, TlsError> {
        let acceptor = TlsAcceptor::from(server_config(files)?);
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| TlsError::Bind { addr, source })?;
        let local = tcp
            .local_addr()
            .map_err(|source| TlsError::Bind { addr, source })?;
        let (tx, ready) = mpsc::channel(READY);
        tokio::spawn(accept(tcp, acceptor, tx));
        Ok(TlsListener { ready, local })
    }
}

/// Accepts until the listener is dropped; each handshake on its own task.
async fn accept(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = ready.closed() => return,
            accepted = tcp.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors, say: wait rather than spin.
                    tracing::warn!("accepting an API connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::info!(%peer, "API client refused: {e}"),
                Err(_) => tracing::info!(%peer, "API client refused: no TLS handshake in time"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accepting task ends only once this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
