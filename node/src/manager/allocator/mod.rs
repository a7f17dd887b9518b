//! The allocator, on the leader, after swarmkit's `manager/allocator`: it gives networks
//! their VXLAN id, subnet and gateway, services their virtual IPs and published ports,
//! nodes their address on `ingress`, and new tasks their addresses, and then hands the
//! tasks to the scheduler (`new` → `pending`). It runs between the orchestrators, which
//! make tasks, and the scheduler, which only places tasks the allocator has let through.

mod ipam;
mod ports;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};

use ipnet::Ipv4Net;

use super::objects::network::{Attachment, NetworkAllocation};
use super::objects::service::{Endpoint, EndpointMode, PublishMode, VirtualIp};
use super::objects::{Network, Node, Service, Task, TaskState, TaskStatus};
use super::store::{now_secs, Action, Error, Store};

pub use ipam::overlaps;
pub use ports::Ports;

/// What one round changes.
#[derive(Default)]
pub struct Plan {
    pub networks: Vec<Network>,
    pub services: Vec<Service>,
    pub nodes: Vec<Node>,
    pub tasks: Vec<Task>,
}

pub async fn round(store: &Store) -> Result<(), Error> {
    let plan = plan(
        store.list::<Network>()?,
        store.list::<Service>()?,
        store.list::<Node>()?,
        &store.list::<Task>()?,
    );
    // Nodes apart: their status is written by the dispatcher too, and a refused stale
    // node update must not hold back the tasks.
    let mut actions = Vec::new();
    for n in &plan.networks {
        actions.push(Action::update(n)?);
    }
    for s in &plan.services {
        actions.push(Action::update(s)?);
    }
    for t in &plan.tasks {
        actions.push(Action::update(t)?);
    }
    super::propose_chunked(store, actions).await?;
    let nodes = plan
        .nodes
        .iter()
        .map(Action::update)
        .collect::<Result<Vec<_>, _>>()?;
    super::propose_chunked(store, nodes).await
}

/// The round's decisions from the store's objects.
pub fn plan(
    mut networks: Vec<Network>,
    services: Vec<Service>,
    nodes: Vec<Node>,
    tasks: &[Task],
) -> Plan {
    let mut out = Plan::default();
    networks.sort_by_key(|n| (n.meta.created_at, n.meta.version));
    allocate_networks(&mut networks, &mut out);
    let networks: HashMap<String, Network> =
        networks.into_iter().map(|n| (n.id.clone(), n)).collect();
    let ingress = networks
        .values()
        .find(|n| n.spec.ingress)
        .map(|n| n.id.clone());

    // What is in use: gateways, virtual IPs, node attachments and live tasks' addresses.
    let mut spaces: HashMap<&str, ipam::Space> = HashMap::new();
    for n in networks.values() {
        if let Some(a) = &n.allocation {
            let mut space = ipam::Space::new(a.subnet);
            space.reserve(a.gateway);
            spaces.insert(n.id.as_str(), space);
        }
    }
    let mut reserve = |network: &str, addr: &Ipv4Net| {
        if let Some(space) = spaces.get_mut(network) {
            space.reserve(addr.addr());
        }
    };
    for s in &services {
        for vip in &s.endpoint.virtual_ips {
            reserve(&vip.network_id, &vip.addr);
        }
    }
    for n in &nodes {
        for a in &n.attachments {
            reserve(&a.network_id, &a.address);
        }
    }
    for t in tasks.iter().filter(|t| !t.status.state.is_terminal()) {
        for a in &t.networks {
            reserve(&a.network_id, &a.address);
        }
    }

    let mut ports = Ports::default();
    for s in &services {
        ports.reserve(&s.spec.name, &s.endpoint.ports);
    }
    let mut endpoints: HashMap<String, Endpoint> = HashMap::new();
    for mut service in services {
        let wanted = service_networks(&service, ingress.as_deref());
        let mut endpoint = Endpoint {
            ports: match ports.allocate(
                &service.spec.name,
                service.spec.ports(),
                &service.endpoint.ports,
            ) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("allocator: service {}: {e}", service.spec.name);
                    service.endpoint.ports.clone()
                }
            },
            virtual_ips: Vec::new(),
        };
        if service.spec.endpoint_mode() == EndpointMode::Vip {
            for network in wanted.iter().filter(|n| networks.contains_key(*n)) {
                let kept = service
                    .endpoint
                    .virtual_ips
                    .iter()
                    .find(|v| &v.network_id == network)
                    .map(|v| v.addr);
                let addr = kept.or_else(|| spaces.get_mut(network.as_str())?.allocate());
                if let Some(addr) = addr {
                    endpoint.virtual_ips.push(VirtualIp {
                        network_id: network.clone(),
                        addr,
                    });
                }
            }
        }
        if endpoint != service.endpoint {
            service.endpoint = endpoint;
            out.services.push(service.clone());
        }
        endpoints.insert(service.id.clone(), service.endpoint.clone());
    }

    if let Some(ingress) = ingress.as_ref().and_then(|id| networks.get(id)) {
        for mut node in nodes {
            if node.attachments.iter().any(|a| a.network_id == ingress.id) {
                continue;
            }
            let Some(address) = spaces
                .get_mut(ingress.id.as_str())
                .and_then(|s| s.allocate())
            else {
                continue;
            };
            if let Some(a) = attachment(ingress, address, Vec::new()) {
                node.attachments.push(a);
                out.nodes.push(node);
            }
        }
    }

    for task in tasks {
        if task.status.state != TaskState::New || task.desired_state > TaskState::Running {
            continue;
        }
        let Some(endpoint) = endpoints.get(&task.service_id) else {
            continue;
        };
        let mut wanted: Vec<(String, Vec<String>)> = task
            .spec
            .networks
            .iter()
            .filter(|n| networks.contains_key(&n.target))
            .map(|n| (n.target.clone(), n.aliases.clone()))
            .collect();
        if let Some(ingress) = &ingress {
            if endpoint
                .ports
                .iter()
                .any(|p| p.publish_mode == PublishMode::Ingress)
                && !wanted.iter().any(|(n, _)| n == ingress)
            {
                wanted.push((ingress.clone(), Vec::new()));
            }
        }
        let count = wanted.len();
        let mut attached = Vec::new();
        for (id, aliases) in wanted {
            let network = &networks[&id];
            let Some(address) = spaces.get_mut(id.as_str()).and_then(|s| s.allocate()) else {
                break;
            };
            match attachment(network, address, aliases) {
                Some(a) => attached.push(a),
                None => break,
            }
        }
        if attached.len() < count {
            // A network not yet allocated, or full: the task waits, holding nothing.
            for a in &attached {
                if let Some(space) = spaces.get_mut(a.network_id.as_str()) {
                    space.release(a.address.addr());
                }
            }
            continue;
        }
        let mut task = task.clone();
        task.networks = attached;
        task.endpoint = endpoint.clone();
        task.status = TaskStatus {
            state: TaskState::Pending,
            timestamp: now_secs(),
            message: "pending task scheduling".into(),
            ..Default::default()
        };
        out.tasks.push(task);
    }
    out
}

/// The networks a service's tasks join: those its spec names, and `ingress` when it
/// publishes a port through the routing mesh.
fn service_networks(service: &Service, ingress: Option<&str>) -> Vec<String> {
    let mut ids: Vec<String> = service
        .spec
        .task_template
        .networks
        .iter()
        .map(|n| n.target.clone())
        .collect();
    if let Some(ingress) = ingress {
        if service.spec.uses_ingress() && !ids.iter().any(|n| n == ingress) {
            ids.push(ingress.to_string());
        }
    }
    ids
}

fn attachment(network: &Network, address: Ipv4Net, aliases: Vec<String>) -> Option<Attachment> {
    let a = network.allocation.as_ref()?;
    Some(Attachment {
        network_id: network.id.clone(),
        name: network.spec.name.clone(),
        vni: a.vni,
        subnet: a.subnet,
        gateway: a.gateway,
        ingress: network.spec.ingress,
        encrypted: network.encrypted(),
        address,
        aliases,
    })
}

/// Gives each network not yet allocated its VXLAN id, subnet and gateway: those it asked
/// for (the API refused overlaps), or the next free ones.
fn allocate_networks(networks: &mut [Network], out: &mut Plan) {
    let mut vnis: BTreeSet<u32> = BTreeSet::new();
    let mut subnets: Vec<Ipv4Net> = Vec::new();
    for n in networks.iter() {
        if let Some(a) = &n.allocation {
            vnis.insert(a.vni);
            subnets.push(a.subnet);
        }
    }
    // Subnets asked for are kept from the pool even before their network is allocated.
    for n in networks.iter().filter(|n| n.allocation.is_none()) {
        if let Some(s) = requested_subnet(n) {
            subnets.push(s);
        }
    }
    let pool: Ipv4Net = ipam::DEFAULT_POOL.parse().expect("a valid pool");
    for network in networks.iter_mut().filter(|n| n.allocation.is_none()) {
        let subnet = match requested_subnet(network) {
            Some(s) => s,
            None => match ipam::free_subnet(pool, ipam::DEFAULT_SUBNET_LEN, &subnets) {
                Some(s) => s,
                None => {
                    tracing::warn!("allocator: no free subnet left for {}", network.spec.name);
                    continue;
                }
            },
        };
        let gateway = network
            .spec
            .ipam
            .config
            .first()
            .and_then(|c| c.gateway.parse().ok())
            .or_else(|| ipam::default_gateway(subnet));
        let (Some(gateway), Some(vni)) = (gateway, ipam::free_vni(&vnis)) else {
            tracing::warn!("allocator: nothing left to allocate {}", network.spec.name);
            continue;
        };
        vnis.insert(vni);
        subnets.push(subnet);
        network.allocation = Some(NetworkAllocation {
            vni,
            subnet,
            gateway,
        });
        out.networks.push(network.clone());
    }
}

/// The subnet a network's spec asks for, if any (validated when it was created).
pub fn requested_subnet(network: &Network) -> Option<Ipv4Net> {
    network
        .spec
        .ipam
        .config
        .first()
        .and_then(|c| c.subnet.parse::<Ipv4Net>().ok())
        .map(|s| s.trunc())
}
