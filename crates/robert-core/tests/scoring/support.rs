//! Shared helpers: a seeded RNG, the e2e harness's HELLO exchange, and a
//! miniature batch that chains the pure functions in the order of §4.1.

use core::convert::Infallible;

use robert_core::scoring::{
    EpochExposure, RiskDecision, RiskEvaluation, RiskParams, RiskState, Scoring, ScoringInput,
    evaluate_risk, purge_exposures, risk_reset_due,
};
use robert_core::time::{Epoch, NtpSeconds, ServiceStart};

/// SplitMix64: a tiny deterministic generator for the tests.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl rand_core::TryRng for SplitMix {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.try_next_u64()? >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Ok(z ^ (z >> 31))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

impl SplitMix {
    /// A value uniform in `low..=high` (small ranges; modulo bias is irrelevant here).
    pub fn in_range(&mut self, low: i32, high: i32) -> i32 {
        use rand_core::Rng;
        let span = u64::try_from(i64::from(high) - i64::from(low) + 1).unwrap();
        low + i32::try_from(self.next_u64() % span).unwrap()
    }
}

pub const MINUTE: u64 = 60;
pub const HOUR: u64 = 3600;
pub const DAY: u64 = 86_400;

/// One contact as uploaded: the EBID epoch and its HELLOs in upload order.
pub type Contact = (Epoch, Vec<ScoringInput>);

/// "X and Y are in proximity D" (server-api.md §7): one HELLO per second
/// from `from` for `duration` seconds, recorded with `timeCollectedOnDevice`
/// = emission time and an RSSI uniform in [−10, 2]; grouped per EBID, i.e.
/// per emission epoch.
pub fn proximity(
    start: &ServiceStart,
    from: NtpSeconds,
    duration: u64,
    rng: &mut SplitMix,
) -> Vec<Contact> {
    let mut contacts: Vec<Contact> = Vec::new();
    for s in 0..duration {
        let t = from.plus(s);
        let epoch = start.epoch_at(t);
        let hello = ScoringInput::new(t, rng.in_range(-10, 2));
        match contacts.last_mut() {
            Some((e, hellos)) if *e == epoch => hellos.push(hello),
            _ => contacts.push((epoch, vec![hello])),
        }
    }
    contacts
}

/// The registration fields the batch reads and writes.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    pub at_risk: bool,
    pub notified_for_current_risk: bool,
    pub state: RiskState,
    pub exposed: Vec<EpochExposure>,
    pub outdated_risk: bool,
}

/// What one batch run reports for one registration.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    pub purged: usize,
    pub reset: bool,
    pub evaluation: Option<RiskEvaluation>,
}

/// The batch of §4.1 for one registration: purge (b), reset (d), scoring of
/// the reported contacts naming this registration (f), evaluation (h).
pub fn run_batch(
    reg: &mut Registration,
    reported: &[Contact],
    now: NtpSeconds,
    rng: &mut SplitMix,
) -> BatchOutcome {
    let start = ServiceStart::REFERENCE;
    let params = RiskParams::default();
    let scoring = Scoring::default();
    let current = start.epoch_at(now);
    let mut outcome = BatchOutcome {
        purged: purge_exposures(&mut reg.exposed, current, params.contagious_period_days),
        ..BatchOutcome::default()
    };
    if reg.at_risk && risk_reset_due(reg.state.last_contact, now, params.risk_retention_days) {
        reg.at_risk = false;
        reg.notified_for_current_risk = false;
        outcome.reset = true;
    }
    for (epoch, hellos) in reported {
        let score = scoring.score(hellos).unwrap().score;
        match reg.exposed.iter_mut().find(|e| e.epoch == *epoch) {
            Some(e) => e.scores.push(score),
            None => reg.exposed.push(EpochExposure::new(*epoch, vec![score])),
        }
        reg.outdated_risk = true;
    }
    if reg.outdated_risk {
        let evaluation = evaluate_risk(
            &reg.exposed,
            &reg.state,
            scoring.aggregation(),
            &params,
            &start,
            now,
            rng,
        );
        if let RiskDecision::AtRisk {
            last_contact,
            latest_risk_epoch,
        } = evaluation.decision
        {
            reg.at_risk = true;
            reg.notified_for_current_risk = false;
            reg.state = RiskState {
                latest_risk_epoch,
                last_contact,
            };
        }
        reg.outdated_risk = false;
        outcome.evaluation = Some(evaluation);
    }
    outcome
}

/// A few "now" instants at various times of day (2023-01-13, UTC).
pub fn nows() -> Vec<NtpSeconds> {
    let today = NtpSeconds(3_882_556_800);
    [
        10 * HOUR + 37 * MINUTE + 12,
        5 * MINUTE,
        12 * HOUR,
        23 * HOUR + 50 * MINUTE,
    ]
    .into_iter()
    .map(|s| today.plus(s))
    .collect()
}
