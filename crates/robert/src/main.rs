//! `robert`: the ROBERT proximity-tracing system in one binary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// ROBERT: the proximity-tracing protocol of StopCovid / TousAntiCovid.
#[derive(Debug, Parser)]
#[command(name = "robert", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Score contacts from CSV files with risk scoring v2 and print JSON.
    Score(cmd::score::ScoreArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Score(args) => cmd::score::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("robert: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
