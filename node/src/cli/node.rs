//! `covey node`: ls, inspect, update, promote, demote, rm, as `docker node` has them.

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::Value;

use super::client::{escape, Client};
use super::output;

#[derive(Subcommand)]
pub enum NodeCommand {
    /// List the swarm's nodes.
    #[command(alias = "list")]
    Ls {
        /// Only IDs.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show nodes in full (`self` is this node).
    Inspect {
        #[arg(required = true)]
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
        NodeCommand::Ls { quiet } => {
            let nodes: Vec<Value> = client.json(Method::GET, "/nodes").await?;
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
        NodeCommand::Inspect { nodes } => {
            let mut out = Vec::new();
            for name in nodes {
                let id = resolve(client, &name).await?;
                let node: Value = client
                    .json(Method::GET, &format!("/nodes/{}", escape(&id)))
                    .await?;
                out.push(node);
            }
            println!("{}", output::json(&out)?);
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
