//! The overlay's userspace data path: a network's Ethernet frames carried between nodes
//! as QUIC datagrams, for networks created `--opt encrypted` and wherever a node on the
//! network has no kernel VXLAN (see ARCHITECTURE.md, "Overlay data paths").
//!
//! Each network on this path has a TAP device (`tq-<vni>`) on its bridge. What the bridge
//! sends out of it goes to the peer that last sent from the destination MAC, or to every
//! peer of the network (broadcast, and MACs not yet learnt), as the kernel's VXLAN does.
//! Frames from a peer go into the TAP device, never back out to other peers (split
//! horizon: every node floods to all peers itself, so nothing needs relaying).
//!
//! One endpoint per node on UDP [`PORT`], with mutual TLS under the cluster CA: a node is
//! dialled by its node id as the server name, and frames are taken only from the nodes
//! the leader's network map names as peers on that network.

mod tap;
pub mod wire;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use quinn::VarInt;

use super::Error;
use crate::transport::tls;
pub use tap::Tap;

/// The data path's UDP port on every node (kernel VXLAN's is 4789).
pub const PORT: u16 = 4790;
/// How long a MAC stays learnt without a frame from it (the Linux bridge's default).
const MAC_AGE: Duration = Duration::from_secs(300);
/// The least time between two attempts to dial one peer.
const REDIAL: Duration = Duration::from_secs(1);

/// The node's QUIC data path. Cheap to clone: the clones share it.
#[derive(Clone, Default)]
pub struct Tunnel {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    bound: Mutex<Option<Bound>>,
    state: Mutex<State>,
}

struct Bound {
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
    accept: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct State {
    networks: HashMap<u32, Net>,
    /// One connection per peer node, dialled or accepted; all are read from.
    conns: HashMap<String, quinn::Connection>,
    /// When each peer was last dialled.
    dialled: HashMap<String, Instant>,
}

struct Net {
    tap: Arc<Tap>,
    peers: HashMap<String, SocketAddr>,
    /// Which peer each MAC was last seen behind, and when.
    macs: HashMap<[u8; 6], (String, Instant)>,
    pump: tokio::task::JoinHandle<()>,
}

impl Drop for Net {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        self.accept.abort();
        self.endpoint.close(VarInt::from_u32(0), b"leaving");
    }
}

impl Tunnel {
    /// Starts (or, after a certificate renewal, re-keys) the endpoint with the node's
    /// identity. Connections already made stay until they close.
    pub fn set_identity(&self, ca_der: &[u8], identity: &tls::Identity) -> Result<(), Error> {
        let tls_error = |e: tls::Error| Error::Io(format!("the data path's TLS: {e}"));
        let server = tls::data_server_config(ca_der, identity).map_err(tls_error)?;
        let client = tls::data_client_config(ca_der, identity).map_err(tls_error)?;
        let mut bound = self.bound();
        if let Some(b) = bound.as_mut() {
            b.endpoint.set_server_config(Some(server));
            b.client = client;
            return Ok(());
        }
        let listen = SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT));
        let endpoint = quinn::Endpoint::server(server, listen)
            .map_err(|e| Error::Io(format!("binding the data path on udp {listen}: {e}")))?;
        let accept = tokio::spawn(accept(Arc::downgrade(&self.inner), endpoint.clone()));
        *bound = Some(Bound {
            endpoint,
            client,
            accept,
        });
        Ok(())
    }

    /// Stops the endpoint and forgets every network (the node left the swarm).
    pub fn close(&self) {
        let mut state = self.state();
        state.networks.clear();
        state.conns.clear();
        drop(state);
        self.bound().take();
    }

    pub fn has(&self, vni: u32) -> bool {
        self.state().networks.contains_key(&vni)
    }

    /// Carries network `vni`'s frames through `tap` from now on.
    pub fn add(&self, vni: u32, tap: Tap) {
        let tap = Arc::new(tap);
        let pump = tokio::spawn(pump(Arc::downgrade(&self.inner), vni, tap.clone()));
        self.state().networks.insert(
            vni,
            Net {
                tap,
                peers: HashMap::new(),
                macs: HashMap::new(),
                pump,
            },
        );
    }

    /// Drops network `vni` and with it its TAP device.
    pub fn remove(&self, vni: u32) {
        self.state().networks.remove(&vni);
    }

    /// The nodes (id, underlay address) frames of `vni` go to and come from; each is
    /// dialled now, so the first frames find a connection.
    pub fn set_peers(&self, vni: u32, peers: &[(String, Ipv4Addr)]) {
        let mut state = self.state();
        let Some(net) = state.networks.get_mut(&vni) else {
            return;
        };
        net.peers = peers
            .iter()
            .map(|(id, addr)| (id.clone(), SocketAddr::from((*addr, PORT))))
            .collect();
        let peers = net.peers.clone();
        net.macs.retain(|_, (id, _)| peers.contains_key(id));
        for (id, addr) in peers {
            dial(&self.inner, &mut state, &id, addr);
        }
    }

    fn bound(&self) -> MutexGuard<'_, Option<Bound>> {
        self.inner
            .bound
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state()
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Dials peer `id` unless a connection to it is open or was tried a moment ago. The
/// connection is made in the background; frames meanwhile are dropped, as on a link
/// coming up.
fn dial(inner: &Arc<Inner>, state: &mut State, id: &str, addr: SocketAddr) {
    if state
        .conns
        .get(id)
        .is_some_and(|c| c.close_reason().is_none())
    {
        return;
    }
    let now = Instant::now();
    if state
        .dialled
        .get(id)
        .is_some_and(|at| now.duration_since(*at) < REDIAL)
    {
        return;
    }
    state.dialled.insert(id.to_string(), now);
    let connecting = {
        let bound = inner.bound.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(b) = bound.as_ref() else {
            return;
        };
        b.endpoint.connect_with(b.client.clone(), addr, id)
    };
    let connecting = match connecting {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(peer = id, "data path: dialling {addr}: {e}");
            return;
        }
    };
    let weak = Arc::downgrade(inner);
    let id = id.to_string();
    tokio::spawn(async move {
        match connecting.await {
            Ok(conn) => read(weak, conn).await,
            Err(e) => tracing::debug!(peer = id, "data path: dialling {addr}: {e}"),
        }
    });
}

/// Takes connections from peers.
async fn accept(inner: std::sync::Weak<Inner>, endpoint: quinn::Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        let inner = inner.clone();
        tokio::spawn(async move {
            match incoming.await {
                Ok(conn) => read(inner, conn).await,
                Err(e) => tracing::debug!("data path: a peer's handshake failed: {e}"),
            }
        });
    }
}

/// Delivers the frames of one connection to their networks' bridges until it closes.
async fn read(inner: std::sync::Weak<Inner>, conn: quinn::Connection) {
    let Some(id) = tls::peer_certificate(&conn).map(|c| c.node_id) else {
        conn.close(VarInt::from_u32(1), b"no node certificate");
        return;
    };
    if let Some(inner) = inner.upgrade() {
        inner.state().conns.insert(id.clone(), conn.clone());
    }
    tracing::debug!(
        peer = id,
        "data path: connected to {}",
        conn.remote_address()
    );
    let mut fragments = wire::Reassembly::default();
    let closed = loop {
        let datagram = match conn.read_datagram().await {
            Ok(d) => d,
            Err(e) => break e,
        };
        let (vni, frame) = match wire::decode(datagram) {
            Ok(wire::Datagram::Whole { vni, frame }) => (vni, frame),
            Ok(wire::Datagram::Fragment {
                vni,
                id: frame_id,
                index,
                count,
                part,
            }) => match fragments.add(vni, frame_id, index, count, part) {
                Some(frame) => (vni, frame),
                None => continue,
            },
            Err(e) => {
                tracing::debug!(peer = id, "data path: dropping a datagram: {e}");
                continue;
            }
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let tap = {
            let mut state = inner.state();
            let Some(net) = state.networks.get_mut(&vni) else {
                continue;
            };
            if !net.peers.contains_key(&id) {
                continue;
            }
            let source = mac(&frame[6..12]);
            if source[0] & 1 == 0 {
                net.macs.insert(source, (id.clone(), Instant::now()));
            }
            net.tap.clone()
        };
        tap.send(&frame);
    };
    tracing::debug!(peer = id, "data path: connection closed: {closed}");
    if let Some(inner) = inner.upgrade() {
        let mut state = inner.state();
        if state
            .conns
            .get(&id)
            .is_some_and(|c| c.stable_id() == conn.stable_id())
        {
            state.conns.remove(&id);
        }
    }
}

/// Sends what the bridge puts out of network `vni`'s TAP device to its peers.
async fn pump(inner: std::sync::Weak<Inner>, vni: u32, tap: Arc<Tap>) {
    let mut buf = vec![0u8; wire::MAX_FRAME];
    let mut frame_id: u16 = 0;
    loop {
        let n = match tap.recv(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(vni, "data path: reading the TAP device: {e}");
                return;
            }
        };
        if n < wire::MIN_FRAME {
            continue;
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let conns = {
            let mut state = inner.state();
            let Some(net) = state.networks.get(&vni) else {
                return;
            };
            let now = Instant::now();
            let learnt = net
                .macs
                .get(&mac(&buf[0..6]))
                .filter(|(_, at)| now.duration_since(*at) < MAC_AGE)
                .and_then(|(id, _)| net.peers.get_key_value(id));
            let targets: Vec<(String, SocketAddr)> = match learnt {
                Some((id, addr)) => vec![(id.clone(), *addr)],
                None => net.peers.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            };
            let mut out = Vec::with_capacity(targets.len());
            for (id, addr) in targets {
                match state.conns.get(&id).filter(|c| c.close_reason().is_none()) {
                    Some(c) => out.push(c.clone()),
                    None => dial(&inner, &mut state, &id, addr),
                }
            }
            out
        };
        frame_id = frame_id.wrapping_add(1);
        for conn in conns {
            send(&conn, vni, &buf[..n], frame_id);
        }
    }
}

fn send(conn: &quinn::Connection, vni: u32, frame: &[u8], frame_id: u16) {
    let Some(max) = conn.max_datagram_size() else {
        return;
    };
    let Some(datagrams) = wire::encode(vni, frame, max, frame_id) else {
        tracing::debug!(
            vni,
            len = frame.len(),
            max,
            "data path: a frame too long to send"
        );
        return;
    };
    for d in datagrams {
        if let Err(e) = conn.send_datagram(d) {
            tracing::debug!(vni, "data path: sending to {}: {e}", conn.remote_address());
            return;
        }
    }
}

fn mac(bytes: &[u8]) -> [u8; 6] {
    let mut m = [0u8; 6];
    m.copy_from_slice(&bytes[..6]);
    m
}
