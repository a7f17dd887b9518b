//! The node's QUIC endpoint: calls to other nodes and, on managers, the server for theirs,
//! as mini-redis's `connection.rs` to [`frame`]: this side owns the sockets and streams.
//!
//! A request is a bidirectional stream carrying one Request frame, answered by one Response
//! frame; Raft messages travel on a unidirectional stream, one Raft frame each. Refusals
//! stop or reset the stream with one of the [`code`]s.
//!
//! Architecture invariant: the endpoint does not know what requests say (JSON the
//! [`Handler`] decodes) nor what Raft does with its messages; it knows who is calling, from
//! the TLS handshake, and bounds what each kind of caller may send.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use protobuf::Message as _;
use quinn::{ConnectionError, ReadError, RecvStream, SendStream, VarInt, WriteError};
use rustls::pki_types::CertificateDer;
use tracing::{debug, warn};

use super::frame::{self, Frame, FrameError, FrameKind, MAX_ANONYMOUS, MAX_RAFT, MAX_REQUEST};
use super::tls;
use crate::manager::ca::{NodeCertificate, Role};
use crate::manager::raft::Message;

/// How long [`Transport::close`] waits for peers to learn that the connections closed.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// QUIC application error codes: why a node closed a connection, or stopped or reset a
/// stream.
pub mod code {
    /// The endpoint is closing, or a one-off call is done.
    pub const CLOSING: u32 = 0;
    /// The frame was malformed, of the wrong kind, or over the caller's size limit.
    pub const INVALID_FRAME: u32 = 1;
    /// The caller may not open this stream: Raft streams are for managers only.
    pub const FORBIDDEN: u32 = 2;
    /// The handler's response was over the size limit.
    pub const RESPONSE_TOO_LARGE: u32 = 3;

    /// What a code says, for error messages.
    pub fn describe(code: u64) -> &'static str {
        match code {
            0 => "no reason given",
            1 => "invalid frame or over the size limit",
            2 => "not allowed for this node",
            3 => "its response was over the size limit",
            _ => "unknown error code",
        }
    }
}

/// Errors of the transport.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding udp {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: quinn::ConnectError,
    },
    #[error("connection to {addr}: {source}")]
    Connection {
        addr: SocketAddr,
        #[source]
        source: ConnectionError,
    },
    #[error("{addr} did not answer within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("{addr} refused the stream: {} (code {code})", code::describe(*.code))]
    Refused { addr: SocketAddr, code: u64 },
    #[error("{addr} closed the stream without a response")]
    NoResponse { addr: SocketAddr },
    #[error("invalid frame from {addr}: {source}")]
    Frame {
        addr: SocketAddr,
        #[source]
        source: FrameError,
    },
    #[error("{addr} answered with a {kind:?} frame where a response was expected")]
    UnexpectedFrame { addr: SocketAddr, kind: FrameKind },
    #[error("writing to {addr}: {source}")]
    Write {
        addr: SocketAddr,
        #[source]
        source: WriteError,
    },
    #[error("reading from {addr}: {source}")]
    Read {
        addr: SocketAddr,
        #[source]
        source: ReadError,
    },
    #[error("{what} of {len} bytes is over the limit of {max} bytes")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("encoding a raft message: {0}")]
    Encode(#[source] protobuf::ProtobufError),
    #[error("{addr} presented no certificate chain")]
    NoCertificateChain { addr: SocketAddr },
    #[error(transparent)]
    Tls(#[from] tls::Error),
}

impl Error {
    /// Whether the same call may succeed later: the peer was unreachable, restarting or
    /// slow. Refusals, invalid frames and failed certificate checks are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connection { source, .. } => match source {
                ConnectionError::TimedOut
                | ConnectionError::Reset
                | ConnectionError::LocallyClosed
                | ConnectionError::ApplicationClosed(_) => true,
                // The peer's QUIC stack closed it; a TLS alert (codes 0x100-0x1ff) means
                // the peer refused our certificate, which retrying does not change.
                ConnectionError::ConnectionClosed(close) => {
                    u64::from(close.error_code) & !0xff != 0x100
                }
                ConnectionError::VersionMismatch
                | ConnectionError::TransportError(_)
                | ConnectionError::CidsExhausted => false,
            },
            Error::Timeout { .. } | Error::NoResponse { .. } => true,
            _ => false,
        }
    }

    /// Whether the connection died under the call, so a new one may do better.
    fn connection_lost(&self) -> bool {
        matches!(self, Error::Connection { .. }) && self.is_retryable()
    }
}

/// Who is calling: from the TLS handshake. `cert` is None for anonymous peers (joining
/// nodes).
#[derive(Clone, Debug)]
pub struct Peer {
    pub cert: Option<NodeCertificate>,
    pub addr: SocketAddr,
}

impl Peer {
    fn is_manager(&self) -> bool {
        self.cert
            .as_ref()
            .is_some_and(|cert| cert.role == Role::Manager)
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cert {
            Some(cert) => write!(f, "{} {} at {}", cert.role, cert.node_id, self.addr),
            None => write!(f, "anonymous peer at {}", self.addr),
        }
    }
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What serves the endpoint: the manager. Request bodies are JSON the handler decodes
/// itself.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request: the response body.
    fn request(&self, peer: Peer, body: Vec<u8>) -> BoxFuture<Vec<u8>>;
    /// Takes one Raft message from a manager. Must not block.
    fn raft(&self, peer: Peer, message: Message);
}

/// One connection's figures, from QUIC's loss recovery (a new connection starts them
/// at zero).
#[derive(Clone, Debug)]
pub struct PeerStats {
    pub addr: SocketAddr,
    /// The smoothed round-trip time.
    pub rtt: Duration,
    pub sent_packets: u64,
    /// Packets declared lost (and retransmitted, where they carried streams).
    pub lost_packets: u64,
}

/// The node's QUIC endpoint. Cheap to clone: the clones share it.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: quinn::Endpoint,
    /// The client configuration and the connections made with it. A std Mutex: held to
    /// look up or replace, never across an await.
    client: Mutex<Client>,
}

struct Client {
    config: quinn::ClientConfig,
    /// Bumped when `config` is replaced, so a connection made with the old one is not
    /// cached after the cache was emptied.
    generation: u64,
    /// Connections this node opened, by address and the server name they verified.
    connections: HashMap<(SocketAddr, String), quinn::Connection>,
}

impl Transport {
    /// Binds UDP `listen`. `server` is None on workers (they only call out; bind
    /// 0.0.0.0:0 then). Needs a Tokio runtime.
    pub fn bind(
        listen: SocketAddr,
        server: Option<quinn::ServerConfig>,
        client: quinn::ClientConfig,
    ) -> Result<Transport, Error> {
        let bind_error = |source| Error::Bind {
            addr: listen,
            source,
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(bind_error(io::Error::other("no tokio runtime")));
        }
        let socket = std::net::UdpSocket::bind(listen).map_err(bind_error)?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            server,
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(bind_error)?;
        Ok(Transport {
            inner: Arc::new(Inner {
                endpoint,
                client: Mutex::new(Client {
                    config: client,
                    generation: 0,
                    connections: HashMap::new(),
                }),
            }),
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.inner.endpoint.local_addr()?)
    }

    /// The open connections this node made, as QUIC measures them: a worker's to the
    /// managers it called, a manager's to its Raft peers.
    pub fn peer_stats(&self) -> Vec<PeerStats> {
        self.client()
            .connections
            .iter()
            .filter(|(_, conn)| conn.close_reason().is_none())
            .map(|((addr, _), conn)| {
                let path = conn.stats().path;
                PeerStats {
                    addr: *addr,
                    rtt: path.rtt,
                    sent_packets: path.sent_packets,
                    lost_packets: path.lost_packets,
                }
            })
            .collect()
    }

    /// Replaces the client configuration (after a certificate renewal). New connections use
    /// it; cached connections are dropped so the next call reconnects (calls under way
    /// finish on theirs).
    pub fn set_client_config(&self, client: quinn::ClientConfig) {
        let mut state = self.client();
        state.config = client;
        state.generation += 1;
        state.connections.clear();
    }

    /// Replaces the server configuration (after a renewal, or when a worker is promoted);
    /// None stops accepting connections. Connections already accepted stay.
    pub fn set_server_config(&self, server: Option<quinn::ServerConfig>) {
        self.inner.endpoint.set_server_config(server);
    }

    /// One request on a cached connection to `addr`, verified under `server_name` (e.g.
    /// `Role::Manager.server_name()`): the response body. If the cached connection turns
    /// out dead, reconnects once, so a request may reach a peer twice when a connection
    /// dies under it. The whole call is bounded by `timeout`.
    pub async fn call(
        &self,
        addr: SocketAddr,
        server_name: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, Error> {
        check_len("request", body.len(), MAX_REQUEST)?;
        let frame = frame::encode(FrameKind::Request, &body);
        let frame = &frame;
        self.on_connection(addr, server_name, timeout, move |conn| async move {
            request(&conn, frame).await
        })
        .await
    }

    /// A one-off call on a new connection with its own client config (joining: the config
    /// pins the CA by the token's digest). Returns the response body and the certificate
    /// chain the server presented (DER; chain[1] is the CA).
    pub async fn call_once(
        &self,
        addr: SocketAddr,
        config: quinn::ClientConfig,
        server_name: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(Vec<u8>, Vec<Vec<u8>>), Error> {
        check_len("request", body.len(), MAX_REQUEST)?;
        let frame = frame::encode(FrameKind::Request, &body);
        let call = async {
            let conn = self
                .inner
                .endpoint
                .connect_with(config, addr, server_name)
                .map_err(|source| Error::Connect { addr, source })?
                .await
                .map_err(|source| Error::Connection { addr, source })?;
            let response = request(&conn, &frame).await;
            conn.close(VarInt::from_u32(code::CLOSING), b"done");
            Ok((response?, peer_chain(&conn)?))
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| Error::Timeout { addr, timeout })?
    }

    /// Raft messages to the manager at `addr`, in order, on one unidirectional stream (one
    /// Raft frame each). Ok once written and finished: QUIC retransmits what is lost.
    pub async fn send_raft(
        &self,
        addr: SocketAddr,
        messages: Vec<Message>,
        timeout: Duration,
    ) -> Result<(), Error> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut frames = Vec::with_capacity(messages.len());
        for message in &messages {
            let body = message.write_to_bytes().map_err(Error::Encode)?;
            check_len("raft message", body.len(), MAX_RAFT)?;
            frames.push(frame::encode(FrameKind::Raft, &body));
        }
        let frames = &frames;
        let server_name = Role::Manager.server_name();
        self.on_connection(addr, server_name, timeout, move |conn| async move {
            send_uni(&conn, frames).await
        })
        .await
    }

    /// Accepts connections until [`close`](Transport::close): serves each one's
    /// bidirectional streams (a request each, to `handler.request`) and unidirectional
    /// streams (Raft messages, to `handler.raft`, from managers only), each stream in its
    /// own task. Anonymous peers' requests are bounded by [`MAX_ANONYMOUS`].
    pub fn serve(&self, handler: Arc<dyn Handler>) -> tokio::task::JoinHandle<()> {
        let endpoint = self.inner.endpoint.clone();
        tokio::spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                tokio::spawn(serve_connection(incoming, handler.clone()));
            }
        })
    }

    /// Closes the endpoint and all its connections, and waits briefly for the peers to
    /// learn of it.
    pub async fn close(&self) {
        self.client().connections.clear();
        let endpoint = &self.inner.endpoint;
        endpoint.close(VarInt::from_u32(code::CLOSING), b"closing");
        let _ = tokio::time::timeout(CLOSE_GRACE, endpoint.wait_idle()).await;
    }

    fn client(&self) -> MutexGuard<'_, Client> {
        self.inner
            .client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `op` on a connection to `addr` within `timeout`: on the cached one, and if that
    /// turns out dead, once more on a new one. A connection on which `op` timed out and
    /// nothing was heard leaves the cache: its peer may have restarted without a word,
    /// which QUIC would notice only at the idle timeout, so the next call connects afresh.
    /// One that still hears from its peer stays: the link is slow or lossy, and a new
    /// handshake over it would cost more than the call did.
    async fn on_connection<T, F, Fut>(
        &self,
        addr: SocketAddr,
        server_name: &str,
        timeout: Duration,
        op: F,
    ) -> Result<T, Error>
    where
        F: Fn(quinn::Connection) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut used = None;
        let attempt = async {
            let (conn, cached) = self.connection(addr, server_name).await?;
            used = Some((conn.clone(), received(&conn)));
            match op(conn).await {
                Err(e) if cached && e.connection_lost() => {
                    debug!(%addr, "reconnecting: {e}");
                    let conn = self.connect(addr, server_name).await?;
                    used = Some((conn.clone(), received(&conn)));
                    op(conn).await
                }
                result => result,
            }
        };
        let outcome = tokio::time::timeout(timeout, attempt).await;
        outcome.unwrap_or_else(|_| {
            let silent = used.filter(|(conn, before)| received(conn) == *before);
            if let Some((conn, _)) = silent {
                let mut client = self.client();
                let key = (addr, server_name.to_owned());
                if client
                    .connections
                    .get(&key)
                    .is_some_and(|cached| cached.stable_id() == conn.stable_id())
                {
                    client.connections.remove(&key);
                }
            }
            Err(Error::Timeout { addr, timeout })
        })
    }

    /// The cached connection to `addr` if it is open (and true), else a new one.
    async fn connection(
        &self,
        addr: SocketAddr,
        server_name: &str,
    ) -> Result<(quinn::Connection, bool), Error> {
        {
            let mut client = self.client();
            let key = (addr, server_name.to_owned());
            if let Some(conn) = client.connections.get(&key) {
                if conn.close_reason().is_none() {
                    return Ok((conn.clone(), true));
                }
                client.connections.remove(&key);
            }
        }
        Ok((self.connect(addr, server_name).await?, false))
    }

    /// A new connection to `addr`, cached in place of any other (concurrent connects: the
    /// last wins).
    async fn connect(
        &self,
        addr: SocketAddr,
        server_name: &str,
    ) -> Result<quinn::Connection, Error> {
        let (config, generation) = {
            let client = self.client();
            (client.config.clone(), client.generation)
        };
        let conn = self
            .inner
            .endpoint
            .connect_with(config, addr, server_name)
            .map_err(|source| Error::Connect { addr, source })?
            .await
            .map_err(|source| Error::Connection { addr, source })?;
        let mut client = self.client();
        if client.generation == generation {
            client
                .connections
                .insert((addr, server_name.to_owned()), conn.clone());
        }
        Ok(conn)
    }
}

/// How many acknowledgements `conn` has received: a peer that still acknowledges (our
/// keep-alives, at least) is alive, however slow. Not datagrams: a restarted peer's
/// endpoint answers the old connection with packets that never decrypt.
fn received(conn: &quinn::Connection) -> u64 {
    conn.stats().frame_rx.acks
}

fn check_len(what: &'static str, len: usize, max: usize) -> Result<(), Error> {
    if len > max {
        return Err(Error::TooLarge { what, len, max });
    }
    Ok(())
}

/// One request frame on a new bidirectional stream of `conn`: the response's body.
async fn request(conn: &quinn::Connection, frame: &[u8]) -> Result<Vec<u8>, Error> {
    let addr = conn.remote_address();
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|source| Error::Connection { addr, source })?;
    send.write_all(frame)
        .await
        .map_err(|e| write_error(addr, e))?;
    // Fails only if the peer reset the stream already, which the read reports.
    let _ = send.finish();
    match frame::read_frame(&mut recv, MAX_REQUEST).await {
        Ok(Some(Frame {
            kind: FrameKind::Response,
            body,
        })) => Ok(body),
        Ok(Some(Frame { kind, .. })) => Err(Error::UnexpectedFrame { addr, kind }),
        Ok(None) => Err(Error::NoResponse { addr }),
        Err(e) => Err(frame_error(addr, e)),
    }
}

/// `frames` on a new unidirectional stream of `conn`, finished.
async fn send_uni(conn: &quinn::Connection, frames: &[Vec<u8>]) -> Result<(), Error> {
    let addr = conn.remote_address();
    let mut send = conn
        .open_uni()
        .await
        .map_err(|source| Error::Connection { addr, source })?;
    for frame in frames {
        send.write_all(frame)
            .await
            .map_err(|e| write_error(addr, e))?;
    }
    send.finish().map_err(|_| Error::Write {
        addr,
        source: WriteError::ClosedStream,
    })
}

/// The certificate chain `conn`'s server presented, DER.
fn peer_chain(conn: &quinn::Connection) -> Result<Vec<Vec<u8>>, Error> {
    let addr = conn.remote_address();
    let chain = conn
        .peer_identity()
        .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(Error::NoCertificateChain { addr })?;
    Ok(chain.iter().map(|cert| cert.to_vec()).collect())
}

fn write_error(addr: SocketAddr, e: WriteError) -> Error {
    match e {
        WriteError::Stopped(code) => Error::Refused {
            addr,
            code: code.into_inner(),
        },
        WriteError::ConnectionLost(source) => Error::Connection { addr, source },
        source => Error::Write { addr, source },
    }
}

fn read_error(addr: SocketAddr, e: ReadError) -> Error {
    match e {
        ReadError::Reset(code) => Error::Refused {
            addr,
            code: code.into_inner(),
        },
        ReadError::ConnectionLost(source) => Error::Connection { addr, source },
        source => Error::Read { addr, source },
    }
}

/// A frame error reading from `addr`: the stream's own error if that is what it wraps.
fn frame_error(addr: SocketAddr, e: FrameError) -> Error {
    let FrameError::Io(io) = e else {
        return Error::Frame { addr, source: e };
    };
    let kind = io.kind();
    let io = match io.into_inner() {
        Some(inner) => match inner.downcast::<ReadError>() {
            Ok(read) => return read_error(addr, *read),
            Err(inner) => io::Error::new(kind, inner),
        },
        None => io::Error::from(kind),
    };
    Error::Frame {
        addr,
        source: FrameError::Io(io),
    }
}

/// Serves one incoming connection's streams until it closes.
async fn serve_connection(incoming: quinn::Incoming, handler: Arc<dyn Handler>) {
    let addr = incoming.remote_address();
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(e) => {
            debug!(peer = %addr, "handshake failed: {e}");
            return;
        }
    };
    let peer = Peer {
        cert: tls::peer_certificate(&conn),
        addr,
    };
    debug!("connection from {peer}");
    let closed = loop {
        tokio::select! {
            stream = conn.accept_bi() => match stream {
                Ok((send, recv)) => {
                    tokio::spawn(serve_request(peer.clone(), send, recv, handler.clone()));
                }
                Err(e) => break e,
            },
            stream = conn.accept_uni() => match stream {
                Ok(recv) if peer.is_manager() => {
                    tokio::spawn(serve_raft(peer.clone(), recv, handler.clone()));
                }
                Ok(mut recv) => {
                    debug!("refusing a raft stream from {peer}: not a manager");
                    let _ = recv.stop(VarInt::from_u32(code::FORBIDDEN));
                }
                Err(e) => break e,
            },
        }
    };
    debug!("connection from {peer} closed: {closed}");
}

/// Reads one request, has the handler answer it, and writes the response.
async fn serve_request(
    peer: Peer,
    mut send: SendStream,
    mut recv: RecvStream,
    handler: Arc<dyn Handler>,
) {
    let max = match peer.cert {
        Some(_) => MAX_REQUEST,
        None => MAX_ANONYMOUS,
    };
    let body = match frame::read_frame(&mut recv, max).await {
        Ok(Some(Frame {
            kind: FrameKind::Request,
            body,
        })) => body,
        Ok(Some(Frame { kind, .. })) => {
            return refuse(
                &peer,
                send,
                recv,
                format!("a {kind:?} frame, not a request"),
            )
        }
        Ok(None) => return refuse(&peer, send, recv, "an empty stream".to_string()),
        Err(e) => return refuse(&peer, send, recv, e.to_string()),
    };
    let response = handler.request(peer.clone(), body).await;
    if response.len() > MAX_REQUEST {
        warn!(
            "response to {peer} of {} bytes is over the limit of {MAX_REQUEST} bytes",
            response.len()
        );
        let _ = send.reset(VarInt::from_u32(code::RESPONSE_TOO_LARGE));
        return;
    }
    let frame = frame::encode(FrameKind::Response, &response);
    if let Err(e) = send.write_all(&frame).await {
        debug!("responding to {peer}: {e}");
        return;
    }
    let _ = send.finish();
}

/// Refuses a request stream: stops reading and resets the response.
fn refuse(peer: &Peer, mut send: SendStream, mut recv: RecvStream, why: String) {
    debug!("refusing a request from {peer}: {why}");
    let code = VarInt::from_u32(code::INVALID_FRAME);
    let _ = recv.stop(code);
    let _ = send.reset(code);
}

/// Hands the Raft messages of one stream to the handler, in order.
async fn serve_raft(peer: Peer, mut recv: RecvStream, handler: Arc<dyn Handler>) {
    loop {
        let why = match frame::read_frame(&mut recv, MAX_RAFT).await {
            Ok(Some(Frame {
                kind: FrameKind::Raft,
                body,
            })) => match Message::parse_from_bytes(&body) {
                Ok(message) => {
                    handler.raft(peer.clone(), message);
                    continue;
                }
                Err(e) => format!("invalid raft message: {e}"),
            },
            Ok(Some(Frame { kind, .. })) => format!("a {kind:?} frame, not a raft message"),
            Ok(None) => return,
            Err(e) => e.to_string(),
        };
        debug!("dropping a raft stream from {peer}: {why}");
        let _ = recv.stop(VarInt::from_u32(code::INVALID_FRAME));
        return;
    }
}

#[cfg(test)]
mod tests;
