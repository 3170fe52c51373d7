//! What lives where in the data directory:
//!
//! - `objects/`, `staging/`: the store (see `tandem_store::local`).
//! - `channels.redb`: channel definitions.
//! - `admin-token`: the control API's bearer token, created on first start
//!   (mode 0600).
//! - `server.json`: written while a server runs, so the CLI on the same
//!   data directory can find its URL (and TLS certificate).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ServerError;

/// The contents of `server.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunningServer {
    pub url: String,
    pub pid: u32,
    /// The certificate the server presents, to trust when it is self-signed.
    pub tls_cert: Option<PathBuf>,
    /// The S3 listener's endpoint, when it runs.
    #[serde(default)]
    pub s3_endpoint: Option<String>,
    /// The MediaStore listener's base URL, when it runs.
    #[serde(default)]
    pub mediastore_endpoint: Option<String>,
}

/// A data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory, readable by its owner only (0700). One that
    /// exists keeps its mode; if others may read it, a warning says so (the
    /// secrets in it are 0600 either way).
    pub fn create(&self) -> Result<(), ServerError> {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&self.root).map_err(|source| ServerError::Data {
            path: self.root.clone(),
            source,
        })?;
        #[cfg(unix)]
        if let Ok(m) = std::fs::metadata(&self.root) {
            use std::os::unix::fs::PermissionsExt;
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %self.root.display(),
                    mode = format!("{mode:o}"),
                    "the data directory is open to other users; 'chmod 700' it (its secrets are 0600)"
                );
            }
        }
        Ok(())
    }

    pub fn db_path(&self) -> PathBuf {
        self.root.join("channels.redb")
    }

    pub fn token_path(&self) -> PathBuf {
        self.root.join("admin-token")
    }

    pub fn server_file(&self) -> PathBuf {
        self.root.join("server.json")
    }

    /// The admin token, created on first use.
    pub fn admin_token(&self) -> Result<String, ServerError> {
        let path = self.token_path();
        let err = |source| ServerError::Data {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(t) if !t.trim().is_empty() => {
                // A token written by hand or copied in: the owner's only.
                restrict(&path).map_err(err)?;
                return Ok(t.trim().to_owned());
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        let token =
            crate::util::random_token(40).map_err(|e| err(std::io::Error::other(e.to_string())))?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&path).map_err(err)?;
        f.write_all(format!("{token}\n").as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        Ok(token)
    }

    /// The admin token if one exists (the CLI never creates one).
    pub fn read_admin_token(&self) -> Option<String> {
        std::fs::read_to_string(self.token_path())
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
    }

    pub fn write_server_file(
        &self,
        url: &str,
        tls_cert: Option<&Path>,
        s3_endpoint: Option<String>,
        mediastore_endpoint: Option<String>,
    ) -> Result<(), ServerError> {
        let path = self.server_file();
        let info = RunningServer {
            url: url.to_owned(),
            pid: std::process::id(),
            tls_cert: tls_cert.map(Path::to_path_buf),
            s3_endpoint,
            mediastore_endpoint,
        };
        let json = serde_json::to_string_pretty(&info).map_err(|e| ServerError::Data {
            path: path.clone(),
            source: e.into(),
        })?;
        std::fs::write(&path, json).map_err(|source| ServerError::Data { path, source })
    }

    pub fn remove_server_file(&self) {
        let _ = std::fs::remove_file(self.server_file());
    }

    pub fn read_server_file(&self) -> Option<RunningServer> {
        let text = std::fs::read_to_string(self.server_file()).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Makes a secret file readable and writable by its owner only (0600).
pub fn restrict(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode != 0o600 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
