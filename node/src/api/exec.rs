//! `docker exec`: create an exec instance, start it (its output on the hijacked connection,
//! raw with a terminal, else multiplexed), resize its terminal, inspect it for the exit code.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::containers::stream_output;
use super::ApiError;
use crate::containers::exec::{ExecRequest, ExecState};
use crate::daemon::Node;

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    cmd: Vec<String>,
    env: Option<Vec<String>>,
    user: String,
    working_dir: String,
    attach_stdin: bool,
    tty: bool,
}

pub async fn create(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Json(b): Json<CreateBody>,
) -> Result<Response, ApiError> {
    let exec_id = node
        .containers
        .create_exec(
            &id,
            ExecRequest {
                args: b.cmd,
                env: b.env.unwrap_or_default(),
                user: Some(b.user).filter(|u| !u.is_empty()),
                working_dir: Some(b.working_dir).filter(|w| !w.is_empty()),
                tty: b.tty,
                open_stdin: b.attach_stdin,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": exec_id }))).into_response())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct StartBody {
    /// Whether a terminal is used comes from the exec's creation, not from here.
    detach: bool,
}

pub async fn start(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let bytes = axum::body::to_bytes(std::mem::take(req.body_mut()), 64 * 1024)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?;
    let b: StartBody = if bytes.is_empty() {
        StartBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid exec start body: {e}")))?
    };
    let exec = node.containers.exec(&id)?;
    let live = node.containers.start_exec(&id).await?;
    if b.detach {
        return Ok(StatusCode::OK.into_response());
    }
    let tty = exec.spec_tty();
    let opts = super::containers::StreamOptions {
        stdout: true,
        stderr: true,
        raw: tty,
        input: (exec.open_stdin || tty).then(|| super::containers::Input {
            slot: exec.stdin.clone(),
            close_on_eof: !tty,
        }),
    };
    Ok(stream_output(live, opts, &mut req))
}

pub async fn resize(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<super::containers::ResizeQuery>,
) -> Result<StatusCode, ApiError> {
    let exec = node.containers.exec(&id)?;
    // The CLI resizes as soon as its start returns, which is before the terminal exists
    // (the process is made after the answer): wait for it.
    let target = if exec.spec_tty() {
        exec.terminal().await
    } else {
        None
    };
    q.apply(target.as_ref())
}

pub async fn inspect(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let exec = node.containers.exec(&id)?;
    let state = *exec.state.borrow();
    let (running, pid, code) = match state {
        ExecState::Created => (false, 0, Value::Null),
        ExecState::Running(pid) => (true, pid, Value::Null),
        ExecState::Exited(code) => (false, 0, json!(code)),
    };
    Ok(Json(json!({
        "ID": exec.id,
        "ContainerID": exec.container,
        "Running": running,
        "ExitCode": code,
        "Pid": pid,
        "OpenStdin": exec.open_stdin,
        "OpenStdout": true,
        "OpenStderr": true,
        "ProcessConfig": {
            "entrypoint": exec.args.first().cloned().unwrap_or_default(),
            "arguments": exec.args.get(1..).unwrap_or_default(),
            "tty": exec.spec_tty(),
        },
    })))
}
