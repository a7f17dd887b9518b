//! The Docker Engine API's subset that covey serves on its unix socket (and, opted into,
//! over TCP with TLS client certificates: `tls`), so that the stock `docker` CLI is a
//! client as much as `covey` is. Paths are served with and without the `/v1.xx` prefix.

mod configs;
mod containers;
mod distribution;
mod error;
mod events;
mod exec;
mod filters;
mod images;
mod lookup;
mod networks;
mod nodes;
mod service_logs;
mod services;
mod swarm;
mod system;
mod time;
pub mod tls;
mod volumes;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::Uri;
use axum::routing::{get, post};
use axum::Router;
use tower::ServiceExt as _;

pub use error::ApiError;

use crate::daemon::Node;
use crate::manager::objects::{Config, Secret};

/// The API version covey speaks; clients negotiate down from theirs to it.
pub const API_VERSION: &str = "1.43";
/// The oldest version covey accepts in a path prefix.
pub const MIN_API_VERSION: &str = "1.24";

/// The API as a service: the router behind the version-prefix rewrite.
pub type App = axum::routing::IntoMakeService<tower::util::MapRequest<Router, RequestRewrite>>;
type RequestRewrite = fn(Request) -> Request;

pub fn app(node: Arc<Node>) -> App {
    let router = Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/events", get(events::events))
        .route("/images/create", post(images::create))
        .route("/images/load", post(images::load))
        .route("/images/prune", post(images::prune))
        .route("/images/json", get(images::list))
        .route(
            "/images/{*name}",
            get(images::inspect).delete(images::remove),
        )
        .route("/containers/create", post(containers::create))
        .route("/containers/json", get(containers::list))
        .route(
            "/containers/{id}",
            axum::routing::delete(containers::remove),
        )
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}/attach", post(containers::attach))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/exec", post(exec::create))
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/swarm", get(swarm::inspect))
        .route("/swarm/init", post(swarm::init))
        .route("/swarm/join", post(swarm::join))
        .route("/swarm/leave", post(swarm::leave))
        .route("/swarm/update", post(swarm::update))
        .route("/swarm/unlockkey", get(swarm::unlock_key))
        .route("/swarm/unlock", post(swarm::unlock))
        .route("/nodes", get(nodes::list))
        .route("/nodes/{id}", get(nodes::inspect).delete(nodes::remove))
        .route("/nodes/{id}/update", post(nodes::update))
        .route("/configs", get(configs::list::<Config>))
        .route("/configs/create", post(configs::create::<Config>))
        .route(
            "/configs/{id}",
            get(configs::inspect::<Config>).delete(configs::remove::<Config>),
        )
        .route("/configs/{id}/update", post(configs::update::<Config>))
        .route("/secrets", get(configs::list::<Secret>))
        .route("/secrets/create", post(configs::create::<Secret>))
        .route(
            "/secrets/{id}",
            get(configs::inspect::<Secret>).delete(configs::remove::<Secret>),
        )
        .route("/secrets/{id}/update", post(configs::update::<Secret>))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route(
            "/volumes/{name}",
            get(volumes::inspect).delete(volumes::remove),
        )
        .route("/distribution/{*rest}", get(distribution::inspect))
        .route("/services", get(services::list))
        .route("/services/create", post(services::create))
        .route(
            "/services/{id}",
            get(services::inspect).delete(services::remove),
        )
        .route("/services/{id}/update", post(services::update))
        .route("/services/{id}/logs", get(service_logs::logs))
        .route("/tasks", get(services::tasks))
        .route("/tasks/{id}", get(services::task))
        .route("/tasks/{id}/logs", get(service_logs::task_logs))
        .fallback(error::unsupported)
        .with_state(node);
    // Versions are negotiated, not routed: strip the prefix before routing.
    let strip: RequestRewrite = strip_version;
    axum::ServiceExt::<Request>::into_make_service(router.map_request(strip))
}

fn strip_version(mut req: Request) -> Request {
    let path = req.uri().path();
    let rest = path
        .strip_prefix("/v")
        .and_then(|r| r.split_once('/'))
        .filter(|(v, _)| {
            v.split_once('.')
                .is_some_and(|(a, b)| a.parse::<u8>().is_ok() && b.parse::<u16>().is_ok())
        });
    if let Some((_, rest)) = rest {
        let mut pq = format!("/{rest}");
        if let Some(q) = req.uri().query() {
            pq.push('?');
            pq.push_str(q);
        }
        if let Ok(uri) = pq.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    req
}
