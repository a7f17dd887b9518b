//! `covey daemon`: dockerd's flags where they mean the same.

use std::path::PathBuf;

use clap::Args;

use crate::config::{DaemonConfig, Flags, OverlayPath};

#[derive(Args)]
pub struct DaemonArgs {
    /// Where covey keeps its state (images, cluster store, certificates).
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// Where covey keeps runtime state (the socket, the pid file).
    #[arg(long)]
    exec_root: Option<PathBuf>,
    /// The configuration file (TOML); /etc/covey/covey.toml is read if it exists.
    #[arg(long)]
    config_file: Option<PathBuf>,
    /// A registry to reach over plain HTTP (HOST[:PORT]); loopback ones always are.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,
    /// Serve -H tcp:// only to clients whose certificate --tlscacert signed (required
    /// for TCP: covey has no plaintext API port).
    #[arg(long)]
    tlsverify: bool,
    /// The CA that client certificates must be signed by.
    #[arg(long, value_name = "PEM")]
    tlscacert: Option<PathBuf>,
    /// The daemon's TLS certificate.
    #[arg(long, value_name = "PEM")]
    tlscert: Option<PathBuf>,
    /// The daemon's TLS key.
    #[arg(long, value_name = "PEM")]
    tlskey: Option<PathBuf>,
    /// How overlay networks travel between nodes: auto (kernel VXLAN where the kernel has
    /// it, else QUIC) or quic (always, as if there were no VXLAN).
    #[arg(long, value_enum, value_name = "PATH")]
    overlay_path: Option<OverlayPath>,
    /// The board this node is (pi4, pi5, cm4...), if the device tree does not say.
    #[arg(long, value_name = "NAME", conflicts_with = "board_file")]
    board: Option<String>,
    /// A board file (TOML, as those in board-configs/) instead of a built-in board.
    #[arg(long, value_name = "PATH")]
    board_file: Option<PathBuf>,
    /// An engine label, KEY=VALUE (constraints match it as engine.labels.KEY).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Serve Prometheus metrics (/metrics) over HTTP on IP:PORT, and on managers the
    /// dashboard (/, behind `covey swarm dashboard-token`).
    #[arg(long, value_name = "IP:PORT")]
    metrics_addr: Option<String>,
}

pub async fn run(args: DaemonArgs, hosts: Vec<String>, debug: bool) -> anyhow::Result<()> {
    let config = DaemonConfig::resolve(Flags {
        config_file: args.config_file,
        data_root: args.data_root,
        exec_root: args.exec_root,
        hosts,
        insecure_registries: args.insecure_registries,
        debug,
        tlsverify: args.tlsverify,
        tlscacert: args.tlscacert,
        tlscert: args.tlscert,
        tlskey: args.tlskey,
        overlay_path: args.overlay_path,
        board: args.board,
        board_file: args.board_file,
        labels: args.labels,
        metrics_addr: args.metrics_addr,
    })?;
    crate::daemon::run(config).await
}
