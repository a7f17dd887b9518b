//! `covey service`: create, inspect, logs, ls, ps, rm, scale, update, as `docker service`
//! has them, over the Engine API's service and task endpoints. What each prints is what
//! the docker CLI prints, down to its error messages.

mod flags;
mod list;
mod pretty;
mod progress;
mod rollout;
mod spec;
mod tracker;
mod update;

use std::collections::HashMap;

use anyhow::Context;
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use super::client::{escape, read_json, Client, DaemonError};
use super::filters::{filters_json, parse_filters};
use super::output::{self, Format};
use super::session;
use flags::{CreateArgs, UpdateArgs};

#[derive(Subcommand)]
pub enum ServiceCommand {
    /// Create a new service.
    Create(Box<CreateArgs>),
    /// Display detailed information on one or more services.
    Inspect {
        /// Print the information in a human friendly format.
        #[arg(long)]
        pretty: bool,
        #[arg(short, long, value_enum)]
        format: Option<Format>,
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Fetch the logs of a service or task.
    Logs {
        /// Follow log output.
        #[arg(short, long)]
        follow: bool,
        /// Number of lines to show from the end of the logs.
        #[arg(short = 'n', long, default_value = "all")]
        tail: String,
        /// Show timestamps.
        #[arg(short, long)]
        timestamps: bool,
        service: String,
    },
    /// List services.
    #[command(alias = "list")]
    Ls {
        /// Only display IDs.
        #[arg(short, long)]
        quiet: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        /// Filter output based on conditions provided (name=, id=, label=, mode=).
        #[arg(short, long = "filter")]
        filters: Vec<String>,
    },
    /// List the tasks of one or more services.
    Ps {
        #[command(flatten)]
        list: TaskList,
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Remove one or more services.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Scale one or multiple replicated services (SERVICE=REPLICAS).
    Scale {
        /// Exit immediately instead of waiting for the service to converge.
        #[arg(short, long)]
        detach: bool,
        #[arg(required = true)]
        scales: Vec<String>,
    },
    /// Update a service.
    Update(Box<UpdateArgs>),
    /// Revert a service to the spec it had before its last update.
    Rollback {
        /// Exit immediately instead of waiting for the service to converge.
        #[arg(short, long)]
        detach: bool,
        /// Print only the service's name, no progress.
        #[arg(short, long)]
        quiet: bool,
        service: String,
    },
}

/// How `service ps` and `node ps` list tasks.
#[derive(Args)]
pub struct TaskList {
    /// Only display task IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Do not truncate output.
    #[arg(long)]
    no_trunc: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Filter output based on conditions provided (desired-state=, node=, name=, id=, label=).
    #[arg(short, long = "filter")]
    pub filters: Vec<String>,
}

pub async fn run(cmd: ServiceCommand, client: &Client) -> anyhow::Result<()> {
    match cmd {
        ServiceCommand::Create(a) => create(client, &a).await,
        ServiceCommand::Inspect {
            pretty,
            format,
            services,
        } => inspect(client, pretty, format, &services).await,
        ServiceCommand::Logs {
            follow,
            tail,
            timestamps,
            service,
        } => logs(client, follow, &tail, timestamps, &service).await,
        ServiceCommand::Ls {
            quiet,
            format,
            filters,
        } => ls(client, quiet, format, &filters).await,
        ServiceCommand::Ps { list, services } => ps(client, &list, &services).await,
        ServiceCommand::Rm { services } => rm(client, &services).await,
        ServiceCommand::Scale { detach, scales } => scale(client, detach, &scales).await,
        ServiceCommand::Update(a) => update(client, &a).await,
        ServiceCommand::Rollback {
            detach,
            quiet,
            service,
        } => rollback(client, detach, quiet, &service).await,
    }
}

/// A service by name, ID or ID prefix (the daemon resolves them); `None` if there is
/// none.
async fn fetch_service(client: &Client, name: &str) -> anyhow::Result<Option<Value>> {
    match client
        .json(Method::GET, &format!("/services/{}", escape(name)))
        .await
    {
        Ok(v) => Ok(Some(v)),
        Err(e) if DaemonError::is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A service that must exist, with docker's error if it does not.
async fn get_service(client: &Client, name: &str) -> anyhow::Result<Value> {
    fetch_service(client, name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("Error: No such service: {name}"))
}

fn id_of(service: &Value) -> anyhow::Result<String> {
    service["ID"]
        .as_str()
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .context("the daemon's answer has no service ID")
}

/// The daemon's warnings about a create or update, on stderr as docker prints them.
fn print_warnings(answer: &Value) {
    for w in spec::strings(&answer["Warnings"]) {
        eprintln!("{w}");
    }
}

/// Writes a spec back at the version it was read at: the daemon refuses it if the
/// service changed meanwhile.
async fn post_update(client: &Client, service: &Value, spec: &Value) -> anyhow::Result<()> {
    post_update_with(client, service, spec, "").await
}

/// As [`post_update`], with more of the query (`&rollback=previous`).
async fn post_update_with(
    client: &Client,
    service: &Value,
    spec: &Value,
    query: &str,
) -> anyhow::Result<()> {
    let id = id_of(service)?;
    let version = service["Version"]["Index"].as_u64().unwrap_or(0);
    let resp = client
        .send(
            Method::POST,
            &format!("/services/{}/update?version={version}{query}", escape(&id)),
            Client::json_body(spec)?,
        )
        .await?;
    // Only warnings come back; an answer without them is no failure.
    print_warnings(&read_json::<Value>(resp).await.unwrap_or_default());
    Ok(())
}

async fn create(client: &Client, a: &CreateArgs) -> anyhow::Result<()> {
    let spec = spec::create_spec(a)?;
    let resp = client
        .send(Method::POST, "/services/create", Client::json_body(&spec)?)
        .await?;
    let created: Value = read_json(resp).await?;
    print_warnings(&created);
    let id = id_of(&created)?;
    println!("{id}");
    if a.common.detach {
        return Ok(());
    }
    progress::wait(client, &id, &id, a.common.quiet).await
}

async fn update(client: &Client, a: &UpdateArgs) -> anyhow::Result<()> {
    let service = get_service(client, &a.service).await?;
    let mut spec = service["Spec"].clone();
    update::apply_update(&mut spec, a)?;
    post_update(client, &service, &spec).await?;
    println!("{}", a.service);
    if a.common.detach {
        return Ok(());
    }
    progress::wait(client, &id_of(&service)?, &a.service, a.common.quiet).await
}

/// `service rollback`: the daemon puts back the previous spec, as docker's does.
async fn rollback(client: &Client, detach: bool, quiet: bool, name: &str) -> anyhow::Result<()> {
    let service = get_service(client, name).await?;
    post_update_with(client, &service, &service["Spec"], "&rollback=previous").await?;
    println!("{name}");
    if detach {
        return Ok(());
    }
    progress::wait(client, &id_of(&service)?, name, quiet).await
}

async fn scale(client: &Client, detach: bool, scales: &[String]) -> anyhow::Result<()> {
    // Every specifier is checked before any service changes, as docker does.
    for s in scales {
        match s.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => {}
            _ => anyhow::bail!(
                "invalid scale specifier '{s}'.\nSee 'covey service scale --help'.\n\n\
                 Usage:  covey service scale SERVICE=REPLICAS [SERVICE=REPLICAS...]\n\n\
                 Scale one or multiple replicated services"
            ),
        }
    }
    let mut errors = Vec::new();
    let mut scaled = Vec::new();
    for s in scales {
        let (name, n) = s.split_once('=').unwrap_or((s, ""));
        let Ok(n) = n.parse::<u64>() else {
            errors.push(format!(
                "{name}: invalid replicas value {n}: strconv.ParseUint: parsing \"{n}\": invalid syntax"
            ));
            continue;
        };
        match scale_one(client, name, n).await {
            Ok(id) => {
                println!("{name} scaled to {n}");
                scaled.push((id, name));
            }
            Err(e) => errors.push(format!("{name}: {e:#}")),
        }
    }
    if !detach {
        for (id, name) in scaled {
            if let Err(e) = progress::wait(client, &id, name, false).await {
                errors.push(format!("{name}: {e:#}"));
            }
        }
    }
    anyhow::ensure!(errors.is_empty(), "{}", errors.join("\n"));
    Ok(())
}

/// Sets a service's replica count (a replicated job's completions); returns its ID.
async fn scale_one(client: &Client, name: &str, n: u64) -> anyhow::Result<String> {
    let service = get_service(client, name).await?;
    let mut spec = service["Spec"].clone();
    let mode = spec::field(&mut spec, "Mode");
    if let Some(r) = mode.get_mut("Replicated") {
        *spec::field(r, "Replicas") = json!(n);
    } else if let Some(j) = mode.get_mut("ReplicatedJob") {
        *spec::field(j, "TotalCompletions") = json!(n);
    } else {
        anyhow::bail!("scale can only be used with replicated or replicated-job mode");
    }
    post_update(client, &service, &spec).await?;
    id_of(&service)
}

async fn rm(client: &Client, services: &[String]) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for s in services {
        match client
            .send(
                Method::DELETE,
                &format!("/services/{}", escape(s)),
                Client::empty(),
            )
            .await
        {
            Ok(_) => println!("{s}"),
            Err(e) if DaemonError::is_not_found(&e) => {
                errors.push(format!("Error: No such service: {s}"))
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    anyhow::ensure!(errors.is_empty(), "{}", errors.join("\n"));
    Ok(())
}

async fn inspect(
    client: &Client,
    pretty: bool,
    format: Option<Format>,
    services: &[String],
) -> anyhow::Result<()> {
    if pretty && format.is_some() {
        anyhow::bail!("--format is incompatible with human friendly format");
    }
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for s in services {
        match fetch_service(client, s).await {
            Ok(Some(v)) => found.push(v),
            Ok(None) => errors.push(format!("no such service: {s}")),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    // What was found is printed even when something was not, as docker does.
    if pretty {
        for s in &found {
            print!("{}", pretty::render(s));
        }
    } else {
        print!("{}", output::json(&found)?);
    }
    anyhow::ensure!(errors.is_empty(), "{}", errors.join("\n"));
    Ok(())
}

async fn ls(
    client: &Client,
    quiet: bool,
    format: Format,
    filters: &[String],
) -> anyhow::Result<()> {
    let filters = parse_filters(filters)?;
    let mut path = "/services?status=true".to_string();
    if !filters.is_empty() {
        path.push_str("&filters=");
        path.push_str(&escape(&filters_json(&filters).to_string()));
    }
    let services: Vec<Value> = client.json(Method::GET, &path).await?;
    let services: Vec<Value> = services
        .into_iter()
        .filter(|s| list::ls_matches(s, &filters))
        .collect();
    let rows = list::ls_rows(&services);
    if quiet {
        for r in &rows {
            println!("{}", r[0]);
        }
    } else if format == Format::Json {
        print!("{}", output::json(&services)?);
    } else {
        print!("{}", output::table(&list::LS_HEADERS, &rows));
    }
    Ok(())
}

async fn ps(client: &Client, list: &TaskList, services: &[String]) -> anyhow::Result<()> {
    let filters = parse_filters(&list.filters)?;
    let mut names: HashMap<String, String> = HashMap::new();
    let mut ids = Vec::new();
    let mut missing = Vec::new();
    for s in services {
        match fetch_service(client, s).await? {
            Some(v) => {
                let id = id_of(&v)?;
                let name = v["Spec"]["Name"].as_str().unwrap_or(&id).to_string();
                names.insert(id.clone(), name);
                ids.push(id);
            }
            None => missing.push(format!("no such service: {s}")),
        }
    }
    anyhow::ensure!(!ids.is_empty(), "{}", missing.join("\n"));
    let mut query = filters_json(&filters);
    query["service"] = json!(ids);
    let tasks: Vec<Value> = client
        .json(
            Method::GET,
            &format!("/tasks?filters={}", escape(&query.to_string())),
        )
        .await?;
    // Applied here as well, so that the list is right even where the daemon ignores it.
    let desired: Vec<&str> = filters
        .iter()
        .filter(|(k, _)| k == "desired-state")
        .map(|(_, v)| v.as_str())
        .collect();
    let tasks: Vec<Value> = tasks
        .into_iter()
        .filter(|t| {
            desired.is_empty() || desired.contains(&t["DesiredState"].as_str().unwrap_or_default())
        })
        .collect();
    print_tasks(client, &tasks, &names, list).await?;
    anyhow::ensure!(missing.is_empty(), "{}", missing.join("\n"));
    Ok(())
}

/// Tasks as `service ps` and `node ps` print them: JSON, IDs, or docker's table (by
/// name, a slot's older tasks under its current one), with `names` of their services.
pub(super) async fn print_tasks(
    client: &Client,
    tasks: &[Value],
    names: &HashMap<String, String>,
    list: &TaskList,
) -> anyhow::Result<()> {
    if list.format == Format::Json && !list.quiet {
        print!("{}", output::json(&tasks)?);
        return Ok(());
    }
    let sorted = list::sort_tasks(tasks, names);
    if list.quiet {
        for (_, t) in &sorted {
            println!("{}", t["ID"].as_str().unwrap_or_default());
        }
        return Ok(());
    }
    // Names are a nicety: without the node list, nodes show as IDs, as docker's.
    let nodes: Vec<Value> = client.json(Method::GET, "/nodes").await.unwrap_or_default();
    let rows = list::ps_rows(
        &sorted,
        &list::node_names(&nodes),
        !list.no_trunc,
        std::time::SystemTime::now(),
    );
    print!("{}", output::table(&list::PS_HEADERS, &rows));
    Ok(())
}

async fn logs(
    client: &Client,
    follow: bool,
    tail: &str,
    timestamps: bool,
    name: &str,
) -> anyhow::Result<()> {
    // A service, else a task of that name, as docker looks them up.
    let target = match fetch_service(client, name).await? {
        Some(s) => format!("/services/{}/logs", escape(&id_of(&s)?)),
        None => {
            match client
                .json::<Value>(Method::GET, &format!("/tasks/{}", escape(name)))
                .await
            {
                Ok(t) => {
                    let id = t["ID"].as_str().unwrap_or(name);
                    format!("/tasks/{}/logs", escape(id))
                }
                Err(e) if DaemonError::is_not_found(&e) => {
                    anyhow::bail!("no such task or service: {name}")
                }
                Err(e) => return Err(e),
            }
        }
    };
    let query = format!(
        "stdout=1&stderr=1&details=1&follow={}&timestamps={}&tail={}",
        follow as u8,
        timestamps as u8,
        escape(tail)
    );
    let names = task_names(client).await;
    let resp = client
        .send(Method::GET, &format!("{target}?{query}"), Client::empty())
        .await?;
    session::demux_response_with(resp, |line| prefix_line(line, &names)).await
}

/// Every service's name by its ID (none if the daemon cannot say).
pub(super) async fn service_names(client: &Client) -> HashMap<String, String> {
    client
        .json::<Vec<Value>>(Method::GET, "/services")
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|s| {
            Some((
                s["ID"].as_str()?.to_string(),
                s["Spec"]["Name"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Each task's name as docker prints it before its lines: `web.1.<task id>@<node>`.
async fn task_names(client: &Client) -> std::collections::HashMap<String, String> {
    let nodes: Vec<Value> = client.json(Method::GET, "/nodes").await.unwrap_or_default();
    let hosts = list::node_names(&nodes);
    let tasks = client
        .json::<Vec<Value>>(Method::GET, "/tasks")
        .await
        .unwrap_or_default();
    let services = service_names(client).await;
    tasks
        .iter()
        .filter_map(|t| {
            let id = t["ID"].as_str()?;
            let node = t["NodeID"].as_str().unwrap_or_default();
            let service = services.get(t["ServiceID"].as_str()?)?;
            let slot = match t["Slot"].as_u64() {
                Some(n) if n > 0 => n.to_string(),
                _ => node.to_string(),
            };
            let host = hosts.get(node).map(String::as_str).unwrap_or(node);
            Some((id.to_string(), format!("{service}.{slot}.{id}@{host}")))
        })
        .collect()
}

/// A line with the daemon's details (`com.docker.swarm.task.id=...,... message`) as
/// docker prints it: `web.1.<task>@node    | message`.
fn prefix_line(line: &[u8], names: &std::collections::HashMap<String, String>) -> Vec<u8> {
    let text = String::from_utf8_lossy(line);
    let Some((details, message)) = text.split_once(' ') else {
        return line.to_vec();
    };
    let Some(task) = details
        .split(',')
        .find_map(|kv| kv.strip_prefix("com.docker.swarm.task.id="))
    else {
        return line.to_vec();
    };
    let name = names.get(task).cloned().unwrap_or_else(|| task.to_string());
    format!("{name}    | {message}").into_bytes()
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use crate::cli::Cli;

    #[test]
    fn the_grammar_is_dockers() {
        // Flag names and short forms do not clash with covey's global ones.
        Cli::command().debug_assert();
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        assert!(parse(&[
            "covey",
            "-H",
            "unix:///tmp/s",
            "service",
            "create",
            "--name",
            "web",
            "-d",
            "-q",
            "--replicas",
            "3",
            "-e",
            "A=1",
            "-l",
            "a=b",
            "-p",
            "8080:80",
            "busybox",
            "sleep",
            "1d"
        ])
        .is_ok());
        assert!(parse(&[
            "covey",
            "service",
            "update",
            "--read-only=false",
            "--force",
            "web"
        ])
        .is_ok());
        assert!(parse(&[
            "covey",
            "service",
            "ps",
            "-f",
            "desired-state=running",
            "--no-trunc",
            "web"
        ])
        .is_ok());
        assert!(parse(&["covey", "service", "logs", "-f", "-n", "10", "-t", "web"]).is_ok());
        assert!(parse(&["covey", "service", "scale", "-d", "web=3", "db=1"]).is_ok());
        assert!(parse(&["covey", "service", "inspect", "--pretty", "web"]).is_ok());
        assert!(parse(&["covey", "service", "rm", "web", "db"]).is_ok());
        assert!(parse(&["covey", "service", "ls", "-q", "--filter", "name=web"]).is_ok());
        assert!(parse(&["covey", "service", "ps"]).is_err());
    }
}
