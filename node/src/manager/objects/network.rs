//! A network, as swarmkit's `Network`: its spec in the Engine API's shape, and what the
//! leader's allocator gave it (a VXLAN id, a subnet and a gateway).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::manager::store::{object, Kind, Meta};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub meta: Meta,
    pub spec: NetworkSpec,
    /// Set by the allocator on the leader; none until it has run.
    #[serde(default)]
    pub allocation: Option<NetworkAllocation>,
}

object!(Network, Kind::Network);

/// The overlay driver's option that asks for encrypted traffic between nodes.
pub const OPT_ENCRYPTED: &str = "encrypted";

/// The Engine API's `NetworkCreateRequest`, less what only a request carries.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub driver: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
    #[serde(default, rename = "IPAM", deserialize_with = "null_as_default")]
    pub ipam: Ipam,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub ingress: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    #[serde(default, deserialize_with = "null_as_default")]
    pub driver: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub config: Vec<IpamConfig>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
}

/// The docker CLI sends `null` for what it leaves out (`"IPAM": null` from `stack
/// deploy`): the same as absent.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subnet: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(default, rename = "IPRange", skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAllocation {
    /// The VXLAN network identifier, unique in the cluster.
    pub vni: u32,
    /// `10.0.1.0/24`.
    pub subnet: ipnet::Ipv4Net,
    pub gateway: std::net::Ipv4Addr,
}

/// Swarm's routing-mesh network, made by `swarm init`.
pub const INGRESS: &str = "ingress";

impl Network {
    pub fn ingress(id: String) -> Network {
        Network {
            id,
            meta: Meta::default(),
            spec: NetworkSpec {
                name: INGRESS.into(),
                driver: "overlay".into(),
                ipam: Ipam {
                    driver: "default".into(),
                    config: vec![IpamConfig {
                        subnet: "10.0.0.0/24".into(),
                        gateway: "10.0.0.1".into(),
                        ip_range: String::new(),
                    }],
                    options: BTreeMap::new(),
                },
                ingress: true,
                ..Default::default()
            },
            allocation: None,
        }
    }

    pub fn encrypted(&self) -> bool {
        self.spec.options.contains_key(OPT_ENCRYPTED)
    }
}

/// What a task or a node needs to know of a network it is attached to: a copy, so that an
/// agent can bring its tasks back after a reboot with no manager to ask.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Attachment {
    pub network_id: String,
    pub name: String,
    pub vni: u32,
    pub subnet: ipnet::Ipv4Net,
    pub gateway: std::net::Ipv4Addr,
    #[serde(default)]
    pub ingress: bool,
    #[serde(default)]
    pub encrypted: bool,
    /// The attached task's (or node's) address on this network, with the subnet's prefix.
    pub address: ipnet::Ipv4Net,
    /// The names it is also known by on this network (`--network name=n,alias=a`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_docker_cli_leaves_null_is_absent() {
        // As `docker stack deploy` creates a stack's default network.
        let sent = r#"{"Name":"demo_default","Driver":"overlay","Scope":"swarm","IPAM":null,"Options":null,"Labels":{"com.docker.stack.namespace":"demo"}}"#;
        let spec: NetworkSpec = serde_json::from_str(sent).unwrap();
        assert_eq!(spec.ipam, Ipam::default());
        assert!(spec.options.is_empty());
        assert_eq!(spec.labels["com.docker.stack.namespace"], "demo");
        assert_eq!(spec.extra["Scope"], "swarm");
    }
}
