//! Channel and archive pair definitions: durable in an embedded database (redb), live in
//! memory with each input's counters.
//!
//! redb holds an exclusive lock on its file, so only one process opens a
//! data directory's database at a time. The CLI therefore talks to a
//! running server through the control API and opens the database itself
//! only when no server holds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tandem_core::{
    ArchiveId, ArchiveSpec, ChannelId, ChannelSpec, ContainerId, ContainerSpec, InputCredentials,
    InputState, Pipeline, S3KeyPair,
};

const CHANNELS: TableDefinition<&str, &str> = TableDefinition::new("channels");
const ARCHIVES: TableDefinition<&str, &str> = TableDefinition::new("archives");
const CONTAINERS: TableDefinition<&str, &str> = TableDefinition::new("containers");
const UDP_FLOWS: TableDefinition<&str, &str> = TableDefinition::new("udp_flows");

/// Why the channel database refused an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    #[error("channel {0} already exists")]
    AlreadyExists(String),
    #[error("channel {0} does not exist")]
    NotFound(String),
    #[error("archive {0} already exists")]
    ArchiveExists(String),
    #[error("archive {0} does not exist")]
    ArchiveNotFound(String),
    #[error("container pair {0} already exists")]
    ContainerExists(String),
    #[error("container pair {0} does not exist")]
    ContainerNotFound(String),
    #[error("udp flow {0} already exists")]
    UdpExists(String),
    #[error("udp flow {0} does not exist")]
    UdpNotFound(String),
    #[error(
        "{path} is in use by another process (is a tandem server running on this data directory?)"
    )]
    Locked { path: PathBuf },
    #[error("channel database {path}: {message}")]
    Database { path: PathBuf, message: String },
    #[error("channel {id} in the database is unreadable: {message}")]
    Corrupt { id: String, message: String },
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

/// The durable list of channels.
#[derive(Debug)]
pub struct ChannelDb {
    db: Database,
    path: PathBuf,
}

impl ChannelDb {
    /// Opens or creates the database at `path`.
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        // It holds every input's password: created 0600 (redb takes an
        // empty file as a new database), and tightened if it was not.
        let secret = |e: std::io::Error| RegistryError::Database {
            path: path.into(),
            message: e.to_string(),
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        drop(opts.open(path).map_err(secret)?);
        crate::datadir::restrict(path).map_err(secret)?;
        let db = match Database::create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(RegistryError::Locked { path: path.into() });
            }
            Err(e) => {
                return Err(RegistryError::Database {
                    path: path.into(),
                    message: e.to_string(),
                });
            }
        };
        let this = Self {
            db,
            path: path.into(),
        };
        this.write(|t| {
            t.open_table(CHANNELS)?;
            t.open_table(ARCHIVES)?;
            t.open_table(CONTAINERS)?;
            t.open_table(UDP_FLOWS).map(drop)
        })?;
        Ok(this)
    }

    fn err(&self, e: impl std::fmt::Display) -> RegistryError {
        RegistryError::Database {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::TableError>,
    ) -> Result<T, RegistryError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let out = f(&txn).map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// Stores a new row; refuses an id that exists.
    fn insert_row<T: serde::Serialize>(
        &self,
        table: TableDefinition<&str, &str>,
        id: &str,
        value: &T,
        exists: impl FnOnce(String) -> RegistryError,
    ) -> Result<(), RegistryError> {
        let json = serde_json::to_string(value).map_err(|e| self.err(e))?;
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = txn.open_table(table).map_err(|e| self.err(e))?;
            if t.get(id).map_err(|e| self.err(e))?.is_some() {
                return Err(exists(id.to_owned()));
            }
            t.insert(id, json.as_str()).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Removes a row; `false` if it did not exist.
    fn remove_row(
        &self,
        table: TableDefinition<&str, &str>,
        id: &str,
    ) -> Result<bool, RegistryError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let existed = {
            let mut t = txn.open_table(table).map_err(|e| self.err(e))?;
            t.remove(id).map_err(|e| self.err(e))?.is_some()
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(existed)
    }

    /// Every row, sorted by id.
    fn list_rows<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &str>,
    ) -> Result<Vec<T>, RegistryError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = match txn.open_table(table) {
            Ok(t) => t,
            // Written by a version that did not know this table yet.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let spec: T = serde_json::from_str(v.value()).map_err(|e| RegistryError::Corrupt {
                id: k.value().to_owned(),
                message: e.to_string(),
            })?;
            out.push(spec);
        }
        Ok(out)
    }

    /// Stores a new channel; refuses an id that exists.
    pub fn insert(&self, spec: &ChannelSpec) -> Result<(), RegistryError> {
        self.insert_row(CHANNELS, &spec.id, spec, RegistryError::AlreadyExists)
    }

    /// Changes a channel's retention settings, in one transaction; the
    /// changed channel.
    pub fn set_retention(
        &self,
        id: &ChannelId,
        retention: tandem_core::RetentionSettings,
    ) -> Result<ChannelSpec, RegistryError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let spec = {
            let mut t = txn.open_table(CHANNELS).map_err(|e| self.err(e))?;
            let mut spec: ChannelSpec = match t.get(id.as_str()).map_err(|e| self.err(e))? {
                Some(v) => serde_json::from_str(v.value()).map_err(|e| RegistryError::Corrupt {
                    id: id.to_string(),
                    message: e.to_string(),
                })?,
                None => return Err(RegistryError::NotFound(id.to_string())),
            };
            spec.retention = retention;
            let json = serde_json::to_string(&spec).map_err(|e| self.err(e))?;
            t.insert(id.as_str(), json.as_str())
                .map_err(|e| self.err(e))?;
            spec
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(spec)
    }

    /// Gives one input new credentials (a new password, the same
    /// username); the other input is untouched.
    pub fn rotate_password(
        &self,
        id: &ChannelId,
        p: Pipeline,
    ) -> Result<ChannelSpec, RegistryError> {
        let password =
            crate::util::random_token(24).map_err(|e| RegistryError::Random(e.to_string()))?;
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let spec = {
            let mut t = txn.open_table(CHANNELS).map_err(|e| self.err(e))?;
            let mut spec: ChannelSpec = match t.get(id.as_str()).map_err(|e| self.err(e))? {
                Some(v) => serde_json::from_str(v.value()).map_err(|e| RegistryError::Corrupt {
                    id: id.to_string(),
                    message: e.to_string(),
                })?,
                None => return Err(RegistryError::NotFound(id.to_string())),
            };
            p.of_mut(&mut spec.inputs).password = password;
            let json = serde_json::to_string(&spec).map_err(|e| self.err(e))?;
            t.insert(id.as_str(), json.as_str())
                .map_err(|e| self.err(e))?;
            spec
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(spec)
    }

    /// Removes a channel; `false` if it did not exist.
    pub fn remove(&self, id: &ChannelId) -> Result<bool, RegistryError> {
        self.remove_row(CHANNELS, id.as_str())
    }

    /// Every channel, sorted by id.
    pub fn list(&self) -> Result<Vec<ChannelSpec>, RegistryError> {
        self.list_rows(CHANNELS)
    }

    /// One channel.
    pub fn get(&self, id: &ChannelId) -> Result<Option<ChannelSpec>, RegistryError> {
        Ok(self.list()?.into_iter().find(|s| s.id == id.as_str()))
    }

    /// Stores a new archive pair; refuses an id that exists.
    pub fn insert_archive(&self, spec: &ArchiveSpec) -> Result<(), RegistryError> {
        self.insert_row(ARCHIVES, &spec.id, spec, RegistryError::ArchiveExists)
    }

    /// Removes an archive pair; `false` if it did not exist.
    pub fn remove_archive(&self, id: &ArchiveId) -> Result<bool, RegistryError> {
        self.remove_row(ARCHIVES, id.as_str())
    }

    /// Every archive pair, sorted by id.
    pub fn list_archives(&self) -> Result<Vec<ArchiveSpec>, RegistryError> {
        self.list_rows(ARCHIVES)
    }

    /// One archive pair; `ArchiveNotFound` if there is none.
    pub fn archive(&self, id: &ArchiveId) -> Result<ArchiveSpec, RegistryError> {
        self.list_archives()?
            .into_iter()
            .find(|s| s.id == id.as_str())
            .ok_or_else(|| RegistryError::ArchiveNotFound(id.to_string()))
    }
}

impl ChannelDb {
    /// Stores a new container pair; refuses an id that exists.
    pub fn insert_container(&self, spec: &ContainerSpec) -> Result<(), RegistryError> {
        self.insert_row(CONTAINERS, &spec.id, spec, RegistryError::ContainerExists)
    }

    /// Removes a container pair; `false` if it did not exist.
    pub fn remove_container(&self, id: &ContainerId) -> Result<bool, RegistryError> {
        self.remove_row(CONTAINERS, id.as_str())
    }

    /// Every container pair, sorted by id.
    pub fn list_containers(&self) -> Result<Vec<ContainerSpec>, RegistryError> {
        self.list_rows(CONTAINERS)
    }

    /// One container pair; `ContainerNotFound` if there is none.
    pub fn container(&self, id: &ContainerId) -> Result<ContainerSpec, RegistryError> {
        self.list_containers()?
            .into_iter()
            .find(|s| s.id == id.as_str())
            .ok_or_else(|| RegistryError::ContainerNotFound(id.to_string()))
    }
}

impl ChannelDb {
    /// Stores a new UDP flow; refuses an id that exists.
    pub fn insert_udp(&self, spec: &tandem_udp_io::FlowSpec) -> Result<(), RegistryError> {
        self.insert_row(UDP_FLOWS, &spec.id, spec, RegistryError::UdpExists)
    }

    /// Removes a UDP flow; `false` if it did not exist.
    pub fn remove_udp(&self, id: &str) -> Result<bool, RegistryError> {
        self.remove_row(UDP_FLOWS, id)
    }

    /// Every UDP flow, sorted by id.
    pub fn list_udp(&self) -> Result<Vec<tandem_udp_io::FlowSpec>, RegistryError> {
        self.list_rows(UDP_FLOWS)
    }

    /// One UDP flow; `UdpNotFound` if there is none.
    pub fn udp(&self, id: &str) -> Result<tandem_udp_io::FlowSpec, RegistryError> {
        self.list_udp()?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| RegistryError::UdpNotFound(id.to_owned()))
    }
}

/// A new container pair with a fresh key pair per container.
pub fn new_container_spec(
    id: &ContainerId,
    now: SystemTime,
) -> Result<ContainerSpec, RegistryError> {
    Ok(ContainerSpec {
        id: id.to_string(),
        created_unix: crate::util::unix_secs(now),
        keys: [new_key_pair()?, new_key_pair()?],
    })
}

/// A fresh SigV4 key pair (archive buckets, MediaStore containers).
fn new_key_pair() -> Result<S3KeyPair, RegistryError> {
    let random = |n| crate::util::random_token(n).map_err(|e| RegistryError::Random(e.to_string()));
    Ok(S3KeyPair {
        access_key_id: format!("TDM{}", random(17)?.to_ascii_uppercase()),
        secret_access_key: random(40)?,
    })
}

/// A new archive pair with a fresh key pair per bucket.
pub fn new_archive_spec(
    id: &ArchiveId,
    now: SystemTime,
    rollover_secs: Option<u64>,
) -> Result<ArchiveSpec, RegistryError> {
    Ok(ArchiveSpec {
        id: id.to_string(),
        created_unix: crate::util::unix_secs(now),
        keys: [new_key_pair()?, new_key_pair()?],
        rollover_secs,
    })
}

/// A new channel with fresh credentials for both inputs.
pub fn new_channel_spec(id: &ChannelId, now: SystemTime) -> Result<ChannelSpec, RegistryError> {
    let creds = |p: Pipeline| -> Result<InputCredentials, RegistryError> {
        let password =
            crate::util::random_token(24).map_err(|e| RegistryError::Random(e.to_string()))?;
        Ok(InputCredentials {
            username: format!("{id}_{p}"),
            password,
        })
    };
    Ok(ChannelSpec {
        id: id.to_string(),
        created_unix: crate::util::unix_secs(now),
        inputs: [creds(Pipeline::P0)?, creds(Pipeline::P1)?],
        failover: Default::default(),
        sources: Default::default(),
        retention: Default::default(),
    })
}

/// Counters for one input since the server started.
#[derive(Debug, Default)]
pub struct InputStats {
    bytes: AtomicU64,
    objects: AtomicU64,
    /// Milliseconds since the epoch of the last completed write; 0 = never.
    last_write_ms: AtomicU64,
}

/// A snapshot of [`InputStats`] for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSnapshot {
    pub state: InputState,
    pub last_write: Option<SystemTime>,
    pub bytes: u64,
    pub objects: u64,
}

impl InputStats {
    /// Records a completed (published) object of `bytes` bytes.
    pub fn record_write(&self, now: SystemTime, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.objects.fetch_add(1, Ordering::Relaxed);
        let ms = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        self.last_write_ms
            .fetch_max(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn snapshot(&self, now: SystemTime, loss_after: Duration) -> InputSnapshot {
        let ms = self.last_write_ms.load(Ordering::Relaxed);
        let last_write = (ms > 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
        let age = last_write.map(|t| now.duration_since(t).unwrap_or_default());
        InputSnapshot {
            state: InputState::classify(age, loss_after),
            last_write,
            bytes: self.bytes.load(Ordering::Relaxed),
            objects: self.objects.load(Ordering::Relaxed),
        }
    }
}

/// A channel being served.
#[derive(Debug)]
pub struct LiveChannel {
    pub id: ChannelId,
    /// The definition as loaded; the inputs' credentials in it are those
    /// at load time: [`credentials`](Self::credentials) has the current.
    pub spec: ChannelSpec,
    pub inputs: [InputStats; 2],
    credentials: RwLock<[InputCredentials; 2]>,
}

impl LiveChannel {
    pub fn input(&self, p: Pipeline) -> &InputStats {
        p.of(&self.inputs)
    }

    /// The credentials that open input `p` now.
    pub fn credentials(&self, p: Pipeline) -> InputCredentials {
        let all = self
            .credentials
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        p.of(&all).clone()
    }

    /// Replaces input `p`'s credentials: the next request is checked
    /// against the new ones.
    pub fn set_credentials(&self, p: Pipeline, c: InputCredentials) {
        let mut all = self
            .credentials
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *p.of_mut(&mut all) = c;
    }

    /// The definition with the current credentials.
    pub fn current_spec(&self) -> ChannelSpec {
        let mut spec = self.spec.clone();
        spec.inputs = Pipeline::BOTH.map(|p| self.credentials(p));
        spec
    }
}

/// The channels being served, looked up on every request.
#[derive(Debug, Default)]
pub struct Channels {
    map: RwLock<BTreeMap<ChannelId, Arc<LiveChannel>>>,
}

impl Channels {
    pub fn get(&self, id: &ChannelId) -> Option<Arc<LiveChannel>> {
        self.map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<LiveChannel>> {
        self.map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    pub fn add(&self, spec: ChannelSpec) -> Result<Arc<LiveChannel>, RegistryError> {
        let id = spec.channel_id().map_err(|e| RegistryError::Corrupt {
            id: spec.id.clone(),
            message: e.to_string(),
        })?;
        let live = Arc::new(LiveChannel {
            id: id.clone(),
            credentials: RwLock::new(spec.inputs.clone()),
            spec,
            inputs: Default::default(),
        });
        self.map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, live.clone());
        Ok(live)
    }

    pub fn remove(&self, id: &ChannelId) -> Option<Arc<LiveChannel>> {
        self.map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_persist_and_ids_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("channels.redb");
        let id = ChannelId::parse("news").unwrap();
        let spec = new_channel_spec(&id, SystemTime::now()).unwrap();
        {
            let db = ChannelDb::open(&path).unwrap();
            db.insert(&spec).unwrap();
            assert!(matches!(
                db.insert(&spec),
                Err(RegistryError::AlreadyExists(_))
            ));
            assert!(matches!(
                ChannelDb::open(&path),
                Err(RegistryError::Locked { .. })
            ));
        }
        let db = ChannelDb::open(&path).unwrap();
        assert_eq!(db.get(&id).unwrap(), Some(spec.clone()));
        assert_eq!(spec.inputs[0].username, "news_0");
        assert_ne!(spec.inputs[0].password, spec.inputs[1].password);
        assert!(db.remove(&id).unwrap());
        assert!(!db.remove(&id).unwrap());
        assert_eq!(db.list().unwrap(), vec![]);
    }

    #[test]
    fn input_snapshot_reflects_writes() {
        let s = InputStats::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let loss = Duration::from_secs(10);
        assert_eq!(s.snapshot(t0, loss).state, InputState::Idle);
        s.record_write(t0, 500);
        s.record_write(t0, 100);
        let snap = s.snapshot(t0 + Duration::from_secs(5), loss);
        assert_eq!(
            (snap.state, snap.bytes, snap.objects),
            (InputState::Receiving, 600, 2)
        );
        assert_eq!(
            s.snapshot(t0 + Duration::from_secs(11), loss).state,
            InputState::Lost
        );
    }
}
