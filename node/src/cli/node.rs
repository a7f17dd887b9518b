//! `covey node`: ls, inspect, ps, update, promote, demote, rm, as `docker node` has them.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use super::client::{escape, Client};
use super::filters::{filters_json, parse_filters};
use super::output::{self, Format};
use super::service::TaskList;
use crate::units::bytes_size;

#[derive(Subcommand)]
pub enum NodeCommand {
    /// List the swarm's nodes.
    #[command(alias = "list")]
    Ls {
        /// Only IDs.
        #[arg(short, long)]
        quiet: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show nodes in full (`self` is this node): JSON, or --pretty.
    Inspect {
        /// Print the information in a human friendly format.
        #[arg(long)]
        pretty: bool,
        #[arg(short, long, value_enum)]
        format: Option<Format>,
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// List the tasks on nodes (this one if none is named).
    Ps {
        #[command(flatten)]
        list: TaskList,
        nodes: Vec<String>,
    },
    /// Change a node's availability, labels or role.
    Update(UpdateArgs),
    /// Make workers managers.
    Promote {
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Make managers workers.
    Demote {
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Remove nodes from the swarm.
    #[command(alias = "remove")]
    Rm {
        /// Remove a node that is not down.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        nodes: Vec<String>,
    },
}

#[derive(Args)]
pub struct UpdateArgs {
    /// active, pause or drain.
    #[arg(long)]
    availability: Option<String>,
    /// Add or change a label (key=value).
    #[arg(long = "label-add")]
    label_add: Vec<String>,
    /// Remove a label.
    #[arg(long = "label-rm")]
    label_rm: Vec<String>,
    /// worker or manager.
    #[arg(long)]
    role: Option<String>,
    node: String,
}

/// `self` names this node, as in the docker CLI.
async fn resolve(client: &Client, name: &str) -> anyhow::Result<String> {
    if name != "self" {
        return Ok(name.to_string());
    }
    let info: Value = client.json(Method::GET, "/info").await?;
    match info["Swarm"]["NodeID"].as_str() {
        Some(id) if !id.is_empty() => Ok(id.to_string()),
        _ => anyhow::bail!("This node is not a swarm manager."),
    }
}

fn title(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

pub async fn run(cmd: NodeCommand, client: &Client) -> anyhow::Result<()> {
    match cmd {
        NodeCommand::Ls { quiet, format } => {
            let nodes: Vec<Value> = client.json(Method::GET, "/nodes").await?;
            if format == Format::Json && !quiet {
                print!("{}", output::json(&nodes)?);
                return Ok(());
            }
            if quiet {
                for n in &nodes {
                    println!("{}", n["ID"].as_str().unwrap_or_default());
                }
                return Ok(());
            }
            let info: Value = client.json(Method::GET, "/info").await?;
            let me = info["Swarm"]["NodeID"].as_str().unwrap_or_default();
            let rows: Vec<Vec<String>> = nodes
                .iter()
                .map(|n| {
                    let id = n["ID"].as_str().unwrap_or_default();
                    let manager = match &n["ManagerStatus"] {
                        Value::Null => String::new(),
                        ms if ms["Leader"].as_bool() == Some(true) => "Leader".into(),
                        ms => title(ms["Reachability"].as_str().unwrap_or_default()),
                    };
                    vec![
                        if id == me {
                            format!("{id} *")
                        } else {
                            id.to_string()
                        },
                        n["Description"]["Hostname"]
                            .as_str()
                            .unwrap_or_default()
                            .into(),
                        title(n["Status"]["State"].as_str().unwrap_or_default()),
                        title(n["Spec"]["Availability"].as_str().unwrap_or_default()),
                        manager,
                        n["Description"]["Engine"]["EngineVersion"]
                            .as_str()
                            .unwrap_or_default()
                            .into(),
                    ]
                })
                .collect();
            print!(
                "{}",
                output::table(
                    &[
                        "ID",
                        "HOSTNAME",
                        "STATUS",
                        "AVAILABILITY",
                        "MANAGER STATUS",
                        "ENGINE VERSION"
                    ],
                    &rows
                )
            );
        }
        NodeCommand::Inspect {
            pretty,
            format,
            nodes,
        } => {
            if pretty && format.is_some() {
                anyhow::bail!("--format is incompatible with human friendly format");
            }
            let mut out = Vec::new();
            for name in nodes {
                let id = resolve(client, &name).await?;
                let node: Value = client
                    .json(Method::GET, &format!("/nodes/{}", escape(&id)))
                    .await?;
                out.push(node);
            }
            match pretty {
                true => out.iter().for_each(|n| print!("{}", render(n))),
                false => println!("{}", output::json(&out)?),
            }
        }
        NodeCommand::Ps { list, nodes } => {
            let mut ids = Vec::new();
            for name in if nodes.is_empty() {
                vec!["self".to_string()]
            } else {
                nodes
            } {
                // Looked up, so that a node that does not exist is an error, as docker's.
                let id = resolve(client, &name).await?;
                let node: Value = client
                    .json(Method::GET, &format!("/nodes/{}", escape(&id)))
                    .await?;
                ids.push(node["ID"].as_str().unwrap_or(&id).to_string());
            }
            let mut query = filters_json(&parse_filters(&list.filters)?);
            query["node"] = json!(ids);
            let tasks: Vec<Value> = client
                .json(
                    Method::GET,
                    &format!("/tasks?filters={}", escape(&query.to_string())),
                )
                .await?;
            let names = super::service::service_names(client).await;
            super::service::print_tasks(client, &tasks, &names, &list).await?;
        }
        NodeCommand::Update(args) => {
            update(client, &args.node, |spec| {
                if let Some(a) = &args.availability {
                    spec["Availability"] = a.clone().into();
                }
                if let Some(r) = &args.role {
                    spec["Role"] = r.clone().into();
                }
                if !spec["Labels"].is_object() {
                    spec["Labels"] = serde_json::json!({});
                }
                for kv in &args.label_add {
                    let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
                    spec["Labels"][k] = v.into();
                }
                for k in &args.label_rm {
                    if let Some(labels) = spec["Labels"].as_object_mut() {
                        labels.remove(k);
                    }
                }
            })
            .await?;
            println!("{}", args.node);
        }
        NodeCommand::Promote { nodes } => {
            for n in nodes {
                update(client, &n, |spec| spec["Role"] = "manager".into()).await?;
                println!("Node {n} promoted to a manager in the swarm.");
            }
        }
        NodeCommand::Demote { nodes } => {
            for n in nodes {
                update(client, &n, |spec| spec["Role"] = "worker".into()).await?;
                println!("Manager {n} demoted in the swarm.");
            }
        }
        NodeCommand::Rm { force, nodes } => {
            for n in nodes {
                let id = resolve(client, &n).await?;
                let force = if force { "?force=1" } else { "" };
                client
                    .send(
                        Method::DELETE,
                        &format!("/nodes/{}{force}", escape(&id)),
                        Client::empty(),
                    )
                    .await?;
                println!("{n}");
            }
        }
    }
    Ok(())
}

/// Reads a node's spec and version, changes the spec, writes it back at that version.
async fn update(
    client: &Client,
    name: &str,
    change: impl FnOnce(&mut Value),
) -> anyhow::Result<()> {
    let id = resolve(client, name).await?;
    let node: Value = client
        .json(Method::GET, &format!("/nodes/{}", escape(&id)))
        .await?;
    let version = node["Version"]["Index"].as_u64().unwrap_or(0);
    let mut spec = node["Spec"].clone();
    change(&mut spec);
    client
        .send(
            Method::POST,
            &format!("/nodes/{}/update?version={version}", escape(&id)),
            Client::json_body(&spec)?,
        )
        .await?;
    Ok(())
}

/// `node inspect --pretty`: docker's human form of a node (its
/// `nodeInspectPrettyTemplate`, less engine plugins, which covey has none of).
fn render(node: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let d = &node["Description"];
    let mut o = String::new();
    let _ = writeln!(o, "ID:\t\t\t{}", s(&node["ID"]));
    if let Some(name) = node["Spec"]["Name"].as_str().filter(|n| !n.is_empty()) {
        let _ = writeln!(o, "Name:\t\t\t{name}");
    }
    labels(&mut o, "Labels", &node["Spec"]["Labels"]);
    let _ = writeln!(o, "Hostname:              \t{}", s(&d["Hostname"]));
    let _ = writeln!(
        o,
        "Joined at:             \t{}",
        go_time(&s(&node["CreatedAt"]))
    );
    o.push_str("Status:\n");
    let _ = writeln!(o, " State:\t\t\t{}", title(&s(&node["Status"]["State"])));
    if let Some(m) = node["Status"]["Message"].as_str().filter(|m| !m.is_empty()) {
        let _ = writeln!(o, " Message:              \t{m}");
    }
    let _ = writeln!(
        o,
        " Availability:         \t{}",
        title(&s(&node["Spec"]["Availability"]))
    );
    if let Some(a) = node["Status"]["Addr"].as_str().filter(|a| !a.is_empty()) {
        let _ = writeln!(o, " Address:\t\t{a}");
    }
    let ms = &node["ManagerStatus"];
    if ms.is_object() {
        o.push_str("Manager Status:\n");
        let _ = writeln!(o, " Address:\t\t{}", s(&ms["Addr"]));
        let _ = writeln!(o, " Raft Status:\t\t{}", title(&s(&ms["Reachability"])));
        let leader = if ms["Leader"].as_bool() == Some(true) {
            "Yes"
        } else {
            "No"
        };
        let _ = writeln!(o, " Leader:\t\t{leader}");
    }
    o.push_str("Platform:\n");
    let _ = writeln!(o, " Operating System:\t{}", s(&d["Platform"]["OS"]));
    let _ = writeln!(o, " Architecture:\t\t{}", s(&d["Platform"]["Architecture"]));
    o.push_str("Resources:\n");
    let cpus = d["Resources"]["NanoCPUs"].as_i64().unwrap_or(0) / 1_000_000_000;
    let _ = writeln!(o, " CPUs:\t\t\t{cpus}");
    let memory = d["Resources"]["MemoryBytes"].as_i64().unwrap_or(0);
    let _ = writeln!(o, " Memory:\t\t{}", bytes_size(memory));
    let _ = writeln!(o, "Engine Version:\t\t{}", s(&d["Engine"]["EngineVersion"]));
    labels(&mut o, "Engine Labels", &d["Engine"]["Labels"]);
    o
}

/// A map of labels as docker lists them: ` - key=value`, or ` - key` when empty.
fn labels(o: &mut String, title: &str, labels: &Value) {
    let Some(labels) = labels.as_object().filter(|l| !l.is_empty()) else {
        return;
    };
    let _ = writeln!(o, "{title}:");
    for (k, v) in labels {
        match v.as_str().filter(|v| !v.is_empty()) {
            Some(v) => writeln!(o, " - {k}={v}"),
            None => writeln!(o, " - {k}"),
        }
        .ok();
    }
}

/// An RFC 3339 time in UTC as docker prints a node's (Go's `time.Time`, lowercased):
/// `2024-05-01 10:00:00 +0000 utc`.
fn go_time(rfc3339: &str) -> String {
    let Some(utc) = rfc3339.strip_suffix('Z') else {
        return rfc3339.to_string();
    };
    let utc = utc.replacen('T', " ", 1);
    let utc = match utc.split_once('.') {
        Some((whole, frac)) if frac.trim_end_matches('0').is_empty() => whole.to_string(),
        Some((whole, frac)) => format!("{whole}.{}", frac.trim_end_matches('0')),
        None => utc,
    };
    format!("{utc} +0000 utc")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_in_full() {
        let node = json!({
            "ID": "abc", "CreatedAt": "2024-05-01T10:00:00Z",
            "Spec": {"Availability": "drain", "Labels": {"zone": "a", "gpu": ""}},
            "Description": {
                "Hostname": "pi4",
                "Platform": {"OS": "linux", "Architecture": "aarch64"},
                "Resources": {"NanoCPUs": 4_000_000_000i64, "MemoryBytes": 8_i64 << 30},
                "Engine": {"EngineVersion": "0.1.0", "Labels": {"covey.board": "pi4"}}
            },
            "Status": {"State": "ready", "Addr": "10.0.0.4"},
            "ManagerStatus": {"Leader": true, "Reachability": "reachable", "Addr": "10.0.0.4:2377"}
        });
        let text = render(&node);
        for line in [
            "ID:\t\t\tabc\n",
            " - gpu\n",
            " - zone=a\n",
            "Hostname:              \tpi4\n",
            "Joined at:             \t2024-05-01 10:00:00 +0000 utc\n",
            " State:\t\t\tReady\n",
            " Availability:         \tDrain\n",
            " Raft Status:\t\tReachable\n",
            " Leader:\t\tYes\n",
            " Architecture:\t\taarch64\n",
            " CPUs:\t\t\t4\n",
            " Memory:\t\t8GiB\n",
            "Engine Labels:\n - covey.board=pi4\n",
        ] {
            assert!(text.contains(line), "{line:?} in {text}");
        }
        assert_eq!(
            go_time("2024-05-01T10:00:00.250Z"),
            "2024-05-01 10:00:00.25 +0000 utc"
        );
        let worker = json!({"ID": "w", "Spec": {}, "Description": {}, "Status": {}});
        assert!(!render(&worker).contains("Manager Status"));
    }
}
