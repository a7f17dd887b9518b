//! `covey network`: create, ls, inspect, rm, prune, as `docker network` has them for a
//! swarm's overlay networks.

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use super::client::{read_json, Client};
use super::output;

#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Create an overlay network.
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Only IDs.
        #[arg(short, long)]
        quiet: bool,
        /// Show full IDs.
        #[arg(long)]
        no_trunc: bool,
        /// Filter (e.g. name=back, driver=overlay, label=k=v).
        #[arg(short, long = "filter")]
        filter: Vec<String>,
    },
    /// Show networks in full.
    Inspect {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks (refused while a service uses one).
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove every network no service uses.
    Prune {
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    /// The driver: overlay, the only one swarm networks have.
    #[arg(short, long, default_value = "overlay")]
    driver: String,
    /// The subnet, e.g. 10.10.0.0/24 (else one is allocated from 10.0.0.0/8).
    #[arg(long)]
    subnet: Option<String>,
    /// The gateway within the subnet.
    #[arg(long)]
    gateway: Option<String>,
    /// Let containers outside services attach to it.
    #[arg(long)]
    attachable: bool,
    /// Make it the routing mesh's network (one per swarm).
    #[arg(long)]
    ingress: bool,
    /// No route out of the network.
    #[arg(long)]
    internal: bool,
    /// A driver option (key=value), e.g. `encrypted`.
    #[arg(short, long = "opt")]
    opt: Vec<String>,
    /// A label (key=value).
    #[arg(long = "label")]
    label: Vec<String>,
    name: String,
}

pub async fn run(cmd: NetworkCommand, client: &Client) -> anyhow::Result<()> {
    match cmd {
        NetworkCommand::Create(args) => {
            let body = create_body(&args);
            let resp = client
                .send(Method::POST, "/networks/create", Client::json_body(&body)?)
                .await?;
            let created: Value = read_json(resp).await?;
            println!("{}", created["Id"].as_str().unwrap_or_default());
        }
        NetworkCommand::Ls {
            quiet,
            no_trunc,
            filter,
        } => {
            let path = match super::filters::query(&filter)? {
                Some(f) => format!("/networks?filters={f}"),
                None => "/networks".into(),
            };
            let mut networks: Vec<Value> = client.json(Method::GET, &path).await?;
            networks.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
            let id = |n: &Value| {
                let id = n["Id"].as_str().unwrap_or_default();
                if no_trunc {
                    id.to_string()
                } else {
                    id.chars().take(12).collect()
                }
            };
            if quiet {
                for n in &networks {
                    println!("{}", id(n));
                }
                return Ok(());
            }
            let rows: Vec<Vec<String>> = networks
                .iter()
                .map(|n| {
                    let s = |k: &str| n[k].as_str().unwrap_or_default().to_string();
                    vec![id(n), s("Name"), s("Driver"), s("Scope")]
                })
                .collect();
            print!(
                "{}",
                output::table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows)
            );
        }
        NetworkCommand::Inspect { networks } => client.inspect_all("/networks", &networks).await?,
        NetworkCommand::Rm { networks } => {
            client
                .remove_all("/networks", &networks, "networks")
                .await?
        }
        NetworkCommand::Prune { force } => {
            if !force && !output::confirm(
                "WARNING! This will remove all custom networks not used by at least one service.\nAre you sure you want to continue? [y/N] ",
            ) {
                return Ok(());
            }
            let resp = client
                .send(Method::POST, "/networks/prune", Client::empty())
                .await?;
            let pruned: Value = read_json(resp).await?;
            let names: Vec<&str> = pruned["NetworksDeleted"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !names.is_empty() {
                println!("Deleted Networks:\n{}", names.join("\n"));
            }
        }
    }
    Ok(())
}

fn create_body(args: &CreateArgs) -> Value {
    let mut config = Vec::new();
    if args.subnet.is_some() || args.gateway.is_some() {
        config.push(json!({
            "Subnet": args.subnet.clone().unwrap_or_default(),
            "Gateway": args.gateway.clone().unwrap_or_default(),
        }));
    }
    json!({
        "Name": args.name,
        "Driver": args.driver,
        "Scope": "swarm",
        "Attachable": args.attachable,
        "Ingress": args.ingress,
        "Internal": args.internal,
        "IPAM": {"Driver": "default", "Config": config},
        "Options": super::filters::pairs(&args.opt),
        "Labels": super::filters::pairs(&args.label),
    })
}
