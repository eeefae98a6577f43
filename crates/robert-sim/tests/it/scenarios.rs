//! The scenario files shipped in `crates/robert-sim/scenarios/`.

use std::path::{Path, PathBuf};

use robert_radio::scenario::Scenario;
use robert_radio::scenario::matrix::MatrixCell;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

#[test]
fn every_example_parses_validates_and_has_positive_cases() {
    let mut n = 0;
    for entry in std::fs::read_dir(dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let s = Scenario::from_toml_str(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let world = s
                .build()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                !world.positives.is_empty(),
                "{} has no positive case",
                path.display()
            );
            n += 1;
        }
    }
    assert!(n >= 8, "only {n} example scenarios");
    let town = robert_sim::scenarios::town().unwrap().build().unwrap();
    assert!((280..=330).contains(&town.population.people.len()));
    assert_eq!(town.days, 5);
    assert_eq!(town.positives.len(), 5);
}

/// `scenarios/faq/*.toml` are exactly what `robert_sim::scenarios::faq_matrix(0)`
/// runs (regenerate with `REGENERATE_FAQ=1 cargo test -p robert-sim --test it faq`).
#[test]
fn faq_matrix_files_match_the_generator() {
    let faq = dir().join("faq");
    let cells = MatrixCell::all();
    assert_eq!(cells.len(), 20);
    let generated = robert_sim::scenarios::faq_matrix(0).unwrap();
    for (i, (cell, scenario)) in generated.iter().enumerate() {
        let text = robert_sim::scenarios::faq_cell_toml(cell, i as u64 + 1);
        let path = faq.join(format!("{}.toml", cell.name()));
        if std::env::var_os("REGENERATE_FAQ").is_some() {
            std::fs::create_dir_all(&faq).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let file =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(file, text, "{} is out of date", path.display());
        assert_eq!(Scenario::from_toml_str(&file).unwrap(), *scenario);
        assert_eq!(scenario.positives.len(), 4);
    }
}
