//! `tandem channel create|list|show|retention|delete|reset|rotate-password`.
//!
//! With a server running on the data directory (found through its
//! `server.json`), or with `--server URL`, the command goes through the
//! control API, so the running server serves a new channel at once. With no
//! server, it writes the channel database directly, and the server serves
//! the channel when it starts.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context, bail};

use super::control::{ControlArgs, Target, api_call, choose_target, open_db, output};
use clap::{Args, Subcommand};
use tandem_core::ChannelId;
use tandem_server::DataDir;
use tandem_server::api::{ChannelView, ResetView, channel_view};
use tandem_server::registry::new_channel_spec;
use tandem_store::Store;

#[derive(Debug, Args)]
pub struct ChannelArgs {
    #[command(flatten)]
    control: ControlArgs,
    #[command(subcommand)]
    command: ChannelCommand,
}

#[derive(Debug, Subcommand)]
enum ChannelCommand {
    /// Create a channel and print its two inputs' URLs and credentials.
    Create {
        id: String,
        /// Keep every input object at least this long after it arrived
        /// (the channel's input history, the start of a DVR window).
        #[arg(long, value_name = "SECS")]
        input_retention: Option<u64>,
    },
    /// List channels.
    List,
    /// Show a channel, its inputs' credentials and state.
    Show { id: String },
    /// Set a channel's input history: SECS, or `off` for none.
    Retention {
        id: String,
        #[arg(value_name = "SECS|off")]
        input_retention: String,
    },
    /// Delete a channel and everything its inputs stored.
    Delete { id: String },
    /// Start the channel's output afresh (a new event): new media sequence
    /// numbers, the old segments removed after the grace period.
    Reset { id: String },
    /// Give one input a new password, in force at once (the old one stops
    /// working; the other input and the output are untouched), and print it.
    RotatePassword {
        id: String,
        /// The input: 0 or 1.
        pipeline: String,
    },
}

pub fn run(
    data: Option<PathBuf>,
    config: Option<PathBuf>,
    args: ChannelArgs,
) -> anyhow::Result<()> {
    let cfg = super::server_config(data, config, std::env::var("TANDEM_LISTEN").ok(), None)?;
    let data = DataDir::new(cfg.data_dir.clone());
    let target = choose_target(
        &data,
        &cfg.base_url(),
        args.control.server,
        args.control.token,
    )?;
    match args.command {
        ChannelCommand::Create {
            id,
            input_retention,
        } => {
            let retention = tandem_core::RetentionSettings {
                input_secs: input_retention
                    .map(|s| check_secs(Some(s)))
                    .transpose()?
                    .flatten(),
            };
            let view = create(&target, &id, retention)?;
            output(args.control.json, &view, || print_channel(&view))
        }
        ChannelCommand::Show { id } => {
            let view = show(&target, &id)?;
            output(args.control.json, &view, || print_channel(&view))
        }
        ChannelCommand::List => {
            let views = list(&target)?;
            output(args.control.json, &views, || {
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
        ChannelCommand::Retention {
            id,
            input_retention,
        } => {
            let secs = if input_retention.eq_ignore_ascii_case("off") {
                None
            } else {
                let s = input_retention.parse::<u64>().with_context(|| {
                    format!("{input_retention:?} is not a number of seconds or 'off'")
                })?;
                check_secs(Some(s))?
            };
            let view = set_retention(
                &target,
                &id,
                tandem_core::RetentionSettings { input_secs: secs },
            )?;
            output(args.control.json, &view, || print_channel(&view))
        }
        ChannelCommand::RotatePassword { id, pipeline } => {
            let p = tandem_core::Pipeline::parse(&pipeline)?;
            let view = rotate_password(&target, &id, p)?;
            output(args.control.json, &view, || {
                let Some(i) = view.inputs.iter().find(|i| i.pipeline == p.index()) else {
                    return;
                };
                println!(
                    "channel {}: input {} has a new password",
                    view.id, i.pipeline
                );
                println!("  URL:      {}", i.url);
                println!("  username: {}", i.username);
                println!("  password: {}", i.password);
                println!(
                    "the old password no longer works; input {} is unchanged",
                    p.other().index()
                );
            })
        }
        ChannelCommand::Reset { id } => {
            let view = reset(&target, &id)?;
            output(args.control.json, &view, || match &view {
                Some(v) if v.renditions.is_empty() => {
                    println!("output of {id} reset; it has no playlist yet");
                }
                Some(v) => {
                    println!(
                        "output of {id} reset; old segments are removed after the grace period"
                    );
                    for r in &v.renditions {
                        println!("{}\tnext media sequence {}", r.rendition, r.media_sequence);
                    }
                }
                None => println!(
                    "output of {id} starts afresh when the server starts (no server is running)"
                ),
            })
        }
        ChannelCommand::Delete { id } => {
            delete(&target, &id)?;
            if !args.control.json {
                println!("deleted channel {id}");
            }
            Ok(())
        }
    }
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
    if let Some(secs) = v.retention.input_secs {
        println!("input history: {secs} s");
    }
    if let Some([b0, b1]) = v.stored_bytes {
        println!("stored: input 0 {b0} bytes, input 1 {b1} bytes");
    }
}

/// A retention in seconds: at least one (`off` means none).
fn check_secs(secs: Option<u64>) -> anyhow::Result<Option<u64>> {
    match secs {
        Some(0) => bail!("an input retention of 0 s keeps nothing; use 'off' for none"),
        other => Ok(other),
    }
}

fn parse_id(id: &str) -> anyhow::Result<ChannelId> {
    Ok(ChannelId::parse(id)?)
}

fn create(
    target: &Target,
    id: &str,
    retention: tandem_core::RetentionSettings,
) -> anyhow::Result<ChannelView> {
    let cid = parse_id(id)?;
    match target {
        Target::Api { .. } => {
            let (_, text) = api_call(
                target,
                "POST",
                "/api/v1/channels",
                Some(serde_json::json!({ "id": id, "retention": retention }).to_string()),
            )?;
            Ok(serde_json::from_str(&text)?)
        }
        Target::Database { data, base_url } => {
            let mut spec = new_channel_spec(&cid, SystemTime::now())?;
            spec.retention = retention;
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

fn set_retention(
    target: &Target,
    id: &str,
    retention: tandem_core::RetentionSettings,
) -> anyhow::Result<ChannelView> {
    let cid = parse_id(id)?;
    match target {
        Target::Api { .. } => Ok(serde_json::from_str(
            &api_call(
                target,
                "PATCH",
                &format!("/api/v1/channels/{cid}"),
                Some(serde_json::json!({ "retention": retention }).to_string()),
            )?
            .1,
        )?),
        Target::Database { data, base_url } => {
            let spec = open_db(data)?.set_retention(&cid, retention)?;
            Ok(channel_view(&spec, base_url, None))
        }
    }
}

fn rotate_password(
    target: &Target,
    id: &str,
    p: tandem_core::Pipeline,
) -> anyhow::Result<ChannelView> {
    let cid = parse_id(id)?;
    match target {
        Target::Api { .. } => Ok(serde_json::from_str(
            &api_call(
                target,
                "POST",
                &format!("/api/v1/channels/{cid}/inputs/{p}/rotate-password"),
                None,
            )?
            .1,
        )?),
        Target::Database { data, base_url } => {
            let spec = open_db(data)?.rotate_password(&cid, p)?;
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

/// `None`: no server runs; the reset is left for the channel's driver.
fn reset(target: &Target, id: &str) -> anyhow::Result<Option<ResetView>> {
    let cid = parse_id(id)?;
    match target {
        Target::Api { .. } => Ok(Some(serde_json::from_str(
            &api_call(
                target,
                "POST",
                &format!("/api/v1/channels/{cid}/reset"),
                None,
            )?
            .1,
        )?)),
        Target::Database { data, .. } => {
            open_db(data)?
                .get(&cid)?
                .with_context(|| format!("channel {cid} does not exist"))?;
            let store = tandem_store::LocalStore::open(data.root())?;
            let rt = tokio::runtime::Builder::new_current_thread().build()?;
            rt.block_on(tandem_server::output::reset::request_reset(
                &store,
                &cid,
                SystemTime::now(),
            ))?;
            Ok(None)
        }
    }
}
