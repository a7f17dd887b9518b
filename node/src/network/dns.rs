//! Service discovery, as Docker's embedded DNS server: each task on an overlay has a
//! resolver at 127.0.0.11 (its `resolv.conf` says so), served by the daemon on sockets
//! made inside the task's namespace. A service's name resolves to its virtual IP (or, in
//! DNS round-robin mode, to its tasks' addresses), `tasks.NAME` to its tasks' addresses,
//! only on networks the asking task is on; other names go to the node's own resolvers.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable as _, BinEncodable as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::map::{NetAddr, ServiceRecord};
use super::Error;

/// Where tasks find the resolver, as with Docker.
pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// Docker's TTL for its own names.
const TTL: u32 = 600;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// A DNS message over UDP; larger ones go over TCP.
const MAX_UDP: usize = 4096;

/// The names the services on a node's networks have, each with its addresses per network.
#[derive(Default)]
pub struct Records {
    names: HashMap<String, Vec<NetAddr>>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Records {
    pub fn from_services(services: &[ServiceRecord]) -> Records {
        let mut names: HashMap<String, Vec<NetAddr>> = HashMap::new();
        for s in services {
            let tasks: Vec<NetAddr> = s.tasks.iter().flatten().cloned().collect();
            let service = if s.vips.is_empty() { &tasks } else { &s.vips };
            names
                .entry(key(&s.name))
                .or_default()
                .extend(service.iter().cloned());
            names
                .entry(key(&format!("tasks.{}", s.name)))
                .or_default()
                .extend(tasks.iter().cloned());
            for alias in &s.aliases {
                let on_network = service.iter().filter(|a| a.network == alias.network);
                names
                    .entry(key(&alias.name))
                    .or_default()
                    .extend(on_network.cloned());
            }
        }
        Records { names }
    }

    /// The addresses `name` has on any of `networks`; none if it is not a name of theirs.
    pub fn lookup(&self, name: &str, networks: &[String]) -> Vec<Ipv4Addr> {
        let mut out: Vec<Ipv4Addr> = self
            .names
            .get(&key(name))
            .into_iter()
            .flatten()
            .filter(|a| networks.contains(&a.network))
            .map(|a| a.addr)
            .collect();
        out.dedup();
        out
    }
}

/// What every task's resolver shares: the names, and the node's own resolvers.
pub struct Resolver {
    pub records: RwLock<Records>,
    upstream: Vec<SocketAddr>,
    turn: AtomicUsize,
}

impl Resolver {
    /// A resolver forwarding to the nameservers of the node's own `/etc/resolv.conf`.
    pub fn from_host() -> Resolver {
        Resolver {
            records: RwLock::default(),
            upstream: upstream_servers(
                &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            ),
            turn: AtomicUsize::new(0),
        }
    }

    /// The answer to `query` from a task on `networks`: ours, or the upstream's.
    async fn answer(&self, query: &[u8], networks: &[String]) -> Option<Vec<u8>> {
        let msg = Message::from_bytes(query).ok()?;
        if msg.message_type() != MessageType::Query {
            return None;
        }
        let q = msg.queries().first()?.clone();
        let found = {
            let records = self.records.read().ok()?;
            records.lookup(&q.name().to_ascii(), networks)
        };
        if found.is_empty() {
            return Some(self.forward(query, &msg).await);
        }
        let mut reply = reply_to(&msg, ResponseCode::NoError);
        if q.query_type() == RecordType::A {
            // Rotated, so that round-robin names spread their clients.
            let n = found.len();
            let start = self.turn.fetch_add(1, Ordering::Relaxed) % n;
            for i in 0..n {
                let addr = found[(start + i) % n];
                reply.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(addr))));
            }
        }
        reply.to_bytes().ok()
    }

    /// Relays `query` to the node's resolvers; SERVFAIL if none answers.
    async fn forward(&self, query: &[u8], msg: &Message) -> Vec<u8> {
        for server in &self.upstream {
            if let Ok(Ok(answer)) =
                tokio::time::timeout(UPSTREAM_TIMEOUT, ask(*server, query, msg.id())).await
            {
                return answer;
            }
        }
        reply_to(msg, ResponseCode::ServFail)
            .to_bytes()
            .unwrap_or_default()
    }
}

fn reply_to(msg: &Message, code: ResponseCode) -> Message {
    let mut reply = Message::new();
    reply
        .set_id(msg.id())
        .set_message_type(MessageType::Response)
        .set_op_code(msg.op_code())
        .set_recursion_desired(msg.recursion_desired())
        .set_recursion_available(true)
        .set_response_code(code);
    reply.add_queries(msg.queries().to_vec());
    reply
}

async fn ask(server: SocketAddr, query: &[u8], id: u16) -> std::io::Result<Vec<u8>> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("an address")
    } else {
        "[::]:0".parse().expect("an address")
    };
    let socket = tokio::net::UdpSocket::bind(bind).await?;
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; MAX_UDP];
    loop {
        let n = socket.recv(&mut buf).await?;
        // An answer to another question (a late one) is not ours.
        if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

/// The `nameserver` lines of a resolv.conf.
fn upstream_servers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Serves the resolver at 127.0.0.11:53 (UDP and TCP) inside the namespace at `ns`, for a
/// task on `networks`, until the returned tasks are aborted.
pub async fn serve(
    resolver: Arc<Resolver>,
    ns: &Path,
    networks: Vec<String>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, Error> {
    let file = super::netns::open(ns)?;
    let (udp, tcp) = std::thread::spawn(move || -> std::io::Result<_> {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)?;
        let addr = SocketAddr::from((ADDRESS, 53));
        let udp = std::net::UdpSocket::bind(addr)?;
        let tcp = std::net::TcpListener::bind(addr)?;
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        Ok((udp, tcp))
    })
    .join()
    .map_err(|_| Error::Io("the DNS socket thread panicked".into()))?
    .map_err(|e| Error::Io(format!("binding the task's resolver: {e}")))?;
    let udp = tokio::net::UdpSocket::from_std(udp)
        .map_err(|e| Error::Io(format!("the task's resolver: {e}")))?;
    let tcp = tokio::net::TcpListener::from_std(tcp)
        .map_err(|e| Error::Io(format!("the task's resolver: {e}")))?;
    let networks = Arc::new(networks);
    let udp_task = {
        let (resolver, networks) = (resolver.clone(), networks.clone());
        tokio::spawn(async move {
            let udp = Arc::new(udp);
            let mut buf = vec![0u8; MAX_UDP];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                let query = buf[..n].to_vec();
                let (udp, resolver, networks) = (udp.clone(), resolver.clone(), networks.clone());
                // One at a time would let a slow upstream hold every other name up.
                tokio::spawn(async move {
                    if let Some(answer) = resolver.answer(&query, &networks).await {
                        let _ = udp.send_to(&answer, from).await;
                    }
                });
            }
        })
    };
    let tcp_task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            let (resolver, networks) = (resolver.clone(), networks.clone());
            tokio::spawn(async move {
                let mut len = [0u8; 2];
                while stream.read_exact(&mut len).await.is_ok() {
                    let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
                    if stream.read_exact(&mut query).await.is_err() {
                        return;
                    }
                    let Some(answer) = resolver.answer(&query, &networks).await else {
                        return;
                    };
                    let Ok(n) = u16::try_from(answer.len()) else {
                        return;
                    };
                    if stream.write_all(&n.to_be_bytes()).await.is_err()
                        || stream.write_all(&answer).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok(vec![udp_task, tcp_task])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::map::NetName;

    fn at(network: &str, addr: &str) -> NetAddr {
        NetAddr {
            network: network.into(),
            addr: addr.parse().unwrap(),
        }
    }

    #[test]
    fn names_resolve_only_on_shared_networks() {
        let services = [
            ServiceRecord {
                name: "Web".into(),
                aliases: vec![NetName {
                    network: "front".into(),
                    name: "www".into(),
                }],
                vips: vec![at("front", "10.0.1.2"), at("back", "10.0.2.2")],
                tasks: vec![
                    vec![at("front", "10.0.1.5"), at("back", "10.0.2.5")],
                    vec![at("front", "10.0.1.6"), at("back", "10.0.2.6")],
                ],
            },
            ServiceRecord {
                name: "db".into(),
                aliases: Vec::new(),
                vips: Vec::new(),
                tasks: vec![vec![at("back", "10.0.2.9")]],
            },
        ];
        let r = Records::from_services(&services);
        let ips = |name: &str, nets: &[&str]| -> Vec<String> {
            let nets: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
            r.lookup(name, &nets)
                .iter()
                .map(|a| a.to_string())
                .collect()
        };
        assert_eq!(ips("web.", &["front"]), ["10.0.1.2"]);
        assert_eq!(ips("WEB", &["back"]), ["10.0.2.2"]);
        assert_eq!(ips("tasks.web", &["front"]), ["10.0.1.5", "10.0.1.6"]);
        assert_eq!(ips("www", &["front"]), ["10.0.1.2"]);
        assert!(ips("www", &["back"]).is_empty());
        // DNS round robin: the tasks themselves.
        assert_eq!(ips("db", &["back"]), ["10.0.2.9"]);
        // Not on a shared network: not visible.
        assert!(ips("db", &["front"]).is_empty());
        assert!(ips("nginx.org", &["front"]).is_empty());
    }

    #[test]
    fn upstream_is_read_from_resolv_conf() {
        let conf =
            "# comment\nnameserver 192.168.1.1\nsearch lan\nnameserver ::1\nnameserver bogus\n";
        let got: Vec<String> = upstream_servers(conf)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(got, ["192.168.1.1:53", "[::1]:53"]);
    }
}
