//! The one place where errors become HTTP answers: a status and a one-line
//! reason in the body. Internal detail goes to the log, not the client.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use tandem_store::StoreError;

/// An error answer: status, one-line reason, optional extra headers.
#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub reason: String,
    /// Why this request was refused, as counted in metrics.
    pub metric_reason: &'static str,
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    /// A 401 that is no failed guess (an expired nonce): not counted
    /// against the client's address.
    pub not_a_guess: bool,
}

impl HttpError {
    pub fn new(status: StatusCode, metric_reason: &'static str, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            metric_reason,
            headers: Vec::new(),
            not_a_guess: false,
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", reason)
    }

    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", reason)
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl From<StoreError> for HttpError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound(_) => Self::not_found(e.to_string()),
            StoreError::ParentMissing(_) => {
                Self::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            StoreError::AlreadyExists { .. } => {
                Self::new(StatusCode::METHOD_NOT_ALLOWED, "exists", e.to_string())
            }
            StoreError::Conflict { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            StoreError::Full => {
                tracing::error!("storage is full: uploads are refused until space is freed");
                Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "storage_full",
                    "storage is full; nothing was stored",
                )
            }
            StoreError::Unwritable(err) => {
                tracing::error!(error = %err, "storage is not writable");
                Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "storage_unwritable",
                    "storage is not writable; nothing was stored",
                )
            }
            _ => {
                tracing::error!(error = %e, "storage error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal storage error; nothing was stored",
                )
            }
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut r = (self.status, format!("{}\n", self.reason)).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        for (k, v) in self.headers {
            r.headers_mut().append(k, v);
        }
        if self.not_a_guess {
            r.extensions_mut().insert(crate::guard::NotAGuess);
        }
        r
    }
}
