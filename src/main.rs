//! The `tutti` binary: CLI, config loading, start-up and shutdown wiring.

#![forbid(unsafe_code)]

mod config;
mod kernel;
mod media;
mod run;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// tutti: a kernel-bypass audio conferencing appliance on DPDK.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the appliance: EAL, ports, dataplane cores and the control API.
    Run {
        /// The YAML configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Parse and validate a configuration file, touching no hardware.
    CheckConfig {
        /// The YAML configuration file.
        file: PathBuf,
    },
}

/// Structured log lines on stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Run { config } => config::Config::load(&config)
            .map_err(anyhow::Error::from)
            .and_then(|c| run::run(c).context("tutti run")),
        Command::CheckConfig { file } => config::Config::load(&file)
            .map(|c| {
                println!(
                    "{}: ok ({} port(s), dataplane cores {:?}, control API on {})",
                    file.display(),
                    c.ports.len(),
                    c.dataplane.cores,
                    c.control.listen
                );
            })
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
