//! Recording a UDP flow's output (`--record`) as archive files.
//!
//! Every TS payload the flow forwards is offered to a bounded queue from
//! the flow's thread (never blocking it: what does not fit is counted in
//! `tandem_udp_record_dropped_bytes_total`). A task cuts the stream with
//! [`tandem_ts::Rollover`] (on the stream's PCR, before a PAT) and writes
//! each file through the store's complete-only staged writes, so a file
//! appears whole or not at all.
//!
//! Files land in the S3 bucket [`BUCKET`] as `ID/ID.NNNNNN.ts`,
//! MediaLive's archive naming, where `tandem archive verify
//! s3://udp-recordings/ID/ s3://udp-recordings/ID/` checks them. The
//! counter goes on from the highest index already there, so a recording
//! resumed after a restart continues its sequence. The file open when the
//! flow stops (deleted, or the server shut down) is published as it is;
//! one open at a crash is lost, as an encoder's archive file would be.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use metrics::counter;
use tandem_core::ObjectPath;
use tandem_store::{Parents, StagedWrite, Store, StoreError};
use tandem_ts::{NamePattern, Rollover, Step};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::clock::Clock;

/// The S3 bucket recordings are written to.
pub const BUCKET: &str = "udp-recordings";
/// Datagram payloads queued between the flow and the writer: about 5 MB
/// of 1316-byte payloads, 40 ms at 1 Gbit/s.
const QUEUE: usize = 4096;
/// Bytes gathered before they are written to the staged file.
const WRITE_CHUNK: usize = 256 * 1024;
/// How long a stopping flow waits for its last file to be published.
const FINISH_WAIT: Duration = Duration::from_secs(10);

/// The flow's side: offers each forwarded payload.
pub struct RecordTap {
    id: String,
    tx: mpsc::Sender<Bytes>,
}

impl RecordTap {
    /// Queues a forwarded payload; counts it as dropped if the writer is
    /// behind.
    pub fn offer(&self, ts: &Bytes) {
        if self.tx.try_send(ts.clone()).is_err() {
            counter!("tandem_udp_record_dropped_bytes_total", "flow" => self.id.clone())
                .increment(ts.len() as u64);
        }
    }
}

/// The writer's side, kept with the flow to stop it.
#[derive(Debug)]
pub struct Recording {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Recording {
    /// Publishes the open file and ends the writer. Call once the flow has
    /// stopped, so that everything it forwarded is in the file.
    pub async fn finish(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take()
            && tokio::time::timeout(FINISH_WAIT, t).await.is_err()
        {
            tracing::warn!("a UDP recording did not publish its last file within 10 s");
        }
    }
}

/// The store collection a flow's recording goes to.
pub fn folder(id: &str) -> Result<ObjectPath, tandem_core::NameError> {
    ObjectPath::from_segments(["s3.buckets", BUCKET, id])
}

/// Starts the writer for flow `id`.
pub fn start(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    id: &str,
    rollover: Duration,
) -> (RecordTap, Recording) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let (stop, stopped) = oneshot::channel();
    let writer = Writer {
        store,
        clock,
        id: id.to_owned(),
        rollover,
        file: None,
    };
    let task = tokio::spawn(writer.run(rx, stopped));
    (
        RecordTap {
            id: id.to_owned(),
            tx,
        },
        Recording {
            stop: Some(stop),
            task: Some(task),
        },
    )
}

struct Writer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    id: String,
    rollover: Duration,
    file: Option<OpenFile>,
}

struct OpenFile {
    index: u64,
    key: ObjectPath,
    /// `None` once a write failed: the rest of the file is dropped.
    write: Option<Box<dyn StagedWrite>>,
    pending: BytesMut,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Bytes>, mut stopped: oneshot::Receiver<()>) {
        let folder = match folder(&self.id) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(flow = %self.id, error = %e, "cannot record this flow");
                return;
            }
        };
        let first = match Self::next_index(self.store.as_ref(), &self.id, &folder).await {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(flow = %self.id, error = %e, "cannot list the recording's files; it starts again from index 0");
                0
            }
        };
        tracing::info!(flow = %self.id, bucket = BUCKET, first_index = first, rollover_s = self.rollover.as_secs(), "recording the flow's output");
        let mut rollover = Rollover::new(self.rollover, first);
        let mut steps = Vec::new();
        let mut batch = Vec::with_capacity(64);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut batch, 64) => {
                    if n == 0 {
                        break;
                    }
                }
                _ = &mut stopped => {
                    // The flow has stopped: what it forwarded is queued.
                    while let Ok(b) = rx.try_recv() {
                        batch.push(b);
                    }
                    self.take(&mut rollover, &folder, &mut batch, &mut steps).await;
                    break;
                }
            }
            self.take(&mut rollover, &folder, &mut batch, &mut steps)
                .await;
        }
        rollover.finish(&mut steps);
        self.apply(&folder, &mut steps, &Bytes::new()).await;
    }

    async fn take(
        &mut self,
        rollover: &mut Rollover,
        folder: &ObjectPath,
        batch: &mut Vec<Bytes>,
        steps: &mut Vec<Step>,
    ) {
        for b in batch.drain(..) {
            rollover.push(self.clock.instant(), &b, steps);
            self.apply(folder, steps, &b).await;
        }
    }

    /// The index after the highest one already in the folder.
    async fn next_index(
        store: &dyn Store,
        id: &str,
        folder: &ObjectPath,
    ) -> Result<u64, StoreError> {
        let pattern = NamePattern::parse(&format!("{id}.{{index}}.ts")).ok();
        let entries = match store.list(folder).await {
            Ok(e) => e,
            Err(StoreError::NotFound(_)) => return Ok(0),
            Err(e) => return Err(e),
        };
        Ok(entries
            .iter()
            .filter_map(|(name, _)| pattern.as_ref()?.index_of(name))
            .max()
            .map_or(0, |i| i.saturating_add(1)))
    }

    async fn apply(&mut self, folder: &ObjectPath, steps: &mut Vec<Step>, chunk: &Bytes) {
        for step in steps.drain(..) {
            match step {
                Step::Open(index) => {
                    let Ok(key) = folder.join(&format!("{}.{index:06}.ts", self.id)) else {
                        continue;
                    };
                    let write = match self.store.begin_put(&key, Parents::Create).await {
                        Ok(w) => Some(w),
                        Err(e) => {
                            self.failed(&key, &e);
                            None
                        }
                    };
                    self.file = Some(OpenFile {
                        index,
                        key,
                        write,
                        pending: BytesMut::new(),
                    });
                }
                Step::Write(range) => {
                    let Some(bytes) = chunk.get(range) else {
                        continue;
                    };
                    let Some(f) = self.file.as_mut() else {
                        continue;
                    };
                    f.pending.extend_from_slice(bytes);
                    if f.pending.len() >= WRITE_CHUNK {
                        self.flush().await;
                    }
                }
                Step::Close(index) => self.close(index).await,
            }
        }
    }

    async fn flush(&mut self) {
        let Some(f) = self.file.as_mut() else {
            return;
        };
        let data = f.pending.split().freeze();
        let Some(w) = f.write.as_mut() else {
            return;
        };
        if let Err(e) = w.write(data).await {
            let key = f.key.clone();
            f.write = None;
            self.failed(&key, &e);
        }
    }

    async fn close(&mut self, index: u64) {
        self.flush().await;
        let Some(f) = self.file.take().filter(|f| f.index == index) else {
            return;
        };
        let Some(w) = f.write else {
            return;
        };
        let bytes = w.written();
        match w.commit().await {
            Ok(_) => {
                counter!("tandem_udp_record_files_total", "flow" => self.id.clone()).increment(1);
                counter!("tandem_udp_record_bytes_total", "flow" => self.id.clone())
                    .increment(bytes);
                tracing::info!(flow = %self.id, key = %f.key, bytes, "recorded file published");
            }
            Err(e) => self.failed(&f.key, &e),
        }
    }

    fn failed(&self, key: &ObjectPath, e: &StoreError) {
        counter!("tandem_udp_record_errors_total", "flow" => self.id.clone()).increment(1);
        tracing::error!(flow = %self.id, key = %key, error = %e, "cannot write a recorded file; it is lost");
    }
}
