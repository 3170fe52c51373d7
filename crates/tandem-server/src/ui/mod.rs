//! The status page at `/` and `/ui/`, served from assets built into the
//! binary: no separate build step, no scripts from elsewhere.
//!
//! - `GET /`, `GET /ui/`: the page once signed in, else the sign-in form.
//! - `POST /ui/login` (form field `token`): checks the admin token and sets
//!   the session cookie ([`session`]); the token never appears in a URL.
//! - `POST /ui/logout`: clears it.
//! - `GET /ui/app.js`, `/ui/app.css`, `/ui/hls-1.7.4.min.js` (hls.js, which
//!   plays a channel's output on its page; Apache-2.0, licence at
//!   `/ui/hls.js.LICENSE`).
//!
//! The page reads `GET /api/v1/status` and listens to
//! `GET /api/v1/events/stream`; both accept the session cookie in place of
//! the bearer token.

pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use subtle::ConstantTimeEq;

use crate::AppState;

const INDEX: &str = include_str!("assets/index.html");
const LOGIN: &str = include_str!("assets/login.html");
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/app.css"),
    ),
    (
        "hls-1.7.4.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/hls-1.7.4.min.js"),
    ),
    (
        "hls.js.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("assets/hls.js.LICENSE"),
    ),
];

/// Scripts and styles from this origin only; hls.js feeds the video
/// element from `blob:` URLs and may run a worker from one.
const CSP: &str = "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; \
                   worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; \
                   form-action 'self'; base-uri 'none'";

fn signed_in(st: &AppState, headers: &HeaderMap) -> bool {
    session::from_headers(headers)
        .is_some_and(|v| session::valid(&st.admin_token, v, st.clock.now()))
}

fn page(status: StatusCode, html: String) -> Response {
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn login_page(status: StatusCode, message: &str) -> Response {
    page(status, LOGIN.replace("{{message}}", message))
}

async fn index(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if signed_in(&st, &headers) {
        page(StatusCode::OK, INDEX.to_owned())
    } else {
        login_page(StatusCode::OK, "")
    }
}

/// The sign-in form's body: `token=…`, form-encoded.
fn form_token(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_owned())
}

async fn login(
    State(st): State<Arc<AppState>>,
    peer: Option<axum::Extension<crate::guard::PeerAddr>>,
    body: Bytes,
) -> Response {
    // The form carries no Authorization header, so the listener cannot
    // tell it is a guess: the limit is applied here.
    let ip = peer.map(|p| p.0.0.ip());
    if let Some(wait) = ip.and_then(|ip| st.guard.auth_blocked(ip)) {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        if let Some(left_out) = st.guard.refused("http", "auth_rate_limited") {
            tracing::warn!(peer = ?ip, retry_after_secs = secs, left_out, "status page sign-in refused with 429: too many failures from this address");
        }
        let mut r = login_page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong tokens from this address; wait a little.",
        );
        r.headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        return r;
    }
    let ok = form_token(&body)
        .is_some_and(|t| bool::from(t.as_bytes().ct_eq(st.admin_token.as_bytes())));
    if !ok {
        metrics::counter!("tandem_ui_sign_ins_total", "result" => "refused").increment(1);
        let mut r = login_page(
            StatusCode::UNAUTHORIZED,
            "That is not the admin token. It is in the file admin-token in the data directory.",
        );
        // Counted and logged (bounded) by the listener.
        r.extensions_mut().insert(crate::guard::AuthFailed);
        return r;
    }
    metrics::counter!("tandem_ui_sign_ins_total", "result" => "accepted").increment(1);
    let cookie = session::set_cookie(
        Some(&session::issue(&st.admin_token, st.clock.now())),
        st.cfg.tls.is_some(),
    );
    see_other(cookie)
}

async fn logout(State(st): State<Arc<AppState>>) -> Response {
    see_other(session::set_cookie(None, st.cfg.tls.is_some()))
}

fn see_other(cookie: String) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/ui/"));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn asset(Path(name): Path<String>) -> Response {
    let Some((_, kind, bytes)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such asset\n").into_response();
    };
    let cache = if name.starts_with("hls-") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, *kind),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Bytes::from_static(bytes),
    )
        .into_response()
}

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(index))
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/login", post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/{name}", get(asset))
}

#[cfg(test)]
mod tests {
    use super::form_token;

    #[test]
    fn the_form_token_is_decoded() {
        assert_eq!(form_token(b"token=a%2Bb+c").as_deref(), Some("a+b c"));
        assert_eq!(form_token(b"x=1&token=%20t%20").as_deref(), Some("t"));
        assert_eq!(form_token(b"x=1"), None);
    }
}
