//! `covey config` and `covey secret`: create, ls, inspect, rm, as `docker config` and
//! `docker secret` have them. One command set serves both: only the API path differs
//! (and the daemon never shows a secret's data).

use std::io::Read as _;

use anyhow::Context as _;
use base64::Engine as _;
use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};

use super::client::{read_json, Client};
use super::output;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Create one from a file, or from stdin with `-`.
    Create {
        /// A label (key=value).
        #[arg(short, long = "label")]
        label: Vec<String>,
        name: String,
        file: String,
    },
    /// List them.
    #[command(alias = "list")]
    Ls {
        /// Only IDs.
        #[arg(short, long)]
        quiet: bool,
        /// Filter (e.g. name=app, label=k=v).
        #[arg(short, long = "filter")]
        filter: Vec<String>,
    },
    /// Show them in full.
    Inspect {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Remove them (refused while a service uses one).
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
}

/// Runs `cmd` on `/configs` or `/secrets` (`what`: "configs" or "secrets").
pub async fn run(cmd: ConfigCommand, client: &Client, what: &str) -> anyhow::Result<()> {
    let base = format!("/{what}");
    match cmd {
        ConfigCommand::Create { label, name, file } => {
            let mut data = Vec::new();
            if file == "-" {
                std::io::stdin()
                    .read_to_end(&mut data)
                    .context("reading stdin")?;
            } else {
                data = std::fs::read(&file).with_context(|| format!("reading {file}"))?;
            }
            let body = json!({
                "Name": name,
                "Labels": super::filters::pairs(&label),
                "Data": base64::engine::general_purpose::STANDARD.encode(&data),
            });
            let resp = client
                .send(
                    Method::POST,
                    &format!("{base}/create"),
                    Client::json_body(&body)?,
                )
                .await?;
            let created: Value = read_json(resp).await?;
            println!("{}", created["ID"].as_str().unwrap_or_default());
        }
        ConfigCommand::Ls { quiet, filter } => {
            let path = match super::filters::query(&filter)? {
                Some(f) => format!("{base}?filters={f}"),
                None => base.clone(),
            };
            let all: Vec<Value> = client.json(Method::GET, &path).await?;
            if quiet {
                for c in &all {
                    println!("{}", c["ID"].as_str().unwrap_or_default());
                }
                return Ok(());
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|c| {
                    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
                    vec![
                        s(&c["ID"]),
                        s(&c["Spec"]["Name"]),
                        s(&c["CreatedAt"]),
                        s(&c["UpdatedAt"]),
                    ]
                })
                .collect();
            print!(
                "{}",
                output::table(&["ID", "NAME", "CREATED", "UPDATED"], &rows)
            );
        }
        ConfigCommand::Inspect { names } => client.inspect_all(&base, &names).await?,
        ConfigCommand::Rm { names } => client.remove_all(&base, &names, what).await?,
    }
    Ok(())
}
