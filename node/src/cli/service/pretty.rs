//! `service inspect --pretty`: docker's human form of a service (its
//! `serviceInspectPrettyTemplate`, less what covey has no part of: secrets, configs,
//! health checks).

use std::fmt::Write;

use serde_json::Value;

use super::spec::strings;
use crate::units::bytes_size;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// NanoCPUs as docker's template prints a float: `0.5`, `2`.
fn cpus(n: i64) -> String {
    format!("{}", n as f64 / 1e9)
}

/// A Go slice as a template prints it: `[a b]`.
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// How long ago an API time was, as go-units' `HumanDuration`.
fn since(v: &Value) -> Option<String> {
    let at = super::list::parse_time(v)?;
    let secs = std::time::SystemTime::now()
        .duration_since(at)
        .map_or(0, |d| d.as_secs() as i64);
    Some(crate::units::duration(secs))
}

pub fn render(service: &Value) -> String {
    let spec = &service["Spec"];
    let task = &spec["TaskTemplate"];
    let cs = &task["ContainerSpec"];
    let mut o = String::from("\n");
    let _ = writeln!(o, "ID:\t\t{}", s(&service["ID"]));
    let _ = writeln!(o, "Name:\t\t{}", s(&spec["Name"]));
    if let Some(labels) = spec["Labels"].as_object().filter(|l| !l.is_empty()) {
        o.push_str("Labels:\n");
        // Sorted, as a Go template ranges over a map.
        let mut labels: Vec<_> = labels.iter().collect();
        labels.sort_by_key(|(k, _)| *k);
        for (k, v) in labels {
            match s(v) {
                "" => {
                    let _ = writeln!(o, " {k}");
                }
                v => {
                    let _ = writeln!(o, " {k}={v}");
                }
            }
        }
    }
    let mode = &spec["Mode"];
    o.push_str("Service Mode:");
    if mode.get("Global").is_some() {
        o.push_str("\tGlobal\n");
    } else if let Some(r) = mode.get("Replicated") {
        o.push_str("\tReplicated\n");
        if let Some(n) = r["Replicas"].as_u64() {
            let _ = writeln!(o, " Replicas:\t{n}");
        }
    } else if let Some(j) = mode.get("ReplicatedJob") {
        // Docker leaves jobs' mode blank; naming it costs nothing.
        o.push_str("\tReplicated Job\n");
        if let Some(n) = j["MaxConcurrent"].as_u64() {
            let _ = writeln!(o, " Max Concurrent:\t{n}");
        }
        if let Some(n) = j["TotalCompletions"].as_u64() {
            let _ = writeln!(o, " Total Completions:\t{n}");
        }
    } else if mode.get("GlobalJob").is_some() {
        o.push_str("\tGlobal Job\n");
    } else {
        o.push('\n');
    }
    let update = &service["UpdateStatus"];
    if !s(&update["State"]).is_empty() {
        let _ = writeln!(o, "UpdateStatus:\n State:\t\t{}", s(&update["State"]));
        if let Some(at) = since(&update["StartedAt"]) {
            let _ = writeln!(o, " Started:\t{at} ago");
        }
        if s(&update["State"]) == "completed" {
            if let Some(at) = since(&update["CompletedAt"]) {
                let _ = writeln!(o, " Completed:\t{at} ago");
            }
        }
        let _ = writeln!(o, " Message:\t{}", s(&update["Message"]));
    }
    o.push_str("Placement:\n");
    let placement = &task["Placement"];
    let constraints = strings(&placement["Constraints"]);
    if !constraints.is_empty() {
        let _ = writeln!(o, " Constraints:\t{}", go_list(&constraints));
    }
    let prefs: Vec<String> = placement["Preferences"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["Spread"]["SpreadDescriptor"].as_str())
                .map(|d| format!("spread={d}"))
                .collect()
        })
        .unwrap_or_default();
    if !prefs.is_empty() {
        let _ = writeln!(o, " Preferences:   {}", go_list(&prefs));
    }
    if let Some(n) = placement["MaxReplicas"].as_u64().filter(|n| *n > 0) {
        let _ = writeln!(o, " Max Replicas Per Node:   {n}");
    }
    super::rollout::render(&mut o, spec);
    let _ = writeln!(o, "ContainerSpec:\n Image:\t\t{}", s(&cs["Image"]));
    let args = strings(&cs["Args"]);
    if !args.is_empty() {
        let _ = write!(o, " Args:\t\t");
        for a in &args {
            let _ = write!(o, "{a} ");
        }
        o.push('\n');
    }
    let env = strings(&cs["Env"]);
    if !env.is_empty() {
        let _ = write!(o, " Env:\t\t");
        for e in &env {
            let _ = write!(o, "{e} ");
        }
        o.push('\n');
    }
    if !s(&cs["Dir"]).is_empty() {
        let _ = writeln!(o, " Dir:\t\t{}", s(&cs["Dir"]));
    }
    if let Some(init) = cs["Init"].as_bool() {
        let _ = writeln!(o, " Init:\t\t{init}");
    }
    if !s(&cs["User"]).is_empty() {
        let _ = writeln!(o, " User: {}", s(&cs["User"]));
    }
    let (add, drop) = (
        strings(&cs["CapabilityAdd"]),
        strings(&cs["CapabilityDrop"]),
    );
    if !add.is_empty() || !drop.is_empty() {
        o.push_str("Capabilities:\n");
        if !add.is_empty() {
            let _ = writeln!(o, " Add: {}", add.join(", "));
        }
        if !drop.is_empty() {
            let _ = writeln!(o, " Drop: {}", drop.join(", "));
        }
    }
    if let Some(sysctls) = cs["Sysctls"].as_object().filter(|m| !m.is_empty()) {
        o.push_str("SysCtls:\n");
        let mut sysctls: Vec<_> = sysctls.iter().collect();
        sysctls.sort_by_key(|(k, _)| *k);
        for (k, v) in sysctls {
            match s(v) {
                "" => {
                    let _ = writeln!(o, " {k}");
                }
                v => {
                    let _ = writeln!(o, " {k}: {v}");
                }
            }
        }
    }
    if let Some(mounts) = cs["Mounts"].as_array().filter(|m| !m.is_empty()) {
        o.push_str("Mounts:\n");
        for m in mounts {
            let _ = writeln!(
                o,
                " Target:\t{}\n  Source:\t{}\n  ReadOnly:\t{}\n  Type:\t\t{}",
                s(&m["Target"]),
                s(&m["Source"]),
                m["ReadOnly"].as_bool().unwrap_or(false),
                s(&m["Type"])
            );
        }
    }
    let res = &task["Resources"];
    if res.is_object() {
        o.push_str("Resources:\n");
        let r = &res["Reservations"];
        let (rc, rm) = (
            r["NanoCPUs"].as_i64().unwrap_or(0),
            r["MemoryBytes"].as_i64().unwrap_or(0),
        );
        if rc > 0 || rm > 0 {
            o.push_str(" Reservations:\n");
            if rc > 0 {
                let _ = writeln!(o, "  CPU:\t\t{}", cpus(rc));
            }
            if rm > 0 {
                let _ = writeln!(o, "  Memory:\t{}", bytes_size(rm));
            }
        }
        let l = &res["Limits"];
        let (lc, lm, lp) = (
            l["NanoCPUs"].as_i64().unwrap_or(0),
            l["MemoryBytes"].as_i64().unwrap_or(0),
            l["Pids"].as_i64().unwrap_or(0),
        );
        if lc > 0 || lm > 0 || lp > 0 {
            o.push_str(" Limits:\n");
            if lc > 0 {
                let _ = writeln!(o, "  CPU:\t\t{}", cpus(lc));
            }
            if lm > 0 {
                let _ = writeln!(o, "  Memory:\t{}", bytes_size(lm));
            }
            if lp > 0 {
                let _ = writeln!(o, "  PIDs:\t\t{lp}");
            }
        }
    }
    let networks: Vec<&str> = task["Networks"]
        .as_array()
        .map(|n| n.iter().map(|n| s(&n["Target"])).collect())
        .unwrap_or_default();
    if !networks.is_empty() {
        o.push_str("Networks:");
        for n in networks {
            let _ = write!(o, " {n}");
        }
        o.push_str(" \n");
    }
    let _ = writeln!(o, "Endpoint Mode:\t{}", s(&spec["EndpointSpec"]["Mode"]));
    if let Some(ports) = service["Endpoint"]["Ports"]
        .as_array()
        .filter(|p| !p.is_empty())
    {
        o.push_str("Ports:\n");
        for p in ports {
            let _ = writeln!(
                o,
                " PublishedPort = {}\n  Protocol = {}\n  TargetPort = {}\n  PublishMode = {}",
                p["PublishedPort"].as_u64().unwrap_or(0),
                s(&p["Protocol"]),
                p["TargetPort"].as_u64().unwrap_or(0),
                s(&p["PublishMode"])
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_service_in_full() {
        let service = json!({
            "ID": "de179gar9d0o7ltdybungplod",
            "Spec": {
                "Name": "web",
                "Labels": {"com.label": "foo", "bare": ""},
                "Mode": {"Replicated": {"Replicas": 2}},
                "TaskTemplate": {
                    "ContainerSpec": {
                        "Image": "nginx:1.25",
                        "Args": ["nginx", "-g"],
                        "Env": ["A=1"],
                        "User": "nobody",
                        "CapabilityAdd": ["CAP_NET_ADMIN", "CAP_CHOWN"],
                        "Mounts": [{"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": true}],
                    },
                    "Placement": {
                        "Constraints": ["node.role==worker", "node.labels.zone==a"],
                        "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
                    },
                    "Resources": {"Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 10_485_760, "Pids": 20}},
                    "Networks": [{"Target": "backend"}],
                },
                "EndpointSpec": {"Mode": "vip"},
                "UpdateConfig": {"Parallelism": 1, "FailureAction": "pause", "Monitor": 5_000_000_000i64, "MaxFailureRatio": 0, "Order": "stop-first"},
            },
            "Endpoint": {"Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"}]},
        });
        let want = "
ID:\t\tde179gar9d0o7ltdybungplod
Name:\t\tweb
Labels:
 bare
 com.label=foo
Service Mode:\tReplicated
 Replicas:\t2
Placement:
 Constraints:\t[node.role==worker node.labels.zone==a]
 Preferences:   [spread=node.labels.zone]
UpdateConfig:
 Parallelism:\t1
 On failure:\tpause
 Monitoring Period: 5s
 Max failure ratio: 0
 Update order:      stop-first
ContainerSpec:
 Image:\t\tnginx:1.25
 Args:\t\tnginx -g 
 Env:\t\tA=1 
 User: nobody
Capabilities:
 Add: CAP_NET_ADMIN, CAP_CHOWN
Mounts:
 Target:\t/b
  Source:\t/a
  ReadOnly:\ttrue
  Type:\t\tbind
Resources:
 Limits:
  CPU:\t\t0.5
  Memory:\t10MiB
  PIDs:\t\t20
Networks: backend 
Endpoint Mode:\tvip
Ports:
 PublishedPort = 8080
  Protocol = tcp
  TargetPort = 80
  PublishMode = ingress
";
        assert_eq!(render(&service), want);
    }

    #[test]
    fn a_service_of_nothing_does_not_panic() {
        let out = render(&json!({"Spec": 3}));
        assert!(out.contains("Service Mode:\n"));
    }
}
