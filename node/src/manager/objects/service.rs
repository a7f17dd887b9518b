//! A service, as swarmkit's `Service`, its spec in the Engine API's shape (`ServiceSpec`),
//! so that what a client sends is what the store keeps and what `inspect` shows. Fields
//! covey does not act on are kept as sent (`extra`), so nothing a client set is lost.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::task::{Task, TaskState};
use super::update::{UpdateConfig, UpdatePolicy, UpdateStatus};
use crate::manager::store::{object, Kind, Meta};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Service {
    pub id: String,
    pub meta: Meta,
    pub spec: ServiceSpec,
    /// The spec before the last update, for `service rollback`.
    #[serde(default)]
    pub previous_spec: Option<ServiceSpec>,
    /// Changed by every change of what tasks run: tasks made from another are out of
    /// date. Never reused, so a rollback gets its earlier version back (its tasks that
    /// still run are up to date) and no later spec takes a version tasks already have.
    #[serde(default)]
    pub spec_version: u64,
    /// `previous_spec`'s version.
    #[serde(default)]
    pub previous_spec_version: Option<u64>,
    /// Where the last update or rollback stands; none before the first.
    #[serde(default)]
    pub update_status: Option<UpdateStatus>,
    /// What the allocator gave the service: its ports and virtual IPs.
    #[serde(default)]
    pub endpoint: Endpoint,
}

object!(Service, Kind::Service);

impl Service {
    /// The spec version after a change of the spec: a new one only if what tasks run
    /// changed (scaling replaces none). Above every version the service had: its store
    /// version is the Raft index of its last write, past any spec version given before.
    pub fn next_spec_version(&self, changed: bool) -> u64 {
        if changed {
            self.meta.version.max(self.spec_version) + 1
        } else {
            self.spec_version
        }
    }

    /// How many of the service's tasks run, should run and completed, as `service ls`
    /// counts them; `tasks` may hold other services' tasks.
    pub fn task_counts<'a>(&self, tasks: impl IntoIterator<Item = &'a Task>) -> TaskCounts {
        let mut counts = TaskCounts::default();
        let mut live = 0;
        for t in tasks.into_iter().filter(|t| t.service_id == self.id) {
            if t.status.state == TaskState::Running && t.desired_state == TaskState::Running {
                counts.running += 1;
            }
            if t.status.state == TaskState::Complete && t.spec_version == self.spec_version {
                counts.completed += 1;
            }
            if t.is_live() {
                live += 1;
            }
        }
        counts.desired = match &self.spec.mode {
            ServiceMode::Replicated { replicas } => *replicas as usize,
            ServiceMode::ReplicatedJob {
                max_concurrent,
                total_completions,
            } => total_completions.unwrap_or(*max_concurrent) as usize,
            // One per node that should run it: the tasks made for them.
            ServiceMode::Global {} | ServiceMode::GlobalJob {} => live,
        };
        counts
    }
}

/// The tasks whose state counts: not those on nodes that are Down, whose state is only
/// what the node last said (as dockerd counts a service's running tasks).
pub fn counted_tasks<'a>(tasks: &'a [Task], nodes: &[super::Node]) -> Vec<&'a Task> {
    let down: std::collections::HashSet<&str> = nodes
        .iter()
        .filter(|n| n.status.state == super::NodeState::Down)
        .map(|n| n.id.as_str())
        .collect();
    tasks
        .iter()
        .filter(|t| !down.contains(t.node_id.as_str()))
        .collect()
}

/// A service's tasks counted: see [`Service::task_counts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCounts {
    pub running: usize,
    pub desired: usize,
    pub completed: usize,
}

/// Nanoseconds, as the Engine API gives durations.
pub type Nanos = i64;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub task_template: TaskSpec,
    #[serde(default)]
    pub mode: ServiceMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_spec: Option<EndpointSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The Engine API's `EndpointSpec`: how the service is reached.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<EndpointMode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortConfig>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    /// One virtual IP per network, balanced over the tasks.
    #[default]
    Vip,
    /// DNS round robin: the name resolves to the tasks' own addresses.
    Dnsrr,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct PortConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default)]
    pub target_port: u32,
    /// 0 in a spec: the allocator picks one (ingress mode).
    #[serde(default)]
    pub published_port: u32,
    #[serde(default)]
    pub publish_mode: PublishMode,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    /// The routing mesh: every node answers on the published port.
    #[default]
    Ingress,
    /// Only the nodes running a task answer, on the task's own port.
    Host,
}

/// What the allocator gave a service (the Engine API's `Endpoint`, less its spec).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortConfig>,
    #[serde(default, rename = "VirtualIPs", skip_serializing_if = "Vec::is_empty")]
    pub virtual_ips: Vec<VirtualIp>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct VirtualIp {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    pub addr: ipnet::Ipv4Net,
}

impl ServiceSpec {
    /// How an update replaces tasks (`rollback`: a rollback, after `RollbackConfig`).
    pub fn update_policy(&self, rollback: bool) -> UpdatePolicy {
        let config = if rollback {
            &self.rollback_config
        } else {
            &self.update_config
        };
        UpdateConfig::policy(config.as_ref())
    }

    pub fn endpoint_mode(&self) -> EndpointMode {
        self.endpoint_spec
            .as_ref()
            .and_then(|e| e.mode)
            .unwrap_or_default()
    }

    pub fn ports(&self) -> &[PortConfig] {
        self.endpoint_spec.as_ref().map_or(&[], |e| &e.ports)
    }

    /// Whether the service is reached through the routing mesh, and so is on `ingress`.
    pub fn uses_ingress(&self) -> bool {
        self.ports()
            .iter()
            .any(|p| p.publish_mode == PublishMode::Ingress)
    }
}

/// What each task of a service runs: the Engine API's `TaskSpec`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct TaskSpec {
    #[serde(default)]
    pub container_spec: ContainerSpec,
    #[serde(default)]
    pub resources: TaskResources,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default)]
    pub placement: Placement,
    /// Changed by `service update --force` to replace tasks with an unchanged spec.
    #[serde(default)]
    pub force_update: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkAttachment>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSpec {
    #[serde(default)]
    pub image: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Replaces the image's entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<Nanos>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sysctls: Option<BTreeMap<String, String>>,
    #[serde(
        default,
        rename = "CapabilityAdd",
        skip_serializing_if = "Option::is_none"
    )]
    pub cap_add: Option<Vec<String>>,
    #[serde(
        default,
        rename = "CapabilityDrop",
        skip_serializing_if = "Option::is_none"
    )]
    pub cap_drop: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<ConfigReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The Engine API's `HealthConfig`: a command run in the container now and then.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", arg...]` or `["CMD-SHELL", command]`; empty: the image's.
    #[serde(default)]
    pub test: Vec<String>,
    #[serde(default)]
    pub interval: Nanos,
    #[serde(default)]
    pub timeout: Nanos,
    #[serde(default)]
    pub start_period: Nanos,
    #[serde(default)]
    pub retries: u64,
}

/// The Engine API's `ConfigReference`: a config given to the task as a file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigReference {
    #[serde(default, rename = "ConfigID")]
    pub config_id: String,
    #[serde(default)]
    pub config_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<ConfigFile>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The Engine API's `SecretReference`: a secret given to the task as a file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SecretReference {
    #[serde(default, rename = "SecretID")]
    pub secret_id: String,
    #[serde(default)]
    pub secret_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<ConfigFile>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What config and secret references share, so that one piece of code resolves both.
pub trait FileReference {
    /// The object's id and name, and how it is given as a file.
    fn parts(&mut self) -> (&mut String, &mut String, &mut Option<ConfigFile>);
    fn id(&self) -> &str;
    fn file(&self) -> &Option<ConfigFile>;
}

impl FileReference for ConfigReference {
    fn parts(&mut self) -> (&mut String, &mut String, &mut Option<ConfigFile>) {
        (&mut self.config_id, &mut self.config_name, &mut self.file)
    }
    fn id(&self) -> &str {
        &self.config_id
    }
    fn file(&self) -> &Option<ConfigFile> {
        &self.file
    }
}

impl FileReference for SecretReference {
    fn parts(&mut self) -> (&mut String, &mut String, &mut Option<ConfigFile>) {
        (&mut self.secret_id, &mut self.secret_name, &mut self.file)
    }
    fn id(&self) -> &str {
        &self.secret_id
    }
    fn file(&self) -> &Option<ConfigFile> {
        &self.file
    }
}

/// How a config or secret is a file in the container (`Name`: its path there).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigFile {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "UID")]
    pub uid: String,
    #[serde(default, rename = "GID")]
    pub gid: String,
    #[serde(default)]
    pub mode: u32,
}

/// The Engine API's `Mount` for services.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct MountSpec {
    #[serde(default, rename = "Type")]
    pub kind: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkAttachment {
    #[serde(default)]
    pub target: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct TaskResources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Reservations>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Limits {
    #[serde(default, rename = "NanoCPUs")]
    pub nano_cpus: i64,
    #[serde(default)]
    pub memory_bytes: i64,
    #[serde(default)]
    pub pids: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Reservations {
    #[serde(default, rename = "NanoCPUs")]
    pub nano_cpus: i64,
    #[serde(default)]
    pub memory_bytes: i64,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RestartCondition {
    None,
    OnFailure,
    #[default]
    Any,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    #[serde(default)]
    pub condition: Option<RestartCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Nanos>,
    /// 0: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u64>,
    /// 0: attempts are counted over the task's whole life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Nanos>,
}

/// Swarm's default restart delay.
pub const DEFAULT_RESTART_DELAY: Nanos = 5_000_000_000;

impl TaskSpec {
    pub fn restart_condition(&self) -> RestartCondition {
        self.restart_policy
            .as_ref()
            .and_then(|p| p.condition)
            .unwrap_or_default()
    }

    pub fn restart_delay(&self) -> std::time::Duration {
        let nanos = self
            .restart_policy
            .as_ref()
            .and_then(|p| p.delay)
            .unwrap_or(DEFAULT_RESTART_DELAY);
        std::time::Duration::from_nanos(nanos.max(0) as u64)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferences: Vec<PlacementPreference>,
    /// 0: no limit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_replicas: u64,
    /// The platforms the image offers; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<Platform>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PlacementPreference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<SpreadOver>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SpreadOver {
    #[serde(default)]
    pub spread_descriptor: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default, rename = "OS")]
    pub os: String,
}

/// The Engine API's `Mode`: exactly one of its members is set.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum ServiceMode {
    Replicated {
        #[serde(rename = "Replicas", default = "one")]
        replicas: u64,
    },
    Global {},
    ReplicatedJob {
        #[serde(rename = "MaxConcurrent", default = "one")]
        max_concurrent: u64,
        #[serde(rename = "TotalCompletions", default)]
        total_completions: Option<u64>,
    },
    GlobalJob {},
}

fn one() -> u64 {
    1
}

impl Default for ServiceMode {
    fn default() -> Self {
        ServiceMode::Replicated { replicas: 1 }
    }
}

impl ServiceMode {
    pub fn is_job(&self) -> bool {
        matches!(
            self,
            ServiceMode::ReplicatedJob { .. } | ServiceMode::GlobalJob {}
        )
    }

    pub fn is_global(&self) -> bool {
        matches!(self, ServiceMode::Global {} | ServiceMode::GlobalJob {})
    }

    /// As `service ls` prints it.
    pub fn name(&self) -> &'static str {
        match self {
            ServiceMode::Replicated { .. } => "replicated",
            ServiceMode::Global {} => "global",
            ServiceMode::ReplicatedJob { .. } => "replicated job",
            ServiceMode::GlobalJob {} => "global job",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_keeps_what_covey_does_not_read() {
        let sent = serde_json::json!({
            "Name": "web",
            "TaskTemplate": {
                "ContainerSpec": {"Image": "busybox", "Args": ["sleep", "1d"], "Init": true},
                "RestartPolicy": {"Condition": "on-failure", "MaxAttempts": 3},
                "Placement": {"Constraints": ["node.role==worker"]},
                "LogDriver": {"Name": "json-file"}
            },
            "Mode": {"Replicated": {"Replicas": 3}},
            "EndpointSpec": {"Mode": "vip"}
        });
        let spec: ServiceSpec = serde_json::from_value(sent.clone()).unwrap();
        assert_eq!(spec.mode, ServiceMode::Replicated { replicas: 3 });
        assert_eq!(
            spec.task_template.restart_condition(),
            RestartCondition::OnFailure
        );
        assert_eq!(spec.task_template.container_spec.extra["Init"], true);
        let back = serde_json::to_value(&spec).unwrap();
        assert_eq!(back["EndpointSpec"], sent["EndpointSpec"]);
        assert_eq!(
            back["TaskTemplate"]["LogDriver"],
            sent["TaskTemplate"]["LogDriver"]
        );
        assert_eq!(back["Mode"], sent["Mode"]);
    }

    #[test]
    fn modes_parse_as_the_engine_api_sends_them() {
        let global: ServiceMode = serde_json::from_str(r#"{"Global":{}}"#).unwrap();
        assert!(global.is_global());
        let job: ServiceMode =
            serde_json::from_str(r#"{"ReplicatedJob":{"MaxConcurrent":2,"TotalCompletions":5}}"#)
                .unwrap();
        assert_eq!(
            job,
            ServiceMode::ReplicatedJob {
                max_concurrent: 2,
                total_completions: Some(5)
            }
        );
        assert!(serde_json::from_str::<ServiceMode>(r#"{"Sideways":{}}"#).is_err());
    }
}
