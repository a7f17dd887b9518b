//! Addresses as `swarm init` and `join` take them: `IP`, `IP:PORT`, with Swarm's port.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use anyhow::{bail, Context};

/// Swarm's control-plane port; covey's QUIC runs on it over UDP.
pub const DEFAULT_PORT: u16 = 2377;

fn with_port(addr: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok(sa);
    }
    if let Ok(ip) = addr.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    bail!("invalid address {addr:?}: expected an IP address, optionally with :PORT (interface names are not supported)")
}

pub fn parse_listen(addr: &str) -> anyhow::Result<SocketAddr> {
    with_port(addr).context("invalid --listen-addr")
}

pub fn parse_remote(addr: &str) -> anyhow::Result<SocketAddr> {
    with_port(addr).context("invalid manager address")
}

/// The address other nodes reach this one on: given, else the listen address when it is
/// specific, else the local address of the route towards `toward` (or the default
/// route), found by connecting a UDP socket, which sends nothing.
pub fn advertise(
    given: Option<&str>,
    listen: SocketAddr,
    toward: Option<SocketAddr>,
) -> anyhow::Result<String> {
    if let Some(given) = given.filter(|g| !g.is_empty()) {
        let mut addr = with_port(given).context("invalid --advertise-addr")?;
        if addr.ip().is_unspecified() {
            bail!("invalid --advertise-addr {given:?}: it must be an address others can reach");
        }
        if !given.contains(':') || given.parse::<IpAddr>().is_ok() {
            addr.set_port(listen.port());
        }
        return Ok(addr.to_string());
    }
    if !listen.ip().is_unspecified() {
        return Ok(listen.to_string());
    }
    let target = toward.unwrap_or_else(|| SocketAddr::from(([192, 0, 2, 1], 9)));
    let ip = UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect(target).and_then(|_| s.local_addr()))
        .map(|a| a.ip())
        .map_err(|_| {
            anyhow::anyhow!("could not choose an address to advertise: use --advertise-addr")
        })?;
    Ok(SocketAddr::new(ip, listen.port()).to_string())
}

/// The host part of `ip:port`.
pub fn host_of(addr: &str) -> String {
    addr.parse::<SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| addr.to_string())
}
