//! The CPU part of the batch: contact validation and scoring, in parallel.
//!
//! Two stages per chunk, with the key lookup (I/O) between them:
//!
//! 1. [`identify`]: per contact, the ECC (country) and the EBID. EBIDs are
//!    decrypted with the SKINNY batch API ([`robert_core::ebid::decrypt_batch`]),
//!    grouped by the candidate day keys of each contact's first HELLO; other
//!    days (rare: HELLOs spanning midnight) fall back to single decryptions.
//! 2. [`verify_and_score`]: unwrap each distinct K_A once, check every HELLO
//!    (MAC, Time16 tolerance, epoch tolerance) and score the valid ones.
//!
//! Both split the chunk into contiguous slices, one per worker thread.

use std::collections::{BTreeMap, HashMap};

use robert_core::contact::{
    ContactIdentity, ContactRejection, ContactValidator, HelloRejection, candidate_days,
};
use robert_core::ebid::{Ebid, EbidContent, decrypt_batch};
use robert_core::id_a::IdA;
use robert_core::keys::{KeyA, KeyS, WrappedKey};
use robert_core::scoring::{Scoring, ScoringInput};
use robert_core::time::UtcDate;
use robert_store::{ContactExposure, ContactId, StoredContact};
use serde::Serialize;

use super::BatchKeys;
use super::config::Settings;

/// Below this many items a stage runs on the calling thread.
const PARALLEL_MIN: usize = 64;

/// Everything the CPU stages need, shared by the workers.
#[derive(Debug)]
pub struct Validation {
    validator: ContactValidator,
    day_keys: BTreeMap<UtcDate, KeyS>,
    kek: crate::keystore::SharedKek,
    scoring: Scoring,
    threads: usize,
    /// Partner countries (sorted): their contacts are left in the queue
    /// for the federation step (`super::federate`).
    forwarded: Vec<u8>,
}

impl Validation {
    pub(crate) fn new(keys: &BatchKeys, settings: &Settings) -> Self {
        Self {
            validator: ContactValidator {
                key_g: keys.key_g.clone(),
                country: settings.country,
                start: settings.start,
                policy: settings.policy,
            },
            day_keys: keys.day_keys.clone(),
            kek: keys.kek.clone(),
            scoring: settings.scoring.clone(),
            threads: settings.threads,
            forwarded: settings.forwarded_countries.clone(),
        }
    }

    /// A validation context with default settings (benchmarks).
    #[doc(hidden)]
    pub fn for_bench(keys: &BatchKeys, threads: usize) -> Result<Self, super::BatchError> {
        let config = super::BatchConfig {
            parallelism: threads,
            ..super::BatchConfig::default()
        };
        Ok(Self::new(keys, &config.settings()?))
    }
}

/// Why a contact was discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The stored contact did not decode.
    Malformed,
    /// The contact had no HELLO.
    NoHellos,
    /// The ECC names another country (its code).
    ForeignCountry(u8),
    /// No day key decrypts the EBID to a plausible epoch.
    EbidNotDecrypted,
    /// The EBID's ID_A is not registered (unregistered, or forged).
    UnknownRegistration,
    /// The stored K_A does not unwrap under the KEK.
    KeyUnwrap,
    /// Every HELLO failed a check.
    NoValidHellos,
}

/// Per-reason counts of discarded contacts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ContactRejections {
    /// The stored contact did not decode.
    pub malformed: u64,
    /// No HELLO ("No messages in contact, discarding contact").
    pub no_hellos: u64,
    /// Another country ("Country code \[x\] is not managed by this server").
    pub foreign_country: u64,
    /// The EBID does not decrypt ("Could not decrypt EBID").
    pub ebid_not_decrypted: u64,
    /// Unknown ID_A ("The contact could not be validated. Discarding all its hello messages").
    pub unknown_registration: u64,
    /// The K_A does not unwrap (wrong KEK or altered row).
    pub key_unwrap_failed: u64,
    /// No valid HELLO left ("Contact did not contain any valid messages").
    pub no_valid_hellos: u64,
}

impl ContactRejections {
    fn add(&mut self, r: Rejection) {
        match r {
            Rejection::Malformed => self.malformed += 1,
            Rejection::NoHellos => self.no_hellos += 1,
            Rejection::ForeignCountry(_) => self.foreign_country += 1,
            Rejection::EbidNotDecrypted => self.ebid_not_decrypted += 1,
            Rejection::UnknownRegistration => self.unknown_registration += 1,
            Rejection::KeyUnwrap => self.key_unwrap_failed += 1,
            Rejection::NoValidHellos => self.no_valid_hellos += 1,
        }
    }

    /// All discarded contacts.
    pub fn total(&self) -> u64 {
        self.malformed
            + self.no_hellos
            + self.foreign_country
            + self.ebid_not_decrypted
            + self.unknown_registration
            + self.key_unwrap_failed
            + self.no_valid_hellos
    }

    pub(crate) fn merge(&mut self, o: &Self) {
        self.malformed += o.malformed;
        self.no_hellos += o.no_hellos;
        self.foreign_country += o.foreign_country;
        self.ebid_not_decrypted += o.ebid_not_decrypted;
        self.unknown_registration += o.unknown_registration;
        self.key_unwrap_failed += o.key_unwrap_failed;
        self.no_valid_hellos += o.no_valid_hellos;
    }
}

/// Per-reason counts of discarded HELLOs inside identified contacts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HelloRejections {
    /// Bad MAC.
    pub mac: u64,
    /// Time16 too far from the reception time.
    pub time_tolerance: u64,
    /// Reception epoch too far from the EBID epoch.
    pub epoch_tolerance: u64,
}

impl HelloRejections {
    fn add(&mut self, r: HelloRejection) {
        match r {
            HelloRejection::Mac => self.mac += 1,
            HelloRejection::TimeTolerance => self.time_tolerance += 1,
            HelloRejection::EpochTolerance => self.epoch_tolerance += 1,
            // A future reason: counted with the MAC failures, the strictest.
            _ => self.mac += 1,
        }
    }

    /// All discarded HELLOs.
    pub fn total(&self) -> u64 {
        self.mac + self.time_tolerance + self.epoch_tolerance
    }

    pub(crate) fn merge(&mut self, o: &Self) {
        self.mac += o.mac;
        self.time_tolerance += o.time_tolerance;
        self.epoch_tolerance += o.epoch_tolerance;
    }
}

/// A contact after stage 1.
#[derive(Debug)]
pub struct Identified {
    contact: StoredContact,
    identity: Result<ContactIdentity, Rejection>,
}

impl Identified {
    /// The sender, if identified.
    pub fn id_a(&self) -> Option<IdA> {
        self.identity.as_ref().ok().map(|i| i.id_a)
    }
}

/// The result of stage 2 for one chunk.
#[derive(Debug, Default)]
pub struct ChunkOutcome {
    /// Scores to append.
    pub exposures: Vec<ContactExposure>,
    /// Every contact of the chunk (to delete).
    pub processed: Vec<ContactId>,
    /// HELLOs in the chunk.
    pub hellos: u64,
    /// HELLOs that passed every check.
    pub hellos_valid: u64,
    /// Discarded HELLOs of identified contacts.
    pub hello_rejections: HelloRejections,
    /// Discarded contacts.
    pub contact_rejections: ContactRejections,
    /// Scored contacts whose HELLOs spanned more than an epoch (score 0).
    pub scored_zero_too_late: u64,
}

/// Maps `items` in `threads` contiguous slices, keeping the order.
fn parallel<T: Send, U: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(Vec<T>) -> Vec<U> + Sync,
) -> Vec<U> {
    if threads <= 1 || items.len() < PARALLEL_MIN {
        return f(items);
    }
    let per = items.len().div_ceil(threads);
    let mut slices = Vec::with_capacity(threads);
    let mut items = items.into_iter();
    loop {
        let slice: Vec<T> = items.by_ref().take(per).collect();
        if slice.is_empty() {
            break;
        }
        slices.push(slice);
    }
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = slices
            .into_iter()
            .map(|slice| s.spawn(move || f(slice)))
            .collect();
        let mut out = Vec::new();
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// Stage 1: identifies the sender of each contact (ECC, then EBID).
pub fn identify(ctx: &Validation, contacts: Vec<StoredContact>) -> Vec<Identified> {
    parallel(contacts, ctx.threads, |slice| identify_slice(ctx, slice))
}

fn identify_slice(ctx: &Validation, contacts: Vec<StoredContact>) -> Vec<Identified> {
    // Batch-decrypt each EBID under the candidate days of its first HELLO.
    let mut by_day: BTreeMap<UtcDate, (Vec<usize>, Vec<Ebid>)> = BTreeMap::new();
    for (i, c) in contacts.iter().enumerate() {
        if c.malformed {
            continue;
        }
        if let Some(first) = c.hellos.first() {
            let (day, adjacent) = candidate_days(first.time_collected, &ctx.validator.policy);
            for d in core::iter::once(day).chain(adjacent) {
                let entry = by_day.entry(d).or_default();
                entry.0.push(i);
                entry.1.push(c.ebid);
            }
        }
    }
    let mut decrypted: Vec<Vec<(UtcDate, EbidContent)>> = vec![Vec::new(); contacts.len()];
    for (day, (indices, ebids)) in &by_day {
        if let Some(key) = ctx.day_keys.get(day) {
            for (i, content) in indices.iter().zip(decrypt_batch(key, ebids)) {
                decrypted[*i].push((*day, content));
            }
        }
    }
    contacts
        .into_iter()
        .zip(decrypted)
        .map(|(contact, pre)| {
            let identity = if contact.malformed {
                Err(Rejection::Malformed)
            } else {
                ctx.validator
                    .identify(&contact.ebid, contact.ecc, &contact.hellos, |day| match pre
                        .iter()
                        .find(|(d, _)| *d == day)
                    {
                        Some((_, c)) => Some(*c),
                        None => ctx.day_keys.get(&day).map(|k| contact.ebid.decrypt(k)),
                    })
                    .map_err(|e| rejection_of(&contact, e))
            };
            Identified { contact, identity }
        })
        .collect()
}

fn rejection_of(contact: &StoredContact, e: ContactRejection) -> Rejection {
    match e {
        ContactRejection::NoHellos => {
            tracing::debug!(
                contact = contact.id.0,
                "No messages in contact, discarding contact"
            );
            Rejection::NoHellos
        }
        ContactRejection::ForeignCountry(cc) => {
            tracing::debug!(
                contact = contact.id.0,
                country = cc.0,
                "Country code is not managed by this server, discarding contact"
            );
            Rejection::ForeignCountry(cc.0)
        }
        _ => {
            tracing::info!(
                contact = contact.id.0,
                "The contact could not be validated. Discarding all its hello messages \
                 (could not decrypt EBID)"
            );
            Rejection::EbidNotDecrypted
        }
    }
}

/// Stage 2: unwraps K_A, checks every HELLO and scores each contact.
///
/// `keys` holds the wrapped K_A of the identified senders that exist. The
/// unwrapped K_A live only as long as this call. A K_A that does not unwrap
/// rejects its contacts; a token failure fails the call (nothing is lost:
/// the chunk is not committed).
pub fn verify_and_score(
    ctx: &Validation,
    identified: Vec<Identified>,
    keys: &HashMap<IdA, WrappedKey>,
) -> Result<ChunkOutcome, crate::keystore::KeyOpError> {
    use crate::keystore::KeyOpError;
    let wrapped: Vec<(IdA, WrappedKey)> = keys.iter().map(|(k, v)| (*k, v.clone())).collect();
    let unwrapped: Vec<Result<(IdA, Option<KeyA>), KeyOpError>> =
        parallel(wrapped, ctx.threads, |slice| {
            slice
                .into_iter()
                .map(|(id, w)| match ctx.kek.unwrap_key_a(&w) {
                    Ok(k) => Ok((id, Some(k))),
                    Err(KeyOpError::Unwrap) => Ok((id, None)),
                    Err(e) => Err(e),
                })
                .collect()
        });
    let unwrapped: HashMap<IdA, Option<KeyA>> = unwrapped.into_iter().collect::<Result<_, _>>()?;
    let parts = parallel(identified, ctx.threads, |slice| {
        let mut out = ChunkOutcome::default();
        for item in slice {
            score_one(ctx, item, &unwrapped, &mut out);
        }
        vec![out]
    });
    let mut total = ChunkOutcome::default();
    for part in parts {
        total.exposures.extend(part.exposures);
        total.processed.extend(part.processed);
        total.hellos += part.hellos;
        total.hellos_valid += part.hellos_valid;
        total.hello_rejections.merge(&part.hello_rejections);
        total.contact_rejections.merge(&part.contact_rejections);
        total.scored_zero_too_late += part.scored_zero_too_late;
    }
    Ok(total)
}

fn score_one(
    ctx: &Validation,
    item: Identified,
    keys: &HashMap<IdA, Option<KeyA>>,
    out: &mut ChunkOutcome,
) {
    let Identified { contact, identity } = item;
    if let Err(Rejection::ForeignCountry(cc)) = identity
        && ctx.forwarded.binary_search(&cc).is_ok()
    {
        // A partner's contact uploaded after the federation step of this
        // run: left in the queue for the next run's.
        return;
    }
    out.processed.push(contact.id);
    out.hellos += contact.hellos.len() as u64;
    let identity = match identity {
        Ok(identity) => identity,
        Err(r) => {
            out.contact_rejections.add(r);
            return;
        }
    };
    let key = match keys.get(&identity.id_a) {
        Some(Some(key)) => key,
        Some(None) => {
            tracing::error!(
                contact = contact.id.0,
                id_a = ?identity.id_a,
                "the stored K_A does not unwrap under the KEK; discarding contact"
            );
            out.contact_rejections.add(Rejection::KeyUnwrap);
            return;
        }
        None => {
            tracing::info!(
                contact = contact.id.0,
                id_a = ?identity.id_a,
                "The contact could not be validated. Discarding all its hello messages \
                 (no registration for this ID_A)"
            );
            out.contact_rejections.add(Rejection::UnknownRegistration);
            return;
        }
    };
    let mut inputs = Vec::with_capacity(contact.hellos.len());
    let checked =
        ctx.validator
            .verify_hellos(&identity, &contact.ebid, contact.ecc, key, &contact.hellos);
    for verdict in checked {
        match verdict {
            Ok(v) => inputs.push(ScoringInput::new(
                v.time_collected(),
                i32::from(v.rssi_calibrated()),
            )),
            Err(r) => {
                if r == HelloRejection::TimeTolerance {
                    tracing::debug!(
                        contact = contact.id.0,
                        "Time tolerance was exceeded; discarding HELLO message"
                    );
                }
                out.hello_rejections.add(r);
            }
        }
    }
    out.hellos_valid += inputs.len() as u64;
    if inputs.is_empty() {
        tracing::debug!(
            contact = contact.id.0,
            "Contact did not contain any valid messages; discarding contact"
        );
        out.contact_rejections.add(Rejection::NoValidHellos);
        return;
    }
    match ctx.scoring.score(&inputs) {
        Ok(score) => {
            if score.skipped_too_late {
                tracing::debug!(
                    contact = contact.id.0,
                    span = score.span_secs,
                    "Skip contact because some hello messages are coming too late"
                );
                out.scored_zero_too_late += 1;
            }
            out.exposures.push(ContactExposure {
                contact_id: contact.id,
                id_a: identity.id_a,
                epoch: identity.epoch,
                score: score.score,
            });
        }
        Err(_) => {
            // Unreachable: `inputs` is not empty.
            out.contact_rejections.add(Rejection::NoValidHellos);
        }
    }
}
