//! The noise terms of the channel model that a study can switch off.

use serde::Deserialize;

/// A noise term of the model that a study can switch off (`[radio] ablate`):
/// each one turned off alone shows what it costs the separation of 1 m
/// from 3 m (`robert calibrate study --ablation-sweep`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoiseTerm {
    /// Placement losses `L_place` of both phones (pockets, bags, ear) are 0;
    /// heights and the body's blocking geometry are unchanged.
    Placement,
    /// The obstruction loss `L_obs` of bodies and crowd is 0.
    Body,
    /// Every phone's true gains equal the gains its app uses: no per-device
    /// residual, no spread of models absent from the table.
    Device,
    /// The static per-pair offset `Y_pair` is 0 (metal vehicles).
    Pair,
    /// The AR(1) shadowing `X_shadow` is 0.
    Shadowing,
    /// Per-packet fading `F` is 0: a packet is received iff its mean level
    /// reaches the floor, with the mean level as its RSSI.
    Fading,
}

impl NoiseTerm {
    /// Every term, in declaration order.
    pub const ALL: [Self; 6] = [
        Self::Placement,
        Self::Body,
        Self::Device,
        Self::Pair,
        Self::Shadowing,
        Self::Fading,
    ];

    /// The kebab-case name used in scenario files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Placement => "placement",
            Self::Body => "body",
            Self::Device => "device",
            Self::Pair => "pair",
            Self::Shadowing => "shadowing",
            Self::Fading => "fading",
        }
    }

    /// The term named `name` ([`NoiseTerm::name`]).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name.trim())
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of [`NoiseTerm`]s switched off. Empty by default: the full model.
/// In TOML, a list of names: `ablate = ["body", "placement"]`.
///
/// Terms that draw random numbers still draw them when switched off, so
/// everything else (mobility, devices, the other terms) stays the same
/// draw. Fading is the exception in one respect: with it off, which packets
/// are received changes (a packet reaches the floor or not).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "Vec<NoiseTerm>")]
pub struct Ablation(u8);

impl Ablation {
    /// Nothing switched off.
    pub const NONE: Self = Self(0);

    /// Every term switched off.
    pub fn all() -> Self {
        NoiseTerm::ALL.into_iter().collect()
    }

    /// Whether `term` is switched off.
    pub fn contains(self, term: NoiseTerm) -> bool {
        self.0 & term.bit() != 0
    }

    /// This set plus `term`.
    #[must_use]
    pub fn with(self, term: NoiseTerm) -> Self {
        Self(self.0 | term.bit())
    }

    /// Whether nothing is switched off.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The terms switched off, in [`NoiseTerm::ALL`] order.
    pub fn terms(self) -> Vec<NoiseTerm> {
        NoiseTerm::ALL
            .into_iter()
            .filter(|t| self.contains(*t))
            .collect()
    }

    /// `"body+placement"`, or `"none"`.
    pub fn label(self) -> String {
        if self.is_empty() {
            return "none".to_owned();
        }
        self.terms()
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join("+")
    }

    /// Parses a comma- or plus-separated list of names (`"body,placement"`;
    /// `"none"` or an empty string for the full model, `"all"` for every term).
    pub fn parse(list: &str) -> Result<Self, String> {
        let list = list.trim();
        if list.is_empty() || list == "none" {
            return Ok(Self::NONE);
        }
        if list == "all" {
            return Ok(Self::all());
        }
        list.split([',', '+'])
            .map(|n| {
                NoiseTerm::parse(n).ok_or_else(|| {
                    let known: Vec<&str> = NoiseTerm::ALL.iter().map(|t| t.name()).collect();
                    format!("unknown noise term {n:?} (known: {})", known.join(", "))
                })
            })
            .collect()
    }
}

impl FromIterator<NoiseTerm> for Ablation {
    fn from_iter<I: IntoIterator<Item = NoiseTerm>>(iter: I) -> Self {
        iter.into_iter().fold(Self::NONE, Self::with)
    }
}

impl From<Vec<NoiseTerm>> for Ablation {
    fn from(v: Vec<NoiseTerm>) -> Self {
        v.into_iter().collect()
    }
}
