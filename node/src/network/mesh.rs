//! The routing mesh, after Swarm's ingress: every node answers on every published port and
//! forwards to a task on any node. The node has an address on `ingress` (a veth from its
//! own namespace to the ingress network's bridge); nftables (NAT and `numgen`, present on
//! kernels without IPVS) turns a connection to a published port on one of the node's
//! addresses into one to a task's ingress address, round robin, and masquerades it as
//! the node's ingress address, so that the answer comes back through this node.

use std::fmt::Write as _;
use std::path::Path;

use super::map::Published;
use super::{links, netns, nft, overlay, Error};
use crate::containers::reaper::Reaper;
use crate::manager::objects::Attachment;

/// The node's end of the mesh, in its own namespace.
pub const NODE_END: &str = "cv-ingress";
const SANDBOX_END: &str = "cvi-peer";
const TABLE: &str = "covey-mesh";

/// Connects the node to `ingress` at its address there, with MTU `mtu`, if it is not yet.
pub async fn connect(root: &Path, ingress: &Attachment, mtu: u32) -> Result<(), Error> {
    let sandbox = overlay::ensure_sandbox(root, ingress, mtu).await?;
    let address = ingress.address;
    let present = netns::run_in(None, |h| {
        Box::pin(async move { Ok(links::index(&h, NODE_END).await?.is_some()) })
    })
    .await?;
    if !present {
        let file = netns::open(&sandbox)?;
        netns::run_in(None, move |h| {
            Box::pin(async move {
                links::veth(&h, NODE_END, SANDBOX_END, mtu).await?;
                links::move_to(&h, SANDBOX_END, netns::raw(&file), None).await?;
                let i = links::set_mac_up(&h, NODE_END, links::mac_of(address.addr()), mtu).await?;
                links::add_address(&h, i, address).await
            })
        })
        .await?;
        netns::run_in(Some(sandbox), |h| {
            Box::pin(async move { links::enslave(&h, SANDBOX_END, "br0").await.map(drop) })
        })
        .await?;
    }
    // The node forwards between its own addresses and the mesh; a connection to
    // 127.0.0.1:PORT leaves through the mesh too (masqueraded), as with Docker.
    netns::enable(&[
        "ipv4/ip_forward".into(),
        format!("ipv4/conf/{NODE_END}/route_localnet"),
    ])
}

/// Removes the node's end of the mesh and its rules.
pub async fn disconnect(reaper: &Reaper) -> Result<(), Error> {
    netns::run_in(None, |h| {
        Box::pin(async move { links::remove(&h, NODE_END).await })
    })
    .await?;
    nft::apply_in(reaper, None, &nft::drop_table(TABLE)).await
}

/// Replaces the node's NAT rules with those for `ports`, in one nft transaction.
pub async fn publish(reaper: &Reaper, ports: &[Published]) -> Result<(), Error> {
    nft::apply_in(reaper, None, &ruleset(ports)).await
}

/// The nft script for `ports`: the table is made (if missing), dropped and made again in
/// one transaction, so no packet sees half the rules.
pub fn ruleset(ports: &[Published]) -> String {
    let mut rules = String::new();
    for p in ports.iter().filter(|p| !p.backends.is_empty()) {
        let map: Vec<String> = p
            .backends
            .iter()
            .enumerate()
            .map(|(i, b)| format!("{i} : {b}"))
            .collect();
        let _ = writeln!(
            rules,
            "    fib daddr type local {proto} dport {port} dnat to numgen inc mod {n} map {{ {map} }} : {target}",
            proto = p.protocol.as_str(),
            port = p.port,
            n = p.backends.len(),
            map = map.join(", "),
            target = p.target_port,
        );
    }
    let masquerade = format!("    oifname \"{NODE_END}\" masquerade\n");
    nft::replace_table(
        TABLE,
        &[
            ("prerouting", nft::PREROUTING, &rules),
            ("output", nft::OUTPUT, &rules),
            ("postrouting", nft::POSTROUTING, &masquerade),
        ],
    )
}

/// The table of host-mode ports: each published port on the node's addresses leads to
/// its task's address on the gateway bridge.
pub fn host_ruleset(
    ports: &[(
        crate::manager::objects::service::PortConfig,
        std::net::Ipv4Addr,
    )],
) -> String {
    const HOST_TABLE: &str = "covey-host";
    if ports.is_empty() {
        return nft::drop_table(HOST_TABLE);
    }
    let mut rules = String::new();
    for (p, addr) in ports {
        let _ = writeln!(
            rules,
            "    fib daddr type local {} dport {} dnat to {addr} : {}",
            p.protocol.as_str(),
            p.published_port,
            p.target_port
        );
    }
    nft::replace_table(
        HOST_TABLE,
        &[
            ("prerouting", nft::PREROUTING, &rules),
            ("output", nft::OUTPUT, &rules),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::objects::service::Protocol;

    #[test]
    fn ports_become_one_rule_each_with_their_backends() {
        let ports = [
            Published {
                protocol: Protocol::Tcp,
                port: 8080,
                target_port: 80,
                backends: vec!["10.0.0.5".parse().unwrap(), "10.0.0.7".parse().unwrap()],
            },
            Published {
                protocol: Protocol::Udp,
                port: 5353,
                target_port: 53,
                backends: Vec::new(),
            },
        ];
        let script = ruleset(&ports);
        assert!(script.contains(
            "fib daddr type local tcp dport 8080 dnat to numgen inc mod 2 map { 0 : 10.0.0.5, 1 : 10.0.0.7 } : 80"
        ));
        // A port with no task running has no rule: the connection is refused.
        assert!(!script.contains("5353"));
        assert!(script.starts_with("table ip covey-mesh {}\ndelete table ip covey-mesh\n"));
    }
}
