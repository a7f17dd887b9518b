//! `service ls` and `service ps` tables, as the docker CLI renders them, from the Engine
//! API's JSON. Pure: the caller fetches, these only render.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::SystemTime;

use serde_json::Value;

pub const LS_HEADERS: [&str; 6] = ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"];
pub const PS_HEADERS: [&str; 8] = [
    "ID",
    "NAME",
    "IMAGE",
    "NODE",
    "DESIRED STATE",
    "CURRENT STATE",
    "ERROR",
    "PORTS",
];

/// Docker's short ID: 12 characters.
pub fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_default()
}

/// A mode as `service ls` names it.
pub fn mode_name(mode: &Value) -> &'static str {
    let has = |k: &str| mode.get(k).is_some_and(|m| !m.is_null());
    if has("Global") {
        "global"
    } else if has("Replicated") {
        "replicated"
    } else if has("ReplicatedJob") {
        "replicated job"
    } else if has("GlobalJob") {
        "global job"
    } else {
        ""
    }
}

/// The REPLICAS column: running/desired from the daemon's `ServiceStatus`; jobs add
/// their completions; a per-node limit is shown for replicated services.
pub fn replicas(service: &Value) -> String {
    let status = &service["ServiceStatus"];
    let n = |k: &str| status[k].as_u64().unwrap_or(0);
    let (running, desired, completed) = (n("RunningTasks"), n("DesiredTasks"), n("CompletedTasks"));
    let spec = &service["Spec"];
    match mode_name(&spec["Mode"]) {
        "replicated job" => {
            let total = spec["Mode"]["ReplicatedJob"]["TotalCompletions"]
                .as_u64()
                .unwrap_or(1);
            format!("{running}/{desired} ({completed}/{total} completed)")
        }
        "global job" => format!(
            "{running}/{desired} ({completed}/{} completed)",
            desired + completed
        ),
        "replicated" => match spec["TaskTemplate"]["Placement"]["MaxReplicas"].as_u64() {
            Some(max) if max > 0 => format!("{running}/{desired} (max {max} per node)"),
            _ => format!("{running}/{desired}"),
        },
        _ => format!("{running}/{desired}"),
    }
}

/// An image reference for display: a tagged reference loses its digest and its default
/// registry, as docker's `FamiliarString`; anything else is shown as it is.
pub fn image_display(image: &str) -> String {
    let name = image.split_once('@').map_or(image, |(name, _)| name);
    let last = name.rsplit('/').next().unwrap_or(name);
    if !last.contains(':') {
        // Untagged: docker shows it unchanged, digest and all.
        return image.to_string();
    }
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
        .to_string()
}

/// The PORTS column of `service ls`: ingress ports, consecutive ones as ranges.
pub fn ports(endpoint_ports: &Value) -> String {
    struct Port {
        published: u32,
        target: u32,
        protocol: String,
    }
    let mut list: Vec<Port> = endpoint_ports
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|p| matches!(p["PublishMode"].as_str(), Some("ingress") | None))
                .map(|p| Port {
                    published: p["PublishedPort"].as_u64().unwrap_or(0) as u32,
                    target: p["TargetPort"].as_u64().unwrap_or(0) as u32,
                    protocol: str_of(p, "Protocol").to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    list.sort_by(|a, b| {
        a.protocol
            .cmp(&b.protocol)
            .then(a.published.cmp(&b.published))
    });
    let render = |ps: u32, pe: u32, ts: u32, te: u32, proto: &str| {
        let p = if pe > ps {
            format!("{ps}-{pe}")
        } else {
            ps.to_string()
        };
        let t = if te > ts {
            format!("{ts}-{te}")
        } else {
            ts.to_string()
        };
        format!("*:{p}->{t}/{proto}")
    };
    let mut out = Vec::new();
    // The range being built: published start and end, target start and end, protocol.
    let mut cur: Option<(u32, u32, u32, u32, String)> = None;
    for p in list {
        if let Some((ps, pe, ts, te, proto)) = &mut cur {
            let is_range = *te != *ts;
            // Docker's unsigned arithmetic: a smaller port wraps and starts a new range.
            let extends = p.protocol == *proto
                && p.published.wrapping_sub(*pe) <= 1
                && p.target.wrapping_sub(*te) <= 1
                && !(is_range && p.target <= *te);
            if extends {
                *pe = p.published;
                *te = p.target;
                continue;
            }
            if *ps > 0 {
                out.push(render(*ps, *pe, *ts, *te, proto));
            }
        }
        cur = Some((p.published, p.published, p.target, p.target, p.protocol));
    }
    if let Some((ps, pe, ts, te, proto)) = cur {
        if ps > 0 {
            out.push(render(ps, pe, ts, te, &proto));
        }
    }
    out.join(", ")
}

/// `service ls`'s rows, sorted by name as docker sorts them.
pub fn ls_rows(services: &[Value]) -> Vec<Vec<String>> {
    let mut sorted: Vec<&Value> = services.iter().collect();
    sorted.sort_by(|a, b| natural_cmp(str_of(&a["Spec"], "Name"), str_of(&b["Spec"], "Name")));
    sorted
        .into_iter()
        .map(|s| {
            let spec = &s["Spec"];
            vec![
                short_id(str_of(s, "ID")),
                str_of(spec, "Name").to_string(),
                mode_name(&spec["Mode"]).to_string(),
                replicas(s),
                image_display(str_of(&spec["TaskTemplate"]["ContainerSpec"], "Image")),
                ports(&s["Endpoint"]["Ports"]),
            ]
        })
        .collect()
}

/// Whether a service passes `service ls`'s filters (also sent to the daemon; applied here
/// too, so that a daemon that ignores one still gives the right list).
pub fn ls_matches(service: &Value, filters: &[(String, String)]) -> bool {
    let spec = &service["Spec"];
    let mut by_key: HashMap<&str, Vec<&str>> = HashMap::new();
    for (k, v) in filters {
        by_key.entry(k.as_str()).or_default().push(v.as_str());
    }
    by_key.iter().all(|(k, values)| {
        values.iter().any(|v| match *k {
            "name" => str_of(spec, "Name").starts_with(v),
            "id" => str_of(service, "ID").starts_with(v),
            "mode" => mode_name(&spec["Mode"]).replace(' ', "-") == *v,
            "label" => match v.split_once('=') {
                Some((lk, lv)) => spec["Labels"][lk].as_str() == Some(lv),
                None => spec["Labels"].get(v).is_some(),
            },
            // Left to the daemon.
            _ => true,
        })
    })
}

/// Docker's natural order (`sortorder.NaturalLess`): digit runs compare as numbers, so
/// `web.2` comes before `web.10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (&a[..da], &b[..db]);
                let trim = |n: &[u8]| {
                    let z = n.iter().take_while(|c| **c == b'0').count();
                    n[z..].to_vec()
                };
                let (ta, tb) = (trim(na), trim(nb));
                let ord = ta.len().cmp(&tb.len()).then_with(|| ta.cmp(&tb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

/// An Engine API time (RFC 3339; a number of seconds is taken too).
pub fn parse_time(v: &Value) -> Option<SystemTime> {
    match v {
        Value::String(s) => humantime::parse_rfc3339(s)
            .or_else(|_| humantime::parse_rfc3339_weak(s))
            .ok(),
        Value::Number(n) => n
            .as_u64()
            .map(|secs| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)),
        _ => None,
    }
}

/// "running" as docker's `PrettyPrint` shows it: "Running".
pub fn title(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// Docker's `Ellipsis`: at most `max` characters, the last one `…` if cut.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    s.chars().take(max - 1).collect::<String>() + "…"
}

/// How `service ps` names a task: `web.1`, or `web.<node id>` for a global service's.
pub fn task_name(task: &Value, service_names: &HashMap<String, String>) -> String {
    let service_id = str_of(task, "ServiceID");
    let service = service_names
        .get(service_id)
        .cloned()
        .unwrap_or_else(|| service_id.to_string());
    match task["Slot"].as_u64() {
        Some(slot) if slot > 0 => format!("{service}.{slot}"),
        _ => format!("{service}.{}", str_of(task, "NodeID")),
    }
}

/// The tasks in `service ps`'s order: by name, then newest first within a name (older
/// tasks of a slot follow its current one).
pub fn sort_tasks<'a>(
    tasks: &'a [Value],
    service_names: &HashMap<String, String>,
) -> Vec<(String, &'a Value)> {
    let mut named: Vec<(String, &Value)> = tasks
        .iter()
        .map(|t| (task_name(t, service_names), t))
        .collect();
    named.sort_by(|(na, a), (nb, b)| {
        natural_cmp(na, nb).then_with(|| {
            let ca = parse_time(&a["CreatedAt"]);
            let cb = parse_time(&b["CreatedAt"]);
            cb.cmp(&ca)
        })
    });
    named
}

/// `service ps`'s rows.
pub fn ps_rows(
    tasks: &[(String, &Value)],
    node_names: &HashMap<String, String>,
    trunc: bool,
    now: SystemTime,
) -> Vec<Vec<String>> {
    let mut prev = "";
    tasks
        .iter()
        .map(|(name, t)| {
            let shown_name = if name == prev {
                format!(" \\_ {name}")
            } else {
                name.clone()
            };
            prev = name;
            let id = str_of(t, "ID");
            let image = str_of(&t["Spec"]["ContainerSpec"], "Image");
            let node_id = str_of(t, "NodeID");
            let node = node_names
                .get(node_id)
                .cloned()
                .unwrap_or_else(|| node_id.to_string());
            let status = &t["Status"];
            let state = title(str_of(status, "State"));
            let current = match parse_time(&status["Timestamp"]) {
                Some(at) => {
                    let secs = now.duration_since(at).map_or(0, |d| d.as_secs() as i64);
                    format!(
                        "{state} {} ago",
                        crate::units::duration(secs).to_lowercase()
                    )
                }
                None => state,
            };
            let err = str_of(status, "Err");
            let err = if trunc {
                ellipsis(err, 30)
            } else {
                err.to_string()
            };
            let err = if err.is_empty() {
                err
            } else {
                format!("\"{err}\"")
            };
            let ports = status["PortStatus"]["Ports"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            format!(
                                "*:{}->{}/{}",
                                p["PublishedPort"].as_u64().unwrap_or(0),
                                p["TargetPort"].as_u64().unwrap_or(0),
                                str_of(p, "Protocol")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                if trunc { short_id(id) } else { id.to_string() },
                shown_name,
                if trunc {
                    image_display(image)
                } else {
                    image.to_string()
                },
                node,
                title(str_of(t, "DesiredState")),
                current,
                err,
                ports,
            ]
        })
        .collect()
}

/// Node names for `service ps`: the node's name if it has one, else its hostname.
pub fn node_names(nodes: &[Value]) -> HashMap<String, String> {
    nodes
        .iter()
        .filter_map(|n| {
            let id = n["ID"].as_str()?;
            let name = [&n["Spec"]["Name"], &n["Description"]["Hostname"]]
                .into_iter()
                .filter_map(|v| v.as_str())
                .find(|s| !s.is_empty())
                .unwrap_or(id);
            Some((id.to_string(), name.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cli::output;

    fn service(name: &str, mode: Value, status: Value) -> Value {
        json!({
            "ID": format!("{name}0123456789abcdefghij"),
            "Spec": {
                "Name": name,
                "Mode": mode,
                "TaskTemplate": {"ContainerSpec": {"Image": "nginx:1.25@sha256:0123abcd"}},
            },
            "ServiceStatus": status,
        })
    }

    #[test]
    fn ls_table() {
        let mut web = service(
            "web",
            json!({"Replicated": {"Replicas": 3}}),
            json!({"RunningTasks": 2, "DesiredTasks": 3}),
        );
        web["Endpoint"] = json!({"Ports": [
            {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"},
        ]});
        let services = vec![
            web,
            service(
                "agent",
                json!({"Global": {}}),
                json!({"RunningTasks": 1, "DesiredTasks": 1}),
            ),
            service(
                "migrate",
                json!({"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}),
                json!({"RunningTasks": 0, "DesiredTasks": 0, "CompletedTasks": 1}),
            ),
        ];
        let rows = ls_rows(&services);
        let row = |cells: [&str; 6]| cells.map(String::from).to_vec();
        assert_eq!(
            rows,
            [
                row(["agent0123456", "agent", "global", "1/1", "nginx:1.25", ""]),
                row([
                    "migrate01234",
                    "migrate",
                    "replicated job",
                    "0/0 (1/1 completed)",
                    "nginx:1.25",
                    ""
                ]),
                row([
                    "web012345678",
                    "web",
                    "replicated",
                    "2/3",
                    "nginx:1.25",
                    "*:8080->80/tcp"
                ]),
            ]
        );
    }

    #[test]
    fn replicas_column() {
        let mut s = service(
            "w",
            json!({"Replicated": {"Replicas": 4}}),
            json!({"RunningTasks": 4, "DesiredTasks": 4}),
        );
        s["Spec"]["TaskTemplate"]["Placement"] = json!({"MaxReplicas": 2});
        assert_eq!(replicas(&s), "4/4 (max 2 per node)");
        let s = service(
            "g",
            json!({"GlobalJob": {}}),
            json!({"RunningTasks": 1, "DesiredTasks": 1, "CompletedTasks": 2}),
        );
        assert_eq!(replicas(&s), "1/1 (2/3 completed)");
        // No status from the daemon: nothing is known to run.
        let s = json!({"Spec": {"Mode": {"Replicated": {"Replicas": 2}}}});
        assert_eq!(replicas(&s), "0/0");
    }

    #[test]
    fn images_for_display() {
        assert_eq!(image_display("nginx:1.25@sha256:abc"), "nginx:1.25");
        assert_eq!(
            image_display("docker.io/library/nginx:latest"),
            "nginx:latest"
        );
        assert_eq!(
            image_display("localhost:5000/app:v1@sha256:abc"),
            "localhost:5000/app:v1"
        );
        assert_eq!(image_display("nginx@sha256:abc"), "nginx@sha256:abc");
        assert_eq!(image_display("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(image_display("busybox"), "busybox");
    }

    #[test]
    fn port_ranges() {
        let p = |published: u64, target: u64, proto: &str| json!({"Protocol": proto, "TargetPort": target, "PublishedPort": published, "PublishMode": "ingress"});
        let ports_of = |v: Vec<Value>| ports(&json!(v));
        assert_eq!(ports_of(vec![p(8080, 80, "tcp")]), "*:8080->80/tcp");
        assert_eq!(
            ports_of(vec![
                p(8081, 81, "tcp"),
                p(8080, 80, "tcp"),
                p(53, 53, "udp")
            ]),
            "*:8080-8081->80-81/tcp, *:53->53/udp"
        );
        let mut host = p(9000, 90, "tcp");
        host["PublishMode"] = json!("host");
        assert_eq!(ports_of(vec![host]), "");
        assert_eq!(ports(&Value::Null), "");
    }

    #[test]
    fn filters() {
        let s = service("web", json!({"Global": {}}), Value::Null);
        let f = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert!(ls_matches(&s, &f("name", "we")));
        assert!(!ls_matches(&s, &f("name", "db")));
        assert!(ls_matches(&s, &f("mode", "global")));
        assert!(ls_matches(&s, &f("id", "web01")));
        assert!(!ls_matches(&s, &f("label", "tier")));
        assert!(ls_matches(&s, &[]));
    }

    #[test]
    fn natural_order() {
        assert_eq!(natural_cmp("web.2", "web.10"), Ordering::Less);
        assert_eq!(natural_cmp("web.10", "web.9"), Ordering::Greater);
        assert_eq!(natural_cmp("a", "b"), Ordering::Less);
        assert_eq!(natural_cmp("web", "web.1"), Ordering::Less);
        assert_eq!(natural_cmp("x01", "x1"), Ordering::Equal);
    }

    #[test]
    fn ps_table() {
        let now = humantime::parse_rfc3339("2026-01-01T12:00:00Z").unwrap();
        let task = |id: &str,
                    slot: u64,
                    node: &str,
                    desired: &str,
                    state: &str,
                    created: &str,
                    err: &str| {
            json!({
                "ID": id,
                "ServiceID": "svc1",
                "Slot": slot,
                "NodeID": node,
                "DesiredState": desired,
                "CreatedAt": created,
                "Spec": {"ContainerSpec": {"Image": "busybox:latest@sha256:abc"}},
                "Status": {"State": state, "Timestamp": "2026-01-01T11:59:55.123456789Z", "Err": err},
            })
        };
        let tasks = vec![
            task(
                "t1old0123456789",
                1,
                "n1",
                "shutdown",
                "failed",
                "2026-01-01T11:00:00Z",
                "task: non-zero exit (1): the container ran out of patience",
            ),
            task(
                "t10000000000000",
                10,
                "n2",
                "running",
                "running",
                "2026-01-01T11:30:00Z",
                "",
            ),
            task(
                "t1new0123456789",
                1,
                "n1",
                "running",
                "running",
                "2026-01-01T11:30:00Z",
                "",
            ),
            task(
                "t2000000000000x",
                2,
                "",
                "running",
                "pending",
                "2026-01-01T11:30:00Z",
                "",
            ),
        ];
        let services = HashMap::from([("svc1".to_string(), "web".to_string())]);
        let nodes = node_names(&[
            json!({"ID": "n1", "Description": {"Hostname": "pi-1"}}),
            json!({"ID": "n2", "Spec": {"Name": "edge"}, "Description": {"Hostname": "pi-2"}}),
        ]);
        let sorted = sort_tasks(&tasks, &services);
        let rows = ps_rows(&sorted, &nodes, true, now);
        let row = |cells: [&str; 8]| cells.map(String::from).to_vec();
        assert_eq!(
            rows,
            [
                row([
                    "t1new0123456",
                    "web.1",
                    "busybox:latest",
                    "pi-1",
                    "Running",
                    "Running 4 seconds ago",
                    "",
                    ""
                ]),
                row([
                    "t1old0123456",
                    " \\_ web.1",
                    "busybox:latest",
                    "pi-1",
                    "Shutdown",
                    "Failed 4 seconds ago",
                    "\"task: non-zero exit (1): the …\"",
                    ""
                ]),
                row([
                    "t20000000000",
                    "web.2",
                    "busybox:latest",
                    "",
                    "Running",
                    "Pending 4 seconds ago",
                    "",
                    ""
                ]),
                row([
                    "t10000000000",
                    "web.10",
                    "busybox:latest",
                    "edge",
                    "Running",
                    "Running 4 seconds ago",
                    "",
                    ""
                ]),
            ]
        );
        // Aligned as docker's tabwriter aligns it.
        let table = output::table(&PS_HEADERS, &rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "ID             NAME        IMAGE            NODE   DESIRED STATE   CURRENT STATE           ERROR                              PORTS"
        );
        assert_eq!(
            lines[2],
            "t1old0123456    \\_ web.1   busybox:latest   pi-1   Shutdown        Failed 4 seconds ago    \"task: non-zero exit (1): the …\""
        );
        let full = ps_rows(&sorted, &nodes, false, now);
        assert_eq!(full[1][0], "t1old0123456789");
        assert_eq!(full[1][2], "busybox:latest@sha256:abc");
        assert_eq!(
            full[1][6],
            "\"task: non-zero exit (1): the container ran out of patience\""
        );
    }

    #[test]
    fn global_task_names() {
        let services = HashMap::from([("s".to_string(), "agent".to_string())]);
        let t = json!({"ServiceID": "s", "Slot": 0, "NodeID": "abc"});
        assert_eq!(task_name(&t, &services), "agent.abc");
        let t = json!({"ServiceID": "other", "Slot": 3});
        assert_eq!(task_name(&t, &services), "other.3");
    }
}
