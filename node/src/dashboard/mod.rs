//! What `--metrics-addr` serves, over plain HTTP:
//! - `/metrics` on every node, Prometheus' text format, open as dockerd's
//!   `--metrics-addr` and every exporter's: workers hold no token to check, and the
//!   figures change nothing and hold no secret. Bind it to a management address.
//! - on managers, the dashboard: `/` (a page whose script and style are built into the
//!   binary), `/api/overview` (what it shows, JSON), `/api/events` (the swarm's events
//!   as they happen, server-sent, on which the page reads the overview again), behind a
//!   login with the swarm's dashboard token ([`auth`]).
//!
//! A worker answers the dashboard's paths with where to find it instead.

mod auth;
mod overview;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Form, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{Stream, StreamExt as _};
use serde::Deserialize;
use tokio::sync::{broadcast, watch};

use crate::daemon::Node;
use crate::manager::ca::secrets_match;
use crate::manager::Manager;

const PAGE: &str = include_str!("assets/index.html");
const LOGIN: &str = include_str!("assets/login.html");
const SCRIPT: &str = include_str!("assets/dashboard.js");
const STYLE: &str = include_str!("assets/dashboard.css");

/// What the handlers reach: the node, and when the daemon stops (live event streams
/// end then, rather than hold the shutdown open).
struct Web {
    node: Arc<Node>,
    stopping: watch::Receiver<bool>,
}

type Shared = State<Arc<Web>>;

/// Binds the listener at start, so that a taken port stops the daemon there.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

pub fn app(node: Arc<Node>, stopping: watch::Receiver<bool>) -> Router {
    let web = Arc::new(Web { node, stopping });
    let private = Router::new()
        .route("/", get(page))
        .route("/api/overview", get(overview))
        .route("/api/events", get(events))
        .route_layer(middleware::from_fn_with_state(web.clone(), require_login));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route(
            "/assets/dashboard.js",
            get(|| asset(SCRIPT, "text/javascript")),
        )
        .route("/assets/dashboard.css", get(|| asset(STYLE, "text/css")))
        .merge(private)
        .layer(middleware::map_response(hardened))
        .with_state(web)
}

async fn metrics(State(web): Shared) -> Response {
    let body = crate::metrics::render(&web.node).await;
    ([(CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

/// The page's script and style: no secret in them, so served before login too.
async fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(CONTENT_TYPE, kind), (CACHE_CONTROL, "no-cache")], body).into_response()
}

/// Every answer: no framing, no sniffing, only the page's own script and style.
async fn hardened(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The swarm's dashboard token and this manager, or the answer for a node that cannot
/// serve the dashboard.
async fn manager_and_token(web: &Web) -> Result<(Arc<Manager>, String), Response> {
    let not_manager = || {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "This node is not a swarm manager: the dashboard is served by the managers \
             (their --metrics-addr). Its metrics are at /metrics.\n",
        )
            .into_response()
    };
    let manager = web.node.swarm.manager().await.map_err(|_| not_manager())?;
    let cluster = manager
        .cluster()
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response())?;
    Ok((manager, cluster.dashboard_token))
}

async fn require_login(State(web): Shared, request: Request, next: Next) -> Response {
    let token = match manager_and_token(&web).await {
        Ok((_, token)) => token,
        Err(response) => return response,
    };
    if auth::allowed(&token, request.headers(), now_secs()) {
        return next.run(request).await;
    }
    if request.uri().path().starts_with("/api/") {
        let message = "log in with the swarm's dashboard token (covey swarm dashboard-token) \
                       or send it as a bearer token";
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({ "message": message })),
        )
            .into_response();
    }
    see_other("/login", None)
}

fn see_other(to: &'static str, cookie: Option<String>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(LOCATION, to)]).into_response();
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// The login form, with `error` (a fixed message of ours) above it.
fn login_form(status: StatusCode, error: &str) -> Response {
    let error = match error {
        "" => String::new(),
        e => format!("<p class=\"error\" id=\"error\">{}</p>", html_escape(e)),
    };
    (status, Html(LOGIN.replace("<!--error-->", &error))).into_response()
}

async fn login_page(State(web): Shared) -> Response {
    match manager_and_token(&web).await {
        Ok(_) => login_form(StatusCode::OK, ""),
        Err(response) => response,
    }
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

async fn login(State(web): Shared, Form(form): Form<Login>) -> Response {
    let token = match manager_and_token(&web).await {
        Ok((_, token)) => token,
        Err(response) => return response,
    };
    if token.is_empty() {
        return login_form(
            StatusCode::UNAUTHORIZED,
            "This swarm has no dashboard token yet: make one with `covey swarm dashboard-token --rotate` on a manager.",
        );
    }
    if !secrets_match(form.token.trim().as_bytes(), token.as_bytes()) {
        tracing::info!("dashboard: a login with a wrong token");
        return login_form(
            StatusCode::UNAUTHORIZED,
            "That is not this swarm's dashboard token.",
        );
    }
    see_other("/", Some(auth::session_cookie(&token, now_secs())))
}

async fn logout() -> Response {
    see_other("/login", Some(auth::cleared_cookie()))
}

async fn overview(State(web): Shared) -> Response {
    let manager = match manager_and_token(&web).await {
        Ok((manager, _)) => manager,
        Err(response) => return response,
    };
    match overview::read(&manager, &web.node.events) {
        Ok(view) => ([(CACHE_CONTROL, "no-store")], Json(view)).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "message": e.to_string() })),
        )
            .into_response(),
    }
}

/// The swarm's events as they happen. One that fell behind gets a `lagged` event, on
/// which the page reads everything again.
async fn events(State(web): Shared) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let (_, live) = web.node.events.subscribe();
    let stream = futures_util::stream::unfold(live, |mut live| async move {
        loop {
            let event = match live.recv().await {
                Ok(e) if overview::shown(&e) => {
                    let view = overview::EventView::from(e.as_ref());
                    let data = serde_json::to_string(&view).unwrap_or_default();
                    SseEvent::default().event("swarm").data(data)
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    SseEvent::default().event("lagged").data("")
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            return Some((Ok(event), live));
        }
    });
    let mut stopping = web.stopping.clone();
    let stopped = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    Sse::new(stream.take_until(stopped)).keep_alive(KeepAlive::default())
}

fn now_secs() -> u64 {
    crate::manager::store::now_secs()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
