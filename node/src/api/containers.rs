//! The container endpoints: create, start, stop, kill, wait, remove, list, inspect, logs
//! and attach, in Docker's JSON shapes, so that `docker run`, `ps`, `logs`, `stop` and `rm`
//! work against covey.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use covey_runtime::{ContainerConfig, Mount, NetworkMode, Resources};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use super::ApiError;
use crate::containers::logs::{self, Output, ReadOptions, Stream};
use crate::containers::{ContainerError, CreateRequest, Record, Status};
use crate::daemon::Node;

pub(super) const MULTIPLEXED: &str = "application/vnd.docker.multiplexed-stream";

impl From<ContainerError> for ApiError {
    fn from(e: ContainerError) -> Self {
        match e {
            ContainerError::Image(i) => i.into(),
            ContainerError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            ContainerError::Conflict(_) | ContainerError::NotRunning(_) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            ContainerError::NotModified(..) => {
                ApiError::new(StatusCode::NOT_MODIFIED, e.to_string())
            }
            ContainerError::InvalidInput(_) => ApiError::bad_request(e.to_string()),
            ContainerError::Runtime(ref r) if r.is_invalid_input() => {
                ApiError::bad_request(e.to_string())
            }
            ContainerError::Runtime(_) | ContainerError::Internal(_) => {
                tracing::warn!("container request failed: {e}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

/// `docker create`'s body: the fields covey acts on. Others are accepted and ignored, as
/// the CLI sends many; the ones that would change behaviour covey lacks are refused below.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    image: String,
    cmd: Option<Vec<String>>,
    entrypoint: Option<StringOrList>,
    env: Option<Vec<String>>,
    user: String,
    working_dir: String,
    hostname: String,
    tty: bool,
    open_stdin: bool,
    stop_signal: Option<String>,
    stop_timeout: Option<u64>,
    host_config: HostConfig,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    List(Vec<String>),
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct HostConfig {
    auto_remove: bool,
    memory: i64,
    nano_cpus: i64,
    cpu_quota: i64,
    cpu_period: i64,
    cpu_shares: u64,
    pids_limit: Option<i64>,
    binds: Option<Vec<String>>,
    tmpfs: Option<BTreeMap<String, String>>,
    readonly_rootfs: bool,
    cap_add: Option<Vec<String>>,
    cap_drop: Option<Vec<String>>,
    sysctls: Option<BTreeMap<String, String>>,
    network_mode: String,
    extra_hosts: Option<Vec<String>>,
    dns: Option<Vec<String>>,
    privileged: bool,
}

#[derive(Deserialize)]
pub struct NameQuery {
    name: Option<String>,
}

/// The runtime's config from a create request; `-v NAME:/path` makes volume NAME if
/// missing.
fn to_config(
    b: &CreateBody,
    volumes: &crate::volumes::Volumes,
) -> Result<ContainerConfig, ApiError> {
    let h = &b.host_config;
    if h.privileged {
        return Err(ApiError::bad_request(
            "covey does not run privileged containers",
        ));
    }
    let network = match h.network_mode.as_str() {
        "" | "default" | "bridge" | "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        other => {
            return Err(ApiError::bad_request(format!(
                "network mode {other:?} is not supported by covey yet"
            )))
        }
    };
    let mut mounts = Vec::new();
    for bind in h.binds.iter().flatten() {
        let parts: Vec<&str> = bind.split(':').collect();
        let (source, target, opts) = match parts.as_slice() {
            [s, t] => (s, t, ""),
            [s, t, o] => (s, t, *o),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid volume specification: {bind:?}"
                )))
            }
        };
        let source = match source.starts_with('/') {
            true => std::path::PathBuf::from(source),
            false => volumes.ensure(source)?,
        };
        mounts.push(Mount::Bind {
            source,
            target: target.to_string(),
            read_only: opts.split(',').any(|o| o == "ro"),
        });
    }
    for (target, opts) in h.tmpfs.iter().flatten() {
        let size = opts
            .split(',')
            .find_map(|o| o.strip_prefix("size="))
            .map(crate::units::parse_bytes)
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
        mounts.push(Mount::Tmpfs {
            target: target.clone(),
            size_bytes: size.map(|s| s as u64),
            mode: None,
        });
    }
    let cpus = if h.nano_cpus > 0 {
        Some(h.nano_cpus as f64 / 1e9)
    } else if h.cpu_quota > 0 {
        Some(
            h.cpu_quota as f64
                / if h.cpu_period > 0 {
                    h.cpu_period as f64
                } else {
                    100_000.0
                },
        )
    } else {
        None
    };
    let mut extra_hosts = Vec::new();
    for e in h.extra_hosts.iter().flatten() {
        let (name, addr) = e.split_once(':').ok_or_else(|| {
            ApiError::bad_request(format!("invalid extra host {e:?}: expected name:address"))
        })?;
        extra_hosts.push((name.to_string(), addr.to_string()));
    }
    Ok(ContainerConfig {
        entrypoint: b.entrypoint.as_ref().map(|e| match e {
            StringOrList::One(s) => vec![s.clone()],
            StringOrList::List(l) => l.clone(),
        }),
        args: b.cmd.clone().unwrap_or_default(),
        env: b.env.clone().unwrap_or_default(),
        user: Some(b.user.clone()).filter(|u| !u.is_empty()),
        working_dir: Some(b.working_dir.clone()).filter(|w| !w.is_empty()),
        hostname: Some(b.hostname.clone()).filter(|w| !w.is_empty()),
        mounts,
        read_only_rootfs: h.readonly_rootfs,
        cap_add: h.cap_add.clone().unwrap_or_default(),
        cap_drop: h.cap_drop.clone().unwrap_or_default(),
        sysctls: h.sysctls.clone().unwrap_or_default(),
        resources: Resources {
            memory_bytes: (h.memory > 0).then_some(h.memory),
            cpus,
            cpu_shares: (h.cpu_shares > 0).then_some(h.cpu_shares),
            pids_limit: h.pids_limit.filter(|p| *p > 0),
        },
        network,
        extra_hosts,
        dns: h.dns.clone().unwrap_or_default(),
        tty: b.tty,
        ..Default::default()
    })
}

pub async fn create(
    State(node): State<Arc<Node>>,
    Query(q): Query<NameQuery>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let b: CreateBody = serde_json::from_value(request.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid container config: {e}")))?;
    if b.image.is_empty() {
        return Err(ApiError::bad_request(
            "no image given: config.Image is required",
        ));
    }
    let config = to_config(&b, &node.volumes)?;
    let id = node
        .containers
        .create(CreateRequest {
            open_stdin: b.open_stdin,
            name: q.name.filter(|n| !n.is_empty()),
            image: b.image.clone(),
            config,
            auto_remove: b.host_config.auto_remove,
            stop_signal: b.stop_signal.clone(),
            stop_timeout: b.stop_timeout,
            request,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Id": id, "Warnings": [] })),
    )
        .into_response())
}

pub async fn start(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    node.containers.start(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct StopQuery {
    t: Option<u64>,
}

pub async fn stop(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> Result<StatusCode, ApiError> {
    node.containers.stop(&id, q.t).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct KillQuery {
    signal: Option<String>,
}

pub async fn kill(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Query<KillQuery>,
) -> Result<StatusCode, ApiError> {
    node.containers
        .kill(&id, q.signal.as_deref().unwrap_or("SIGKILL"))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct WaitQuery {
    #[serde(default)]
    condition: String,
}

/// Waits in the open: the status line goes out at once so the CLI's request is not cut
/// by timeouts, and the code follows when the container exits, as dockerd does.
pub async fn wait(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    node.containers.get(&id)?;
    let body = futures_util::stream::once(async move {
        let v = match node.containers.wait(&id, &q.condition).await {
            Ok(code) => json!({ "StatusCode": code, "Error": null }),
            Err(e) => json!({ "StatusCode": -1, "Error": { "Message": e.to_string() } }),
        };
        Ok::<_, std::convert::Infallible>(format!("{v}\n"))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

pub async fn remove(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Query<super::filters::ForceQuery>,
) -> Result<StatusCode, ApiError> {
    node.containers.remove(&id, q.force()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct ListQuery {
    all: Option<String>,
}

pub async fn list(State(node): State<Arc<Node>>, Query(q): Query<ListQuery>) -> Json<Vec<Value>> {
    let all = matches!(q.all.as_deref(), Some("1" | "true" | "True"));
    Json(node.containers.list(all).iter().map(summary).collect())
}

fn unix(t: &str) -> i64 {
    humantime::parse_rfc3339_weak(t.trim_end_matches('Z'))
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn since(t: &Option<String>) -> String {
    let secs = t
        .as_deref()
        .map(unix)
        .map(|s| crate::units::now() - s)
        .unwrap_or(0)
        .max(0);
    crate::units::duration(secs)
}

fn status_text(r: &Record) -> String {
    match r.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", since(&r.started_at)),
        Status::Exited => format!("Exited ({}) {} ago", r.exit_code, since(&r.finished_at)),
    }
}

fn summary(r: &Record) -> Value {
    json!({
        "Id": r.id,
        "Names": [format!("/{}", r.name)],
        "Image": r.image,
        "ImageID": r.image_id,
        "Command": r.command.join(" "),
        "Created": unix(&r.created),
        "State": r.status.docker(),
        "Status": status_text(r),
        "Ports": [],
        "Labels": r.request.get("Labels").cloned().unwrap_or(json!({})),
        "HostConfig": { "NetworkMode": r.request.pointer("/HostConfig/NetworkMode").cloned().unwrap_or(json!("none")) },
        "NetworkSettings": { "Networks": {} },
        "Mounts": [],
    })
}

pub async fn inspect(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = node.containers.get(&id)?;
    let r = c.snapshot();
    let zero = "0001-01-01T00:00:00Z".to_string();
    let mut config = r.request.clone();
    if let Some(o) = config.as_object_mut() {
        o.remove("HostConfig");
        o.insert(
            "Env".into(),
            json!(covey_runtime::spec::environment(
                &r.config,
                &r.config
                    .hostname
                    .clone()
                    .unwrap_or_else(|| r.id[..12].to_string()),
                "/"
            )),
        );
        o.insert("Cmd".into(), json!(r.command.get(1..).unwrap_or_default()));
    }
    Ok(Json(json!({
        "Id": r.id,
        "Created": r.created,
        "Path": r.command.first().cloned().unwrap_or_default(),
        "Args": r.command.get(1..).unwrap_or_default(),
        "State": {
            "Status": r.status.docker(),
            "Running": r.status == Status::Running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": r.oom_killed,
            "Dead": false,
            "Pid": r.pid.unwrap_or(0),
            "ExitCode": r.exit_code,
            "Error": r.error,
            "StartedAt": r.started_at.clone().unwrap_or_else(|| zero.clone()),
            "FinishedAt": r.finished_at.clone().unwrap_or(zero),
        },
        "Image": r.image_id,
        "Name": format!("/{}", r.name),
        "RestartCount": 0,
        "Driver": "overlay",
        "Platform": "linux",
        "LogPath": c.log_path().display().to_string(),
        "Config": config,
        "HostConfig": r.request.get("HostConfig").cloned().unwrap_or(json!({})),
        "Mounts": [],
        "NetworkSettings": { "Networks": {} },
    })))
}

#[derive(Deserialize)]
pub struct LogsQuery {
    #[serde(default)]
    pub(super) details: Option<String>,
    pub(super) stdout: Option<String>,
    pub(super) stderr: Option<String>,
    pub(super) follow: Option<String>,
    pub(super) timestamps: Option<String>,
    pub(super) tail: Option<String>,
}

/// `docker logs`' options from its query, refused if they ask for no stream or a bad tail.
pub(super) fn read_options(q: &LogsQuery) -> Result<ReadOptions, ApiError> {
    let opts = ReadOptions {
        stdout: yes(&q.stdout),
        stderr: yes(&q.stderr),
        timestamps: yes(&q.timestamps),
        tail: q
            .tail
            .as_deref()
            .filter(|t| *t != "all")
            .map(|t| t.parse::<usize>())
            .transpose()
            .map_err(|_| ApiError::bad_request("tail must be a number or \"all\""))?,
    };
    if !opts.stdout && !opts.stderr {
        return Err(ApiError::bad_request("you must choose at least one stream"));
    }
    Ok(opts)
}

pub(super) fn yes(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("1" | "true" | "True"))
}

pub async fn logs(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let c = node.containers.get(&id)?;
    let opts = read_options(&q)?;
    let follow = yes(&q.follow);
    let path = c.log_path().to_path_buf();
    let frames = async_stream(move |tx| async move {
        let first = tokio::task::spawn_blocking({
            let (p, o) = (path.clone(), opts.clone());
            move || logs::read(&p, &o)
        })
        .await
        .unwrap_or_default();
        // Without a tail, follow resumes from the count already sent.
        let mut sent = logs::read(
            &path,
            &ReadOptions {
                tail: None,
                ..opts.clone()
            },
        )
        .len();
        for (s, line) in first {
            if tx.send(logs::frame(s, line.as_bytes())).await.is_err() {
                return;
            }
        }
        if !follow {
            return;
        }
        loop {
            let quiet = c.quiet();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let all = logs::read(
                &path,
                &ReadOptions {
                    tail: None,
                    ..opts.clone()
                },
            );
            for (s, line) in all.iter().skip(sent) {
                if tx.send(logs::frame(*s, line.as_bytes())).await.is_err() {
                    return;
                }
            }
            sent = all.len().max(sent);
            if quiet {
                return;
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, MULTIPLEXED)],
        Body::from_stream(frames),
    )
        .into_response())
}

/// A body fed by a task through a small channel.
pub(super) fn async_stream<F, Fut>(
    f: F,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<bytes::Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(Ok)
}

#[derive(Deserialize)]
pub struct AttachQuery {
    stdout: Option<String>,
    stderr: Option<String>,
    stdin: Option<String>,
}

/// `docker run` attaches before it starts the container, on a hijacked connection
/// (`Upgrade: tcp`), and reads the container's output as multiplexed frames.
pub async fn attach(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Query<AttachQuery>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let c = node.containers.get(&id)?;
    let r = c.snapshot();
    let input = if yes(&q.stdin) {
        if !r.open_stdin && !r.config.tty {
            return Err(ApiError::bad_request(format!(
                "container {} was not created with stdin open (-i)",
                r.id
            )));
        }
        Some(Input {
            slot: c.stdin.clone(),
            close_on_eof: !r.config.tty,
        })
    } else {
        None
    };
    let opts = StreamOptions {
        stdout: yes(&q.stdout),
        stderr: yes(&q.stderr),
        raw: r.config.tty,
        input,
    };
    // Subscribed now, before the response: nothing the container prints after this is lost.
    Ok(stream_output(c.subscribe(), opts, &mut req))
}

/// What a client attached to a run gets, and gives.
pub(super) struct StreamOptions {
    pub stdout: bool,
    pub stderr: bool,
    /// A terminal's output goes as it is; otherwise in Docker's multiplexed frames.
    pub raw: bool,
    /// Where the client's input goes (attach or exec with stdin).
    pub input: Option<Input>,
}

pub(super) struct Input {
    pub slot: crate::containers::StdinSlot,
    /// Close the stdin when the client's input ends (a pipe, as `-i` without `-t`).
    pub close_on_eof: bool,
}

/// Streams a run's output until its end: on the hijacked connection if the client asked
/// to upgrade (the docker CLI does), else as the body. On the hijacked connection, what
/// the client sends goes to the container's stdin.
pub(super) fn stream_output(
    mut live: tokio::sync::broadcast::Receiver<Output>,
    opts: StreamOptions,
    req: &mut Request,
) -> Response {
    let (want_out, want_err, raw) = (opts.stdout, opts.stderr, opts.raw);
    let frames = async_stream(move |tx| async move {
        loop {
            match live.recv().await {
                Ok(Output::Data(s, data)) => {
                    let wanted =
                        (s == Stream::Stdout && want_out) || (s == Stream::Stderr && want_err);
                    let bytes = if raw { data } else { logs::frame(s, &data) };
                    if wanted && tx.send(bytes).await.is_err() {
                        return;
                    }
                }
                Ok(Output::End) | Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("output stream fell {n} messages behind")
                }
            }
        }
    });
    let content_type = if raw {
        "application/vnd.docker.raw-stream"
    } else {
        MULTIPLEXED
    };
    if req.headers().get(header::UPGRADE).is_none() {
        return (
            [(header::CONTENT_TYPE, content_type)],
            Body::from_stream(frames),
        )
            .into_response();
    }
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let (mut rd, mut wr) = tokio::io::split(hyper_util::rt::TokioIo::new(upgraded));
        if let Some(input) = opts.input {
            tokio::spawn(async move { forward_input(&mut rd, &input).await });
        }
        let mut frames = std::pin::pin!(frames);
        while let Some(Ok(f)) = frames.next().await {
            if wr.write_all(&f).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// The client's input to the container's stdin (pipe or pty), until the client closes
/// its side; then, without a terminal, the container's stdin is closed too, as `docker run
/// -i` does.
async fn forward_input(rd: &mut (impl tokio::io::AsyncRead + Unpin), input: &Input) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The run may not have started yet: wait for its stdin.
    let mut slot = input.slot.subscribe();
    let Ok(target) = slot.wait_for(|t| t.is_some()).await.map(|t| t.clone()) else {
        return;
    };
    let Some(fd) = target.and_then(|t| t.try_clone().ok()) else {
        return;
    };
    let Ok(mut w) = logs::writer(fd) else {
        return;
    };
    let mut buf = [0u8; 4096];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if w.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    if input.close_on_eof {
        input.slot.send_replace(None);
    }
}

/// `/resize`'s query, for containers and execs alike.
#[derive(Deserialize)]
pub struct ResizeQuery {
    h: Option<u16>,
    w: Option<u16>,
}

impl ResizeQuery {
    /// Sets the size of the terminal whose master is `master`, if there is one yet.
    pub fn apply(
        &self,
        master: Option<&std::sync::Arc<std::os::fd::OwnedFd>>,
    ) -> Result<StatusCode, ApiError> {
        if let Some(master) = master {
            crate::containers::resize_terminal(master, self.h.unwrap_or(24), self.w.unwrap_or(80))
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("resizing the terminal: {e}"),
                    )
                })?;
        }
        Ok(StatusCode::OK)
    }
}

/// `docker run -it` sends the client terminal's size.
pub async fn resize(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Query<ResizeQuery>,
) -> Result<StatusCode, ApiError> {
    let c = node.containers.get(&id)?;
    if !c.snapshot().config.tty {
        return Err(ApiError::bad_request(format!(
            "container {id} has no terminal to resize"
        )));
    }
    let target = c.stdin.borrow().clone();
    q.apply(target.as_ref())
}
