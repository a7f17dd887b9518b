//! The `covey` command line: Docker's grammar, one file per noun. Every command but
//! `daemon` is a client of the daemon's API.

mod client;
mod completion;
mod config;
mod container;
mod daemon;
mod events;
mod filters;
mod image;
mod network;
mod node;
mod output;
mod provision;
mod service;
mod session;
mod swarm;
mod version;
mod volume;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use client::Client;

#[derive(Parser)]
#[command(name = "covey", version = crate::VERSION, about = "Docker Swarm mode for edge and IoT fleets")]
pub struct Cli {
    /// Daemon socket to connect to: unix:///path. Defaults to $COVEY_HOST, then
    /// $DOCKER_HOST, then unix:///run/covey/covey.sock. For `daemon`, where to listen:
    /// a unix socket and, with --tlsverify, tcp://ADDR:PORT.
    #[arg(short = 'H', long = "host", global = true)]
    host: Vec<String>,

    /// Log at debug level.
    #[arg(short = 'D', long, global = true)]
    debug: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the covey daemon on this node.
    Daemon(daemon::DaemonArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Manage containers on this node.
    #[command(subcommand)]
    Container(container::ContainerCommand),
    /// Manage the swarm.
    #[command(subcommand)]
    Swarm(swarm::SwarmCommand),
    /// Manage the swarm's nodes.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Manage services.
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// Manage the swarm's overlay networks.
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Manage the swarm's configs.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Manage the swarm's secrets (kept encrypted, given only to the tasks that use them).
    #[command(subcommand)]
    Secret(config::ConfigCommand),
    /// Manage this node's named volumes.
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Show the covey version of the client and the daemon.
    Version(version::VersionArgs),
    /// Show the daemon's events as they happen (or, with --since and --until, those kept).
    Events(events::EventsArgs),
    /// Print a shell completion script (bash, zsh or fish).
    Completion(completion::CompletionArgs),
    /// Make a Raspberry Pi OS image (or SD card) join the swarm on its first boot.
    Provision(Box<provision::ProvisionArgs>),
    /// The daemon's single-threaded helper that makes containers (started by the daemon).
    #[command(hide = true)]
    RuntimeHelper {
        /// Where the helper listens for later daemons (to hand over the pipes it keeps and
        /// tell them its containers' exits), once its own daemon is gone.
        #[arg(long)]
        socket_dir: Option<std::path::PathBuf>,
    },
}

pub fn main() -> ExitCode {
    // The runtime helper runs on every node for as long as containers do: it skips
    // building the whole command line, which would touch (and keep resident) pages of
    // the binary it never needs again.
    if std::env::args_os().nth(1).as_deref() == Some(std::ffi::OsStr::new("runtime-helper")) {
        return runtime_helper();
    }
    let cli = Cli::parse();
    init_tracing(
        cli.debug,
        matches!(
            cli.command,
            Command::Daemon(_) | Command::RuntimeHelper { .. }
        ),
    );
    match &cli.command {
        Command::RuntimeHelper { .. } => return runtime_helper(),
        // Neither needs a daemon or the runtime: one prints, the other edits an image.
        Command::Completion(args) => {
            return done("completion", completion::run(args).map_err(Into::into))
        }
        Command::Provision(args) => return done("provision", provision::run(args)),
        _ => {}
    }
    if matches!(cli.command, Command::Daemon(_)) {
        crate::daemon::tune_allocator();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("covey: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Daemon(args) => daemon::run(args, cli.host, cli.debug).await,
            Command::Image(cmd) => image::run(cmd, &client(&cli.host)?).await,
            Command::Swarm(cmd) => swarm::run(cmd, &client(&cli.host)?).await,
            Command::Node(cmd) => node::run(cmd, &client(&cli.host)?).await,
            Command::Service(cmd) => service::run(cmd, &client(&cli.host)?).await,
            Command::Network(cmd) => network::run(cmd, &client(&cli.host)?).await,
            Command::Config(cmd) => config::run(cmd, &client(&cli.host)?, "configs").await,
            Command::Secret(cmd) => config::run(cmd, &client(&cli.host)?, "secrets").await,
            Command::Volume(cmd) => volume::run(cmd, &client(&cli.host)?).await,
            Command::Events(args) => events::run(args, &client(&cli.host)?).await,
            Command::Version(args) => version::run(args, &client(&cli.host)?).await,
            Command::Container(cmd) => container::run(cmd, &client(&cli.host)?).await,
            Command::RuntimeHelper { .. } | Command::Completion(_) | Command::Provision(_) => {
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A container's own exit code, passed on as docker run does.
        Err(e) if e.downcast_ref::<container::ExitWith>().is_some() => {
            let code = e
                .downcast_ref::<container::ExitWith>()
                .map(|x| x.0)
                .unwrap_or(1);
            ExitCode::from(code.clamp(0, 255) as u8)
        }
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The exit of a command that runs without the daemon.
fn done(name: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("covey {name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The client of the one daemon `-H` names (several are for the daemon to listen on).
fn client(hosts: &[String]) -> anyhow::Result<Client> {
    match hosts {
        [] => Client::from_env(None),
        [one] => Client::from_env(Some(one)),
        _ => anyhow::bail!("Please specify only one -H"),
    }
}

fn init_tracing(debug: bool, daemon: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (debug, daemon) {
        (true, _) => "debug,hyper=info,h2=info,rustls=info",
        // libcgroups warns about every controller this kernel lacks, on every container.
        (false, true) => "info,libcgroups=error,libcontainer=warn",
        (false, false) => "warn",
    };
    let filter = EnvFilter::try_from_env("COVEY_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// `covey runtime-helper [--socket-dir DIR]`, started by the daemon. Before any thread
/// exists: the helper must stay single-threaded (see the runtime's helper module).
fn runtime_helper() -> ExitCode {
    let mut args = std::env::args_os().skip(2);
    let mut socket_dir = None;
    while let Some(arg) = args.next() {
        match (arg.to_str(), args.next()) {
            (Some("--socket-dir"), Some(dir)) => socket_dir = Some(std::path::PathBuf::from(dir)),
            _ => {
                eprintln!("covey runtime-helper: usage: covey runtime-helper [--socket-dir DIR]");
                return ExitCode::FAILURE;
            }
        }
    }
    init_tracing(false, true);
    match covey_runtime::helper::serve(socket_dir.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("covey runtime helper: {e}");
            ExitCode::FAILURE
        }
    }
}
