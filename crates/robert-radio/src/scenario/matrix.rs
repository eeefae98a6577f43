//! The field-test matrix of the StopCovid technical FAQ ("Tests phase"):
//! Bluetooth results were compared under
//!
//! * high / low density of citizens,
//! * surface and ceiling height high / medium / low,
//! * static / moving citizens,
//! * outdoor / presence of metal structures.
//!
//! We cross density × site × motion, with five sites (outdoor, indoor with
//! high / medium / low ceiling, metal vehicle): 2 × 5 × 2 = 20 cells. Each
//! cell is a 30-minute, one-day scenario of 16 people (10:00–10:30 UTC):
//! static cells seat people on a grid (a metro car for the metal site),
//! moving cells make them walk back and forth along a 30 m strip (a 15 m car
//! aisle for the metal site). Density sets spacing, strip width and crowd loss.

use super::{Density, Scenario, ScenarioError};
use crate::channel::EnvironmentKind;

/// One cell of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatrixCell {
    /// Crowd density.
    pub density: Density,
    /// Site.
    pub site: EnvironmentKind,
    /// Walking (true) or seated / standing still (false).
    pub moving: bool,
}

impl MatrixCell {
    /// All 20 cells, in a fixed order.
    pub fn all() -> Vec<Self> {
        let mut v = Vec::with_capacity(20);
        for density in [Density::High, Density::Low] {
            for site in EnvironmentKind::ALL {
                for moving in [false, true] {
                    v.push(Self {
                        density,
                        site,
                        moving,
                    });
                }
            }
        }
        v
    }

    /// Scenario name, e.g. `faq-high-metal-vehicle-moving`.
    pub fn name(&self) -> String {
        format!(
            "faq-{}-{}-{}",
            match self.density {
                Density::High => "high",
                Density::Low => "low",
            },
            self.site.name(),
            if self.moving { "moving" } else { "static" }
        )
    }

    /// The cell as scenario TOML (`people` participants, `seed`).
    pub fn to_toml(&self, people: u32, seed: u64) -> String {
        let density = match self.density {
            Density::High => "high",
            Density::Low => "low",
        };
        let site = self.site.name();
        let metal = self.site == EnvironmentKind::MetalVehicle;
        let group = match (self.moving, metal) {
            (false, false) => format!(
                "kind = \"office\"\nstart = \"10:00\"\nend = \"10:30\"\narrival_jitter_minutes = 0.0\n\
                 spacing_m = {}\n",
                if self.density == Density::High {
                    1.0
                } else {
                    2.0
                }
            ),
            (false, true) => "kind = \"commute\"\nvehicle = \"metro\"\ndepartures = [\"10:00\"]\n\
                 trip_minutes = 30.0\npassengers_per_car = 40\n"
                .to_owned(),
            (true, _) => format!(
                "kind = \"walkers\"\nstart = \"10:00\"\nend = \"10:30\"\nlength_m = {}\n\
                 width_m = {}\ncrossings = 12\n",
                if metal { 15.0 } else { 30.0 },
                match (metal, self.density) {
                    (true, _) => 2.7,
                    (false, Density::High) => 2.0,
                    (false, Density::Low) => 6.0,
                }
            ),
        };
        format!(
            "name = \"{}\"\ndescription = \"StopCovid FAQ test matrix cell\"\nseed = {seed}\n\
             start_date = \"2020-05-18\"\ndays = 1\n\n[[groups]]\nname = \"participants\"\n\
             people = {people}\nenvironment = \"{site}\"\ndensity = \"{density}\"\n{group}",
            self.name()
        )
    }
}

/// The 20 scenarios of the matrix (16 people each, seeds 1..=20).
pub fn faq_test_matrix() -> Result<Vec<(MatrixCell, Scenario)>, ScenarioError> {
    MatrixCell::all()
        .into_iter()
        .zip(1u64..)
        .map(|(cell, seed)| Ok((cell, Scenario::from_toml_str(&cell.to_toml(16, seed))?)))
        .collect()
}
