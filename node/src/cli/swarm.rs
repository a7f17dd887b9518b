//! `covey swarm`: init, join, join-token, leave, update, unlock and unlock-key, as
//! `docker swarm` has them, and covey's own dashboard-token.

use anyhow::Context;
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use super::client::Client;

#[derive(Subcommand)]
pub enum SwarmCommand {
    /// Make a new swarm with this node as its first manager.
    Init(InitArgs),
    /// Join a swarm as a worker or a manager, as the token says.
    Join(JoinArgs),
    /// Show (or rotate) the command that joins a node to this swarm.
    JoinToken(JoinTokenArgs),
    /// Show (or rotate) the token that logs in to the managers' dashboard (served with
    /// `covey daemon --metrics-addr`).
    DashboardToken(DashboardTokenArgs),
    /// Leave the swarm.
    Leave {
        /// Leave even as a manager whose leaving loses the swarm's quorum.
        #[arg(short, long)]
        force: bool,
    },
    /// Change the swarm's settings.
    Update(UpdateArgs),
    /// Unlock a manager restarted while the swarm is autolocked (the key from stdin).
    Unlock,
    /// Show (or rotate) the key that unlocks restarted managers.
    UnlockKey(UnlockKeyArgs),
}

#[derive(Args)]
pub struct UnlockKeyArgs {
    /// Make a new key; managers restarted after this need it (keep the old one a while,
    /// for a manager that is down now).
    #[arg(long)]
    rotate: bool,
    /// Print the key only.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
pub struct InitArgs {
    /// Address other nodes reach this one on (IP[:PORT]).
    #[arg(long)]
    advertise_addr: Option<String>,
    /// Address to listen on (IP[:PORT], default 0.0.0.0:2377).
    #[arg(long)]
    listen_addr: Option<String>,
    /// Make this manager the only one of its swarm, keeping the swarm's state (after
    /// quorum was lost).
    #[arg(long)]
    force_new_cluster: bool,
    /// How often nodes report (e.g. 5s).
    #[arg(long, value_parser = humantime::parse_duration)]
    dispatcher_heartbeat: Option<std::time::Duration>,
    /// How long node certificates are valid (e.g. 2160h).
    #[arg(long, value_parser = humantime::parse_duration)]
    cert_expiry: Option<std::time::Duration>,
    /// Seal the managers' keys at rest; a restarted manager waits for `swarm unlock`.
    #[arg(long)]
    autolock: bool,
}

#[derive(Args)]
pub struct JoinArgs {
    /// The swarm's worker or manager join token ($COVEY_JOIN_TOKEN keeps it off the
    /// command line, as the join unit `covey provision` writes does).
    #[arg(long, env = "COVEY_JOIN_TOKEN", hide_env_values = true)]
    token: String,
    #[arg(long)]
    advertise_addr: Option<String>,
    #[arg(long)]
    listen_addr: Option<String>,
    /// A manager's address (IP[:PORT]).
    remote: String,
}

#[derive(Args)]
pub struct JoinTokenArgs {
    /// Make a new token; the old one stops working.
    #[arg(long)]
    rotate: bool,
    /// Print the token only.
    #[arg(short, long)]
    quiet: bool,
    /// worker or manager.
    role: String,
}

#[derive(Args)]
pub struct DashboardTokenArgs {
    /// Make a new token; browsers logged in with the old one must log in again.
    #[arg(long)]
    rotate: bool,
    /// Print the token only.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
pub struct UpdateArgs {
    #[arg(long, value_parser = humantime::parse_duration)]
    dispatcher_heartbeat: Option<std::time::Duration>,
    #[arg(long, value_parser = humantime::parse_duration)]
    cert_expiry: Option<std::time::Duration>,
    /// Old tasks kept per slot.
    #[arg(long)]
    task_history_limit: Option<u64>,
    /// Seal the managers' keys at rest (true or false).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    autolock: Option<bool>,
}

fn spec(
    heartbeat: Option<std::time::Duration>,
    cert_expiry: Option<std::time::Duration>,
    autolock: bool,
) -> Value {
    let mut spec = json!({});
    if autolock {
        spec["EncryptionConfig"] = json!({"AutoLockManagers": true});
    }
    if let Some(h) = heartbeat {
        spec["Dispatcher"] = json!({"HeartbeatPeriod": h.as_nanos() as u64});
    }
    if let Some(e) = cert_expiry {
        spec["CAConfig"] = json!({"NodeCertExpiry": e.as_nanos() as u64});
    }
    spec
}

pub async fn run(cmd: SwarmCommand, client: &Client) -> anyhow::Result<()> {
    match cmd {
        SwarmCommand::Init(args) => {
            let body = json!({
                "ListenAddr": args.listen_addr.unwrap_or_default(),
                "AdvertiseAddr": args.advertise_addr.unwrap_or_default(),
                "ForceNewCluster": args.force_new_cluster,
                "Spec": spec(args.dispatcher_heartbeat, args.cert_expiry, args.autolock),
            });
            let resp = client
                .send(Method::POST, "/swarm/init", Client::json_body(&body)?)
                .await?;
            let id: String = super::client::read_json(resp).await?;
            println!("Swarm initialized: current node ({id}) is now a manager.\n");
            print_join(client, "worker", false).await?;
            println!("To add a manager to this swarm, run 'covey swarm join-token manager' and follow the instructions.\n");
            if args.autolock {
                print_unlock_key(client, false).await?;
            }
        }
        SwarmCommand::Join(args) => {
            let body = json!({
                "ListenAddr": args.listen_addr.unwrap_or_default(),
                "AdvertiseAddr": args.advertise_addr.unwrap_or_default(),
                "RemoteAddrs": [args.remote],
                "JoinToken": args.token,
            });
            client
                .send(Method::POST, "/swarm/join", Client::json_body(&body)?)
                .await?;
            let info: Value = client.json(Method::GET, "/info").await?;
            let role = if info["Swarm"]["ControlAvailable"].as_bool() == Some(true) {
                "manager"
            } else {
                "worker"
            };
            println!("This node joined a swarm as a {role}.");
        }
        SwarmCommand::JoinToken(args) => {
            if args.role != "worker" && args.role != "manager" {
                anyhow::bail!("unknown role {}: expected worker or manager", args.role);
            }
            if args.rotate {
                let swarm: Value = client.json(Method::GET, "/swarm").await?;
                let flag = if args.role == "worker" {
                    "rotateWorkerToken"
                } else {
                    "rotateManagerToken"
                };
                rotate(client, &swarm, flag).await?;
                if !args.quiet {
                    println!("Successfully rotated {} join token.\n", args.role);
                }
            }
            print_join(client, &args.role, args.quiet).await?;
        }
        SwarmCommand::DashboardToken(args) => {
            if args.rotate {
                let swarm: Value = client.json(Method::GET, "/swarm").await?;
                rotate(client, &swarm, "rotateDashboardToken").await?;
                if !args.quiet {
                    println!("Successfully rotated the dashboard token.\n");
                }
            }
            let swarm: Value = client.json(Method::GET, "/swarm").await?;
            let token = swarm["DashboardToken"]
                .as_str()
                .filter(|t| !t.is_empty())
                .context("this swarm has no dashboard token yet (it was made before the dashboard): make one with `covey swarm dashboard-token --rotate`")?;
            if args.quiet {
                println!("{token}");
            } else {
                println!("To open the dashboard, start the managers' daemons with --metrics-addr IP:PORT,\nbrowse to http://MANAGER-IP:PORT/ and log in with this token:\n\n    {token}\n");
            }
        }
        SwarmCommand::Leave { force } => {
            let path = if force {
                "/swarm/leave?force=1"
            } else {
                "/swarm/leave"
            };
            client.send(Method::POST, path, Client::empty()).await?;
            println!("Node left the swarm.");
        }
        SwarmCommand::Update(args) => {
            let swarm: Value = client.json(Method::GET, "/swarm").await?;
            let version = swarm["Version"]["Index"].as_u64().unwrap_or(0);
            let mut spec = swarm["Spec"].clone();
            if let Some(h) = args.dispatcher_heartbeat {
                spec["Dispatcher"]["HeartbeatPeriod"] = json!(h.as_nanos() as u64);
            }
            if let Some(e) = args.cert_expiry {
                spec["CAConfig"]["NodeCertExpiry"] = json!(e.as_nanos() as u64);
            }
            if let Some(n) = args.task_history_limit {
                spec["Orchestration"]["TaskHistoryRetentionLimit"] = json!(n);
            }
            let was_locked = spec["EncryptionConfig"]["AutoLockManagers"] == json!(true);
            if let Some(on) = args.autolock {
                spec["EncryptionConfig"]["AutoLockManagers"] = json!(on);
            }
            client
                .send(
                    Method::POST,
                    &format!("/swarm/update?version={version}"),
                    Client::json_body(&spec)?,
                )
                .await?;
            println!("Swarm updated.");
            if args.autolock == Some(true) && !was_locked {
                print_unlock_key(client, false).await?;
            }
        }
        SwarmCommand::Unlock => {
            let key = read_unlock_key()?;
            client
                .send(
                    Method::POST,
                    "/swarm/unlock",
                    Client::json_body(&json!({"UnlockKey": key}))?,
                )
                .await?;
        }
        SwarmCommand::UnlockKey(args) => {
            if args.rotate {
                let swarm: Value = client.json(Method::GET, "/swarm").await?;
                if swarm["Spec"]["EncryptionConfig"]["AutoLockManagers"] != json!(true) {
                    anyhow::bail!("cannot rotate because autolock is not turned on");
                }
                rotate(client, &swarm, "rotateManagerUnlockKey").await?;
                if !args.quiet {
                    println!("Successfully rotated manager unlock key.\n");
                }
            }
            print_unlock_key(client, args.quiet).await?;
        }
    }
    Ok(())
}

/// `swarm update` of the swarm as it is, with one of its rotate flags.
async fn rotate(client: &Client, swarm: &Value, flag: &str) -> anyhow::Result<()> {
    let version = swarm["Version"]["Index"].as_u64().unwrap_or(0);
    client
        .send(
            Method::POST,
            &format!("/swarm/update?version={version}&{flag}=true"),
            Client::json_body(&swarm["Spec"])?,
        )
        .await?;
    Ok(())
}

async fn print_unlock_key(client: &Client, quiet: bool) -> anyhow::Result<()> {
    let answer: Value = client.json(Method::GET, "/swarm/unlockkey").await?;
    let key = answer["UnlockKey"].as_str().unwrap_or_default();
    if key.is_empty() {
        anyhow::bail!("no unlock key is set");
    }
    if quiet {
        println!("{key}");
        return Ok(());
    }
    println!("To unlock a swarm manager after it restarts, run the `covey swarm unlock`\ncommand and provide the following key:\n\n    {key}\n\nPlease remember to store this key in a password manager, since without it you\nwill not be able to restart the manager.");
    Ok(())
}

/// The unlock key from stdin: asked for, and not echoed, on a terminal.
fn read_unlock_key() -> anyhow::Result<String> {
    use nix::sys::termios::{self, LocalFlags, SetArg};
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        eprint!("Please enter unlock key: ");
        std::io::stderr().flush()?;
        let saved = termios::tcgetattr(&stdin).context("reading the terminal's settings")?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("turning echo off")?;
        let read = stdin.lock().read_line(&mut line);
        let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, &saved);
        eprintln!();
        read.context("reading the unlock key")?;
    } else {
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the unlock key from stdin")?;
    }
    let key = line.trim().to_string();
    if key.is_empty() {
        anyhow::bail!("no unlock key given");
    }
    Ok(key)
}

async fn print_join(client: &Client, role: &str, quiet: bool) -> anyhow::Result<()> {
    let swarm: Value = client.json(Method::GET, "/swarm").await?;
    let key = if role == "worker" {
        "Worker"
    } else {
        "Manager"
    };
    let token = swarm["JoinTokens"][key]
        .as_str()
        .context("the daemon sent no join token")?;
    if quiet {
        println!("{token}");
        return Ok(());
    }
    let info: Value = client.json(Method::GET, "/info").await?;
    let addr = info["Swarm"]["RemoteManagers"][0]["Addr"]
        .as_str()
        .unwrap_or("MANAGER-IP:2377");
    println!("To add a {role} to this swarm, run the following command:\n\n    covey swarm join --token {token} {addr}\n");
    Ok(())
}
