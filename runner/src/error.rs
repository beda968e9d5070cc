//! The one error type of the HTTP API. Every failure a client can see is a variant here, and
//! every variant becomes the same JSON shape:
//!
//! ```json
//! {"error": {"code": "invalid_request", "message": "...", "field": "cmd"}}
//! ```

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The body or a parameter is wrong; `field` names it when one field is at fault.
    #[error("{message}")]
    InvalidRequest { field: Option<String>, message: String },
    #[error("request body must be JSON (Content-Type: application/json), got {got}")]
    UnsupportedContentType { got: String },
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("image {image} not found{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    ImageNotFound { image: String, detail: Option<String> },
    #[error("pulling image {image} failed: {message}")]
    ImagePull { image: String, message: String },
    /// The registry refused the pull's credentials (or wanted some): 401/403 from the registry.
    #[error(
        "registry {registry} refused to let image {image} be pulled ({}): {message}",
        credentials_phrase(credentials)
    )]
    RegistryAuth { image: String, registry: String, credentials: &'static str, message: String },
    #[error("authentication required")]
    Unauthorized,
    #[error("rate limit exceeded, retry in {retry_after_secs}s")]
    RateLimited { retry_after_secs: u64, limit: u32, reset_secs: u64 },
    #[error("{message}")]
    Overloaded { message: String, retry_after_secs: u64 },
    #[error("the runner is shutting down")]
    ShuttingDown,
    #[error("Docker {operation} failed: {message}")]
    Docker { operation: &'static str, container_id: Option<String>, message: String },
    #[error("no route for {path}")]
    NotFound { path: String },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::InvalidRequest { field: Some(field.into()), message: message.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest { .. } | ApiError::UnsupportedContentType { .. } => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::ImageNotFound { .. } | ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::RegistryAuth { .. } => StatusCode::FORBIDDEN,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded { .. } | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::ImagePull { .. } | ApiError::Docker { .. } | ApiError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// Stable, machine-readable code; the OpenAPI document lists them.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest { .. } => "invalid_request",
            ApiError::UnsupportedContentType { .. } => "unsupported_content_type",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::ImageNotFound { .. } => "image_not_found",
            ApiError::ImagePull { .. } => "image_pull_failed",
            ApiError::RegistryAuth { .. } => "registry_auth_failed",
            ApiError::Unauthorized => "unauthorized",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::Docker { .. } => "docker_error",
            ApiError::NotFound { .. } => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The JSON body, `{"error": {...}}`.
    pub fn body(&self) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code()));
        error.insert("message".into(), json!(self.to_string()));
        match self {
            ApiError::InvalidRequest { field: Some(field), .. } => {
                error.insert("field".into(), json!(field));
            }
            ApiError::Docker { operation, container_id, message } => {
                error.insert("operation".into(), json!(operation));
                error.insert("containerId".into(), json!(container_id));
                error.insert("dockerError".into(), json!(message));
            }
            ApiError::ImagePull { image, message } => {
                error.insert("image".into(), json!(image));
                error.insert("dockerError".into(), json!(message));
            }
            ApiError::ImageNotFound { image, .. } => {
                error.insert("image".into(), json!(image));
            }
            ApiError::RegistryAuth { image, registry, credentials, message } => {
                error.insert("image".into(), json!(image));
                error.insert("registry".into(), json!(registry));
                error.insert("credentials".into(), json!(credentials));
                error.insert("dockerError".into(), json!(message));
            }
            _ => {}
        }
        json!({ "error": error })
    }
}

fn credentials_phrase(source: &str) -> &'static str {
    match source {
        "request" => "with the request's creds",
        "configured" => "with the credentials configured for it",
        "ecr" => "with an ECR authorization token",
        _ => "no credentials were given",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(code = self.code(), error = %self, "request failed");
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"runner\""));
            }
            ApiError::RateLimited { retry_after_secs, limit, reset_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
                headers.insert("ratelimit-limit", HeaderValue::from(*limit));
                headers.insert("ratelimit-remaining", HeaderValue::from(0u32));
                headers.insert("ratelimit-reset", HeaderValue::from(*reset_secs));
            }
            ApiError::Overloaded { retry_after_secs, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::ShuttingDown => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(1u32));
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

/// Converts a Docker error in `operation` on `container_id`.
pub fn docker(operation: &'static str, container_id: Option<&str>, err: &bollard::errors::Error) -> ApiError {
    ApiError::Docker { operation, container_id: container_id.map(str::to_string), message: err.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_the_same_shape() {
        let errors = [
            ApiError::invalid("cmd", "must not be empty"),
            ApiError::PayloadTooLarge { limit: 10 },
            ApiError::Unauthorized,
            ApiError::Docker { operation: "start", container_id: Some("abc".into()), message: "boom".into() },
        ];
        for error in errors {
            let body = error.body();
            assert_eq!(body["error"]["code"], error.code());
            assert!(body["error"]["message"].is_string());
        }
        let body = ApiError::invalid("cmd", "must not be empty").body();
        assert_eq!(body["error"]["field"], "cmd");
    }

    #[test]
    fn unauthorized_asks_for_basic_auth() {
        let response = ApiError::Unauthorized.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Basic realm=\"runner\"");
    }
}
