//! The `tandem` binary: parse flags, build configuration, call into the
//! library crates, print.
#![allow(clippy::print_stdout)]

mod cmd;
mod s3client;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tandem: two inputs per channel for redundant live encoders, one
/// continuous output.
#[derive(Debug, Parser)]
#[command(name = "tandem", version, about)]
struct Cli {
    /// Data directory: objects, channel database, admin token.
    /// [default: ./tandem-data]
    #[arg(long, global = true, env = "TANDEM_DATA")]
    data: Option<PathBuf>,
    /// TOML configuration file (flags and environment variables override it).
    #[arg(long, global = true, env = "TANDEM_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(cmd::serve::ServeArgs),
    /// Create, list, show and delete channels.
    Channel(cmd::channel::ChannelArgs),
    /// Archive pairs of S3 buckets: create, list, show, delete, verify, watch.
    Archive(cmd::archive::ArchiveArgs),
    /// MediaStore-style container pairs: create, list, show, delete.
    Container(cmd::container::ContainerArgs),
    /// UDP and RTP flows (two legs merged or switched, forwarded): create,
    /// list, show, delete.
    Udp(cmd::udp::UdpArgs),
    /// Every channel's inputs, output and last hour, and every archive
    /// pair's coverage, from a running server.
    Status(cmd::status::StatusArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::run(cli.data, cli.config, args),
        Command::Channel(args) => cmd::channel::run(cli.data, cli.config, args),
        Command::Container(args) => cmd::container::run(cli.data, cli.config, args),
        Command::Status(args) => cmd::status::run(cli.data, cli.config, args),
        Command::Udp(args) => cmd::udp::run(cli.data, cli.config, args),
        Command::Archive(args) => match cmd::archive::run(cli.data, cli.config, args) {
            Ok(0) => Ok(()),
            Ok(_) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
