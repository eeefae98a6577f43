//! Built-in scenarios: the `robert demo` town and the FAQ test matrix with
//! positive cases. The same files are in `crates/robert-sim/scenarios/`.

use robert_radio::scenario::Scenario;
use robert_radio::scenario::matrix::MatrixCell;

use crate::error::SimError;

/// The `robert demo` town: about 300 phones over five days (offices with
/// lunch, a school, a metro line, a bus, a market street, a shop queue).
pub const TOWN: &str = include_str!("../scenarios/town.toml");

/// The CI-sized scenario: a dozen phones over a morning.
pub const SMALL: &str = include_str!("../scenarios/small.toml");

/// The town scenario.
pub fn town() -> Result<Scenario, SimError> {
    Ok(Scenario::from_toml_str(TOWN)?)
}

/// Participants in each FAQ matrix cell.
pub const FAQ_PEOPLE: u32 = 16;

/// Positive cases in each FAQ matrix cell (members of the group).
pub const FAQ_POSITIVES: [u32; 4] = [0, 5, 10, 15];

/// One FAQ matrix cell as scenario TOML: robert-radio's cell (16 people,
/// 10:00–10:30 UTC) plus four positive cases declaring at 12:00.
pub fn faq_cell_toml(cell: &MatrixCell, seed: u64) -> String {
    let mut text = cell.to_toml(FAQ_PEOPLE, seed);
    for m in FAQ_POSITIVES {
        text.push_str(&format!(
            "\n[[positives]]\ngroup = \"participants\"\nmember = {m}\nday = 0\ntime = \"12:00\"\n"
        ));
    }
    text
}

/// The 20 cells of the FAQ's field-test matrix (density × site × motion),
/// seeds `seed_base + 1 ..= seed_base + 20`.
pub fn faq_matrix(seed_base: u64) -> Result<Vec<(MatrixCell, Scenario)>, SimError> {
    MatrixCell::all()
        .into_iter()
        .zip(1u64..)
        .map(|(cell, i)| {
            let s = Scenario::from_toml_str(&faq_cell_toml(&cell, seed_base + i))?;
            Ok((cell, s))
        })
        .collect()
}
