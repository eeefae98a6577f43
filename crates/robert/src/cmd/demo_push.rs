//! The push part of `robert demo`: the town's iPhones woken once a day.
//!
//! Each iPhone's push token reaches the push service the way robert-server
//! sends it (`robert_server::push::PushClient`, the `pushInfo` of
//! `/status`), the push service (crate `robert-push`, the code of `robert
//! push serve`) plans one silent push per phone per day inside 08:00–20:00
//! of the phone's time zone, and sends it over HTTP/2 and TLS to a mock
//! APNs on 127.0.0.1 that checks the provider token, headers and payload
//! as Apple does. One phone's app was deleted: APNs answers 410 and the
//! token is deactivated. The clock is a manual one, moved ten minutes at a
//! time over the days of the scenario.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use robert_clock::ManualClock;
use robert_push::PushService;
use robert_push::local::LocalApns;
use robert_server::config::PushConfig;
use robert_server::push::{PushClient, PushRegistration};

/// Time zones of the town's iPhones: mostly mainland France, a few
/// travellers from overseas departments.
const ZONES: [&str; 4] = [
    "Europe/Paris",
    "Europe/Paris",
    "Europe/Paris",
    "Indian/Reunion",
];

/// What the push part did.
#[derive(Debug)]
pub(crate) struct PushDemo {
    /// iPhones registered with the push service.
    pub iphones: usize,
    /// Per day (0-based): pushes APNs accepted.
    pub accepted_per_day: BTreeMap<i64, u64>,
    /// Tokens deactivated (APNs said the app is gone).
    pub deactivated: u64,
    /// Pushes refused or failed for another reason.
    pub failed: u64,
    /// Every request the mock APNs received passed its provider-token,
    /// header and payload checks (no 403 or 400 other than the gone app).
    pub all_valid: bool,
}

impl PushDemo {
    /// The part's paragraph, for the terminal and report.md.
    pub(crate) fn text(&self) -> String {
        let mut t = format!(
            "Push wake-ups\n\nrobert-push → mock APNs over HTTP/2 + TLS on 127.0.0.1: {} iPhones \
             registered through robert-server's pushInfo forwarding.\n\n",
            self.iphones
        );
        for (day, n) in &self.accepted_per_day {
            t.push_str(&format!("- day {}: {n} silent pushes accepted\n", day + 1));
        }
        t.push_str(&format!(
            "- {} token deactivated (app deleted: APNs 410), {} failed; every request carried a \
             valid ES256 provider token, apns-push-type background, priority 5, \
             content-available 1: {}\n",
            self.deactivated,
            self.failed,
            if self.all_valid { "yes" } else { "NO" }
        ));
        t
    }
}

/// Runs the push part for `iphones` phones over `days` days from
/// `start_unix` (midnight UTC of the scenario's first day).
pub(crate) fn run(iphones: usize, days: i64, start_unix: i64) -> anyhow::Result<PushDemo> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(iphones, days, start_unix))
}

async fn run_async(iphones: usize, days: i64, start_unix: i64) -> anyhow::Result<PushDemo> {
    let clock = ManualClock::new(start_unix);
    let local = LocalApns::start(Arc::new(clock.clone()))
        .await
        .context("mock APNs")?;
    let svc = PushService::open(&local.config, Arc::new(clock.clone()))
        .await
        .context("push service")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let api = tokio::spawn(axum::serve(listener, svc.router()).into_future());

    // robert-server's forwarding of pushInfo, pointed at the service.
    let client = PushClient::new(&PushConfig {
        url: format!("http://{addr}/internal/api/v1"),
        ..PushConfig::default()
    })?;
    let tokens: Vec<String> = (0..iphones)
        .map(|i| format!("{:064x}", 0x1f0_u64 + i as u64))
        .collect();
    for (i, token) in tokens.iter().enumerate() {
        client.register(PushRegistration {
            token: token.clone(),
            locale: "fr-FR".into(),
            timezone: ZONES[i % ZONES.len()].into(),
        });
    }
    if let Some(gone) = tokens.last() {
        local.mock.set_unregistered(gone);
    }
    // The forwarding is fire-and-forget: wait (≤ 10 s) for every token.
    for _ in 0..1000 {
        if svc.store().counts().await?.1 >= iphones as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let registered = usize::try_from(svc.store().counts().await?.1).unwrap_or(0);

    let mut accepted_per_day = BTreeMap::new();
    let (mut deactivated, mut failed) = (0, 0);
    for day in 0..days {
        for _ in 0..(24 * 6) {
            clock.advance_secs(600);
            let scan = svc.scan().await?;
            *accepted_per_day.entry(day).or_insert(0) += scan.accepted;
            deactivated += scan.invalid;
            failed += scan.failed;
        }
    }
    let all_valid = local
        .mock
        .received()
        .iter()
        .all(|r| r.status == 200 || (r.status == 410 && Some(&r.token) == tokens.last()));
    api.abort();
    Ok(PushDemo {
        iphones: registered,
        accepted_per_day,
        deactivated,
        failed,
        all_valid,
    })
}
