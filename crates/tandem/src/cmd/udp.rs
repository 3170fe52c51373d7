//! `tandem udp create|list|show|delete`: UDP and RTP flows, two legs
//! merged (SMPTE ST 2022-7) or switched, forwarded to targets.
//!
//! With a server running on the data directory (or `--server URL`) the
//! command goes through the control API and the flow starts or stops at
//! once; with none it writes the database, and the flow starts with the
//! server.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tandem_server::DataDir;
use tandem_server::api::udp::{UdpFlowView, check_spec, stopped_view};
use tandem_udp_io::{FlowSpec, LegAddr, Mode, Target};

use super::control::{ControlArgs, Target as Where, api_call, choose_target, open_db, output};

#[derive(Debug, Args)]
pub struct UdpArgs {
    #[command(flatten)]
    control: ControlArgs,
    #[command(subcommand)]
    command: UdpCommand,
}

#[derive(Debug, Subcommand)]
enum UdpCommand {
    /// Create a flow: two legs in, the merged output forwarded.
    Create {
        id: String,
        /// rtp-2022-7: RTP legs merged by sequence number (FEC on ports
        /// + 2 and + 4); udp-switch: plain UDP legs switched on loss.
        #[arg(long)]
        mode: String,
        /// Leg 0: [SOURCE@]ADDR:PORT (a multicast ADDR is joined; SOURCE
        /// makes it source-specific and filters any other sender).
        #[arg(long, value_name = "[SOURCE@]ADDR:PORT")]
        leg0: String,
        /// Leg 1, as leg 0.
        #[arg(long, value_name = "[SOURCE@]ADDR:PORT")]
        leg1: String,
        /// Where the output goes: udp://HOST:PORT (raw TS) or
        /// rtp://HOST:PORT; repeat for more targets.
        #[arg(long = "forward", value_name = "URL", required = true)]
        forward: Vec<String>,
        /// 2022-7 skew window in ms (default 50, class B).
        #[arg(long, value_name = "N")]
        skew_ms: Option<u64>,
        /// The IPv4 address of the interface to join multicast groups on.
        #[arg(long, value_name = "ADDR")]
        interface: Option<std::net::IpAddr>,
        /// Record the output TS as archive files in the S3 bucket
        /// `udp-recordings`, under `ID/ID.NNNNNN.ts`.
        #[arg(long)]
        record: bool,
        /// Seconds of stream per recorded file (default 300).
        #[arg(long, value_name = "SECS", requires = "record")]
        record_rollover: Option<u64>,
    },
    /// List flows.
    List,
    /// Show a flow: definition, state, counters per leg and output, events.
    Show { id: String },
    /// Stop and delete a flow.
    Delete { id: String },
}

pub fn run(data: Option<PathBuf>, config: Option<PathBuf>, args: UdpArgs) -> anyhow::Result<()> {
    let cfg = super::server_config(data, config, std::env::var("TANDEM_LISTEN").ok(), None)?;
    let data = DataDir::new(cfg.data_dir.clone());
    let target = choose_target(
        &data,
        &cfg.base_url(),
        args.control.server,
        args.control.token,
    )?;
    let json = args.control.json;
    match args.command {
        UdpCommand::Create {
            id,
            mode,
            leg0,
            leg1,
            forward,
            skew_ms,
            interface,
            record,
            record_rollover,
        } => {
            let spec = FlowSpec {
                id,
                mode: mode.parse::<Mode>()?,
                legs: [
                    leg0.parse::<LegAddr>().context("--leg0")?,
                    leg1.parse::<LegAddr>().context("--leg1")?,
                ],
                forward: forward
                    .iter()
                    .map(|f| f.parse::<Target>())
                    .collect::<Result<_, _>>()?,
                skew_ms,
                record,
                record_rollover_secs: record_rollover,
                interface,
            };
            if let Err(e) = check_spec(&spec) {
                bail!("{e}");
            }
            let view: UdpFlowView = match &target {
                Where::Api { .. } => serde_json::from_str(
                    &api_call(
                        &target,
                        "POST",
                        "/api/v1/udp",
                        Some(serde_json::to_string(&spec)?),
                    )?
                    .1,
                )?,
                Where::Database { data, .. } => {
                    open_db(data)?.insert_udp(&spec)?;
                    stopped_view(&spec)
                }
            };
            output(json, &view, || print_flow(&view))
        }
        UdpCommand::List => {
            let views: Vec<UdpFlowView> = match &target {
                Where::Api { .. } => {
                    serde_json::from_str(&api_call(&target, "GET", "/api/v1/udp", None)?.1)?
                }
                Where::Database { data, .. } => open_db(data)?
                    .list_udp()?
                    .iter()
                    .map(stopped_view)
                    .collect(),
            };
            output(json, &views, || {
                if views.is_empty() {
                    println!(
                        "no udp flows; create one with 'tandem udp create ID --mode … --leg0 … --leg1 … --forward …'"
                    );
                }
                for v in &views {
                    let fwd: Vec<String> = v.spec.forward.iter().map(ToString::to_string).collect();
                    println!(
                        "{}\t{}\t{} + {} -> {}\t{}",
                        v.spec.id,
                        v.spec.mode.as_str(),
                        v.spec.legs[0],
                        v.spec.legs[1],
                        fwd.join(", "),
                        v.state
                    );
                }
            })
        }
        UdpCommand::Show { id } => {
            let view: UdpFlowView = match &target {
                Where::Api { .. } => serde_json::from_str(
                    &api_call(&target, "GET", &format!("/api/v1/udp/{id}"), None)?.1,
                )?,
                Where::Database { data, .. } => stopped_view(&open_db(data)?.udp(&id)?),
            };
            output(json, &view, || print_flow(&view))
        }
        UdpCommand::Delete { id } => {
            match &target {
                Where::Api { .. } => {
                    api_call(&target, "DELETE", &format!("/api/v1/udp/{id}"), None)?;
                }
                Where::Database { data, .. } => {
                    if !open_db(data)?.remove_udp(&id)? {
                        bail!("udp flow {id} does not exist");
                    }
                }
            }
            if !json {
                println!("deleted udp flow {id}");
            }
            Ok(())
        }
    }
}

fn print_flow(v: &UdpFlowView) {
    println!("udp flow {} ({})", v.spec.id, v.spec.mode.as_str());
    println!("  state: {}", v.state);
    if let Some(e) = &v.error {
        println!("  error: {e}");
    }
    for (i, l) in v.spec.legs.iter().enumerate() {
        println!("  leg {i}:  {l}");
    }
    for t in &v.spec.forward {
        println!("  forward: {t}");
    }
    if let Some(ms) = v.spec.skew_ms {
        println!("  skew window: {ms} ms");
    }
    if let Some(s) = &v.status {
        for l in &s.legs {
            println!(
                "  leg {}: {} packets, {} bytes, {} bit/s, {}; gaps {}, out of order {}, duplicates {}, invalid {}, unexpected sender {}, recovered from the other leg {}",
                l.leg,
                l.packets,
                l.bytes,
                l.bitrate_bps,
                if l.up { "up" } else { "down" },
                l.sequence_gaps,
                l.out_of_order,
                l.duplicates,
                l.invalid,
                l.unexpected_source,
                l.recovered_from_other
            );
        }
        let o = &s.output;
        println!(
            "  output: {} packets, {} bytes, {} bit/s; lost {}, recovered by FEC {}, continuity errors {}, switches {}",
            o.packets,
            o.bytes,
            o.bitrate_bps,
            o.lost,
            o.recovered_by_fec,
            o.continuity_errors,
            o.switches
        );
        if let Some(d) = s.differential_delay_ms {
            println!(
                "  differential delay: {d:.1} ms (max {:.1} ms)",
                s.max_differential_delay_ms
            );
        }
    }
    if v.state == "stopped" {
        println!("  (no server runs: the flow starts with 'tandem serve')");
    }
}
