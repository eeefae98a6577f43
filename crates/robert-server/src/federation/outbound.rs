//! Delivery of the outbox to partners: signed batches, retries with
//! exponential backoff, removal only after the partner's acknowledgement.
//!
//! Per partner with an endpoint, [`deliver`] takes the partner's next batch
//! ([`robert_store::Federation::outbox_batch`]: the one already assigned and
//! not acknowledged, else a new one under a fresh random id), signs and
//! posts it, and on a 200 `stored` or `duplicate` deletes it from the
//! outbox; then the next batch, until the outbox of that partner is empty.
//! A failure (network, timeout, any other answer) leaves the batch in the
//! outbox, and the partner is not tried again before a wait that starts at
//! `federation.retry_initial_secs` and doubles per failure in a row, up to
//! `federation.retry_max_secs`. Each attempt signs anew (`createdAt` is the
//! attempt's time); the batch id and contacts stay the same, so a partner
//! that stored the batch but whose answer was lost acknowledges the retry
//! without storing it twice.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use robert_store::federation::OutboxBatch;
use robert_store::{Store, StoreError};
use serde::Serialize;

use super::FederationRuntime;
use super::wire::{self, OutboundBody, WireContact};

/// The retry state of one partner.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    failures: u32,
    next_attempt: Instant,
}

/// What one [`deliver`] call did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    /// Batches partners acknowledged.
    pub batches_sent: u64,
    /// Contacts in them.
    pub contacts_sent: u64,
    /// Failed attempts.
    pub failures: u64,
    /// Partners skipped because their backoff has not expired.
    pub partners_waiting: u64,
    /// Why each failed attempt failed: (partner, reason).
    pub errors: Vec<(u8, String)>,
    /// Contacts left in the outbox, per country.
    pub pending: Vec<(u8, u64)>,
}

/// Delivers the outbox (module docs). `now_unix` stamps the batches
/// (`createdAt`). With `force`, partners in backoff are tried too (tests,
/// `robert batch`).
pub async fn deliver(
    store: &dyn Store,
    fed: &FederationRuntime,
    now_unix: i64,
    force: bool,
) -> Result<DeliveryReport, StoreError> {
    let mut report = DeliveryReport::default();
    let (Some(signing), Some(client)) = (&fed.signing, &fed.client) else {
        return Ok(report);
    };
    for partner in fed.partners() {
        let Some(url) = &partner.url else {
            continue;
        };
        if !force && waiting(fed, partner.country) {
            report.partners_waiting += 1;
            continue;
        }
        loop {
            let id = new_batch_id();
            let Some(batch) = store
                .outbox_batch(
                    partner.country,
                    &id,
                    fed.config.max_contacts_per_batch.max(1),
                    fed.config.max_hellos_per_batch.max(1),
                )
                .await?
            else {
                break;
            };
            match send(client, url, signing, fed.own_country, &batch, now_unix).await {
                Ok(()) => {
                    store
                        .outbox_acknowledged(partner.country, &batch.batch_id)
                        .await?;
                    let n = batch.contacts.len() as u64;
                    report.batches_sent += 1;
                    report.contacts_sent += n;
                    fed.metrics.batches_sent.fetch_add(1, Ordering::Relaxed);
                    fed.metrics.contacts_sent.fetch_add(n, Ordering::Relaxed);
                    succeeded(fed, partner.country);
                    tracing::info!(
                        partner = partner.country,
                        batch = %batch.batch_id,
                        contacts = n,
                        "federation batch delivered"
                    );
                }
                Err(e) => {
                    report.failures += 1;
                    fed.metrics
                        .delivery_failures
                        .fetch_add(1, Ordering::Relaxed);
                    let wait = failed(fed, partner.country);
                    report.errors.push((partner.country, e.clone()));
                    tracing::warn!(
                        partner = partner.country,
                        batch = %batch.batch_id,
                        error = %e,
                        retry_in_secs = wait.as_secs(),
                        "federation delivery failed; the batch stays in the outbox"
                    );
                    break;
                }
            }
        }
    }
    report.pending = store.outbox_counts().await?;
    Ok(report)
}

/// A fresh random batch id (128 bits, hex).
fn new_batch_id() -> String {
    let mut b = [0u8; 16];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut b);
    hex::encode(b)
}

/// Signs and posts one batch; `Ok` once the partner acknowledged it.
async fn send(
    client: &reqwest::Client,
    url: &reqwest::Url,
    signing: &p256::ecdsa::SigningKey,
    own: u8,
    batch: &OutboxBatch,
    now_unix: i64,
) -> Result<(), String> {
    let body = OutboundBody {
        version: wire::VERSION,
        origin: own,
        destination: batch.country,
        batch_id: &batch.batch_id,
        created_at: now_unix,
        contacts: batch.contacts.iter().map(WireContact::of).collect(),
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let signature = wire::sign(signing, &bytes);
    let resp = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(wire::ORIGIN_HEADER, own.to_string())
        .header(wire::SIGNATURE_HEADER, signature)
        .body(bytes)
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status != reqwest::StatusCode::OK {
        return Err(format!("answered {status}: {}", truncate(&text, 300)));
    }
    let answer: serde_json::Value =
        serde_json::from_str(&text).map_err(|_| "answered 200 without JSON".to_owned())?;
    match answer["status"].as_str() {
        Some("stored" | "duplicate") => Ok(()),
        _ => Err(format!(
            "answered 200 without an acknowledgement: {}",
            truncate(&text, 300)
        )),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn waiting(fed: &FederationRuntime, country: u8) -> bool {
    fed.backoff
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&country)
        .is_some_and(|b| b.next_attempt > Instant::now())
}

fn succeeded(fed: &FederationRuntime, country: u8) {
    fed.backoff
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&country);
}

/// Records a failure; returns the wait before the next attempt.
fn failed(fed: &FederationRuntime, country: u8) -> Duration {
    let mut map = fed
        .backoff
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let failures = map.get(&country).map_or(0, |b| b.failures) + 1;
    let wait = backoff_delay(
        failures,
        fed.config.retry_initial_secs,
        fed.config.retry_max_secs,
        rand::RngExt::random_range(&mut rand::rng(), 0.8..1.2),
    );
    map.insert(
        country,
        Backoff {
            failures,
            next_attempt: Instant::now() + wait,
        },
    );
    wait
}

/// `initial · 2^(failures−1)`, at most `max`, times `jitter`.
fn backoff_delay(failures: u32, initial: u64, max: u64, jitter: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(32);
    let base = initial.max(1).saturating_mul(1u64 << exp).min(max.max(1));
    Duration::from_secs_f64(base as f64 * jitter)
}

/// Runs [`deliver`] every `federation.deliver_every_secs` inside `robert
/// serve` (when partners are configured).
pub fn spawn_delivery(state: crate::state::AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if !state.federation.enabled() {
            return;
        }
        let every = Duration::from_secs(state.federation.config().deliver_every_secs.max(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match deliver(
                state.store.as_ref(),
                &state.federation,
                state.clock.now_unix(),
                false,
            )
            .await
            {
                Ok(r) if r.batches_sent > 0 || r.failures > 0 => tracing::info!(
                    batches = r.batches_sent,
                    contacts = r.contacts_sent,
                    failures = r.failures,
                    "federation delivery"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "federation delivery: store error"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let d = |n| backoff_delay(n, 10, 3600, 1.0).as_secs();
        assert_eq!([d(1), d(2), d(3), d(4)], [10, 20, 40, 80]);
        assert_eq!(d(9), 2560);
        assert_eq!(d(10), 3600);
        assert_eq!(d(1000), 3600);
        assert_eq!(backoff_delay(1, 10, 3600, 1.2).as_secs(), 12);
    }
}
