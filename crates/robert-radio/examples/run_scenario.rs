//! Runs the radio and the ground truth of a scenario file and prints counts
//! and timings: a quick way to check a scenario and to measure the radio's
//! cost before the phone SDKs are plugged in.
//!
//! ```text
//! cargo run --release -p robert-radio --example run_scenario -- \
//!     crates/robert-radio/examples/scenarios/office.toml [step_seconds]
//! ```

use std::time::Instant;

use rand::SeedableRng;
use robert_radio::link::Via;
use robert_radio::scenario::Scenario;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: run_scenario <scenario.toml> [step_seconds]")?;
    let dt: f64 = match args.next() {
        Some(s) => s.parse()?,
        None => 2.0,
    };
    let text = std::fs::read_to_string(&path)?;

    let t = Instant::now();
    let world = Scenario::from_toml_str(&text)?.build()?;
    let build = t.elapsed();

    let t = Instant::now();
    let truth = world.ground_truth();
    let truth_time = t.elapsed();

    let t = Instant::now();
    let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(world.seed);
    let names = [
        "advert",
        "ios-write",
        "partial-rssi-write",
        "gatt-read",
        "cached-read",
    ];
    let mut by_via = [0u64; 5];
    let stats = world.run_radio(dt, &mut rng, |r| {
        let k = match r.via {
            Via::Advert => 0,
            Via::IosWrite { .. } => 1,
            Via::PartialRssiWrite { .. } => 2,
            Via::GattRead => 3,
            Via::CachedRead { .. } => 4,
        };
        by_via[k] += 1;
    })?;
    let radio = t.elapsed();

    println!("scenario        {} ({} days)", world.name, world.days);
    println!(
        "people / places {} / {}",
        world.population.people.len(),
        world.population.places.len()
    );
    println!("build           {build:.2?}");
    println!(
        "ground truth    {truth_time:.2?}: {} pair-days with exposure, {} at risk",
        truth.exposures().count(),
        truth.at_risk().count()
    );
    println!(
        "radio (dt {dt} s) {radio:.2?}: {} steps, {} pair steps, {} receptions, max {} present",
        stats.steps, stats.pair_steps, stats.receptions, stats.max_present
    );
    if stats.pair_steps > 0 {
        println!(
            "                {:.0} ns per pair step",
            radio.as_nanos() as f64 / stats.pair_steps as f64
        );
    }
    for (k, n) in names.iter().zip(by_via) {
        println!("  {k:<20} {n}");
    }
    Ok(())
}
