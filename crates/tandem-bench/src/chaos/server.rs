//! The server under test: `tandem serve` as a child process, started on
//! the campaign's data directory and killed with SIGKILL.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

/// How long a start may take before the campaign calls it a failure.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `tandem serve`.
pub struct Process {
    child: Child,
    pub http: SocketAddr,
    pub s3: SocketAddr,
    pub token: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn addr_after(banner: &str, prefix: &str) -> Option<SocketAddr> {
    banner.lines().find_map(|l| {
        let rest = l.split(prefix).nth(1)?;
        let url = rest.split_whitespace().next()?;
        url.trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .ok()
    })
}

impl Process {
    /// Starts `tandem serve` on `data` with loopback listeners on free
    /// ports, and waits for its banner. Stderr is appended to `log`.
    pub fn start(
        bin: &Path,
        data: &Path,
        log: &Path,
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let mut cmd = Command::new(bin);
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--s3-listen",
            "127.0.0.1:0",
            "--mediastore-listen",
            "off",
            "--data",
        ])
        .arg(data)
        .env_remove("TANDEM_LISTEN")
        .env_remove("TANDEM_DATA")
        .env_remove("TANDEM_S3_LISTEN")
        .env_remove("TANDEM_MEDIASTORE_LISTEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let Some(out) = child.stdout.take() else {
            bail!("no stdout from {}", bin.display());
        };
        // The banner is read on a thread, so that a server that hangs
        // before printing it is noticed after START_TIMEOUT.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut out = std::io::BufReader::new(out);
            let mut banner = String::new();
            loop {
                let mut line = String::new();
                match out.read_line(&mut line) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(Err(banner));
                        return;
                    }
                    Ok(_) => {}
                }
                banner.push_str(&line);
                if line.starts_with("output:") || line.contains("channel(s)") {
                    let _ = tx.send(Ok(banner));
                    break;
                }
            }
            // Keep draining, so the server never blocks on a full pipe.
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        });
        let banner = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(b)) => b,
            Ok(Err(partial)) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "tandem serve exited before its banner (log: {}); stdout:\n{partial}",
                    log.display()
                )
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "tandem serve printed no banner within {START_TIMEOUT:?} (log: {})",
                    log.display()
                )
            }
        };
        let http = addr_after(&banner, "listening on ");
        let s3 = addr_after(&banner, "S3 (archive pairs): ");
        let (Some(http), Some(s3)) = (http, s3) else {
            let _ = child.kill();
            bail!("cannot read the listen addresses from the banner:\n{banner}");
        };
        let token = std::fs::read_to_string(data.join("admin-token"))
            .with_context(|| format!("cannot read {}/admin-token", data.display()))?
            .trim()
            .to_owned();
        Ok(Self {
            child,
            http,
            s3,
            token,
        })
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().context("SIGKILL")?;
        self.child.wait().context("waiting for the killed server")?;
        Ok(())
    }
}

/// The `tandem` binary beside the running executable (cargo puts both in
/// the same target directory).
pub fn default_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot locate tandem-bench itself")?;
    let dir = me.parent().context("tandem-bench has no directory")?;
    for cand in [dir.join("tandem"), dir.join("../tandem")] {
        if cand.is_file() {
            return Ok(cand);
        }
    }
    bail!(
        "no tandem binary beside {}: build it (cargo build -p tandem) or pass --tandem PATH",
        me.display()
    )
}
