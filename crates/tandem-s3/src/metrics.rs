//! What the S3 listener counts.

use metrics::counter;

/// Counts one S3 upload (a PutObject or UploadPart body) once its handler
/// is over, in `tandem_s3_uploads_total{bucket,operation,outcome}`:
/// `outcome` is `ok`, the S3 error code (`IncompleteBody` for a client
/// that went away mid-body), or `dropped` when the handler was cancelled.
/// Created only for a bucket that exists, so the label set stays bounded.
#[derive(Debug)]
pub struct S3Upload {
    bucket: String,
    operation: &'static str,
    outcome: Option<String>,
}

impl S3Upload {
    /// Starts counting an upload into `bucket`.
    pub fn start(operation: &'static str, bucket: &str) -> Self {
        Self {
            bucket: bucket.to_owned(),
            operation,
            outcome: None,
        }
    }

    /// Records how the handler ended; counted when `self` drops.
    pub fn finish(mut self, outcome: &str) {
        self.outcome = Some(outcome.to_owned());
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        let outcome = self.outcome.take().unwrap_or_else(|| "dropped".to_owned());
        counter!("tandem_s3_uploads_total", "bucket" => std::mem::take(&mut self.bucket),
            "operation" => self.operation, "outcome" => outcome)
        .increment(1);
    }
}
