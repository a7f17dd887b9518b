//! The endpoint over real QUIC on loopback: calls, refusals, Raft streams, reconnection.

use tokio::sync::mpsc;

use super::*;
use crate::manager::ca::{RootCa, DEFAULT_CERT_VALIDITY};
use crate::transport::tls::Identity;

const CLUSTER: &str = "cluster1";
const TIMEOUT: Duration = Duration::from_secs(10);

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn identity(ca: &RootCa, node_id: &str, role: Role) -> Identity {
    let keys = ca
        .issue(node_id, role, CLUSTER, DEFAULT_CERT_VALIDITY)
        .unwrap();
    Identity::from_pem(&keys.cert_pem, &keys.key_pem).unwrap()
}

/// A node's transport: a server on managers, a client only on workers.
fn node(ca: &RootCa, node_id: &str, role: Role, listen: SocketAddr) -> Transport {
    let identity = identity(ca, node_id, role);
    let server =
        (role == Role::Manager).then(|| tls::server_config(ca.cert_der(), &identity).unwrap());
    let client = tls::client_config(ca.cert_der(), Some(&identity)).unwrap();
    Transport::bind(listen, server, client).unwrap()
}

/// Answers "<node id> <role>: <body>" and passes Raft messages on.
struct Recorder {
    raft: mpsc::UnboundedSender<(Peer, Message)>,
}

impl Handler for Recorder {
    fn request(&self, peer: Peer, body: Vec<u8>) -> BoxFuture<Vec<u8>> {
        Box::pin(async move {
            let caller = match peer.cert {
                Some(cert) => format!("{} {}", cert.node_id, cert.role),
                None => "anonymous".to_string(),
            };
            format!("{caller}: {}", String::from_utf8_lossy(&body)).into_bytes()
        })
    }

    fn raft(&self, peer: Peer, message: Message) {
        let _ = self.raft.send((peer, message));
    }
}

/// A manager serving a [`Recorder`]: its transport, address and Raft messages.
fn manager(
    ca: &RootCa,
    node_id: &str,
    listen: SocketAddr,
) -> (
    Transport,
    tokio::task::JoinHandle<()>,
    mpsc::UnboundedReceiver<(Peer, Message)>,
) {
    let transport = node(ca, node_id, Role::Manager, listen);
    let (raft, messages) = mpsc::unbounded_channel();
    let serving = transport.serve(Arc::new(Recorder { raft }));
    (transport, serving, messages)
}

fn raft_message(index: u64) -> Message {
    Message {
        from: 2,
        to: 1,
        index,
        ..Default::default()
    }
}

#[tokio::test]
async fn requests_are_answered_and_the_handler_knows_the_caller() {
    let ca = RootCa::generate(CLUSTER).unwrap();
    let (server, _serving, _) = manager(&ca, "manager1", localhost());
    let addr = server.local_addr().unwrap();
    let manager_name = Role::Manager.server_name();
    let worker = node(&ca, "worker1", Role::Worker, localhost());
    let peer = node(&ca, "manager2", Role::Manager, localhost());
    for (caller, expected) in [(&worker, "worker1 worker"), (&peer, "manager2 manager")] {
        // The second call reuses the connection.
        for body in ["hello", "again"] {
            let response = caller
                .call(addr, manager_name, body.into(), TIMEOUT)
                .await
                .unwrap();
            assert_eq!(response, format!("{expected}: {body}").as_bytes());
        }
    }
    // A manager is not a worker: its certificate does not name it one.
    let err = worker
        .call(addr, Role::Worker.server_name(), b"x".to_vec(), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err}");
    assert!(!err.is_retryable(), "{err}");
    // Too large to send at all.
    let err = worker
        .call(addr, manager_name, vec![0; MAX_REQUEST + 1], TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
}

#[tokio::test]
async fn joining_nodes_get_an_answer_and_the_ca_and_are_bounded() {
    let ca = RootCa::generate(CLUSTER).unwrap();
    let (server, _serving, _) = manager(&ca, "manager1", localhost());
    let addr = server.local_addr().unwrap();
    let join = || tls::join_client_config(ca.digest()).unwrap();
    let joining = Transport::bind(localhost(), None, join()).unwrap();
    let name = Role::Manager.server_name();

    let (response, chain) = joining
        .call_once(addr, join(), name, b"join".to_vec(), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(response, b"anonymous: join");
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1], ca.cert_der());

    let err = joining
        .call_once(addr, join(), name, vec![b'x'; MAX_ANONYMOUS + 1], TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Refused { code, .. } if code == u64::from(code::INVALID_FRAME)),
        "{err}"
    );
    assert!(!err.is_retryable());

    // The server stays up, for anonymous callers as for the others.
    let (response, _) = joining
        .call_once(addr, join(), name, vec![b'x'; MAX_ANONYMOUS], TIMEOUT)
        .await
        .unwrap();
    assert_eq!(response.len(), "anonymous: ".len() + MAX_ANONYMOUS);
    let worker = node(&ca, "worker1", Role::Worker, localhost());
    let body = vec![b'x'; MAX_ANONYMOUS + 1];
    let response = worker.call(addr, name, body, TIMEOUT).await.unwrap();
    assert_eq!(response.len(), "worker1 worker: ".len() + MAX_ANONYMOUS + 1);
}

#[tokio::test]
async fn raft_messages_arrive_in_order_from_managers_only() {
    let ca = RootCa::generate(CLUSTER).unwrap();
    let (server, _serving, mut received) = manager(&ca, "manager1", localhost());
    let addr = server.local_addr().unwrap();

    // Refused by role: whether the worker learns of it before finishing is a race.
    let worker = node(&ca, "worker1", Role::Worker, localhost());
    match worker
        .send_raft(addr, vec![raft_message(99)], TIMEOUT)
        .await
    {
        Ok(()) => {}
        Err(Error::Refused { code, .. }) => assert_eq!(code, u64::from(code::FORBIDDEN)),
        Err(e) => panic!("{e}"),
    }

    let peer = node(&ca, "manager2", Role::Manager, localhost());
    let messages = (1..=5).map(raft_message).collect();
    peer.send_raft(addr, messages, TIMEOUT).await.unwrap();
    for index in 1..=5 {
        let (from, message) = tokio::time::timeout(TIMEOUT, received.recv())
            .await
            .unwrap()
            .unwrap();
        let cert = from.cert.unwrap();
        assert_eq!(
            (cert.node_id.as_str(), cert.role),
            ("manager2", Role::Manager)
        );
        assert_eq!(message, raft_message(index));
    }
    assert!(received.try_recv().is_err());
}

#[tokio::test]
async fn calls_reconnect_after_the_server_restarts() {
    let ca = RootCa::generate(CLUSTER).unwrap();
    let (server, serving, _) = manager(&ca, "manager1", localhost());
    let addr = server.local_addr().unwrap();
    let worker = node(&ca, "worker1", Role::Worker, localhost());
    let name = Role::Manager.server_name();
    worker
        .call(addr, name, b"one".to_vec(), TIMEOUT)
        .await
        .unwrap();

    server.close().await;
    serving.await.unwrap();
    drop(server);
    // The socket is released once the endpoint's driver has wound down.
    let mut restarted = None;
    for _ in 0..100 {
        match Transport::bind(addr, None, tls::client_config(ca.cert_der(), None).unwrap()) {
            Ok(transport) => {
                restarted = Some(transport);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let restarted = restarted.expect("the port was not released");
    let identity = identity(&ca, "manager1", Role::Manager);
    restarted.set_server_config(Some(tls::server_config(ca.cert_der(), &identity).unwrap()));
    let (raft, _received) = mpsc::unbounded_channel();
    let _serving = restarted.serve(Arc::new(Recorder { raft }));

    let response = worker
        .call(addr, name, b"two".to_vec(), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(response, b"worker1 worker: two");
    let messages = vec![raft_message(1)];
    node(&ca, "manager2", Role::Manager, localhost())
        .send_raft(addr, messages, TIMEOUT)
        .await
        .unwrap();
}

/// A UDP relay between one client and a server that can be swapped for another, to
/// stage what the client cannot see: a server gone without a word, as after a power
/// cut, or a close that reaches the client late.
struct Relay {
    addr: SocketAddr,
    route: Arc<Mutex<Route>>,
}

struct Route {
    server: SocketAddr,
    client: Option<SocketAddr>,
    /// Packets to the client held back until the client next sends one.
    held: Option<Vec<Vec<u8>>>,
}

impl Relay {
    async fn start(server: SocketAddr) -> Relay {
        let front = Arc::new(tokio::net::UdpSocket::bind(localhost()).await.unwrap());
        let back = Arc::new(tokio::net::UdpSocket::bind(localhost()).await.unwrap());
        let addr = front.local_addr().unwrap();
        let route = Arc::new(Mutex::new(Route {
            server,
            client: None,
            held: None,
        }));
        tokio::spawn({
            let (front, back, route) = (front.clone(), back.clone(), route.clone());
            async move {
                let mut buf = vec![0; 65536];
                while let Ok((n, from)) = front.recv_from(&mut buf).await {
                    let (server, held) = {
                        let mut route = route.lock().unwrap();
                        route.client = Some(from);
                        (route.server, route.held.take().unwrap_or_default())
                    };
                    for packet in held {
                        let _ = front.send_to(&packet, from).await;
                    }
                    let _ = back.send_to(&buf[..n], server).await;
                }
            }
        });
        tokio::spawn({
            let route = route.clone();
            async move {
                let mut buf = vec![0; 65536];
                while let Ok((n, from)) = back.recv_from(&mut buf).await {
                    let client = {
                        let mut route = route.lock().unwrap();
                        // A server swapped out is gone: nothing more of it arrives.
                        if from != route.server {
                            continue;
                        }
                        match &mut route.held {
                            Some(held) => {
                                held.push(buf[..n].to_vec());
                                None
                            }
                            None => route.client,
                        }
                    };
                    if let Some(client) = client {
                        let _ = front.send_to(&buf[..n], client).await;
                    }
                }
            }
        });
        Relay { addr, route }
    }

    fn switch(&self, server: SocketAddr) {
        self.route.lock().unwrap().server = server;
    }

    fn hold(&self) {
        self.route.lock().unwrap().held = Some(Vec::new());
    }
}

#[tokio::test]
async fn a_call_on_a_connection_found_dead_reconnects_once() {
    let ca = RootCa::generate(CLUSTER).unwrap();
    let (first, _serving, _) = manager(&ca, "manager1", localhost());
    let relay = Relay::start(first.local_addr().unwrap()).await;
    let worker = node(&ca, "worker1", Role::Worker, localhost());
    let name = Role::Manager.server_name();
    worker
        .call(relay.addr, name, b"one".to_vec(), TIMEOUT)
        .await
        .unwrap();

    // The manager restarts; its close reaches the worker only with the next call, which
    // finds the cached connection open and learns on it that it is not. (First the
    // worker's delayed acknowledgements, which would fetch the close early.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    relay.hold();
    first.close().await;
    let (second, _serving, _) = manager(&ca, "manager1", localhost());
    relay.switch(second.local_addr().unwrap());
    let response = worker
        .call(relay.addr, name, b"two".to_vec(), TIMEOUT)
        .await;
    assert_eq!(response.unwrap(), b"worker1 worker: two");
}

#[tokio::test]
async fn a_connection_that_timed_out_is_not_reused() {
    let ca = RootCa::generate(CLUSTER).unwrap();
    let (first, _serving, _) = manager(&ca, "manager1", localhost());
    let relay = Relay::start(first.local_addr().unwrap()).await;
    let worker = node(&ca, "worker1", Role::Worker, localhost());
    let name = Role::Manager.server_name();
    worker
        .call(relay.addr, name, b"one".to_vec(), TIMEOUT)
        .await
        .unwrap();

    // The manager comes back with new connection state, its old connections unclosed:
    // the cached one is dead but QUIC does not know it before the idle timeout.
    let (second, _serving, _) = manager(&ca, "manager1", localhost());
    relay.switch(second.local_addr().unwrap());
    let short = Duration::from_millis(500);
    let err = worker
        .call(relay.addr, name, b"two".to_vec(), short)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    let response = worker
        .call(relay.addr, name, b"three".to_vec(), TIMEOUT)
        .await;
    assert_eq!(response.unwrap(), b"worker1 worker: three");
}

#[tokio::test]
async fn a_call_to_nobody_times_out_and_may_be_retried() {
    let ca = RootCa::generate(CLUSTER).unwrap();
    let worker = node(&ca, "worker1", Role::Worker, localhost());
    // A bound socket that never answers.
    let silent = std::net::UdpSocket::bind(localhost()).unwrap();
    let addr = silent.local_addr().unwrap();
    let timeout = Duration::from_millis(300);
    let err = worker
        .call(addr, Role::Manager.server_name(), b"x".to_vec(), timeout)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.is_retryable());
}
