//! `/_ping` and `/version`: how clients find covey and negotiate the API version.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL, PRAGMA};
use axum::response::IntoResponse;
use axum::Json;

use super::{API_VERSION, MIN_API_VERSION};
use crate::daemon::Node;

pub async fn ping() -> impl IntoResponse {
    let mut h = HeaderMap::new();
    let mut set = |k: &'static str, v: &'static str| {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    };
    set("api-version", API_VERSION);
    set("ostype", "linux");
    set("docker-experimental", "false");
    set("swarm", "inactive");
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    (h, "OK")
}

pub async fn version(State(node): State<Arc<Node>>) -> impl IntoResponse {
    let arch = node.images.default_platform().architecture.clone();
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    Json(serde_json::json!({
        "Platform": { "Name": "covey" },
        "Components": [{
            "Name": "Engine",
            "Version": crate::VERSION,
            "Details": { "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": arch, "KernelVersion": kernel }
        }],
        "Version": crate::VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": arch,
        "KernelVersion": kernel,
        "BuildTime": "",
    }))
}
