//! `covey daemon`: opens the node's stores and serves the API until SIGTERM or SIGINT.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use anyhow::{bail, Context};
use covey_images::{ImageOptions, ImageService, RegistryOptions};
use nix::fcntl::{Flock, FlockArg};

use crate::api;
use crate::config::DaemonConfig;
use crate::containers::Containers;
use crate::events::{image_event, Events};
use crate::swarm::Swarm;

/// Everything the API handlers reach.
pub struct Node {
    pub config: DaemonConfig,
    pub images: Arc<ImageService>,
    pub containers: Arc<Containers>,
    pub swarm: Arc<Swarm>,
    pub volumes: Arc<crate::volumes::Volumes>,
    /// What `docker events` shows: this node's and, on a manager, the swarm's.
    pub events: Arc<Events>,
}

/// glibc's allocator, tuned for a daemon that runs for months on a small board: at most
/// two arenas (one per thread would keep each thread's freed memory), and large blocks
/// (sled's write buffers) always given back to the system when freed; glibc's default
/// raises that threshold after the first such free, and the buffers then stay resident.
/// Called before any thread exists.
pub fn tune_allocator() {
    // SAFETY: mallopt only sets allocator parameters, and no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

pub async fn run(config: DaemonConfig) -> anyhow::Result<()> {
    for dir in [&config.data_root, &config.exec_root] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // One daemon per data root: two would corrupt each other's stores.
    let lock_path = config.data_root.join("covey.lock");
    let lock_file = std::fs::File::create(&lock_path)
        .with_context(|| format!("creating {}", lock_path.display()))?;
    let _lock = match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, nix::Error::EWOULDBLOCK)) => {
            bail!(
                "another covey daemon is already using {}",
                config.data_root.display()
            )
        }
        Err((_, e)) => return Err(e).context("locking the data root"),
    };
    let board = crate::board::resolve(&config.board).context("finding this node's board")?;
    let board = board.map(|b| {
        report_board(&b);
        b.board
    });
    let mut image_options = ImageOptions {
        registries: RegistryOptions {
            insecure: config.insecure_registries.clone(),
            docker_config: covey_images::auth::default_docker_config(),
        },
        ..Default::default()
    };
    // The board's variant (arm/v7 on a 64-bit kernel running a 32-bit covey), where it
    // names the CPU this binary runs as.
    if let Some(b) = board
        .as_ref()
        .filter(|b| b.platform.target.arch() == std::env::consts::ARCH)
    {
        image_options.platform = b.oci_platform();
    }
    let profile = crate::swarm::Profile::new(board.as_ref(), config.labels.clone());
    let images = ImageService::open(&config.data_root.join("images"), image_options)
        .context("opening the image store")?;
    let events = Arc::new(Events::default());
    let bus = events.clone();
    images.observe(Box::new(move |change| bus.publish(image_event(change))));
    let images = Arc::new(images);
    let containers = Containers::open(
        &config.data_root,
        &config.exec_root,
        images.clone(),
        events.clone(),
        profile.flash.log_max_size,
    )
    .await?;
    tracing::info!(
        data_root = %config.data_root.display(),
        snapshots = ?images.snapshot_mode(),
        platform = %images.default_platform(),
        "covey {} starting",
        crate::VERSION
    );

    let networking = Arc::new(crate::network::Networking::new(
        &config.exec_root,
        containers.reaper(),
        config.overlay_path,
    ));
    networking.probe().await;
    let volumes =
        Arc::new(crate::volumes::Volumes::open(&config.data_root).context("opening the volumes")?);
    let secrets = config.exec_root.join("secrets");
    crate::agent::memfs::ensure_tmpfs(&secrets)
        .with_context(|| format!("mounting a tmpfs for secrets at {}", secrets.display()))?;
    let executor = crate::agent::executor::Executor::new(
        containers.clone(),
        images.clone(),
        networking,
        volumes.clone(),
        config.exec_root.join("configs"),
        secrets,
    );
    let swarm = Swarm::open(&config.data_root, Some(executor), events.clone(), profile)
        .await
        .context("starting this node's swarm membership")?;

    let socket = config.socket.clone();
    if let Some(parent) = socket.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    // A socket left by a daemon that died: we hold the lock, so it is not in use.
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket)
        .with_context(|| format!("listening on {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("setting permissions of {}", socket.display()))?;
    let pidfile = config.exec_root.join("covey.pid");
    std::fs::write(&pidfile, std::process::id().to_string())
        .with_context(|| format!("writing {}", pidfile.display()))?;

    // Bound before anything is served: bad certificates or a taken port stop the daemon
    // at start, not later.
    let tcp = match &config.tcp {
        Some(host) => Some(
            api::tls::TlsListener::bind(host.addr, &host.tls)
                .await
                .context("serving the API over TCP")?,
        ),
        None => None,
    };
    let web = match config.metrics_addr {
        Some(addr) => Some(
            crate::dashboard::bind(addr)
                .await
                .with_context(|| format!("serving metrics on {addr} (--metrics-addr)"))?,
        ),
        None => None,
    };
    let node = Arc::new(Node {
        config,
        images,
        containers,
        swarm: swarm.clone(),
        volumes,
        events,
    });
    tracing::info!(socket = %socket.display(), "API listening");
    // Clients following logs or attached would hold a graceful shutdown open for ever:
    // they get a few seconds, then the daemon goes (its containers keep running).
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let unix = std::future::IntoFuture::into_future(
        axum::serve(listener, api::app(node.clone()))
            .with_graceful_shutdown(stopped(stopping.clone())),
    );
    let web = async {
        let Some(web) = web else { return Ok(()) };
        if let Ok(addr) = web.local_addr() {
            tracing::info!(%addr, "metrics served over HTTP, and the dashboard on managers");
        }
        axum::serve(web, crate::dashboard::app(node.clone(), stopping.clone()))
            .with_graceful_shutdown(stopped(stopping.clone()))
            .await
    };
    let tcp = async {
        let Some(tcp) = tcp else { return Ok(()) };
        if let Ok(addr) = axum::serve::Listener::local_addr(&tcp) {
            tracing::info!(%addr, "API listening over TLS, client certificates required");
        }
        axum::serve(tcp, api::app(node.clone()))
            .with_graceful_shutdown(stopped(stopping.clone()))
            .await
    };
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    tokio::select! {
        r = futures_util::future::try_join3(unix, tcp, web) => { r.context("serving the API")?; }
        _ = async { stopped(stopping.clone()).await; tokio::time::sleep(std::time::Duration::from_secs(5)).await } => {
            tracing::info!("clients still connected after 5s; stopping anyway");
        }
    }
    swarm.shutdown().await;
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&pidfile);
    tracing::info!("covey stopped");
    Ok(())
}

/// Logs the board and what this host lacks of what it needs.
fn report_board(resolved: &crate::board::Resolved) {
    use crate::board::Source;
    let board = &resolved.board;
    let how = match &resolved.source {
        Source::Model(model) => format!("device tree model {model:?}"),
        Source::Fallback => format!("no device tree board, a {} CPU", std::env::consts::ARCH),
        Source::Named => "named".to_string(),
        Source::File(path) => format!("board file {}", path.display()),
    };
    tracing::info!(board = %board.name, "board: {} ({how})", board.description);
    if board.platform.target.arch() != std::env::consts::ARCH {
        tracing::warn!(
            "board {} is built for {}, but this covey runs as {}",
            board.name,
            board.platform.target.triple(),
            std::env::consts::ARCH
        );
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let controllers =
        covey_runtime::cgroups::available(std::path::Path::new(covey_runtime::cgroups::ROOT));
    for problem in crate::board::check_host(board, &cmdline, &controllers) {
        tracing::warn!(board = %board.name, "{problem}");
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the daemon still runs; it stops when killed.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down");
}
