//! The API client: HTTP/1 over the daemon's unix socket, with Docker's error shape.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

use crate::config::{unix_socket_path, DEFAULT_HOST};

pub type RequestBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// A refusal from the daemon, kept typed so that a command can tell "not found" from
/// other failures (docker words some of those its own way).
#[derive(Debug)]
pub struct DaemonError {
    pub status: StatusCode,
    pub message: String,
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.status == StatusCode::NOT_FOUND && self.message.is_empty() {
            return write!(f, "Error response from daemon: not found");
        }
        write!(f, "Error response from daemon: {}", self.message)
    }
}

impl std::error::Error for DaemonError {}

impl DaemonError {
    /// Whether `e` is the daemon answering 404.
    pub fn is_not_found(e: &anyhow::Error) -> bool {
        e.downcast_ref::<DaemonError>()
            .is_some_and(|d| d.status == StatusCode::NOT_FOUND)
    }

    /// Whether `e` is the daemon refusing the request as malformed (400).
    pub fn is_bad_request(e: &anyhow::Error) -> bool {
        e.downcast_ref::<DaemonError>()
            .is_some_and(|d| d.status == StatusCode::BAD_REQUEST)
    }
}

#[derive(Clone)]
pub struct Client {
    host: String,
    socket: PathBuf,
}

impl Client {
    /// The daemon named by `-H`, else `$COVEY_HOST`, else `$DOCKER_HOST`, else the default.
    pub fn from_env(flag: Option<&str>) -> anyhow::Result<Self> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let host = flag
            .map(str::to_string)
            .or_else(|| env("COVEY_HOST"))
            .or_else(|| env("DOCKER_HOST"))
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        let socket = unix_socket_path(&host)?;
        Ok(Self { host, socket })
    }

    pub fn empty() -> RequestBody {
        Empty::new().map_err(|never| match never {}).boxed_unsync()
    }

    pub fn bytes(b: impl Into<Bytes>) -> RequestBody {
        Full::new(b.into())
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    /// Sends a request; a non-2xx answer becomes an error carrying the daemon's message.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: RequestBody,
    ) -> anyhow::Result<Response<Incoming>> {
        self.send_with(method, path, body, &[]).await
    }

    /// `send` with extra headers.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: RequestBody,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Response<Incoming>> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| {
                anyhow!(
                    "Cannot connect to the covey daemon at {}: {e}. Is the covey daemon running?",
                    self.host
                )
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("talking to the covey daemon")?;
        tokio::spawn(async move {
            // With upgrades: attach turns the connection into a raw stream.
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!("connection to the daemon ended: {e}");
            }
        });
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://covey{path}"))
            .header("host", "covey")
            .header(
                "user-agent",
                concat!("covey-cli/", env!("CARGO_PKG_VERSION")),
            )
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(body).context("building the request")?;
        let resp = sender
            .send_request(req)
            .await
            .context("sending the request to the covey daemon")?;
        if resp.status().is_success() || resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        Err(DaemonError { status, message }.into())
    }

    /// A request that turns the connection into a raw byte stream (Docker's hijack, for
    /// attach).
    pub async fn upgrade(&self, path: &str) -> anyhow::Result<TokioIo<hyper::upgrade::Upgraded>> {
        let resp = self
            .send_with(
                Method::POST,
                path,
                Self::empty(),
                &[("connection", "Upgrade"), ("upgrade", "tcp")],
            )
            .await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            bail!(
                "the covey daemon did not switch protocols for {path} (status {})",
                resp.status()
            );
        }
        let upgraded = hyper::upgrade::on(resp)
            .await
            .context("switching protocols")?;
        Ok(TokioIo::new(upgraded))
    }

    /// `inspect` of several objects under `base` (`/networks`): their JSON, as one array.
    pub async fn inspect_all(&self, base: &str, names: &[String]) -> anyhow::Result<()> {
        let mut out = Vec::new();
        for n in names {
            let v: serde_json::Value = self
                .json(Method::GET, &format!("{base}/{}", escape(n)))
                .await?;
            out.push(v);
        }
        println!("{}", super::output::json(&out)?);
        Ok(())
    }

    /// `rm` of several objects under `base`: each one removed is named, each refused says
    /// why, and any refusal fails the command, as the docker CLI does.
    pub async fn remove_all(&self, base: &str, names: &[String], what: &str) -> anyhow::Result<()> {
        self.remove_all_with(base, names, what, "").await
    }

    /// As [`Client::remove_all`], with `query` (`?force=1`) after each object's path.
    pub async fn remove_all_with(
        &self,
        base: &str,
        names: &[String],
        what: &str,
        query: &str,
    ) -> anyhow::Result<()> {
        let mut failed = false;
        for n in names {
            let path = format!("{base}/{}{query}", escape(n));
            match self.send(Method::DELETE, &path, Self::empty()).await {
                Ok(_) => println!("{n}"),
                Err(e) => {
                    eprintln!("{e:#}");
                    failed = true;
                }
            }
        }
        if failed {
            anyhow::bail!("some {what} were not removed");
        }
        Ok(())
    }

    /// The body of a JSON request.
    pub fn json_body(v: &impl serde::Serialize) -> anyhow::Result<RequestBody> {
        Ok(Self::bytes(serde_json::to_vec(v)?))
    }

    pub async fn json<T: DeserializeOwned>(&self, method: Method, path: &str) -> anyhow::Result<T> {
        read_json(self.send(method, path, Self::empty()).await?).await
    }

    /// Reads a stream of JSON messages (pull progress, load results), one per line.
    pub async fn json_lines(
        resp: Response<Incoming>,
        mut each: impl FnMut(serde_json::Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut body = resp.into_body();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.context("reading from the covey daemon")?;
            if let Some(data) = frame.data_ref() {
                buf.extend_from_slice(data);
                while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    let line = String::from_utf8_lossy(&line);
                    if !line.trim().is_empty() {
                        each(
                            serde_json::from_str(line.trim())
                                .context("the daemon sent a malformed message")?,
                        )?;
                    }
                }
            }
        }
        if !buf.is_empty() {
            each(serde_json::from_slice(&buf).context("the daemon sent a malformed message")?)?;
        }
        Ok(())
    }
}

/// An answer's body as JSON.
pub async fn read_json<T: DeserializeOwned>(resp: Response<Incoming>) -> anyhow::Result<T> {
    let body = resp
        .into_body()
        .collect()
        .await
        .context("reading the daemon's answer")?
        .to_bytes();
    serde_json::from_slice(&body).context("the daemon's answer is not the JSON expected")
}

/// Query-string escaping for names that contain `/`, `:` and `@`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
