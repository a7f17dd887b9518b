//! The netlink calls the data plane makes (rtnetlink), each on the namespace its handle
//! was opened in (see `netns::run_in`).

use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt as _;
use ipnet::Ipv4Net;
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, LinkVxlan};

use super::Error;

fn nl(what: String) -> impl FnOnce(rtnetlink::Error) -> Error {
    move |e| Error::Netlink(format!("{what}: {e}"))
}

/// The index of the interface called `name`, if there is one.
pub async fn index(handle: &Handle, name: &str) -> Result<Option<u32>, Error> {
    let mut links = handle.link().get().match_name(name).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(Some(link.header.index)),
        Ok(None) => Ok(None),
        // ENODEV: no such interface.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(nl(format!("looking up {name}"))(e)),
    }
}

async fn must_index(handle: &Handle, name: &str) -> Result<u32, Error> {
    index(handle, name)
        .await?
        .ok_or_else(|| Error::Netlink(format!("no interface {name}")))
}

pub async fn up(handle: &Handle, name: &str) -> Result<(), Error> {
    let i = must_index(handle, name).await?;
    handle
        .link()
        .set(LinkUnspec::new_with_index(i).up().build())
        .execute()
        .await
        .map_err(nl(format!("bringing {name} up")))
}

/// A bridge with `address` on it, up.
pub async fn bridge(handle: &Handle, name: &str, address: Ipv4Net, mtu: u32) -> Result<(), Error> {
    handle
        .link()
        .add(LinkBridge::new(name).mtu(mtu).up().build())
        .execute()
        .await
        .map_err(nl(format!("making bridge {name}")))?;
    let i = must_index(handle, name).await?;
    add_address(handle, i, address).await
}

pub async fn add_address(handle: &Handle, index: u32, address: Ipv4Net) -> Result<(), Error> {
    match handle
        .address()
        .add(index, IpAddr::V4(address.addr()), address.prefix_len())
        .execute()
        .await
    {
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
        other => other.map_err(nl(format!("adding address {address}"))),
    }
}

/// Removes the interface called `name`, if there is one.
pub async fn remove(handle: &Handle, name: &str) -> Result<(), Error> {
    match index(handle, name).await? {
        Some(i) => del(handle, i).await,
        None => Ok(()),
    }
}

/// A VXLAN device for `vni` on UDP 4789, learning remote addresses, moved into the
/// namespace open as `into` (it keeps its socket in this one, the underlay's).
pub async fn vxlan(
    handle: &Handle,
    name: &str,
    vni: u32,
    mtu: u32,
    into: i32,
) -> Result<(), Error> {
    remove(handle, name).await?;
    handle
        .link()
        .add(
            LinkVxlan::new(name, vni)
                .port(4789)
                .learning(true)
                .mtu(mtu)
                .build(),
        )
        .execute()
        .await
        .map_err(nl(format!("making VXLAN {name}")))?;
    move_to(handle, name, into, None).await
}

/// Whether a VXLAN device can be made here: makes one called `name` and removes it. Only
/// "not supported" (no module) says no; other errors are errors.
pub async fn try_vxlan(handle: &Handle, name: &str) -> Result<bool, Error> {
    let made = handle
        .link()
        .add(LinkVxlan::new(name, 1).port(4789).build())
        .execute()
        .await;
    match made {
        Ok(()) => {
            remove(handle, name).await?;
            Ok(true)
        }
        Err(rtnetlink::Error::NetlinkError(e))
            if [-libc::EOPNOTSUPP, -libc::EPROTONOSUPPORT].contains(&e.raw_code()) =>
        {
            Ok(false)
        }
        Err(e) => Err(nl(format!("making VXLAN {name}"))(e)),
    }
}

/// Sets `name`'s MTU.
pub async fn set_mtu(handle: &Handle, name: &str, mtu: u32) -> Result<(), Error> {
    let i = must_index(handle, name).await?;
    handle
        .link()
        .set(LinkUnspec::new_with_index(i).mtu(mtu).build())
        .execute()
        .await
        .map_err(nl(format!("setting {name}'s MTU")))
}

/// A veth pair `a` <-> `b`.
pub async fn veth(handle: &Handle, a: &str, b: &str, mtu: u32) -> Result<(), Error> {
    for stale in [a, b] {
        remove(handle, stale).await?;
    }
    handle
        .link()
        .add(LinkVeth::new(a, b).mtu(mtu).build())
        .execute()
        .await
        .map_err(nl(format!("making veth {a}")))
}

/// Moves `name` into the namespace open as `into`, renamed to `rename` if given.
pub async fn move_to(
    handle: &Handle,
    name: &str,
    into: i32,
    rename: Option<&str>,
) -> Result<(), Error> {
    let i = must_index(handle, name).await?;
    let mut msg = LinkUnspec::new_with_index(i).setns_by_fd(into);
    if let Some(r) = rename {
        msg = msg.name(r);
    }
    handle
        .link()
        .set(msg.build())
        .execute()
        .await
        .map_err(nl(format!("moving {name}")))
}

/// Puts `name` on bridge `bridge` and brings it up: its index.
pub async fn enslave(handle: &Handle, name: &str, bridge: &str) -> Result<u32, Error> {
    let i = must_index(handle, name).await?;
    let b = must_index(handle, bridge).await?;
    handle
        .link()
        .set(LinkUnspec::new_with_index(i).controller(b).up().build())
        .execute()
        .await
        .map_err(nl(format!("putting {name} on {bridge}")))?;
    Ok(i)
}

/// Sets `name`'s MAC address and MTU, and brings it up.
pub async fn set_mac_up(handle: &Handle, name: &str, mac: [u8; 6], mtu: u32) -> Result<u32, Error> {
    let i = must_index(handle, name).await?;
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(i)
                .address(mac.to_vec())
                .mtu(mtu)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(nl(format!("setting up {name}")))?;
    Ok(i)
}

pub async fn del(handle: &Handle, index: u32) -> Result<(), Error> {
    handle
        .link()
        .del(index)
        .execute()
        .await
        .map_err(nl(format!("removing interface {index}")))
}

/// Docker's MAC for an address: 02:42 and the address' four bytes, so that a task's MAC
/// never collides on its network.
pub fn mac_of(addr: Ipv4Addr) -> [u8; 6] {
    let o = addr.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// The remote ends a VXLAN device floods to (its all-zeros forwarding entries).
pub async fn flood_list(handle: &Handle, vxlan: u32) -> Result<Vec<Ipv4Addr>, Error> {
    let mut req = handle.neighbours().get();
    req = req.set_address_family(AddressFamily::Bridge);
    let mut entries = req.execute();
    let mut out = Vec::new();
    while let Some(entry) = entries
        .try_next()
        .await
        .map_err(nl("listing forwarding entries".into()))?
    {
        if entry.header.ifindex != vxlan {
            continue;
        }
        let zero = entry.attributes.iter().any(
            |a| matches!(a, NeighbourAttribute::LinkLayerAddress(m) if m.iter().all(|b| *b == 0)),
        );
        let dst = entry.attributes.iter().find_map(|a| match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
            _ => None,
        });
        if let (true, Some(dst)) = (zero, dst) {
            out.push(dst);
        }
    }
    Ok(out)
}

fn flood_entry(vxlan: u32, remote: Ipv4Addr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = vxlan;
    msg.header.state = NeighbourState::Permanent;
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(vec![0; 6]));
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
            remote,
        )));
    msg
}

/// Adds `remote` to the ends a VXLAN device floods to (`bridge fdb append 00:00:00:00:00:00
/// dev VX dst REMOTE`): broadcasts and unknown destinations go to every peer node.
pub async fn flood_add(handle: &Handle, vxlan: u32, remote: Ipv4Addr) -> Result<(), Error> {
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewNeighbour(flood_entry(
        vxlan, remote,
    )));
    // Append, which rtnetlink's builder does not offer: several entries share the zero MAC.
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND;
    let mut handle = handle.clone();
    let mut answers = handle
        .request(req)
        .map_err(nl(format!("adding peer {remote}")))?;
    while let Some(msg) = futures_util::StreamExt::next(&mut answers).await {
        if let NetlinkPayload::Error(e) = msg.payload {
            if e.raw_code() != -libc::EEXIST {
                return Err(Error::Netlink(format!("adding peer {remote}: {e}")));
            }
        }
    }
    Ok(())
}

pub async fn flood_del(handle: &Handle, vxlan: u32, remote: Ipv4Addr) -> Result<(), Error> {
    handle
        .neighbours()
        .del(flood_entry(vxlan, remote))
        .execute()
        .await
        .map_err(nl(format!("removing peer {remote}")))
}
