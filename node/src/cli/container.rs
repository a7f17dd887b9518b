//! `covey container`: run, ls, logs, start, stop, kill, wait, rm, inspect, as `docker`.

use anyhow::Context;
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use super::client::{escape, Client};
use super::output::{self, Format};
use super::session::{self, Session};

#[derive(Subcommand)]
pub enum ContainerCommand {
    /// Create and start a container, and (unless -d) show its output and exit with its code.
    Run(Box<RunArgs>),
    /// List containers.
    #[command(alias = "ps", alias = "list")]
    Ls {
        /// Show all containers, not only running ones.
        #[arg(short, long)]
        all: bool,
        #[arg(short, long)]
        quiet: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a container's output.
    Logs {
        #[arg(short, long)]
        follow: bool,
        #[arg(short, long)]
        timestamps: bool,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<String>,
        container: String,
    },
    /// Start stopped containers.
    Start {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop containers: the stop signal, then SIGKILL after the timeout.
    Stop {
        /// Seconds to wait before killing.
        #[arg(short, long)]
        time: Option<u64>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal to containers.
    Kill {
        #[arg(short, long, default_value = "SIGKILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Wait for containers to stop, and print their exit codes.
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers.
    #[command(alias = "remove")]
    Rm {
        /// Kill and remove running containers.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Run a command in a running container, and exit with its code.
    Exec {
        /// Keep stdin open: this process's input goes to the command.
        #[arg(short, long)]
        interactive: bool,
        /// A terminal for the command.
        #[arg(short, long)]
        tty: bool,
        #[arg(short, long = "env")]
        env: Vec<String>,
        #[arg(short, long)]
        user: Option<String>,
        #[arg(short, long)]
        workdir: Option<String>,
        container: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Show containers' details as JSON.
    Inspect {
        #[arg(required = true)]
        containers: Vec<String>,
    },
}

#[derive(Args)]
pub struct RunArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Keep stdin open: this process's input goes to the container.
    #[arg(short, long)]
    interactive: bool,
    /// A terminal for the container.
    #[arg(short, long)]
    tty: bool,
    /// Run in the background and print the container's ID.
    #[arg(short, long)]
    detach: bool,
    #[arg(long)]
    name: Option<String>,
    /// Environment variables (KEY=VALUE).
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short, long)]
    memory: Option<String>,
    /// Number of CPUs (e.g. 1.5).
    #[arg(long)]
    cpus: Option<f64>,
    #[arg(long)]
    pids_limit: Option<i64>,
    /// User (name|uid[:group|gid]).
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory in the container.
    #[arg(short, long)]
    workdir: Option<String>,
    #[arg(long)]
    entrypoint: Option<String>,
    #[arg(long)]
    hostname: Option<String>,
    /// Network: none (loopback only, the default for now) or host.
    #[arg(long)]
    network: Option<String>,
    /// Bind mounts (HOST:CONTAINER[:ro]).
    #[arg(short, long = "volume")]
    volumes: Vec<String>,
    #[arg(long)]
    read_only: bool,
    #[arg(long)]
    cap_add: Vec<String>,
    #[arg(long)]
    cap_drop: Vec<String>,
    image: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// The exit code a command should end the process with (`covey container run`).
#[derive(Debug)]
pub struct ExitWith(pub i32);

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for ExitWith {}

pub async fn run(cmd: ContainerCommand, client: &Client) -> anyhow::Result<()> {
    match cmd {
        ContainerCommand::Run(args) => run_container(client, *args).await,
        ContainerCommand::Ls { all, quiet, format } => ls(client, all, quiet, format).await,
        ContainerCommand::Logs {
            follow,
            timestamps,
            tail,
            container,
        } => {
            let q = format!(
                "stdout=1&stderr=1&follow={}&timestamps={}&tail={}",
                follow as u8,
                timestamps as u8,
                escape(tail.as_deref().unwrap_or("all"))
            );
            let resp = client
                .send(
                    Method::GET,
                    &format!("/containers/{}/logs?{q}", escape(&container)),
                    Client::empty(),
                )
                .await?;
            session::demux_response(resp).await
        }
        ContainerCommand::Start { containers } => {
            each(client, Method::POST, &containers, "start").await
        }
        ContainerCommand::Stop { time, containers } => {
            let t = time
                .map(|t| format!("stop?t={t}"))
                .unwrap_or_else(|| "stop".into());
            each(client, Method::POST, &containers, &t).await
        }
        ContainerCommand::Kill { signal, containers } => {
            each(
                client,
                Method::POST,
                &containers,
                &format!("kill?signal={}", escape(&signal)),
            )
            .await
        }
        ContainerCommand::Wait { containers } => {
            for c in &containers {
                let v: Value = client
                    .json(Method::POST, &format!("/containers/{}/wait", escape(c)))
                    .await?;
                println!("{}", v["StatusCode"]);
            }
            Ok(())
        }
        ContainerCommand::Rm { force, containers } => {
            each(
                client,
                Method::DELETE,
                &containers,
                if force { "?force=1" } else { "" },
            )
            .await
        }
        ContainerCommand::Exec {
            interactive,
            tty,
            env,
            user,
            workdir,
            container,
            command,
        } => {
            let body = json!({
                "Cmd": command,
                "Env": env,
                "User": user.unwrap_or_default(),
                "WorkingDir": workdir.unwrap_or_default(),
                "AttachStdin": interactive,
                "AttachStdout": true,
                "AttachStderr": true,
                "Tty": tty,
            });
            let resp = client
                .send(
                    Method::POST,
                    &format!("/containers/{}/exec", escape(&container)),
                    Client::json_body(&body)?,
                )
                .await?;
            let created: Value = serde_json::from_slice(
                &http_body_util::BodyExt::collect(resp.into_body())
                    .await?
                    .to_bytes(),
            )?;
            let id = created["Id"]
                .as_str()
                .context("the daemon's answer has no exec ID")?
                .to_string();
            let stream = client.upgrade(&format!("/exec/{id}/start")).await?;
            Session {
                tty,
                stdin: interactive,
                resize: tty.then(|| format!("/exec/{id}/resize")),
            }
            .run(client, stream)
            .await?;
            let state: Value = client
                .json(Method::GET, &format!("/exec/{id}/json"))
                .await?;
            match state["ExitCode"].as_i64() {
                Some(0) => Ok(()),
                Some(code) => Err(ExitWith(code as i32).into()),
                None => anyhow::bail!("the exec's exit code is unknown"),
            }
        }
        ContainerCommand::Inspect { containers } => {
            let mut out = Vec::new();
            for c in &containers {
                out.push(
                    client
                        .json::<Value>(Method::GET, &format!("/containers/{}/json", escape(c)))
                        .await?,
                );
            }
            print!("{}", output::json(&out)?);
            Ok(())
        }
    }
}

/// Sends `/containers/<name>/<action>` (or `/containers/<name><action>` for a bare query)
/// for each container, printing its name on success as docker does, and every failure at
/// the end.
async fn each(
    client: &Client,
    method: Method,
    containers: &[String],
    action: &str,
) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    for c in containers {
        let sep = if action.is_empty() || action.starts_with('?') {
            ""
        } else {
            "/"
        };
        let path = format!("/containers/{}{sep}{action}", escape(c));
        match client.send(method.clone(), &path, Client::empty()).await {
            Ok(_) => println!("{c}"),
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    anyhow::ensure!(failed.is_empty(), "{}", failed.join("\n"));
    Ok(())
}

fn create_body(a: &RunArgs) -> anyhow::Result<Value> {
    let memory = a
        .memory
        .as_deref()
        .map(crate::units::parse_bytes)
        .transpose()?
        .unwrap_or(0);
    Ok(json!({
        "Image": a.image,
        "Cmd": if a.command.is_empty() { Value::Null } else { json!(a.command) },
        "Entrypoint": a.entrypoint.as_ref().map(|e| json!([e])).unwrap_or(Value::Null),
        "Env": a.env,
        "User": a.user.clone().unwrap_or_default(),
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "Hostname": a.hostname.clone().unwrap_or_default(),
        "Tty": a.tty,
        "OpenStdin": a.interactive,
        "AttachStdin": a.interactive,
        "StdinOnce": a.interactive,
        "HostConfig": {
            "AutoRemove": a.rm,
            "Memory": memory,
            "NanoCpus": a.cpus.map(|c| (c * 1e9) as i64).unwrap_or(0),
            "PidsLimit": a.pids_limit,
            "Binds": a.volumes,
            "ReadonlyRootfs": a.read_only,
            "CapAdd": a.cap_add,
            "CapDrop": a.cap_drop,
            "NetworkMode": a.network.clone().unwrap_or_default(),
        },
    }))
}

async fn run_container(client: &Client, a: RunArgs) -> anyhow::Result<()> {
    let body = create_body(&a)?;
    let path = match &a.name {
        Some(n) => format!("/containers/create?name={}", escape(n)),
        None => "/containers/create".into(),
    };
    let created = match client
        .send(Method::POST, &path, Client::json_body(&body)?)
        .await
    {
        Err(e) if format!("{e:#}").contains("No such image") => {
            eprintln!("Unable to find image '{}' locally", a.image);
            super::image::pull_image(client, &a.image, None, false).await?;
            client
                .send(Method::POST, &path, Client::json_body(&body)?)
                .await?
        }
        other => other?,
    };
    let created: Value = serde_json::from_slice(
        &http_body_util::BodyExt::collect(created.into_body())
            .await?
            .to_bytes(),
    )?;
    let id = created["Id"]
        .as_str()
        .context("the daemon's answer has no container ID")?
        .to_string();
    if a.detach {
        client
            .send(
                Method::POST,
                &format!("/containers/{id}/start"),
                Client::empty(),
            )
            .await?;
        println!("{id}");
        return Ok(());
    }
    // As docker run: attach, then wait, then start, so that no output and no exit is missed.
    let stream = client
        .upgrade(&format!(
            "/containers/{id}/attach?stream=1&stdout=1&stderr=1&stdin={}",
            a.interactive as u8
        ))
        .await?;
    let condition = if a.rm { "removed" } else { "next-exit" };
    let wait = client
        .send(
            Method::POST,
            &format!("/containers/{id}/wait?condition={condition}"),
            Client::empty(),
        )
        .await?;
    if let Err(e) = client
        .send(
            Method::POST,
            &format!("/containers/{id}/start"),
            Client::empty(),
        )
        .await
    {
        // docker run's codes: 127 no such command, 126 not executable, 125 anything else.
        let msg = format!("{e:#}");
        eprintln!("{msg}");
        let code = if msg.contains("not found") || msg.contains("No such file") {
            127
        } else if msg.contains("ermission denied") {
            126
        } else {
            125
        };
        return Err(ExitWith(code).into());
    }
    Session {
        tty: a.tty,
        stdin: a.interactive,
        resize: a.tty.then(|| format!("/containers/{id}/resize")),
    }
    .run(client, stream)
    .await?;
    let status: Value = serde_json::from_slice(
        &http_body_util::BodyExt::collect(wait.into_body())
            .await?
            .to_bytes(),
    )?;
    let code = status["StatusCode"].as_i64().unwrap_or(-1) as i32;
    if code != 0 {
        return Err(ExitWith(code).into());
    }
    Ok(())
}

async fn ls(client: &Client, all: bool, quiet: bool, format: Format) -> anyhow::Result<()> {
    let list: Vec<Value> = client
        .json(Method::GET, &format!("/containers/json?all={}", all as u8))
        .await?;
    if format == Format::Json {
        print!("{}", output::json(&list)?);
        return Ok(());
    }
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    if quiet {
        for c in &list {
            println!("{}", &s(c, "Id")[..12.min(s(c, "Id").len())]);
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            let id = s(c, "Id");
            vec![
                id.chars().take(12).collect(),
                s(c, "Image"),
                format!("\"{}\"", s(c, "Command")),
                crate::units::ago(c["Created"].as_i64().unwrap_or(0)),
                s(c, "Status"),
                c["Names"][0]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(
            &[
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "NAMES"
            ],
            &rows
        )
    );
    Ok(())
}
