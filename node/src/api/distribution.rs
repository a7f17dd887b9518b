//! `GET /distribution/{name}/json`: what an image reference names in its registry (its
//! digest and platforms), without pulling it. The docker CLI asks it before `service
//! create` to pin the image's digest and record its platforms.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use covey_images::reference::Reference;
use serde_json::{json, Value};

use super::error::ApiError;
use super::images::registry_auth;
use crate::daemon::Node;

pub async fn inspect(
    State(node): State<Arc<Node>>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let name = rest
        .strip_suffix("/json")
        .ok_or_else(|| ApiError::bad_request("expected /distribution/{name}/json"))?;
    let reference: Reference =
        name.parse()
            .map_err(|e: covey_images::reference::ReferenceError| {
                ApiError::bad_request(e.to_string())
            })?;
    let resolved = node
        .images
        .resolve(&reference, registry_auth(&headers)?)
        .await?;
    let platforms: Vec<Value> = resolved
        .platforms
        .iter()
        .map(|p| {
            json!({
                "architecture": p.architecture,
                "os": p.os,
                "variant": p.variant.clone().unwrap_or_default(),
            })
        })
        .collect();
    Ok(Json(json!({
        "Descriptor": {
            "mediaType": resolved.media_type,
            "digest": resolved.digest.to_string(),
            "size": resolved.size,
        },
        "Platforms": platforms,
    })))
}
