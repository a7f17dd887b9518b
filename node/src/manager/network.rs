//! Raft's [`Network`] over the QUIC transport: messages on unidirectional streams, and
//! followers' writes forwarded to the leader as requests.

use std::net::SocketAddr;
use std::time::Duration;

use super::ca::Role;
use super::raft::{BoxFuture, Forward, Member, Message, Network};
use super::rpc::{Request, Response};
use super::store::Error;
use crate::transport::Transport;

/// Longer than an election: a message stuck longer than that is not worth delivering.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
const FORWARD_TIMEOUT: Duration = Duration::from_secs(20);

pub struct QuicNetwork {
    transport: Transport,
}

impl QuicNetwork {
    pub fn new(transport: Transport) -> Self {
        QuicNetwork { transport }
    }
}

fn parse_addr(addr: &str) -> Result<SocketAddr, String> {
    addr.parse()
        .map_err(|e| format!("a member's address {addr:?} is not ip:port: {e}"))
}

impl Network for QuicNetwork {
    fn send(&self, to: &Member, messages: Vec<Message>) -> BoxFuture<Result<(), String>> {
        let transport = self.transport.clone();
        let addr = parse_addr(&to.addr);
        Box::pin(async move {
            transport
                .send_raft(addr?, messages, SEND_TIMEOUT)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn forward(&self, leader: &Member, request: Forward) -> BoxFuture<Result<(), Error>> {
        let transport = self.transport.clone();
        let addr = parse_addr(&leader.addr);
        Box::pin(async move {
            let addr = addr.map_err(Error::Unavailable)?;
            let body = serde_json::to_vec(&Request::Forward(request)).map_err(Error::Codec)?;
            let reply = transport
                .call(addr, Role::Manager.server_name(), body, FORWARD_TIMEOUT)
                .await
                .map_err(|e| Error::Unavailable(format!("reaching the leader at {addr}: {e}")))?;
            match serde_json::from_slice::<Response>(&reply).map_err(Error::Codec)? {
                Response::Done => Ok(()),
                Response::Error { message, kind } => Err(Error::Remote { kind, message }),
                other => Err(Error::Unavailable(format!(
                    "the leader answered a forward with {other:?}"
                ))),
            }
        })
    }
}
