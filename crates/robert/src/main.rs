//! `robert`: the ROBERT proximity-tracing system in one binary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[macro_use]
mod out;
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
    /// Run the ROBERT server (/api/v6); `--batch-every 15m` also runs the risk batch.
    Serve(cmd::serve::ServeArgs),
    /// Run the risk batch once and print its report as JSON.
    Batch(cmd::batch::BatchArgs),
    /// Provision the server keys: init, import, rotate, show-public.
    Keys(cmd::keys::KeysArgs),
    /// The `config` list returned to apps: list, set or delete a parameter.
    AppConfig(cmd::app_config::AppConfigArgs),
    /// Submission codes: verify API, doctor portal, laboratory lots, QR codes and letters.
    Codes(cmd::codes::CodesArgs),
    /// Act as a phone against a running server: register, status, report, delete, show.
    Phone(cmd::phone::PhoneArgs),
    /// The iPhone push wake-up service: `serve` (token API + daily APNs pushes), `bench`.
    Push(cmd::push::PushArgs),
    /// Score contacts from CSV files (risk scoring v2, or v0) and print JSON.
    Score(cmd::score::ScoreArgs),
    /// Measure the protocol hot paths (ns/op, ops/s), like `openssl speed`.
    Speed(cmd::speed::SpeedArgs),
    /// Field simulation: run scenarios (TOML) with real SDK phones and write a report.
    Simulate(cmd::simulate::SimulateArgs),
    /// Fit the phone filter and server risk thresholds to scenarios (fewest
    /// false negatives, then fewest false positives).
    Calibrate(cmd::calibrate::CalibrateArgs),
    /// A small town of ~300 phones over five days, end to end, in under a minute.
    Demo(cmd::demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::run(args),
        Command::Batch(args) => cmd::batch::run(args),
        Command::Keys(args) => cmd::keys::run(args),
        Command::Simulate(args) => cmd::simulate::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Calibrate(args) => cmd::calibrate::run(args),
        Command::AppConfig(args) => cmd::app_config::run(args),
        Command::Codes(args) => cmd::codes::run(args),
        Command::Phone(args) => cmd::phone::run(args),
        Command::Push(args) => cmd::push::run(args),
        Command::Score(args) => cmd::score::run(args),
        Command::Speed(args) => cmd::speed::run(args),
    };
    let output = out::finish();
    match (result, output) {
        (Err(err), _) => {
            eprintln!("robert: error: {err:#}");
            ExitCode::from(2)
        }
        (Ok(_), Err(e)) => {
            eprintln!("robert: error: cannot write to standard output: {e}");
            ExitCode::from(2)
        }
        (Ok(code), Ok(())) => code,
    }
}
