//! A way out for tasks, after Docker's `docker_gwbridge`: a bridge in the node's own
//! namespace (`covey_gwbridge`, 172.18.0.1/16) with a veth to each task, which routes by
//! default through it and is masqueraded as the node on the way out. Host-mode published
//! ports lead to a task's address here.

use std::net::Ipv4Addr;
use std::path::Path;

use futures_util::TryStreamExt as _;
use ipnet::Ipv4Net;
use rtnetlink::RouteMessageBuilder;

use super::{links, netns, nft, Error};
use crate::containers::reaper::Reaper;

pub const BRIDGE: &str = "covey_gwbridge";
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 1);
pub const PREFIX: u8 = 16;
const TABLE: &str = "covey-gw";

pub fn subnet() -> Ipv4Net {
    Ipv4Net::new(GATEWAY, PREFIX)
        .map(|n| n.trunc())
        .unwrap_or_default()
}

/// The bridge, its masquerade and forwarding, made if missing.
pub async fn ensure(reaper: &Reaper) -> Result<(), Error> {
    let made = netns::run_in(None, |h| {
        Box::pin(async move {
            if links::index(&h, BRIDGE).await?.is_some() {
                return Ok(false);
            }
            let gateway = Ipv4Net::new(GATEWAY, PREFIX)
                .map_err(|e| Error::Io(format!("the gateway bridge's address: {e}")))?;
            links::bridge(&h, BRIDGE, gateway, 1500).await?;
            Ok(true)
        })
    })
    .await?;
    if made {
        let masquerade = format!(
            "    ip saddr {} oifname != \"{BRIDGE}\" masquerade\n    ip saddr 127.0.0.0/8 oifname \"{BRIDGE}\" masquerade\n",
            subnet()
        );
        let script = nft::replace_table(TABLE, &[("postrouting", nft::POSTROUTING, &masquerade)]);
        nft::apply_in(reaper, None, &script).await?;
        // Forwarding out, and localhost's host-mode ports led to a task.
        netns::enable(&[
            "ipv4/ip_forward".into(),
            format!("ipv4/conf/{BRIDGE}/route_localnet"),
        ])?;
    }
    Ok(())
}

/// Takes the bridge and its rules down (the node left the swarm).
pub async fn remove(reaper: &Reaper) -> Result<(), Error> {
    netns::run_in(None, |h| {
        Box::pin(async move { links::remove(&h, BRIDGE).await })
    })
    .await?;
    nft::apply_in(reaper, None, &nft::drop_table(TABLE)).await
}

/// The address of `eth` in the namespace at `ns`, if the interface is there.
pub async fn address_of(ns: &Path, eth: &str) -> Result<Option<Ipv4Net>, Error> {
    let eth = eth.to_string();
    netns::run_in(Some(ns.to_path_buf()), move |h| {
        Box::pin(async move {
            let Some(i) = links::index(&h, &eth).await? else {
                return Ok(None);
            };
            let mut addrs = h.address().get().set_link_index_filter(i).execute();
            while let Some(a) = addrs
                .try_next()
                .await
                .map_err(|e| Error::Netlink(format!("reading {eth}'s address: {e}")))?
            {
                for attr in &a.attributes {
                    if let rtnetlink::packet_route::address::AddressAttribute::Address(
                        std::net::IpAddr::V4(ip),
                    ) = attr
                    {
                        return Ok(Ipv4Net::new(*ip, a.header.prefix_len).ok());
                    }
                }
            }
            Ok(None)
        })
    })
    .await
}

/// Connects the namespace at `ns` to the bridge as `eth` at `address`, with its default
/// route through the bridge.
pub async fn attach(ns: &Path, key: &str, eth: &str, address: Ipv4Net) -> Result<(), Error> {
    let outer = format!("cg{key}");
    let inner = format!("ch{key}");
    let file = netns::open(ns)?;
    let (o, n, e) = (outer.clone(), inner.clone(), eth.to_string());
    netns::run_in(None, move |h| {
        Box::pin(async move {
            links::veth(&h, &o, &n, 1500).await?;
            links::move_to(&h, &n, netns::raw(&file), Some(&e)).await?;
            links::enslave(&h, &o, BRIDGE).await
        })
    })
    .await?;
    let eth = eth.to_string();
    netns::run_in(Some(ns.to_path_buf()), move |h| {
        Box::pin(async move {
            let i = links::set_mac_up(&h, &eth, links::mac_of(address.addr()), 1500).await?;
            links::add_address(&h, i, address).await?;
            h.route()
                .add(
                    RouteMessageBuilder::<Ipv4Addr>::new()
                        .gateway(GATEWAY)
                        .build(),
                )
                .execute()
                .await
                .map_err(|e| Error::Netlink(format!("the default route: {e}")))
        })
    })
    .await
}
