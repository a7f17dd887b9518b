//! The image endpoints: pull (`POST /images/create`, streaming progress), list, inspect,
//! remove, load and prune.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use covey_images::reference::familiar;
use covey_images::{Credentials, ImageRecord, Platform, Progress, Pulled, Reference, Removed};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::ApiError;
use crate::daemon::Node;
use crate::units::human_size;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateParams {
    from_image: Option<String>,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    platform: String,
    from_src: Option<String>,
}

enum PullEvent {
    Progress(Progress),
    Done(Result<Pulled, covey_images::Error>),
}

/// `docker pull`. Errors found before any layer moves (bad name, unknown image, no
/// matching platform) are HTTP errors; later ones arrive in the stream, as with dockerd.
pub async fn create(
    State(node): State<Arc<Node>>,
    Query(q): Query<CreateParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if q.from_src.is_some() {
        return Err(ApiError::bad_request(
            "importing a root filesystem (fromSrc) is not supported by covey; use image load",
        ));
    }
    let name = q
        .from_image
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("fromImage is required"))?;
    let full = match q.tag.as_str() {
        "" => name.clone(),
        t if t.starts_with("sha256:") => format!("{name}@{t}"),
        t => format!("{name}:{t}"),
    };
    let reference: Reference =
        full.parse()
            .map_err(|e: covey_images::reference::ReferenceError| {
                ApiError::bad_request(e.to_string())
            })?;
    let platform: Option<Platform> = match q.platform.as_str() {
        "" => None,
        p => Some(
            p.parse()
                .map_err(|e: covey_images::platform::PlatformError| {
                    ApiError::bad_request(e.to_string())
                })?,
        ),
    };
    let credentials = registry_auth(&headers)?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let (task_node, task_ref) = (node.clone(), reference.clone());
    tokio::spawn(async move {
        let progress_tx = tx.clone();
        let report = move |p: Progress| {
            let _ = progress_tx.send(PullEvent::Progress(p));
        };
        let result = task_node
            .images
            .pull(&task_ref, platform.as_ref(), credentials, &report)
            .await;
        let _ = tx.send(PullEvent::Done(result));
    });
    let first = match rx.recv().await {
        Some(PullEvent::Done(Err(e))) => return Err(e.into()),
        Some(ev) => ev,
        None => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "pull ended without a result",
            ))
        }
    };
    let events = futures_util::stream::once(async { first })
        .chain(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let familiar_name = reference
        .familiar_tagged()
        .or_else(|| reference.familiar_digested())
        .unwrap_or_default();
    let lines = events.map(move |ev| {
        let msgs = match ev {
            PullEvent::Progress(p) => vec![progress_message(&p)],
            PullEvent::Done(Ok(pulled)) => vec![
                json!({ "status": format!("Digest: {}", pulled.digest) }),
                json!({ "status": if pulled.updated {
                    format!("Status: Downloaded newer image for {familiar_name}")
                } else {
                    format!("Status: Image is up to date for {familiar_name}")
                }}),
            ],
            PullEvent::Done(Err(e)) => {
                tracing::warn!("pull failed: {e}");
                vec![json!({ "errorDetail": { "message": e.to_string() }, "error": e.to_string() })]
            }
        };
        Ok::<_, std::convert::Infallible>(
            msgs.into_iter()
                .map(|m| format!("{m}\r\n"))
                .collect::<String>(),
        )
    });
    Ok(json_stream(Body::from_stream(lines)))
}

fn json_stream(body: Body) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// Docker's JSON progress messages, which the docker CLI renders as it does for dockerd.
fn progress_message(p: &Progress) -> Value {
    let status = |s: &str, id: &str| json!({ "status": s, "progressDetail": {}, "id": id });
    match p {
        Progress::Resolved { reference } => {
            let id = reference
                .tag()
                .map(str::to_string)
                .or_else(|| reference.digest().map(|d| d.to_string()));
            let repo = reference.familiar_name();
            json!({ "status": format!("Pulling from {}", repo.strip_prefix(&format!("{}/", reference.registry())).unwrap_or(&repo)), "id": id })
        }
        Progress::LayerQueued { layer, .. } => status("Pulling fs layer", layer.short()),
        Progress::LayerExists { layer } => status("Already exists", layer.short()),
        Progress::Downloading {
            layer,
            current,
            total,
        } => json!({
            "status": "Downloading",
            "progressDetail": { "current": current, "total": total },
            "progress": progress_bar(*current, *total),
            "id": layer.short(),
        }),
        Progress::Downloaded { layer, .. } => status("Download complete", layer.short()),
        Progress::Extracting { layer } => status("Extracting", layer.short()),
        Progress::Extracted { layer } => status("Pull complete", layer.short()),
    }
}

fn progress_bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (current.min(total) * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH);
    let mut bar = "=".repeat(filled as usize);
    if filled < WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat((WIDTH - filled - 1) as usize));
    }
    format!("[{bar}] {}/{}", human_size(current), human_size(total))
}

/// The credentials the docker CLI sends in `X-Registry-Auth` (base64url of JSON).
pub(super) fn registry_auth(headers: &HeaderMap) -> Result<Option<Credentials>, ApiError> {
    let Some(value) = headers.get("x-registry-auth") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            "invalid X-Registry-Auth header: expected base64 of a JSON auth config",
        )
    };
    let text = value.to_str().map_err(|_| bad())?.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let decoded = [
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::STANDARD,
    ]
    .iter()
    .find_map(|e| e.decode(text).ok())
    .or_else(|| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .ok()
    })
    .ok_or_else(bad)?;
    #[derive(Deserialize, Default)]
    struct AuthConfig {
        #[serde(default)]
        username: String,
        #[serde(default)]
        password: String,
        #[serde(default, rename = "identitytoken")]
        identity_token: String,
    }
    let auth: AuthConfig = serde_json::from_slice(&decoded).map_err(|_| bad())?;
    Ok(if !auth.identity_token.is_empty() {
        Some(Credentials::IdentityToken(auth.identity_token))
    } else if !auth.username.is_empty() {
        Some(Credentials::Basic {
            username: auth.username,
            password: auth.password,
        })
    } else {
        None
    })
}

pub async fn list(State(node): State<Arc<Node>>) -> Json<Vec<Value>> {
    Json(
        node.images
            .list()
            .iter()
            .map(|img| summary(&node, img))
            .collect(),
    )
}

fn summary(node: &Node, img: &ImageRecord) -> Value {
    let labels = node
        .images
        .config(img)
        .ok()
        .and_then(|c| serde_json::from_slice::<Value>(&c).ok())
        .and_then(|c| c.pointer("/config/Labels").cloned())
        .unwrap_or(Value::Null);
    json!({
        "Id": img.id.to_string(),
        "ParentId": "",
        "RepoTags": img.tags.iter().map(|t| familiar(t)).collect::<Vec<_>>(),
        "RepoDigests": img.digests.iter().map(|t| familiar(t)).collect::<Vec<_>>(),
        "Created": created_unix(img.created.as_deref()),
        "Size": img.size,
        "VirtualSize": img.size,
        "SharedSize": -1,
        "Labels": labels,
        "Containers": -1,
    })
}

fn created_unix(created: Option<&str>) -> i64 {
    created
        .and_then(|c| humantime::parse_rfc3339_weak(c.trim_end_matches('Z')).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `GET /images/{name}/json`; names may contain slashes, so the route is a wildcard.
pub async fn inspect(
    State(node): State<Arc<Node>>,
    Path(rest): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let Some(name) = rest.strip_suffix("/json") else {
        return Err(super::error::unsupported(
            axum::http::Method::GET,
            format!("/images/{rest}").parse().unwrap_or_default(),
        )
        .await);
    };
    let img = node.images.get(name)?;
    let config: Value = serde_json::from_slice(&node.images.config(&img)?).unwrap_or(Value::Null);
    Ok(Json(json!({
        "Id": img.id.to_string(),
        "RepoTags": img.tags.iter().map(|t| familiar(t)).collect::<Vec<_>>(),
        "RepoDigests": img.digests.iter().map(|t| familiar(t)).collect::<Vec<_>>(),
        "Parent": "",
        "Comment": "",
        "Created": img.created.clone().unwrap_or_default(),
        "Author": config.get("author").cloned().unwrap_or(Value::String(String::new())),
        "Config": config.get("config").cloned().unwrap_or(Value::Null),
        "Architecture": img.platform.architecture,
        "Variant": img.platform.variant,
        "Os": img.platform.os,
        "Size": img.size,
        "VirtualSize": img.size,
        "RootFS": { "Type": "layers", "Layers": img.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>() },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
    })))
}

pub async fn remove(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Query(q): Query<super::filters::ForceQuery>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let actions = node.images.remove(&name, q.force()).await?;
    Ok(Json(
        actions
            .into_iter()
            .map(|a| match a {
                Removed::Untagged(n) => json!({ "Untagged": n }),
                Removed::Deleted(d) => json!({ "Deleted": d.to_string() }),
            })
            .collect(),
    ))
}

/// `docker load`: the body is a `docker save` tarball or a tar of an OCI layout.
pub async fn load(State(node): State<Arc<Node>>, body: Body) -> Result<Response, ApiError> {
    let stream = body
        .into_data_stream()
        .map(|r| r.map_err(std::io::Error::other));
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let loaded = node.images.load(reader, &|_| {}).await?;
    let mut out = String::new();
    for l in loaded {
        if l.names.is_empty() {
            out.push_str(&format!(
                "{}\r\n",
                json!({ "stream": format!("Loaded image ID: {}\n", l.image.id) })
            ));
        }
        for t in &l.names {
            out.push_str(&format!(
                "{}\r\n",
                json!({ "stream": format!("Loaded image: {}\n", familiar(t)) })
            ));
        }
    }
    Ok(json_stream(Body::from(out)))
}

pub async fn prune(State(node): State<Arc<Node>>) -> Result<Json<Value>, ApiError> {
    let report = node.images.prune().await?;
    Ok(Json(json!({
        "ImagesDeleted": report.deleted.iter().map(|d| json!({ "Deleted": d.to_string() })).collect::<Vec<_>>(),
        "SpaceReclaimed": report.reclaimed,
    })))
}
