//! `tandem status [--watch] [--json]`: the status page's facts on one
//! terminal screen: each channel's inputs, the pipeline its output is on,
//! its last switch and its last hour as a strip (one character a minute),
//! and each archive pair's coverage.
//!
//! It asks a running server (`GET /api/v1/status`): the one on the data
//! directory, or `--server URL --token T`.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use tandem_server::DataDir;
use tandem_server::api::status::{ArchiveGlance, ChannelGlance, Status};

use super::control::{ControlArgs, Target, api_call, choose_target};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    control: ControlArgs,
    /// Redraw every --interval seconds until interrupted.
    #[arg(long)]
    watch: bool,
    /// Seconds between redraws with --watch.
    #[arg(long, default_value_t = 2.0)]
    interval: f64,
}

pub fn run(data: Option<PathBuf>, config: Option<PathBuf>, args: StatusArgs) -> anyhow::Result<()> {
    let cfg = super::server_config(data, config, std::env::var("TANDEM_LISTEN").ok(), None)?;
    let dir = DataDir::new(cfg.data_dir.clone());
    let target = choose_target(
        &dir,
        &cfg.base_url(),
        args.control.server,
        args.control.token,
    )?;
    if let Target::Database { data, .. } = &target {
        bail!(
            "no server is running on {}: status shows what a running server sees (start 'tandem serve', or pass --server URL --token TOKEN)",
            data.root().display()
        );
    }
    if !(args.interval.is_finite() && args.interval >= 0.2) {
        bail!("--interval must be at least 0.2 seconds");
    }
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    loop {
        let (_, text) = api_call(&target, "GET", "/api/v1/status", None)?;
        if args.control.json {
            let v: serde_json::Value = serde_json::from_str(&text)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            let status: Status = serde_json::from_str(&text)?;
            if args.watch {
                // Clear the screen and go home, as `watch` does.
                print!("\x1b[2J\x1b[H");
            }
            print!("{}", render(&status, color));
        }
        if !args.watch {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs_f64(args.interval));
    }
}

fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

fn state_cell(color: bool, state: &str, since: Option<f64>) -> String {
    let age = since.map_or("never".to_owned(), |s| format!("{s:.0} s"));
    let text = format!("{state:<9} {age:>7}");
    let code = match state {
        "receiving" => "32",
        "lost" => "1;31",
        _ => "2",
    };
    paint(color, code, &text)
}

/// One character a minute over the timeline: `0`/`1` the pipeline that
/// served most of it, `|` a switch in it, `!` a gap in it, `R` a reset in
/// it, `E` ended, `·` no output.
pub fn strip(rendition: &serde_json::Value, span_secs: f64, cells: usize) -> String {
    let width = span_secs / cells as f64;
    let mut out = String::with_capacity(cells);
    let marks = |key: &str| -> Vec<f64> {
        rendition[key]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["at"].as_f64()).collect())
            .unwrap_or_default()
    };
    let (switches, gaps, resets) = (marks("switches"), marks("gaps"), marks("resets"));
    let stretches = rendition["stretches"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for i in 0..cells {
        let (lo, hi) = (i as f64 * width, (i + 1) as f64 * width);
        let inside = |t: &f64| *t >= lo && *t < hi;
        if gaps.iter().any(inside) {
            out.push('!');
            continue;
        }
        if resets.iter().any(inside) {
            out.push('R');
            continue;
        }
        // Switches at the very start are the first stretch's start.
        if switches.iter().any(|t| inside(t) && *t > 0.0) {
            out.push('|');
            continue;
        }
        let mut best = ('·', 0.0);
        for s in &stretches {
            let (a, b) = (
                s["start"].as_f64().unwrap_or(0.0).max(lo),
                s["end"].as_f64().unwrap_or(0.0).min(hi),
            );
            let c = if s["ended"].as_bool() == Some(true) {
                'E'
            } else {
                match s["pipeline"].as_u64() {
                    Some(0) => '0',
                    Some(1) => '1',
                    _ => '·',
                }
            };
            if b - a > best.1 {
                best = (c, b - a);
            }
        }
        out.push(best.0);
    }
    out
}

fn channel_lines(out: &mut String, ch: &ChannelGlance, color: bool) {
    let inputs: Vec<String> = ch
        .inputs
        .iter()
        .map(|i| {
            let state = serde_json::to_value(i.state).unwrap_or_default();
            state_cell(
                color,
                state.as_str().unwrap_or("?"),
                i.seconds_since_advance,
            )
        })
        .collect();
    let active = ch
        .active_pipeline
        .map_or("—".to_owned(), |p| format!("pipeline {p}"));
    let renditions = ch
        .timeline
        .as_ref()
        .and_then(|t| t["renditions"].as_array().cloned())
        .unwrap_or_default();
    let last_switch = renditions
        .iter()
        .filter_map(|r| r["switches"].as_array().and_then(|s| s.last()))
        .max_by(|a, b| {
            a["at"]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&b["at"].as_f64().unwrap_or(0.0))
        })
        .map(|s| {
            format!(
                "{} → {} ({})",
                s["time"].as_str().unwrap_or("?").get(11..19).unwrap_or("?"),
                s["to"],
                s["reason"].as_str().unwrap_or("?")
            )
        })
        .unwrap_or_else(|| "none in the last hour".to_owned());
    let _ = writeln!(
        out,
        "{:<16} {}  {}  {:<10}  {}",
        ch.id,
        inputs.first().map_or("", String::as_str),
        inputs.get(1).map_or("", String::as_str),
        active,
        last_switch
    );
    for pt in &ch.publishing_points {
        let c = &pt.counters;
        let states: Vec<String> = pt
            .inputs
            .iter()
            .map(|s| {
                let v = serde_json::to_value(s).unwrap_or_default();
                v.as_str().unwrap_or("?").to_owned()
            })
            .collect();
        let _ = writeln!(
            out,
            "  {:<14} {}.isml: pushes {}, received {}/{}, duplicates {}, fills {}, gaps {}{}",
            "",
            pt.name,
            states.join("/"),
            c.received[0],
            c.received[1],
            c.duplicates,
            c.fills,
            c.gaps,
            if pt.ended { ", ended" } else { "" }
        );
    }
    let span = 3600.0;
    for r in &renditions {
        let _ = writeln!(
            out,
            "  {:<14} [{}] {}",
            "",
            strip(r, span, 60),
            r["rendition"].as_str().unwrap_or("")
        );
    }
}

fn archive_line(out: &mut String, a: &ArchiveGlance, color: bool) {
    let cell = |s: &str| match s {
        "whole" => paint(color, "32", "█"),
        "missing" => paint(color, "2", "·"),
        "truncated" => paint(color, "33", "t"),
        _ => paint(color, "31", "x"),
    };
    let newest: Vec<_> = a
        .indexes
        .iter()
        .skip(a.indexes.len().saturating_sub(40))
        .collect();
    let primary: String = newest.iter().map(|i| cell(&i.primary)).collect();
    let backup: String = newest.iter().map(|i| cell(&i.backup)).collect();
    let _ = writeln!(
        out,
        "{:<16} {:>7} indexes  {:>3} uncovered  primary {}",
        a.id,
        a.indexes.len(),
        a.uncovered,
        primary
    );
    let _ = writeln!(out, "{:<16} {:>31}  backup  {}", "", "", backup);
}

/// The whole screen.
pub fn render(st: &Status, color: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "tandem status at {}", st.time);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<16} {:<17}  {:<17}  {:<10}  LAST SWITCH",
        "CHANNEL", "INPUT 0 (ADVANCED)", "INPUT 1 (ADVANCED)", "OUTPUT ON"
    );
    if st.channels.is_empty() {
        let _ = writeln!(out, "(no channels)");
    }
    for ch in &st.channels {
        channel_lines(&mut out, ch, color);
    }
    let _ = writeln!(
        out,
        "  last hour, a character a minute: 0/1 pipeline, | switch, ! gap, R reset, E ended, · no output"
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<16} COVERAGE (newest 40 indexes)", "ARCHIVE");
    if st.archives.is_empty() {
        let _ = writeln!(out, "(no archive pairs)");
    }
    for a in &st.archives {
        archive_line(&mut out, a, color);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strip_shows_who_served_each_minute() {
        let r = serde_json::json!({
            "rendition": "live/a.m3u8",
            "stretches": [
                {"start": 0.0, "end": 1800.0, "pipeline": null},
                {"start": 1800.0, "end": 2700.0, "pipeline": 0},
                {"start": 2700.0, "end": 3300.0, "pipeline": 1},
                {"start": 3300.0, "end": 3600.0, "pipeline": null, "ended": true}
            ],
            "switches": [{"at": 1800.0}, {"at": 2700.0}],
            "gaps": [{"at": 3000.0}]
        });
        let s = strip(&r, 3600.0, 60);
        assert_eq!(s.chars().count(), 60);
        assert_eq!(
            s,
            format!(
                "{}|{}|{}!{}{}",
                "·".repeat(30),
                "0".repeat(14),
                "1".repeat(4),
                "1".repeat(4),
                "E".repeat(5)
            )
        );
    }
}
