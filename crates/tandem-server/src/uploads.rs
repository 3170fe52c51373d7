//! Multipart uploads never completed are removed once they are older than
//! `s3_multipart_expiry` (default a day), as S3's lifecycle rule
//! `AbortIncompleteMultipartUpload` removes them: a client that died
//! mid-upload would otherwise leave its parts on disk for good. The sweep
//! runs at start and every hour (or every expiry, if shorter) on the
//! injected clock.

use std::sync::Arc;
use std::time::Duration;

use metrics::counter;

use crate::AppState;

/// How often abandoned uploads are looked for.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Sweeps until the server stops; returns at once when expiry is off.
pub async fn run(st: Arc<AppState>) {
    let expiry = st.cfg.s3_multipart_expiry;
    if expiry.is_zero() {
        return;
    }
    loop {
        match st.s3.expire_uploads(st.clock.now(), expiry).await {
            Ok(n) => counter!("tandem_s3_multipart_expired_total").increment(n),
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for abandoned multipart uploads; trying again in an hour");
            }
        }
        counter!("tandem_s3_multipart_sweeps_total").increment(1);
        let next = st.clock.instant() + SWEEP_EVERY.min(expiry);
        st.clock.sleep_until(next).await;
    }
}
