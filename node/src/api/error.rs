//! Errors as the Engine API returns them: a status code and `{"message": …}`, which the
//! docker CLI prints as "Error response from daemon: …".

use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use covey_images::ErrorKind;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<covey_images::Error> for ApiError {
    fn from(e: covey_images::Error) -> Self {
        let status = match e.kind() {
            ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::BadContent | ErrorKind::Unavailable | ErrorKind::Internal => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::warn!("request failed: {e}");
        }
        Self::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "message": self.message })),
        )
            .into_response()
    }
}

/// Every endpoint covey does not serve says so, rather than failing obscurely.
pub async fn unsupported(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("{method} {} is not supported by covey", uri.path()),
    )
}

impl From<crate::manager::store::Error> for ApiError {
    fn from(e: crate::manager::store::Error) -> Self {
        use crate::manager::store::ErrorKind as K;
        let status = match e.kind() {
            K::NotFound => StatusCode::NOT_FOUND,
            // Docker answers an update from a stale version with 500 "update out of
            // sequence"; a conflict says better what happened.
            K::Conflict => StatusCode::CONFLICT,
            K::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            K::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

impl ApiError {
    /// A swarm operation refused or failed: Docker answers these with 503, and bad
    /// input with 400.
    pub fn swarm(e: anyhow::Error) -> Self {
        let message = format!("{e:#}");
        let bad_input = message.starts_with("invalid ");
        let status = if bad_input {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        Self::new(status, message)
    }
}
