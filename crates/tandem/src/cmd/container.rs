//! `tandem container create|list|show|delete`: MediaStore-style container
//! pairs, one container per pipeline.
//!
//! Management goes through the control API when a server runs on the data
//! directory, else straight to the database (like `tandem archive`).

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::bail;
use clap::{Args, Subcommand};
use tandem_core::ContainerId;
use tandem_server::DataDir;
use tandem_server::api::containers::{ContainerPairView, container_view};
use tandem_server::registry::new_container_spec;

use super::control::{ControlArgs, Target, api_call, choose_target, open_db, output};

#[derive(Debug, Args)]
pub struct ContainerArgs {
    #[command(flatten)]
    control: ControlArgs,
    #[command(subcommand)]
    command: ContainerCommand,
}

#[derive(Debug, Subcommand)]
enum ContainerCommand {
    /// Create a container pair: containers ID-0 and ID-1, a key pair for each.
    Create { id: String },
    /// List container pairs.
    List,
    /// Show a container pair's endpoints and keys.
    Show { id: String },
    /// Delete a container pair and both containers' objects.
    Delete { id: String },
}

pub fn run(
    data: Option<PathBuf>,
    config: Option<PathBuf>,
    args: ContainerArgs,
) -> anyhow::Result<()> {
    let cfg = super::server_config(data, config, std::env::var("TANDEM_LISTEN").ok(), None)?;
    let data = DataDir::new(cfg.data_dir.clone());
    let base = data
        .read_server_file()
        .and_then(|s| s.mediastore_endpoint)
        .or_else(|| cfg.mediastore_endpoint())
        .unwrap_or_else(|| "http://127.0.0.1:9010".to_owned());
    let region = cfg.s3.region.clone();
    let target = choose_target(
        &data,
        &cfg.base_url(),
        args.control.server,
        args.control.token,
    )?;
    let json = args.control.json;
    match args.command {
        ContainerCommand::Create { id } => {
            let cid = ContainerId::parse(&id)?;
            let view: ContainerPairView = match &target {
                Target::Api { .. } => {
                    let body = serde_json::json!({ "id": id });
                    serde_json::from_str(
                        &api_call(
                            &target,
                            "POST",
                            "/api/v1/containers",
                            Some(body.to_string()),
                        )?
                        .1,
                    )?
                }
                Target::Database { data, .. } => {
                    let spec = new_container_spec(&cid, SystemTime::now())?;
                    open_db(data)?.insert_container(&spec)?;
                    container_view(&spec, &base, &region)
                }
            };
            output(json, &view, || print_pair(&view))?;
        }
        ContainerCommand::List => {
            let views: Vec<ContainerPairView> = match &target {
                Target::Api { .. } => {
                    serde_json::from_str(&api_call(&target, "GET", "/api/v1/containers", None)?.1)?
                }
                Target::Database { data, .. } => open_db(data)?
                    .list_containers()?
                    .iter()
                    .map(|s| container_view(s, &base, &region))
                    .collect(),
            };
            output(json, &views, || {
                if views.is_empty() {
                    println!("no container pairs; create one with 'tandem container create ID'");
                }
                for v in &views {
                    let eps: Vec<&str> = v.containers.iter().map(|c| c.endpoint.as_str()).collect();
                    println!("{}\t{}", v.id, eps.join(" "));
                }
            })?;
        }
        ContainerCommand::Show { id } => {
            let cid = ContainerId::parse(&id)?;
            let view: ContainerPairView = match &target {
                Target::Api { .. } => serde_json::from_str(
                    &api_call(&target, "GET", &format!("/api/v1/containers/{cid}"), None)?.1,
                )?,
                Target::Database { data, .. } => {
                    container_view(&open_db(data)?.container(&cid)?, &base, &region)
                }
            };
            output(json, &view, || print_pair(&view))?;
        }
        ContainerCommand::Delete { id } => {
            let cid = ContainerId::parse(&id)?;
            match &target {
                Target::Api { .. } => {
                    api_call(
                        &target,
                        "DELETE",
                        &format!("/api/v1/containers/{cid}"),
                        None,
                    )?;
                }
                Target::Database { data, .. } => {
                    if !open_db(data)?.remove_container(&cid)? {
                        bail!("container pair {cid} does not exist");
                    }
                }
            }
            if !json {
                println!("deleted container pair {cid}");
            }
        }
    }
    Ok(())
}

/// Prints what an encoder's MediaStore destination asks for.
fn print_pair(v: &ContainerPairView) {
    println!("container pair {}", v.id);
    for c in &v.containers {
        println!();
        println!("container {} (pipeline {})", c.container, c.pipeline);
        println!("  endpoint:          {}", c.endpoint);
        println!("  region:            {}", c.region);
        println!("  access key id:     {}", c.access_key_id);
        println!("  secret access key: {}", c.secret_access_key);
    }
}
