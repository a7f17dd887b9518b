//! Overlay networks on a node, after libnetwork's overlay driver: each network has a
//! namespace of its own (`ov-<vni>`) holding a bridge (`br0`, with the network's gateway
//! address) and the network's VXLAN device; a task's namespace gets one veth per network,
//! whose other end is on that bridge. Between nodes, the VXLAN device floods what it has
//! not learnt to every peer node (see `links::flood_add`).

use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use super::{links, netns, Error};
use crate::manager::objects::Attachment;

/// The overlay's MTU: a 1500-byte underlay less VXLAN's 50 bytes of headers.
pub const MTU: u32 = 1450;
const BRIDGE: &str = "br0";

pub fn sandbox_path(root: &Path, vni: u32) -> PathBuf {
    root.join(format!("ov-{vni}"))
}

pub fn vxlan_name(vni: u32) -> String {
    format!("vx-{vni}")
}

/// The network's namespace, bridge and VXLAN device, made if missing.
pub async fn ensure_sandbox(root: &Path, a: &Attachment) -> Result<PathBuf, Error> {
    let path = sandbox_path(root, a.vni);
    netns::create(&path).await?;
    let gateway = Ipv4Net::new(a.gateway, a.subnet.prefix_len())
        .map_err(|e| Error::Io(format!("gateway of {}: {e}", a.name)))?;
    let vni = a.vni;
    let ns = path.clone();
    let has_vxlan = netns::run_in(Some(ns.clone()), move |h| {
        Box::pin(async move {
            if links::index(&h, BRIDGE).await?.is_none() {
                links::bridge(&h, BRIDGE, gateway, MTU).await?;
            }
            Ok(links::index(&h, &vxlan_name(vni)).await?.is_some())
        })
    })
    .await?;
    if !has_vxlan {
        let file = netns::open(&path)?;
        netns::run_in(None, move |h| {
            Box::pin(async move {
                links::vxlan(&h, &vxlan_name(vni), vni, MTU, netns::raw(&file)).await
            })
        })
        .await?;
        netns::run_in(Some(ns), move |h| {
            Box::pin(async move { links::enslave(&h, &vxlan_name(vni), BRIDGE).await })
        })
        .await?;
    }
    Ok(path)
}

/// Connects the namespace at `task_ns` to each of `attachments`' networks: `eth0`, `eth1`…
/// in the order given, each with the task's address and a MAC made from it. Interfaces
/// already there are kept, so this can run again after a daemon restart.
pub async fn attach(
    root: &Path,
    task_ns: &Path,
    key: &str,
    attachments: &[Attachment],
) -> Result<(), Error> {
    for (i, a) in attachments.iter().enumerate() {
        let sandbox = ensure_sandbox(root, a).await?;
        let eth = format!("eth{i}");
        let task = task_ns.to_path_buf();
        let name = eth.clone();
        let present = netns::run_in(Some(task.clone()), move |h| {
            Box::pin(async move { Ok(links::index(&h, &name).await?.is_some()) })
        })
        .await?;
        if present {
            continue;
        }
        // Names unique on the node while both ends still live in its namespace.
        let outer = format!("cv{key}{i}");
        let inner = format!("ce{key}{i}");
        let sandbox_file = netns::open(&sandbox)?;
        let task_file = netns::open(&task)?;
        let (o, n) = (outer.clone(), inner.clone());
        netns::run_in(None, move |h| {
            Box::pin(async move {
                links::veth(&h, &o, &n, MTU).await?;
                links::move_to(&h, &o, netns::raw(&sandbox_file), None).await?;
                links::move_to(&h, &n, netns::raw(&task_file), Some(&eth)).await
            })
        })
        .await?;
        netns::run_in(Some(sandbox), move |h| {
            Box::pin(async move { links::enslave(&h, &outer, BRIDGE).await })
        })
        .await?;
        let address = a.address;
        let name = format!("eth{i}");
        netns::run_in(Some(task), move |h| {
            Box::pin(async move {
                let index =
                    links::set_mac_up(&h, &name, links::mac_of(address.addr()), MTU).await?;
                links::add_address(&h, index, address).await
            })
        })
        .await?;
    }
    Ok(())
}

/// Makes the VXLAN device of network `vni` flood to exactly `peers`.
pub async fn set_peers(root: &Path, vni: u32, peers: Vec<std::net::Ipv4Addr>) -> Result<(), Error> {
    let path = sandbox_path(root, vni);
    if !netns::exists(&path) {
        return Ok(());
    }
    netns::run_in(Some(path), move |h| {
        Box::pin(async move {
            let Some(vx) = links::index(&h, &vxlan_name(vni)).await? else {
                return Ok(());
            };
            let have = links::flood_list(&h, vx).await?;
            for gone in have.iter().filter(|p| !peers.contains(p)) {
                links::flood_del(&h, vx, *gone).await?;
            }
            for new in peers.iter().filter(|p| !have.contains(p)) {
                links::flood_add(&h, vx, *new).await?;
            }
            Ok(())
        })
    })
    .await
}
