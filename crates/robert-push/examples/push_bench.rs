//! `robert push bench` without the rest of the binary:
//! `cargo run --release -p robert-push --example push_bench -- TOKENS [RATE] [IN_FLIGHT]`.

use robert_push::bench::{BenchOptions, run};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let tokens = args.next().map_or(Ok(100_000), |s| s.parse())?;
    let rate = args.next().map(|s| s.parse()).transpose()?;
    let in_flight = args.next().map(|s| s.parse()).transpose()?;
    let report = run(&BenchOptions {
        tokens,
        window_secs: 3600,
        rate,
        in_flight,
        batch: 5000,
        database_url: std::env::var("PUSH_BENCH_DATABASE_URL").ok(),
    })
    .await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
