//! The study's corpus: scenarios grouped into families, and radio draws
//! split into training and held-out seeds.
//!
//! Families group scenarios that share a setting (offices, transport, …):
//! cross-validation leaves one family out at a time, so that a setting is
//! always judged on a kind of place it was not chosen on. Draws are
//! independent runs of the radio (and of every random choice of the
//! scenario) with seeds `seed + k · DRAW_STRIDE`: draws 0 and 1 are for
//! training, draws 2 and 3 are held out (never seen by the optimiser; a
//! test checks it).

use robert_radio::scenario::Scenario;
use serde::Serialize;

use crate::error::SimError;
use crate::scenarios::faq_matrix;

/// Distance between the seeds of two draws of one scenario.
pub const DRAW_STRIDE: u64 = 1_000_003;

/// Draws used for choosing settings.
pub const TRAINING_DRAWS: [u32; 2] = [0, 1];

/// Draws used only for reporting.
pub const HELD_OUT_DRAWS: [u32; 2] = [2, 3];

/// A scenario of the corpus.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Its family (cross-validation unit).
    pub family: &'static str,
    /// Part of the target set (the eight example scenarios and the
    /// FAQ matrix).
    pub target_set: bool,
    /// The scenario, with its base seed (draw 0).
    pub scenario: Scenario,
}

impl Entry {
    /// The scenario of draw `k`.
    pub fn draw(&self, k: u32) -> Scenario {
        let mut s = self.scenario.clone();
        s.seed = s.seed.wrapping_add(u64::from(k) * DRAW_STRIDE);
        s
    }
}

/// A (scenario, draw) unit of the corpus.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RunId {
    /// Scenario name.
    pub scenario: String,
    /// Draw index.
    pub draw: u32,
}

impl RunId {
    /// File name of its recording.
    pub fn file_name(&self) -> String {
        format!("{}@{}.json.gz", self.scenario, self.draw)
    }
}

macro_rules! scenario_file {
    ($family:literal, $target:literal, $path:literal) => {
        (
            $family,
            $target,
            include_str!(concat!("../../scenarios/", $path)),
        )
    };
}

/// The scenario files of the corpus: (family, target set, TOML).
const FILES: [(&str, bool, &str); 13] = [
    scenario_file!("offices", true, "office.toml"),
    scenario_file!("offices", true, "small.toml"),
    scenario_file!("offices", false, "study/office-3m.toml"),
    scenario_file!("offices", false, "study/office-2.5m.toml"),
    scenario_file!("offices", false, "study/short-near.toml"),
    scenario_file!("classrooms", true, "classroom.toml"),
    scenario_file!("restaurants", true, "restaurant.toml"),
    scenario_file!("transport", true, "commute.toml"),
    scenario_file!("transport", false, "study/packed-bus.toml"),
    scenario_file!("queues", true, "shop-queue.toml"),
    scenario_file!("walkers", true, "walkers.toml"),
    scenario_file!("carriage", true, "pockets-and-ears.toml"),
    scenario_file!("town", false, "town.toml"),
];

/// The whole corpus: the example scenarios, the study's scenarios, the
/// demo town and the 20 FAQ cells (families `faq-static`, `faq-moving`).
pub fn corpus() -> Result<Vec<Entry>, SimError> {
    let mut out = Vec::new();
    for (family, target_set, text) in FILES {
        out.push(Entry {
            family,
            target_set,
            scenario: Scenario::from_toml_str(text)?,
        });
    }
    for (cell, scenario) in faq_matrix(0)? {
        out.push(Entry {
            family: if cell.moving {
                "faq-moving"
            } else {
                "faq-static"
            },
            target_set: true,
            scenario,
        });
    }
    Ok(out)
}

/// The families, in corpus order.
pub fn families(entries: &[Entry]) -> Vec<&'static str> {
    let mut f: Vec<&'static str> = Vec::new();
    for e in entries {
        if !f.contains(&e.family) {
            f.push(e.family);
        }
    }
    f
}
