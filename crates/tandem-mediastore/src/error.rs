//! MediaStore's errors on the wire: a status, `x-amzn-ErrorType` and a
//! JSON body `{"__type":"…","Message":"…"}` (rest-json, as botocore parses
//! it into `Error.Code` and `Error.Message`).

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode};
use tandem_store::StoreError;

use crate::sigv4::AuthError;

/// Why a request failed, as MediaStore says it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MsError {
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("This key may not do that in container {0}")]
    AccessDenied(String),
    #[error("Container {0} does not exist")]
    ContainerNotFound(String),
    #[error("Object {0} does not exist")]
    ObjectNotFound(String),
    #[error("Range {0} is not satisfiable")]
    RangeNotSatisfiable(String),
    #[error("{0}")]
    Validation(String),
    #[error("Object is larger than the {limit} byte limit of {availability} uploads")]
    TooLarge {
        limit: u64,
        availability: &'static str,
    },
    #[error("Upload not finished within {0} seconds")]
    Timeout(u64),
    #[error("The request body ended before Content-Length bytes arrived")]
    Incomplete,
    #[error("x-amz-content-sha256 does not match the body")]
    ContentSha256Mismatch,
    #[error("Method {0} is not supported here")]
    MethodNotAllowed(String),
    #[error("Internal server error")]
    Internal(#[source] StoreError),
}

impl MsError {
    /// The status and the `__type` MediaStore (or AWS's JSON front end) uses.
    pub fn kind(&self) -> (StatusCode, &'static str) {
        use StatusCode as S;
        match self {
            Self::Auth(AuthError::Missing) => (S::FORBIDDEN, "MissingAuthenticationTokenException"),
            Self::Auth(AuthError::UnknownKey) => (S::FORBIDDEN, "UnrecognizedClientException"),
            Self::Auth(AuthError::Malformed(_)) => (S::BAD_REQUEST, "IncompleteSignatureException"),
            Self::Auth(_) => (S::FORBIDDEN, "InvalidSignatureException"),
            Self::AccessDenied(_) => (S::FORBIDDEN, "AccessDeniedException"),
            Self::ContainerNotFound(_) => (S::NOT_FOUND, "ContainerNotFoundException"),
            Self::ObjectNotFound(_) => (S::NOT_FOUND, "ObjectNotFoundException"),
            Self::RangeNotSatisfiable(_) => (
                S::RANGE_NOT_SATISFIABLE,
                "RequestedRangeNotSatisfiableException",
            ),
            Self::Validation(_) => (S::BAD_REQUEST, "ValidationException"),
            Self::TooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "ValidationException"),
            Self::Timeout(_) => (S::REQUEST_TIMEOUT, "RequestTimeoutException"),
            Self::Incomplete => (S::BAD_REQUEST, "IncompleteBodyException"),
            Self::ContentSha256Mismatch => (S::BAD_REQUEST, "XAmzContentSHA256Mismatch"),
            Self::MethodNotAllowed(_) => (S::METHOD_NOT_ALLOWED, "MethodNotAllowedException"),
            Self::Internal(_) => (S::INTERNAL_SERVER_ERROR, "InternalServerError"),
        }
    }

    /// The error as a response. HEAD answers carry no body, but the header.
    pub fn response(&self, head: bool) -> Response<Body> {
        let (status, ty) = self.kind();
        if let Self::Internal(e) = self {
            tracing::error!(error = %e, "MediaStore storage operation failed");
        }
        let body = if head {
            Body::empty()
        } else {
            Body::from(serde_json::json!({ "__type": ty, "Message": self.to_string() }).to_string())
        };
        let mut r = Response::new(body);
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert("x-amzn-errortype", HeaderValue::from_static(ty));
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        r
    }
}

impl From<StoreError> for MsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(p) => Self::ObjectNotFound(p.to_string()),
            StoreError::Conflict { path, why } => Self::Validation(format!(
                "Path conflicts with another object or folder at {path}: {why}"
            )),
            StoreError::ParentMissing(p) | StoreError::AlreadyExists { path: p } => {
                Self::Validation(format!(
                    "Path conflicts with an existing object or folder at {p}"
                ))
            }
            other => Self::Internal(other),
        }
    }
}
