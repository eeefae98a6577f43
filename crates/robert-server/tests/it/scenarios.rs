//! The reference's end-to-end acceptance scenarios (server-api.md §7,
//! robert-e2e-tests), driven through the real API, the risk batch and a
//! controllable clock, on SQLite and PostgreSQL.
//!
//! As in the reference's stack: 20-day tuple bundles and no status rate
//! limit (`ESR_LIMIT=0`). Phones emit one HELLO per second and record each
//! other's with an RSSI uniform in [−10, 2]; "X declares sick" uploads every
//! HELLO X heard with a valid submission code.

use robert_core::time::{NtpSeconds, UtcDate};
use serde_json::Value;

use super::phone::{Phone, proximity, valid_code};
use super::support::{TestApp, today_noon};

const MIN: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

/// `today_noon() − secs`.
fn ago(secs: u64) -> NtpSeconds {
    today_noon().minus(secs)
}

/// "N d at HH:MM": (now − N days) truncated to the day, plus HH:MM.
fn days_ago_at(days: u64, h: u64, m: u64) -> NtpSeconds {
    today_noon()
        .utc_midnight()
        .minus(days * DAY)
        .plus(h * HOUR + m * MIN)
}

async fn apps(label: &str) -> Vec<TestApp> {
    TestApp::all_with(label, |c| {
        c.protocol.bundle_days = 20;
        c.protocol.status_min_epoch_gap = 0;
    })
    .await
}

/// Registers phones at time `t`, then puts the clock back to "today".
async fn register_at(app: &TestApp, t: NtpSeconds, names: &[&str]) -> Vec<Phone> {
    app.set_now(t);
    let mut phones = Vec::new();
    for n in names {
        phones.push(Phone::register(app, n).await);
    }
    app.set_now(today_noon());
    phones
}

async fn declare(app: &TestApp, phone: &mut Phone) {
    let r = phone.report(app, &valid_code()).await;
    assert_eq!(r.status, 200, "{} declares: {:?}", phone.name, r.json);
    assert_eq!(r.json["success"], true);
    assert_eq!(r.json["message"], "Successful operation");
    phone.heard.clear();
}

fn kpi(k: &Value, name: &str) -> i64 {
    k[name].as_i64().unwrap()
}

async fn assert_risk(app: &TestApp, phone: &mut Phone, expected: u64, ctx: &str) {
    assert_eq!(
        phone.risk(app).await,
        expected,
        "{ctx}: {} on {}",
        phone.name,
        app.backend()
    );
}

// ----------------------------------------------------- positive-declaration

#[tokio::test]
async fn positive_declaration_basic_scenarios() {
    for app in apps("positive").await {
        // 1. John and Sarah 60 min; John declares → Sarah at risk; 4. John is not.
        let [mut john, mut sarah] =
            <[Phone; 2]>::try_from(register_at(&app, ago(18 * DAY), &["john", "sarah"]).await)
                .unwrap();
        proximity(&app, &mut [&mut john, &mut sarah], ago(HOUR), HOUR);
        declare(&app, &mut john).await;
        // 2. John2, Sarah2, Paul2 60 min; John2 declares → both at risk.
        let [mut john2, mut sarah2, mut paul2] = <[Phone; 3]>::try_from(
            register_at(&app, ago(18 * DAY), &["john2", "sarah2", "paul2"]).await,
        )
        .unwrap();
        proximity(
            &app,
            &mut [&mut john2, &mut sarah2, &mut paul2],
            ago(HOUR),
            HOUR,
        );
        declare(&app, &mut john2).await;
        // 3. Sarah3 and Paul3 60 min; John3 (no contact with them) declares → neither at risk.
        let [mut john3, mut sarah3, mut paul3] = <[Phone; 3]>::try_from(
            register_at(&app, ago(18 * DAY), &["john3", "sarah3", "paul3"]).await,
        )
        .unwrap();
        proximity(&app, &mut [&mut sarah3, &mut paul3], ago(HOUR), HOUR);
        declare(&app, &mut john3).await;
        // 5. John5, Sarah5, Paul5 for 5 minutes; John5 declares → neither at risk.
        let [mut john5, mut sarah5, mut paul5] = <[Phone; 3]>::try_from(
            register_at(&app, ago(18 * DAY), &["john5", "sarah5", "paul5"]).await,
        )
        .unwrap();
        proximity(
            &app,
            &mut [&mut john5, &mut sarah5, &mut paul5],
            ago(10 * MIN),
            5 * MIN,
        );
        declare(&app, &mut john5).await;

        let report = app.batch().await;
        assert_eq!(report.contacts_rejected.total(), 0, "{report:?}");
        assert_risk(&app, &mut sarah, 4, "1").await;
        assert_risk(&app, &mut john, 0, "4: the reporter").await;
        assert_risk(&app, &mut sarah2, 4, "2").await;
        assert_risk(&app, &mut paul2, 4, "2").await;
        assert_risk(&app, &mut sarah3, 0, "3").await;
        assert_risk(&app, &mut paul3, 0, "3").await;
        assert_risk(&app, &mut sarah5, 0, "5: 5 minutes").await;
        assert_risk(&app, &mut paul5, 0, "5: 5 minutes").await;
        app.cleanup().await;
    }
}

#[tokio::test]
async fn positive_declaration_n_days_ago() {
    // (contact start before now, expected risk level of the contact)
    let outline: Vec<(u64, u64)> = [1, 2, 3, 4, 5, 6, 7]
        .iter()
        .map(|d| (d * DAY, 4))
        .chain([(7 * DAY + 30 * MIN, 4), (7 * DAY + HOUR + 15 * MIN, 0)])
        .chain((8..=16).map(|d| (d * DAY, 0)))
        .collect();
    for app in apps("ndaysago").await {
        let mut pairs = Vec::new();
        for (i, (x, expected)) in outline.iter().enumerate() {
            let [mut john, mut sarah] = <[Phone; 2]>::try_from(
                register_at(
                    &app,
                    ago(18 * DAY),
                    &[&format!("john{i}"), &format!("sarah{i}")],
                )
                .await,
            )
            .unwrap();
            proximity(&app, &mut [&mut john, &mut sarah], ago(*x), HOUR);
            declare(&app, &mut sarah).await;
            pairs.push((john, *x, *expected));
        }
        let report = app.batch().await;
        assert_eq!(report.contacts_rejected.total(), 0, "{report:?}");
        for (mut john, x, expected) in pairs {
            let ctx = format!("contact {}d {}min ago", x / DAY, (x % DAY) / MIN);
            assert_risk(&app, &mut john, expected, &ctx).await;
        }
        app.cleanup().await;
    }
}

#[tokio::test]
async fn positive_declaration_48_hours_three_days_ago() {
    for app in apps("48h").await {
        let [mut john, mut sarah, mut paul] = <[Phone; 3]>::try_from(
            register_at(&app, ago(18 * DAY), &["john", "sarah", "paul"]).await,
        )
        .unwrap();
        proximity(
            &app,
            &mut [&mut john, &mut sarah, &mut paul],
            ago(3 * DAY),
            48 * HOUR,
        );
        assert_eq!(sarah.heard_count(), 2 * 48 * 3600);
        declare(&app, &mut sarah).await;
        let report = app.batch().await;
        assert_eq!(report.hellos_processed, 2 * 48 * 3600);
        assert_risk(&app, &mut john, 4, "48 h").await;
        assert_risk(&app, &mut paul, 4, "48 h").await;
        assert_risk(&app, &mut sarah, 0, "the reporter").await;
        app.cleanup().await;
    }
}

// ------------------------------------------------------ time-risk-evolution

#[tokio::test]
async fn time_risk_evolution() {
    // (contact time, still at risk today?)
    let outline = [
        (ago(15 * DAY), 0),
        (ago(10 * DAY), 0),
        (ago(8 * DAY), 0),
        (days_ago_at(8, 23, 59), 0),
        (days_ago_at(6, 0, 1), 4),
        (ago(6 * DAY), 4),
        (ago(2 * DAY), 4),
        (ago(DAY), 4),
    ];
    for app in apps("timerisk").await {
        let mut pairs = Vec::new();
        for (i, _) in outline.iter().enumerate() {
            let v = register_at(
                &app,
                ago(15 * DAY),
                &[&format!("sarah{i}"), &format!("john{i}")],
            )
            .await;
            pairs.push(<[Phone; 2]>::try_from(v).unwrap());
        }
        // Oldest first, each at its own time: contact, John declares, batch.
        for (i, (t, _)) in outline.iter().enumerate() {
            app.set_now(*t);
            let [sarah, john] = &mut pairs[i];
            proximity(&app, &mut [sarah, john], *t, HOUR);
            declare(&app, john).await;
            let report = app.batch().await;
            assert_eq!(
                report.registrations_at_risk, 1,
                "contact at {t}: {report:?}"
            );
        }
        app.set_now(today_noon());
        app.batch().await;
        for (i, (t, expected)) in outline.iter().enumerate() {
            let [sarah, _] = &mut pairs[i];
            let ctx = format!("contact at {} (UTC day {})", t.get(), UtcDate::of(*t));
            assert_risk(&app, sarah, *expected, &ctx).await;
        }
        app.cleanup().await;
    }
}

// ------------------------------------------------------------------ privacy

#[tokio::test]
async fn privacy_purge_after_fifteen_days() {
    for app in apps("privacy").await {
        let [mut sarah, mut john] =
            <[Phone; 2]>::try_from(register_at(&app, ago(15 * DAY), &["sarah", "john"]).await)
                .unwrap();
        app.set_now(ago(15 * DAY));
        proximity(&app, &mut [&mut sarah, &mut john], ago(15 * DAY), HOUR);
        declare(&app, &mut john).await;
        app.batch().await;
        let id = sarah.id_a(&app);
        assert!(!app.state.store.exposures(id).await.unwrap().is_empty());
        app.set_now(today_noon());
        app.batch().await;
        let r = sarah.status(&app).await;
        assert_eq!(r.json["riskLevel"], 0);
        assert!(r.json.get("lastContactDate").is_none());
        assert!(
            app.state.store.exposures(id).await.unwrap().is_empty(),
            "exposures purged"
        );
        app.cleanup().await;
    }
}

// ------------------------------------------------- delete-exposure-history

#[tokio::test]
async fn delete_exposure_history() {
    for app in apps("deletehistory").await {
        let [mut paul, mut sarah, mut ines] = <[Phone; 3]>::try_from(
            register_at(&app, ago(15 * DAY), &["paul", "sarah", "ines"]).await,
        )
        .unwrap();
        // 1. 15 minutes an hour ago: exposed, below the threshold.
        proximity(&app, &mut [&mut paul, &mut sarah], ago(HOUR), 15 * MIN);
        declare(&app, &mut paul).await;
        app.batch().await;
        let id = sarah.id_a(&app);
        assert!(!app.state.store.exposures(id).await.unwrap().is_empty());
        let r = sarah.delete_history(&app).await;
        assert_eq!((r.status, r.json["success"].as_bool()), (200, Some(true)));
        let s = sarah.status(&app).await;
        assert_eq!(s.json["riskLevel"], 0);
        assert!(s.json.get("lastContactDate").is_none());
        assert!(app.state.store.exposures(id).await.unwrap().is_empty());
        // 2. No history at all.
        let r = ines.delete_history(&app).await;
        assert_eq!((r.status, r.json["success"].as_bool()), (200, Some(true)));
        assert_eq!(ines.risk(&app).await, 0);
        assert!(
            app.state
                .store
                .exposures(ines.id_a(&app))
                .await
                .unwrap()
                .is_empty()
        );
        app.cleanup().await;
    }
}

// ---------------------------------------------------------------- unregister

#[tokio::test]
async fn unregister_scenarios() {
    for app in apps("unregister").await {
        let [mut sarah, mut paul, mut sarah2] = <[Phone; 3]>::try_from(
            register_at(&app, ago(15 * DAY), &["sarah", "paul", "sarah2"]).await,
        )
        .unwrap();
        // 1. Sarah unregisters: her status is 430 and her registration is gone.
        let id = sarah.id_a(&app);
        let r = sarah.unregister(&app).await;
        assert_eq!((r.status, r.json["success"].as_bool()), (200, Some(true)));
        assert_eq!(sarah.status(&app).await.status, 430);
        assert!(app.registration(id).await.is_none());
        // 2. Paul and Sarah2 60 min 5 days ago; Sarah2 unregisters; Paul declares:
        //    the batch discards the contact ("could not be validated").
        proximity(&app, &mut [&mut paul, &mut sarah2], ago(5 * DAY), HOUR);
        assert_eq!(sarah2.unregister(&app).await.status, 200);
        declare(&app, &mut paul).await;
        let report = app.batch().await;
        assert_eq!(
            report.contacts_rejected.unknown_registration, 4,
            "one contact per epoch of the hour: {report:?}"
        );
        assert_eq!(report.contacts_scored, 0);
        assert_risk(&app, &mut paul, 0, "the reporter").await;
        app.cleanup().await;
    }
}

// ---------------------------------------------------------------------- kpis

const EXPIRED: &str = "usersAboveRiskThresholdButRetentionPeriodExpired";

/// KPI scenarios 1–4: contacts `days` ago, Paul declares today.
async fn retention_kpi(app: &TestApp, days: u64, others: &[&str]) -> i64 {
    let before = app.kpis().await;
    let mut names = vec!["paul"];
    names.extend_from_slice(others);
    let names: Vec<String> = names
        .iter()
        .map(|n| format!("{n}-{days}-{}", others.len()))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut phones = register_at(app, ago(days * DAY), &refs).await;
    app.set_now(ago(days * DAY));
    {
        let mut group: Vec<&mut Phone> = phones.iter_mut().collect();
        proximity(app, &mut group, ago(days * DAY), HOUR);
    }
    app.batch().await;
    app.set_now(today_noon());
    declare(app, &mut phones[0]).await;
    app.batch().await;
    kpi(&app.kpis().await, EXPIRED) - kpi(&before, EXPIRED)
}

#[tokio::test]
async fn kpi_retention_expired() {
    for app in apps("kpiretention").await {
        assert_eq!(retention_kpi(&app, 8, &["sarah"]).await, 1, "1: 8 days ago");
        assert_eq!(retention_kpi(&app, 6, &["sarah"]).await, 0, "2: 6 days ago");
        assert_eq!(
            retention_kpi(&app, 8, &["ines", "hugo", "sarah"]).await,
            3,
            "3: 8 days ago, three contacts"
        );
        assert_eq!(
            retention_kpi(&app, 6, &["ines", "hugo", "sarah"]).await,
            0,
            "4: 6 days ago, three contacts"
        );
        app.cleanup().await;
    }
}

#[tokio::test]
async fn kpi_notified_users_and_reports() {
    for app in apps("kpinotified").await {
        // 5. Paul and Hugo 60 min; Paul declares; Hugo at risk → notifiedUsers +1.
        let before = app.kpis().await;
        let [mut paul, mut hugo, mut sarah] = <[Phone; 3]>::try_from(
            register_at(&app, ago(15 * DAY), &["paul", "hugo", "sarah"]).await,
        )
        .unwrap();
        proximity(&app, &mut [&mut paul, &mut hugo], ago(2 * HOUR), HOUR);
        declare(&app, &mut paul).await;
        app.batch().await;
        assert_risk(&app, &mut hugo, 4, "5").await;
        let after = app.kpis().await;
        assert_eq!(
            kpi(&after, "notifiedUsers") - kpi(&before, "notifiedUsers"),
            1
        );
        assert_eq!(
            kpi(&after, "alertedUsers") - kpi(&before, "alertedUsers"),
            1
        );
        assert_eq!(
            kpi(&after, "reportsCount") - kpi(&before, "reportsCount"),
            1,
            "7: one report"
        );
        // 6. Then Sarah and Hugo 60 min, Hugo declares, batch: Hugo still at
        //    risk and notifiedUsers unchanged.
        proximity(&app, &mut [&mut sarah, &mut hugo], ago(HOUR), HOUR);
        declare(&app, &mut hugo).await;
        app.batch().await;
        assert_risk(&app, &mut hugo, 4, "6").await;
        assert_risk(&app, &mut sarah, 4, "6: Sarah met Hugo").await;
        let last = app.kpis().await;
        assert_eq!(
            kpi(&last, "notifiedUsers") - kpi(&after, "notifiedUsers"),
            1,
            "Sarah only, not Hugo again"
        );
        assert_eq!(kpi(&last, "reportsCount") - kpi(&after, "reportsCount"), 1);
        // Batch KPI, counted before Sarah's status: at risk and never
        // notified: Sarah, and Paul (Hugo's upload held Paul's HELLOs too).
        assert_eq!(kpi(&last, "infectedUsersNotNotified"), 2);
        app.cleanup().await;
    }
}

// ---------------------------------------------------------------- cnam-token

fn token_claims(app: &TestApp, token: &str) -> Value {
    let pem = app
        .state
        .tokens
        .signers()
        .iter()
        .find(|(n, _)| *n == "declaration")
        .map(|(_, s)| s.public_key_pem())
        .unwrap();
    robert_server::jwt::verify(token, robert_server::config::JwtAlgorithm::RS256, &pem).unwrap()
}

/// Asserts lastContactDate and the token's lastContactDateTimestamp are
/// within a day of `expected`'s date.
fn assert_last_contact_near(app: &TestApp, status: &Value, expected: NtpSeconds, ctx: &str) {
    let last: u64 = status["lastContactDate"].as_str().unwrap().parse().unwrap();
    let claims = token_claims(app, status["declarationToken"].as_str().unwrap());
    assert_eq!(claims["lastContactDateTimestamp"], last, "{ctx}");
    assert_eq!(last % DAY, 0, "{ctx}: a UTC midnight");
    let d = UtcDate::of(NtpSeconds(last)).days_since_unix_epoch()
        - UtcDate::of(expected).days_since_unix_epoch();
    assert!(
        d.abs() <= 1,
        "{ctx}: last contact {} vs expected {}",
        UtcDate::of(NtpSeconds(last)),
        UtcDate::of(expected)
    );
}

#[tokio::test]
async fn cnam_token() {
    for app in apps("cnam").await {
        // 1. Sarah and John 60 min 4 days ago; John declares today.
        let [mut sarah, mut john, mut paul] = <[Phone; 3]>::try_from(
            register_at(&app, ago(15 * DAY), &["sarah", "john", "paul"]).await,
        )
        .unwrap();
        proximity(&app, &mut [&mut sarah, &mut john], ago(4 * DAY), HOUR);
        declare(&app, &mut john).await;
        app.batch().await;
        let s = sarah.status(&app).await;
        assert_eq!(s.json["riskLevel"], 4);
        assert_last_contact_near(&app, &s.json, ago(4 * DAY), "1");

        // 2. Sarah2 and John2 60 min 7 days ago, John2 declared then; Sarah2
        //    and Paul 60 min 2 hours ago; Paul declares today.
        let [mut sarah2, mut john2] =
            <[Phone; 2]>::try_from(register_at(&app, ago(15 * DAY), &["sarah2", "john2"]).await)
                .unwrap();
        app.set_now(ago(7 * DAY));
        proximity(&app, &mut [&mut sarah2, &mut john2], ago(7 * DAY), HOUR);
        declare(&app, &mut john2).await;
        app.batch().await;
        let old = sarah2.status(&app).await;
        assert_eq!(old.json["riskLevel"], 4);
        let old_token = old.json["declarationToken"].as_str().unwrap().to_owned();
        app.set_now(today_noon());
        proximity(&app, &mut [&mut sarah2, &mut paul], ago(2 * HOUR), HOUR);
        declare(&app, &mut paul).await;
        app.batch().await;
        let s = sarah2.status(&app).await;
        assert_eq!(s.json["riskLevel"], 4);
        assert_last_contact_near(&app, &s.json, today_noon(), "2");
        let new_claims = token_claims(&app, s.json["declarationToken"].as_str().unwrap());
        assert_ne!(
            new_claims["jti"],
            token_claims(&app, &old_token)["jti"],
            "a new risk, a new token"
        );
        app.cleanup().await;
    }
}
