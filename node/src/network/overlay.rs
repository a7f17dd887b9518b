//! Overlay networks on a node, after libnetwork's overlay driver: each network has a
//! namespace of its own (`ov-<vni>`) holding a bridge (`br0`, with the network's gateway
//! address) and the network's way to other nodes, its uplink: a VXLAN device (`vx-<vni>`)
//! that floods what it has not learnt to every peer node (see `links::flood_add`), or a
//! TAP device (`tq-<vni>`) whose frames the QUIC data path carries (`tunnel`). A task's
//! namespace gets one veth per network, whose other end is on that bridge.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use super::map::Peers;
use super::tunnel::{Tap, Tunnel};
use super::{links, netns, Error};
use crate::manager::objects::Attachment;

/// The overlay's MTU on VXLAN: a 1500-byte underlay less VXLAN's 50 bytes of headers.
pub const MTU: u32 = 1450;
/// The overlay's MTU on QUIC: what a QUIC datagram on a 1500-byte underlay holds once the
/// path's MTU is found (about 1430 bytes), less the frame's headers, with room to spare.
/// Longer frames (from a VXLAN node's 1450-byte tasks) still go, in two datagrams.
pub const QUIC_MTU: u32 = 1380;
const BRIDGE: &str = "br0";

pub fn sandbox_path(root: &Path, vni: u32) -> PathBuf {
    root.join(format!("ov-{vni}"))
}

pub fn vxlan_name(vni: u32) -> String {
    format!("vx-{vni}")
}

/// The network's namespace and bridge, made if missing. Its uplink comes with the
/// network map ([`set_peers`]).
pub async fn ensure_sandbox(root: &Path, a: &Attachment, mtu: u32) -> Result<PathBuf, Error> {
    let path = sandbox_path(root, a.vni);
    netns::create(&path).await?;
    let gateway = Ipv4Net::new(a.gateway, a.subnet.prefix_len())
        .map_err(|e| Error::Io(format!("gateway of {}: {e}", a.name)))?;
    netns::run_in(Some(path.clone()), move |h| {
        Box::pin(async move {
            if links::index(&h, BRIDGE).await?.is_none() {
                links::bridge(&h, BRIDGE, gateway, mtu).await?;
            }
            Ok(())
        })
    })
    .await?;
    Ok(path)
}

/// Connects the namespace at `task_ns` to each of `attachments`' networks: `eth0`, `eth1`…
/// in the order given, each with the task's address, a MAC made from it and the MTU
/// `mtu` gives. Interfaces already there are kept, so this can run again after a daemon
/// restart.
pub async fn attach(
    root: &Path,
    task_ns: &Path,
    key: &str,
    attachments: &[Attachment],
    mtu: impl Fn(&Attachment) -> u32,
) -> Result<(), Error> {
    for (i, a) in attachments.iter().enumerate() {
        let mtu = mtu(a);
        let sandbox = ensure_sandbox(root, a, mtu).await?;
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
                links::veth(&h, &o, &n, mtu).await?;
                links::move_to(&h, &o, netns::raw(&sandbox_file), None).await?;
                links::move_to(&h, &n, netns::raw(&task_file), Some(&eth)).await
            })
        })
        .await?;
        netns::run_in(Some(sandbox), move |h| {
            Box::pin(async move { links::enslave(&h, &outer, BRIDGE).await.map(drop) })
        })
        .await?;
        let address = a.address;
        let name = format!("eth{i}");
        netns::run_in(Some(task), move |h| {
            Box::pin(async move {
                let index =
                    links::set_mac_up(&h, &name, links::mac_of(address.addr()), mtu).await?;
                links::add_address(&h, index, address).await
            })
        })
        .await?;
    }
    Ok(())
}

/// Gives network `peers.vni`'s sandbox the uplink its map asks for (VXLAN or QUIC, the
/// other taken away) and has it reach exactly `peers.nodes`. Nothing to do for a network
/// with no sandbox here yet.
pub async fn set_peers(root: &Path, tunnel: &Tunnel, peers: &Peers) -> Result<(), Error> {
    let path = sandbox_path(root, peers.vni);
    if !netns::exists(&path) {
        return Ok(());
    }
    let vni = peers.vni;
    if peers.quic {
        if !tunnel.has(vni) {
            netns::run_in(Some(path.clone()), move |h| {
                Box::pin(async move { links::remove(&h, &vxlan_name(vni)).await })
            })
            .await?;
            let tap = Tap::create_in(&path, &tap_name(vni)).await?;
            netns::run_in(Some(path), move |h| {
                Box::pin(async move {
                    // The longest frame either path's tasks send.
                    links::set_mtu(&h, &tap_name(vni), MTU).await?;
                    links::enslave(&h, &tap_name(vni), BRIDGE).await.map(drop)
                })
            })
            .await?;
            tunnel.add(vni, tap);
        }
        let nodes: Vec<_> = peers.nodes.iter().map(|p| (p.id.clone(), p.addr)).collect();
        tunnel.set_peers(vni, &nodes);
        return Ok(());
    }
    tunnel.remove(vni);
    let addrs: Vec<Ipv4Addr> = peers.nodes.iter().map(|p| p.addr).collect();
    // The usual case, a device already there: one trip into the namespace.
    let wanted = addrs.clone();
    let flooded = netns::run_in(Some(path.clone()), move |h| {
        Box::pin(async move {
            match links::index(&h, &vxlan_name(vni)).await? {
                Some(vx) => flood_exactly(&h, vx, &wanted).await.map(|()| true),
                None => Ok(false),
            }
        })
    })
    .await?;
    if flooded {
        return Ok(());
    }
    let file = netns::open(&path)?;
    netns::run_in(None, move |h| {
        Box::pin(
            async move { links::vxlan(&h, &vxlan_name(vni), vni, MTU, netns::raw(&file)).await },
        )
    })
    .await?;
    netns::run_in(Some(path), move |h| {
        Box::pin(async move {
            let vx = links::enslave(&h, &vxlan_name(vni), BRIDGE).await?;
            flood_exactly(&h, vx, &addrs).await
        })
    })
    .await
}

/// Makes VXLAN device `vx` flood to exactly `peers`.
async fn flood_exactly(h: &rtnetlink::Handle, vx: u32, peers: &[Ipv4Addr]) -> Result<(), Error> {
    let have = links::flood_list(h, vx).await?;
    for gone in have.iter().filter(|p| !peers.contains(p)) {
        links::flood_del(h, vx, *gone).await?;
    }
    for new in peers.iter().filter(|p| !have.contains(p)) {
        links::flood_add(h, vx, *new).await?;
    }
    Ok(())
}

pub fn tap_name(vni: u32) -> String {
    format!("tq-{vni}")
}

/// Whether this kernel makes VXLAN devices: tried in a namespace made for the purpose at
/// `scratch`, and taken down after. Raspberry Pi kernels have shipped without the module.
pub async fn kernel_has_vxlan(scratch: &Path) -> Result<bool, Error> {
    netns::create(scratch).await?;
    let made = netns::run_in(Some(scratch.to_path_buf()), |h| {
        Box::pin(async move { links::try_vxlan(&h, "vx-probe").await })
    })
    .await;
    netns::remove(scratch);
    made
}
