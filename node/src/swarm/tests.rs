//! A one-manager swarm in-process, on loopback QUIC: who may call what.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

use super::{InitOptions, Profile, Swarm};
use crate::manager::ca::{self, Role, DEFAULT_CERT_VALIDITY};
use crate::manager::objects::{Node, NodeState};
use crate::manager::raft::Forward;
use crate::manager::rpc::{Request, Response};
use crate::transport::{tls, Transport};

const TIMEOUT: Duration = Duration::from_secs(10);

async fn call(transport: &Transport, addr: std::net::SocketAddr, request: &Request) -> Response {
    let body = serde_json::to_vec(request).expect("encoding");
    let reply = transport
        .call(addr, Role::Manager.server_name(), body, TIMEOUT)
        .await
        .expect("calling the manager");
    serde_json::from_slice(&reply).expect("decoding")
}

fn refused(response: Response, with: &str) {
    match response {
        Response::Error { message, .. } => assert!(message.contains(with), "{message}"),
        other => panic!("expected a refusal containing {with:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_checked_against_the_callers_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let swarm = Swarm::open(dir.path(), None, Arc::default(), Profile::default())
        .await
        .expect("open");
    swarm
        .init(InitOptions {
            listen_addr: Some("127.0.0.1:0".into()),
            advertise_addr: None,
            force_new_cluster: false,
            spec: None,
        })
        .await
        .expect("init");
    let manager = swarm.manager().await.expect("a manager");
    let addr = swarm
        .with_active(|a| a.and_then(|a| a.transport.local_addr().ok()))
        .await
        .expect("bound");
    let root = manager.ca().expect("ca");
    let cluster = manager.cluster().expect("cluster");

    // Anonymous: nothing but joining.
    let anonymous = Transport::bind(
        "127.0.0.1:0".parse().expect("addr"),
        None,
        tls::join_client_config(root.digest()).expect("config"),
    )
    .expect("bind");
    let heartbeat = Request::Heartbeat {
        description: super::describe(true, &Profile::default()),
    };
    refused(
        call(&anonymous, addr, &heartbeat).await,
        "needs a node certificate",
    );

    // Joining with the worker token gives a worker certificate.
    let (key_pem, csr) = ca::new_csr().expect("csr");
    let join = Request::Join {
        token: cluster.join_tokens.worker.clone(),
        csr: base64::engine::general_purpose::STANDARD.encode(csr),
        description: super::describe(true, &Profile::default()),
        advertise_addr: String::new(),
        node_id: None,
    };
    let joined = match call(&anonymous, addr, &join).await {
        Response::Joined(joined) => joined,
        other => panic!("join failed: {other:?}"),
    };
    assert_eq!(joined.role, Role::Worker);
    let identity = tls::Identity::from_pem(&joined.cert_pem, &key_pem).expect("identity");
    let worker = Transport::bind(
        "127.0.0.1:0".parse().expect("addr"),
        None,
        tls::client_config(root.cert_der(), Some(&identity)).expect("config"),
    )
    .expect("bind");

    // A worker reports, but may not write to the store through the leader.
    match call(&worker, addr, &heartbeat).await {
        Response::Heartbeat { desired_role, .. } => assert_eq!(desired_role, Role::Worker),
        other => panic!("heartbeat failed: {other:?}"),
    }
    let node: Node = manager
        .store
        .get(&joined.node_id)
        .expect("get")
        .expect("the worker");
    assert_eq!(node.status.state, NodeState::Ready);
    refused(
        call(
            &worker,
            addr,
            &Request::Forward(Forward::RemoveMember(manager.raft.id())),
        )
        .await,
        "only managers",
    );
    assert_eq!(manager.raft.members().expect("members").len(), 1);

    // A worker certificate signed for another node id is still just a worker.
    let forged = root
        .issue(
            "someone-else",
            Role::Worker,
            &manager.cluster_id,
            DEFAULT_CERT_VALIDITY,
        )
        .expect("issue");
    let forged = tls::Identity::from_pem(&forged.cert_pem, &forged.key_pem).expect("identity");
    let other = Transport::bind(
        "127.0.0.1:0".parse().expect("addr"),
        None,
        tls::client_config(root.cert_der(), Some(&forged)).expect("config"),
    )
    .expect("bind");
    refused(call(&other, addr, &heartbeat).await, "not found");

    // A rotated-away or forged token is refused.
    let mut bad = cluster.join_tokens.worker.clone();
    bad.replace_range(bad.len() - 3.., "zzz");
    let (_, csr) = ca::new_csr().expect("csr");
    let join = Request::Join {
        token: bad,
        csr: base64::engine::general_purpose::STANDARD.encode(csr),
        description: super::describe(true, &Profile::default()),
        advertise_addr: String::new(),
        node_id: None,
    };
    refused(call(&anonymous, addr, &join).await, "invalid join token");
    swarm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_certificate_expired_rejoins_under_its_id() {
    let manager_dir = tempfile::tempdir().expect("tempdir");
    let manager_swarm = Swarm::open(manager_dir.path(), None, Arc::default(), Profile::default())
        .await
        .expect("open");
    manager_swarm
        .init(InitOptions {
            listen_addr: Some("127.0.0.1:0".into()),
            advertise_addr: None,
            force_new_cluster: false,
            spec: Some(crate::manager::objects::ClusterSpec {
                heartbeat_period_secs: 1,
                ..Default::default()
            }),
        })
        .await
        .expect("init");
    let manager = manager_swarm.manager().await.expect("a manager");
    let addr = manager_swarm
        .with_active(|a| a.and_then(|a| a.transport.local_addr().ok()))
        .await
        .expect("bound");
    let cluster = manager.cluster().expect("cluster");
    let join = || super::JoinOptions {
        token: cluster.join_tokens.worker.clone(),
        remote_addrs: vec![addr.to_string()],
        listen_addr: Some("127.0.0.1:0".into()),
        advertise_addr: None,
    };

    let worker_dir = tempfile::tempdir().expect("tempdir");
    let worker = Swarm::open(worker_dir.path(), None, Arc::default(), Profile::default())
        .await
        .expect("open");
    worker.join(join()).await.expect("join");
    let node_id = worker
        .with_active(|a| a.map(|a| a.state.node_id.clone()))
        .await
        .expect("joined");
    // A node whose certificate is valid is in the swarm already.
    let again = worker.join(join()).await.expect_err("a second join");
    assert!(
        again.to_string().contains("already part of a swarm"),
        "{again}"
    );

    // Away while its certificate lapsed: a one-second one, as if it had been off for months.
    worker.shutdown().await;
    let root = manager.ca().expect("ca");
    let short = root
        .issue(
            &node_id,
            Role::Worker,
            &manager.cluster_id,
            Duration::from_secs(1),
        )
        .expect("issue");
    super::Paths::new(worker_dir.path())
        .save_certs(&short.cert_pem, &short.key_pem, &root.cert_pem())
        .expect("saving");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let worker = Swarm::open(worker_dir.path(), None, Arc::default(), Profile::default())
        .await
        .expect("reopen");
    // Its heartbeats are refused now: an expired certificate does not pass TLS.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !manager.dispatcher.recently_seen(&node_id),
        "an expired certificate was accepted"
    );

    worker.join(join()).await.expect("rejoin with the token");
    let same = worker
        .with_active(|a| a.map(|a| a.state.node_id.clone()))
        .await
        .expect("still in the swarm");
    assert_eq!(same, node_id, "the node keeps its id");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !manager.dispatcher.recently_seen(&node_id) {
        assert!(
            std::time::Instant::now() < deadline,
            "no heartbeat after rejoining"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let node: Node = manager.store.get(&node_id).expect("get").expect("the node");
    assert_eq!(node.status.state, NodeState::Ready);
    worker.shutdown().await;
    manager_swarm.shutdown().await;
}
