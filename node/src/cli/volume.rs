//! `covey volume`: create, ls, inspect, rm, prune of this node's named volumes, as
//! `docker volume` has them.

use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};

use super::client::{read_json, Client};
use super::output;

#[derive(Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (a name is made up if none is given).
    Create {
        /// The driver: local, the only one covey has.
        #[arg(short, long, default_value = "local")]
        driver: String,
        /// A driver option (key=value); the local driver takes none.
        #[arg(short, long = "opt")]
        opt: Vec<String>,
        /// A label (key=value).
        #[arg(long = "label")]
        label: Vec<String>,
        name: Option<String>,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        /// Only names.
        #[arg(short, long)]
        quiet: bool,
        /// Filter (e.g. name=data, label=k=v, dangling=true).
        #[arg(short, long = "filter")]
        filter: Vec<String>,
    },
    /// Show volumes in full.
    Inspect {
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove volumes (refused while a container uses one).
    #[command(alias = "remove")]
    Rm {
        /// No error if a volume does not exist.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove the volumes no container uses (anonymous ones only, unless --all).
    Prune {
        /// Named volumes too.
        #[arg(short, long)]
        all: bool,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
    },
}

pub async fn run(cmd: VolumeCommand, client: &Client) -> anyhow::Result<()> {
    match cmd {
        VolumeCommand::Create {
            driver,
            opt,
            label,
            name,
        } => {
            let body = json!({
                "Name": name.unwrap_or_default(),
                "Driver": driver,
                "DriverOpts": super::filters::pairs(&opt),
                "Labels": super::filters::pairs(&label),
            });
            let resp = client
                .send(Method::POST, "/volumes/create", Client::json_body(&body)?)
                .await?;
            let created: Value = read_json(resp).await?;
            println!("{}", created["Name"].as_str().unwrap_or_default());
        }
        VolumeCommand::Ls { quiet, filter } => {
            let path = match super::filters::query(&filter)? {
                Some(f) => format!("/volumes?filters={f}"),
                None => "/volumes".into(),
            };
            let list: Value = client.json(Method::GET, &path).await?;
            let volumes = list["Volumes"].as_array().cloned().unwrap_or_default();
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            if quiet {
                for v in &volumes {
                    println!("{}", s(&v["Name"]));
                }
                return Ok(());
            }
            let rows: Vec<Vec<String>> = volumes
                .iter()
                .map(|v| vec![s(&v["Driver"]), s(&v["Name"])])
                .collect();
            print!("{}", output::table(&["DRIVER", "VOLUME NAME"], &rows));
        }
        VolumeCommand::Inspect { volumes } => client.inspect_all("/volumes", &volumes).await?,
        VolumeCommand::Rm { force, volumes } => {
            let query = if force { "?force=1" } else { "" };
            client
                .remove_all_with("/volumes", &volumes, "volumes", query)
                .await?
        }
        VolumeCommand::Prune { all, force } => {
            if !force
                && !output::confirm(
                    "WARNING! This will remove volumes not used by at least one container.\nAre you sure you want to continue? [y/N] ",
                )
            {
                return Ok(());
            }
            let path = match all {
                true => format!("/volumes/prune?filters={}", json!({"all": ["true"]})),
                false => "/volumes/prune".into(),
            };
            let resp = client.send(Method::POST, &path, Client::empty()).await?;
            let pruned: Value = read_json(resp).await?;
            let names: Vec<&str> = pruned["VolumesDeleted"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !names.is_empty() {
                println!("Deleted Volumes:\n{}", names.join("\n"));
            }
            println!(
                "\nTotal reclaimed space: {}",
                crate::units::human_size(pruned["SpaceReclaimed"].as_u64().unwrap_or(0))
            );
        }
    }
    Ok(())
}
