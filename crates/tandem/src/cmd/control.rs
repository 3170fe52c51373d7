//! How a management command reaches its data: through a running server's
//! control API, or straight to the database when no server holds it.

use std::time::Duration;

use anyhow::{Context, bail};
use tandem_server::{ChannelDb, DataDir, RegistryError};

/// Where a management command goes and how it prints; shared by
/// `tandem channel` and `tandem archive`.
#[derive(Debug, clap::Args)]
pub struct ControlArgs {
    /// A running server's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, global = true, env = "TANDEM_SERVER")]
    pub server: Option<String>,
    /// The admin token for --server. [default: the data directory's]
    #[arg(long, global = true, env = "TANDEM_TOKEN")]
    pub token: Option<String>,
    /// Print JSON (the control API's, where the command has one).
    #[arg(long, global = true)]
    pub json: bool,
}

/// Where the command is carried out.
pub enum Target {
    Api {
        url: String,
        token: String,
        agent: ureq::Agent,
    },
    Database {
        data: DataDir,
        base_url: String,
    },
}

pub fn output<T: serde::Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce(),
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        human();
    }
    Ok(())
}

pub fn agent(tls_cert: Option<&std::path::Path>) -> anyhow::Result<ureq::Agent> {
    let mut b = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)));
    if let Some(path) = tls_cert {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read the server's certificate {}", path.display()))?;
        let cert = ureq::tls::Certificate::from_pem(&pem)
            .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert.to_owned()]))
            .build();
        b = b.tls_config(tls);
    }
    Ok(b.build().into())
}

pub fn choose_target(
    data: &DataDir,
    base_url: &str,
    server: Option<String>,
    token: Option<String>,
) -> anyhow::Result<Target> {
    if let Some(url) = server {
        let token = token.or_else(|| data.read_admin_token()).context(
            "--server needs --token (or TANDEM_TOKEN): the admin token the server printed",
        )?;
        return Ok(Target::Api {
            url: url.trim_end_matches('/').to_owned(),
            token,
            agent: agent(None)?,
        });
    }
    if let Some(running) = data.read_server_file() {
        let agent = agent(running.tls_cert.as_deref())?;
        let probe = agent.get(format!("{}/metrics", running.url)).call();
        if probe.is_ok() {
            let token = token
                .or_else(|| data.read_admin_token())
                .with_context(|| format!("no admin token in {}", data.token_path().display()))?;
            return Ok(Target::Api {
                url: running.url,
                token,
                agent,
            });
        }
    }
    Ok(Target::Database {
        data: data.clone(),
        base_url: base_url.to_owned(),
    })
}

pub fn open_db(data: &DataDir) -> anyhow::Result<ChannelDb> {
    data.create()
        .with_context(|| format!("cannot create {}", data.root().display()))?;
    match ChannelDb::open(&data.db_path()) {
        Ok(db) => Ok(db),
        Err(RegistryError::Locked { path }) => bail!(
            "{} is held by a running server that does not answer; pass --server URL --token TOKEN",
            path.display()
        ),
        Err(e) => Err(e.into()),
    }
}

pub fn api_call(
    target: &Target,
    method: &str,
    path: &str,
    body: Option<String>,
) -> anyhow::Result<(u16, String)> {
    let Target::Api { url, token, agent } = target else {
        bail!("not an API target")
    };
    let full = format!("{url}{path}");
    let auth = format!("Bearer {token}");
    let resp = match (method, body) {
        ("POST", Some(b)) => agent
            .post(&full)
            .header("Authorization", &auth)
            .content_type("application/json")
            .send(b),
        ("PATCH", Some(b)) => agent
            .patch(&full)
            .header("Authorization", &auth)
            .content_type("application/json")
            .send(b),
        ("POST", None) => agent
            .post(&full)
            .header("Authorization", &auth)
            .send_empty(),
        ("DELETE", _) => agent.delete(&full).header("Authorization", &auth).call(),
        _ => agent.get(&full).header("Authorization", &auth).call(),
    }
    .with_context(|| format!("cannot reach the server at {url}"))?;
    let status = resp.status().as_u16();
    let text = resp
        .into_body()
        .read_to_string()
        .context("cannot read the server's answer")?;
    if status >= 400 {
        let msg = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or(text);
        bail!("{msg} (HTTP {status})");
    }
    Ok((status, text))
}
