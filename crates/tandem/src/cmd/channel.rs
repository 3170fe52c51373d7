//! `tandem channel create|list|show|delete`.
//!
//! With a server running on the data directory (found through its
//! `server.json`), or with `--server URL`, the command goes through the
//! control API, so the running server serves a new channel at once. With no
//! server, it writes the channel database directly, and the server serves
//! the channel when it starts.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tandem_core::ChannelId;
use tandem_server::api::{ChannelView, channel_view};
use tandem_server::registry::new_channel_spec;
use tandem_server::{ChannelDb, DataDir, RegistryError};
use tandem_store::Store;

#[derive(Debug, Args)]
pub struct ChannelArgs {
    /// A running server's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, global = true, env = "TANDEM_SERVER")]
    server: Option<String>,
    /// The admin token for --server. [default: the data directory's]
    #[arg(long, global = true, env = "TANDEM_TOKEN")]
    token: Option<String>,
    /// Print the API's JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: ChannelCommand,
}

#[derive(Debug, Subcommand)]
enum ChannelCommand {
    /// Create a channel and print its two inputs' URLs and credentials.
    Create { id: String },
    /// List channels.
    List,
    /// Show a channel, its inputs' credentials and state.
    Show { id: String },
    /// Delete a channel and everything its inputs stored.
    Delete { id: String },
}

/// Where the command is carried out.
enum Target {
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

pub fn run(
    data: Option<PathBuf>,
    config: Option<PathBuf>,
    args: ChannelArgs,
) -> anyhow::Result<()> {
    let cfg = super::server_config(data, config, std::env::var("TANDEM_LISTEN").ok(), None)?;
    let data = DataDir::new(cfg.data_dir.clone());
    let target = choose_target(&data, &cfg.base_url(), args.server, args.token)?;
    match args.command {
        ChannelCommand::Create { id } => {
            let view = create(&target, &id)?;
            output(args.json, &view, || print_channel(&view))
        }
        ChannelCommand::Show { id } => {
            let view = show(&target, &id)?;
            output(args.json, &view, || print_channel(&view))
        }
        ChannelCommand::List => {
            let views = list(&target)?;
            output(args.json, &views, || {
                if views.is_empty() {
                    println!("no channels; create one with 'tandem channel create ID'");
                }
                for v in &views {
                    let states: Vec<String> = v
                        .inputs
                        .iter()
                        .map(|i| match &i.status {
                            Some(s) => format!(
                                "input {}: {}",
                                i.pipeline,
                                serde_json::to_value(s.state)
                                    .unwrap_or_default()
                                    .as_str()
                                    .unwrap_or("?")
                            ),
                            None => format!("input {}", i.pipeline),
                        })
                        .collect();
                    println!("{}\t{}\t{}", v.id, v.output, states.join(", "));
                }
            })
        }
        ChannelCommand::Delete { id } => {
            delete(&target, &id)?;
            if !args.json {
                println!("deleted channel {id}");
            }
            Ok(())
        }
    }
}

fn output<T: serde::Serialize>(json: bool, value: &T, human: impl FnOnce()) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        human();
    }
    Ok(())
}

/// Prints what an encoder's destination form asks for, one input a block.
pub fn print_channel(v: &ChannelView) {
    println!("channel {}", v.id);
    for i in &v.inputs {
        println!();
        println!("input {} (pipeline {})", i.pipeline, i.pipeline);
        println!("  URL:      {}", i.url);
        println!("  username: {}", i.username);
        println!("  password: {}", i.password);
        if let Some(s) = &i.status {
            let state = serde_json::to_value(s.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            println!("  state:    {state}");
            println!(
                "  last write: {}",
                s.last_write.as_deref().unwrap_or("never")
            );
            println!(
                "  received: {} objects, {} bytes",
                s.objects_received, s.bytes_received
            );
        }
    }
    println!();
    println!("output: {}", v.output);
}

fn agent(tls_cert: Option<&std::path::Path>) -> anyhow::Result<ureq::Agent> {
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

fn choose_target(
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

fn open_db(data: &DataDir) -> anyhow::Result<ChannelDb> {
    std::fs::create_dir_all(data.root())
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

fn api_call(
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

fn parse_id(id: &str) -> anyhow::Result<ChannelId> {
    Ok(ChannelId::parse(id)?)
}

fn create(target: &Target, id: &str) -> anyhow::Result<ChannelView> {
    let cid = parse_id(id)?;
    match target {
        Target::Api { .. } => {
            let (_, text) = api_call(
                target,
                "POST",
                "/api/v1/channels",
                Some(serde_json::json!({ "id": id }).to_string()),
            )?;
            Ok(serde_json::from_str(&text)?)
        }
        Target::Database { data, base_url } => {
            let spec = new_channel_spec(&cid, SystemTime::now())?;
            open_db(data)?.insert(&spec)?;
            Ok(channel_view(&spec, base_url, None))
        }
    }
}

fn show(target: &Target, id: &str) -> anyhow::Result<ChannelView> {
    let cid = parse_id(id)?;
    match target {
        Target::Api { .. } => Ok(serde_json::from_str(
            &api_call(target, "GET", &format!("/api/v1/channels/{cid}"), None)?.1,
        )?),
        Target::Database { data, base_url } => {
            let spec = open_db(data)?
                .get(&cid)?
                .with_context(|| format!("channel {cid} does not exist"))?;
            Ok(channel_view(&spec, base_url, None))
        }
    }
}

fn list(target: &Target) -> anyhow::Result<Vec<ChannelView>> {
    match target {
        Target::Api { .. } => Ok(serde_json::from_str(
            &api_call(target, "GET", "/api/v1/channels", None)?.1,
        )?),
        Target::Database { data, base_url } => Ok(open_db(data)?
            .list()?
            .iter()
            .map(|s| channel_view(s, base_url, None))
            .collect()),
    }
}

fn delete(target: &Target, id: &str) -> anyhow::Result<()> {
    let cid = parse_id(id)?;
    match target {
        Target::Api { .. } => {
            api_call(target, "DELETE", &format!("/api/v1/channels/{cid}"), None).map(drop)
        }
        Target::Database { data, .. } => {
            if !open_db(data)?.remove(&cid)? {
                bail!("channel {cid} does not exist");
            }
            let store = tandem_store::LocalStore::open(data.root())?;
            let key = tandem_core::ObjectPath::from_segments([cid.as_str()])?;
            let rt = tokio::runtime::Builder::new_current_thread().build()?;
            match rt.block_on(store.delete(&key)) {
                Ok(()) | Err(tandem_store::StoreError::NotFound(_)) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    }
}
