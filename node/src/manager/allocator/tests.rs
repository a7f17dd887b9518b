use super::*;
use crate::manager::objects::network::{Ipam, IpamConfig, NetworkSpec};
use crate::manager::objects::service::{EndpointSpec, NetworkAttachment, PortConfig};
use crate::manager::objects::{ServiceSpec, TaskSpec};
use crate::manager::store::Meta;

fn overlay(id: &str, subnet: &str) -> Network {
    Network {
        id: id.into(),
        meta: Meta::default(),
        spec: NetworkSpec {
            name: format!("net-{id}"),
            driver: "overlay".into(),
            ipam: Ipam {
                config: if subnet.is_empty() {
                    Vec::new()
                } else {
                    vec![IpamConfig {
                        subnet: subnet.into(),
                        ..Default::default()
                    }]
                },
                ..Default::default()
            },
            ..Default::default()
        },
        allocation: None,
    }
}

fn service(id: &str, networks: &[&str], ports: &[(u32, u32)]) -> Service {
    Service {
        id: id.into(),
        meta: Meta::default(),
        spec: ServiceSpec {
            name: id.into(),
            task_template: TaskSpec {
                networks: networks
                    .iter()
                    .map(|n| NetworkAttachment {
                        target: n.to_string(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
            endpoint_spec: Some(EndpointSpec {
                mode: None,
                ports: ports
                    .iter()
                    .map(|(target, published)| PortConfig {
                        target_port: *target,
                        published_port: *published,
                        ..Default::default()
                    })
                    .collect(),
            }),
            ..Default::default()
        },
        previous_spec: None,
        previous_spec_version: None,
        update_status: None,
        spec_version: 1,
        endpoint: Endpoint::default(),
    }
}

fn task(id: &str, service: &Service) -> Task {
    let mut t = crate::manager::orchestrator::new_task(service, 1, "");
    t.id = id.into();
    t
}

/// Applies a plan's updates to the objects, as the store would.
fn apply(plan: &Plan, networks: &mut [Network], services: &mut [Service], tasks: &mut [Task]) {
    for n in &plan.networks {
        if let Some(old) = networks.iter_mut().find(|o| o.id == n.id) {
            *old = n.clone();
        }
    }
    for s in &plan.services {
        if let Some(old) = services.iter_mut().find(|o| o.id == s.id) {
            *old = s.clone();
        }
    }
    for t in &plan.tasks {
        if let Some(old) = tasks.iter_mut().find(|o| o.id == t.id) {
            *old = t.clone();
        }
    }
}

#[test]
fn networks_services_and_tasks_get_distinct_addresses() {
    let mut networks = vec![
        Network::ingress("ing".into()),
        overlay("a", ""),
        overlay("b", "10.20.0.0/16"),
    ];
    let web = service("web", &["a"], &[(80, 8080)]);
    let db = service("db", &["a", "b"], &[]);
    let mut services = vec![web.clone(), db.clone()];
    let mut tasks = vec![task("t1", &web), task("t2", &web), task("t3", &db)];
    let mut nodes = vec![Node::for_tests("n1")];

    // Networks first; services and tasks wait for them within the same round.
    let plan = plan(networks.clone(), services.clone(), nodes.clone(), &tasks);
    apply(&plan, &mut networks, &mut services, &mut tasks);
    let alloc = |id: &str| {
        networks
            .iter()
            .find(|n| n.id == id)
            .unwrap()
            .allocation
            .clone()
            .unwrap()
    };
    assert_eq!(alloc("ing").subnet.to_string(), "10.0.0.0/24");
    assert_eq!(alloc("ing").gateway.to_string(), "10.0.0.1");
    assert_eq!(alloc("a").subnet.to_string(), "10.0.1.0/24");
    assert_eq!(alloc("b").subnet.to_string(), "10.20.0.0/16");
    let vnis: BTreeSet<u32> = ["ing", "a", "b"].iter().map(|n| alloc(n).vni).collect();
    assert_eq!(vnis.len(), 3);

    // The web service is on its network and on ingress, with a VIP on each.
    let web = services.iter().find(|s| s.id == "web").unwrap();
    let vips: Vec<String> = web
        .endpoint
        .virtual_ips
        .iter()
        .map(|v| v.network_id.clone())
        .collect();
    assert_eq!(vips, ["a", "ing"]);
    assert_eq!(web.endpoint.ports[0].published_port, 8080);
    let db = services.iter().find(|s| s.id == "db").unwrap();
    assert_eq!(db.endpoint.virtual_ips.len(), 2);

    // Every task is pending, with one address per network, none shared.
    let mut seen = std::collections::HashSet::new();
    for t in &tasks {
        assert_eq!(t.status.state, TaskState::Pending, "{}", t.id);
        for a in &t.networks {
            assert!(seen.insert(a.address.addr()), "{} shared", a.address);
            assert!(a.subnet.contains(&a.address.addr()));
            assert_ne!(a.address.addr(), a.gateway);
        }
    }
    let t1: Vec<&str> = tasks[0].networks.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(t1, ["net-a", "ingress"]);
    assert_eq!(tasks[2].networks.len(), 2);
    for s in &services {
        for v in &s.endpoint.virtual_ips {
            assert!(seen.insert(v.addr.addr()), "VIP {} shared", v.addr);
        }
    }
    // The node has its end of the routing mesh.
    nodes = plan.nodes.clone();
    assert_eq!(nodes[0].attachments[0].network_id, "ing");
    assert!(seen.insert(nodes[0].attachments[0].address.addr()));

    // A second round changes nothing.
    let again = super::plan(networks, services, nodes, &tasks);
    assert!(again.networks.is_empty() && again.services.is_empty() && again.tasks.is_empty());
    assert!(again.nodes.is_empty());
}

#[test]
fn addresses_of_ended_tasks_are_given_again() {
    let mut networks = vec![overlay("a", "10.1.0.0/29")];
    networks[0].allocation = Some(NetworkAllocation {
        vni: 4097,
        subnet: "10.1.0.0/29".parse().unwrap(),
        gateway: "10.1.0.1".parse().unwrap(),
    });
    let mut svc = service("s", &["a"], &[]);
    svc.spec.endpoint_spec = Some(EndpointSpec {
        mode: Some(EndpointMode::Dnsrr),
        ports: Vec::new(),
    });
    // A /29 has five addresses after the gateway.
    let mut tasks: Vec<Task> = (0..6).map(|i| task(&format!("t{i}"), &svc)).collect();
    let plan = plan(networks.clone(), vec![svc.clone()], Vec::new(), &tasks);
    assert_eq!(plan.tasks.len(), 5, "the sixth waits for an address");
    assert!(plan.services.is_empty(), "dnsrr: no VIP");
    for t in &plan.tasks {
        let i = tasks.iter().position(|o| o.id == t.id).unwrap();
        tasks[i] = t.clone();
    }
    // One ends: the waiting task gets its address.
    tasks[0].status.state = TaskState::Failed;
    let freed = tasks[0].networks[0].address;
    let plan = super::plan(networks, vec![svc], Vec::new(), &tasks);
    assert_eq!(plan.tasks.len(), 1);
    assert_eq!(plan.tasks[0].id, "t5");
    assert_eq!(plan.tasks[0].networks[0].address, freed);
}

#[test]
fn a_taken_port_is_not_given_twice() {
    let a = service("a", &[], &[(80, 8080)]);
    let b = service("b", &[], &[(81, 8080), (82, 0)]);
    let plan = plan(
        vec![Network::ingress("ing".into())],
        vec![a, b],
        Vec::new(),
        &[],
    );
    let ports = |id: &str| {
        plan.services
            .iter()
            .find(|s| s.id == id)
            .map(|s| {
                s.endpoint
                    .ports
                    .iter()
                    .map(|p| p.published_port)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    assert_eq!(ports("a"), [8080]);
    // b's spec could not be allocated: it keeps what it had (nothing), and says why.
    assert!(ports("b").is_empty());
}
