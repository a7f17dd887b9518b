//! covey: Docker Swarm mode for edge and IoT fleets, as one small binary.
//!
//! # Layout
//! - [`board`]: the boards covey supports (`board-configs/`, built in) and which one
//!   this node is.
//! - [`config`]: the daemon's settings, from flags and `/etc/covey/covey.toml`.
//! - [`daemon`]: `covey daemon`: opens the node's stores and serves the API.
//! - [`containers`]: the node's containers (create, start, stop, logs...) over the runtime.
//! - [`events`]: what `docker events` shows: this node's container and image events, and
//!   on managers the swarm's, with a bounded history.
//! - [`api`]: the Docker Engine API subset, on the daemon's unix socket. The only module
//!   that knows the Docker JSON shapes.
//! - [`cli`]: the `covey` command line, a client of that API (one file per noun).
//! - [`metrics`]: the daemon's Prometheus metrics; [`dashboard`]: what `--metrics-addr`
//!   serves, the metrics and, on managers, the dashboard behind its token.
//! - [`manager`]: what managers run, named after swarmkit's parts: the store, Raft, the
//!   CA, and the dispatcher.
//! - [`provision`]: `covey provision`, a Raspberry Pi OS image made to join the swarm
//!   on its first boot, edited from userspace.
//! - [`seal`]: secrets sealed at rest (an AEAD under a 32-byte key).
//! - [`transport`]: node-to-node QUIC with mutual TLS, and its frames.
//!
//! Still to come: the rest of `manager/` (orchestrator, scheduler, allocator), `agent/`,
//! `network/`.

pub mod agent;
pub mod api;
pub mod board;
pub mod cli;
pub mod config;
pub mod containers;
pub mod daemon;
pub mod dashboard;
pub mod events;
pub mod manager;
pub mod metrics;
pub mod network;
pub mod provision;
pub mod seal;
pub mod swarm;
pub mod transport;
pub mod units;
pub mod volumes;

/// covey's version, as `/version` and `covey version` report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
