//! The radio side of the ROBERT field simulator: BLE wire formats, RSSI
//! calibration, a simulated channel, OS link behaviour, people moving in
//! places, exact ground truth and scenario files.
//!
//! This crate knows nothing of the phone SDK or the server: it says *who
//! hears whose HELLO, when, with which RSSI, by which mechanism*, and *who
//! was really close to whom for how long*. The simulator turns each
//! [`link::Reception`] into an SDK `receive` call and scores the server's
//! notifications against [`truth::GroundTruth`].
//!
//! | module | what | client-ble.md |
//! |---|---|---|
//! | [`wire`] | adverts, GATT payloads, Apple overflow mask test, typed decoding errors | §1.1–1.7 |
//! | [`calibration`] | the October 2020 table, lookup rules, `raw − tx − rx`, write-with-RSSI | §2 |
//! | [`channel`] | path loss, shadowing, fading, placements, bodies, environments, device hardware | §6 |
//! | [`link`] | scan / advertising timing, batching, iOS background rules, no-advertiser mode | §1.3–1.8 |
//! | [`mobility`] | people, places, trajectories, pair sweep | |
//! | [`truth`] | time within D per pair and UTC day, at-risk contacts | §2.4 |
//! | [`scenario`] | TOML scenarios, their expansion into a [`scenario::World`], the FAQ test matrix | FAQ "Tests phase" |
//! | [`survey`] | what a measurement campaign would record from the model: received calibrated RSSI by distance, the field-series anchor | |
//! | [`geometry`] | plane vectors | |
//!
//! # Invariants
//!
//! * Pure: no I/O, no clock, no global state, no threads. Randomness comes in
//!   as `&mut impl rand::Rng`; scenario expansion seeds a `ChaCha8Rng` from
//!   the scenario's `seed`. Same inputs, same outputs.
//! * Decoders and parsers return typed errors ([`wire::WireError`],
//!   [`calibration::CalibrationError`], [`scenario::ScenarioError`],
//!   [`mobility::MobilityError`]); none panics on bad input.
//! * Time is `f64` seconds since simulation start, which is UTC midnight of
//!   the scenario's start date ([`scenario::World::ntp_at`] converts).
//!
//! # Example: the simulator's loop, minus the phones
//!
//! ```
//! use rand::SeedableRng;
//! use robert_radio::link::{PairLink, StepContext};
//! use robert_radio::scenario::Scenario;
//!
//! let scenario = Scenario::from_toml_str(r#"
//!     name = "two desks"
//!     [[groups]]
//!     name = "office"
//!     kind = "office"
//!     people = 2
//!     density = "high"
//!     start = "09:00"
//!     end = "09:30"
//!     arrival_jitter_minutes = 0.0
//! "#)?;
//! let world = scenario.build()?;
//! let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(world.seed);
//!
//! // Step every close pair every 2 s (World::run_radio does exactly this,
//! // with idle-time skipping, collisions and pair-state eviction).
//! let mut sweep = world.pair_sweep()?;
//! let mut links = std::collections::HashMap::new();
//! let (mut pairs, mut receptions) = (Vec::new(), Vec::new());
//! let dt = 2.0;
//! let mut t = 9.0 * 3600.0;
//! while t < 9.5 * 3600.0 {
//!     pairs.clear();
//!     sweep.pairs_at(t, &mut pairs);
//!     for pair in &pairs {
//!         let link: &mut PairLink = links.entry((pair.a, pair.b)).or_default();
//!         world.step_pair(link, pair, t, dt, &StepContext::default(), &mut rng, &mut receptions);
//!     }
//!     t += dt;
//! }
//! // Each reception becomes an SDK `receive(payload, time, raw RSSI)` call;
//! // the receiving app computes the calibrated RSSI like this:
//! for r in &receptions {
//!     let receiver = world.population.person(r.receiver).expect("known id");
//!     let calibrated = r.calibrated_rssi(receiver.device.app_gains);
//!     assert!(calibrated > -100 && calibrated < 20);
//! }
//! // Two people 1.2 m apart for half an hour: not a contact at 1 m.
//! assert_eq!(world.ground_truth().at_risk().count(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod calibration;
pub mod channel;
pub mod fast_map;
pub mod geometry;
pub mod link;
mod math;
pub mod mobility;
pub mod scenario;
pub mod survey;
pub mod truth;
pub mod wire;
