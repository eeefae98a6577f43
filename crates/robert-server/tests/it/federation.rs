//! Federation end to end: two servers on loopback, France (country code
//! 33 = 0x21) and Belgium (32 = 0x20), sharing K_G, each the other's
//! partner with its own signing key. A French phone and a Belgian phone
//! meet; the Belgian owner reports positive at home; the Belgian batch moves
//! the French contact to its outbox (and scores its own phones' contacts
//! itself), delivery posts it, signed, to the French server, whose batch
//! scores it: the French phone is at risk at its own server. Then forged,
//! tampered, misaddressed and repeated batches. On SQLite and, when
//! reachable, PostgreSQL.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use p256::ecdsa::SigningKey;
use robert_core::time::{NtpSeconds, UtcDate};
use robert_server::config::Config;
use robert_server::federation::outbound::deliver;
use robert_server::federation::wire;
use robert_server::federation::{PartnerConfig, generate_key_pair};
use robert_store::Backend;
use serde_json::{Value, json};

use super::phone::{Phone, proximity, valid_code};
use super::support::{TestApp, test_keys, today_noon};

const FR: u8 = 0x21;
const BE: u8 = 0x20;

/// A key pair written to `dir`: (private key file, public key file, key).
fn key_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf, SigningKey) {
    let (private, public) = generate_key_pair(&mut rand::rng()).unwrap();
    let sk = dir.join(format!("{name}.pem"));
    let pk = dir.join(format!("{name}.pub.pem"));
    std::fs::write(&sk, private.as_bytes()).unwrap();
    std::fs::write(&pk, public.as_bytes()).unwrap();
    let key = robert_server::federation::read_signing_key(&sk).unwrap();
    (sk, pk, key)
}

fn configure(c: &mut Config, own: u8, signing: &Path, partner: u8, url: String, partner_pk: &Path) {
    c.protocol.country_code = own;
    c.batch.country_code = own;
    c.protocol.bundle_days = 20;
    c.protocol.status_min_epoch_gap = 0;
    c.federation.signing_key_file = signing.to_owned();
    c.federation.timeout_secs = 2;
    c.federation.max_body_bytes = 1024 * 1024;
    // Two batches: 2 contacts (1 800 HELLOs) each.
    c.federation.max_hellos_per_batch = 1_000;
    c.federation.partners = vec![PartnerConfig {
        country_code: partner,
        url,
        public_key_file: partner_pk.to_owned(),
    }];
}

/// Serves an app's router on `listener` until the sender is dropped.
fn serve(app: &TestApp, listener: tokio::net::TcpListener) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let state = app.state.clone();
    tokio::spawn(async move {
        robert_server::serve::run(state, listener, None, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    tx
}

/// A signed batch as a partner sends it: (headers, body).
fn signed(key: &SigningKey, origin: u8, body: &Value) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let bytes = serde_json::to_vec(body).unwrap();
    let sig = wire::sign(key, &bytes);
    (
        vec![
            ("content-type", "application/json".into()),
            (wire::ORIGIN_HEADER, origin.to_string()),
            (wire::SIGNATURE_HEADER, sig),
        ],
        bytes,
    )
}

async fn post(
    client: &reqwest::Client,
    addr: SocketAddr,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = client.post(format!("http://{addr}{}", wire::CONTACTS_PATH));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let json = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, json)
}

/// The `/report` form of the contacts a phone heard.
fn contacts_of(phone: &Phone) -> Value {
    phone.report_body("unused")["contacts"].clone()
}

/// One contact of `phone` heard at `t`, in a batch's `contacts` form.
fn contact(phone: &Phone, start: &robert_core::time::ServiceStart, t: NtpSeconds) -> Value {
    let hello = phone.hello_at(start, t);
    json!([{
        "ebid": hello.ebid.to_base64(),
        "ecc": hello.ecc.to_base64(),
        "ids": [{
            "timeCollectedOnDevice": t.get(),
            "timeFromHelloMessage": hello.time.0,
            "mac": hello.mac.to_base64(),
            "rssiCalibrated": -50,
        }],
    }])
}

/// A batch's body.
fn body(id: &str, origin: u8, destination: u8, created: i64, contacts: &Value) -> Value {
    json!({"version": 1, "origin": origin, "destination": destination, "batchId": id,
           "createdAt": created, "contacts": contacts})
}

/// A counter of the app's `/metrics`.
async fn counter(app: &TestApp, name: &str) -> u64 {
    let m = app.get("/metrics").await;
    let text = String::from_utf8_lossy(&m.bytes).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name}: {text}"))
        .parse()
        .unwrap()
}

async fn pending(app: &TestApp) -> u64 {
    app.state.store.pending_contacts().await.unwrap().contacts
}

/// A partner that gives up waiting (its timeout) while this server is
/// still storing its batch: the batch is stored, and counted. The store and
/// the count run in a task of their own; before, the handler was dropped on
/// the closed connection while the SQLite writer still committed the batch,
/// and the counter missed it.
#[tokio::test]
async fn a_batch_stored_after_its_sender_hung_up_is_counted() {
    let dir = std::env::temp_dir().join(format!("robert-fed-hangup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (fr_sk, _, _) = key_pair(&dir, "fr");
    let (_, be_pk, be_key) = key_pair(&dir, "be");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let unused = format!("http://127.0.0.1:9{}", wire::CONTACTS_PATH);
    let fr = TestApp::with_keys(
        Backend::Sqlite,
        "fed-hangup",
        test_keys(UtcDate::of(today_noon())),
        |c| configure(c, FR, &fr_sk, BE, unused, &be_pk),
    )
    .await
    .unwrap();
    let _server = serve(&fr, listener);
    fr.set_now(today_noon().minus(3 * 3600));
    let pierre = Phone::register(&fr, "pierre").await;
    fr.set_now(today_noon());
    let t = today_noon().minus(600);
    let batch = body(
        "hangup-1",
        BE,
        FR,
        fr.state.clock.now_unix(),
        &contact(&pierre, &fr.state.start, t),
    );
    let (headers, bytes) = signed(&be_key, BE, &batch);

    // Another connection holds SQLite's write lock: the store's writer
    // waits for it, and the partner gives up first.
    let url = fr.db.as_ref().unwrap().url().to_owned();
    let mut holder = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(500))
        .build()
        .unwrap();
    let mut req = client.post(format!("http://{addr}{}", wire::CONTACTS_PATH));
    for (k, v) in &headers {
        req = req.header(*k, v);
    }
    let sent = req.body(bytes).send().await;
    assert!(sent.is_err_and(|e| e.is_timeout()), "the partner hangs up");
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();

    // The writer now commits the batch; the counter follows it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while pending(&fr).await == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(pending(&fr).await, 1, "the batch is stored");
    while counter(&fr, "robert_federation_batches_received_total").await == 0
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        counter(&fr, "robert_federation_batches_received_total").await,
        1,
        "and counted"
    );
    fr.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_foreign_positive_alerts_a_home_user_through_federation() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        scenario(backend).await;
    }
}

async fn scenario(backend: Backend) {
    let dir = std::env::temp_dir().join(format!(
        "robert-federation-{}-{backend}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (fr_sk, fr_pk, fr_key) = key_pair(&dir, "fr");
    let (be_sk, be_pk, be_key) = key_pair(&dir, "be");
    let fr_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let be_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fr_addr = fr_listener.local_addr().unwrap();
    let be_addr = be_listener.local_addr().unwrap();
    let url = |a: SocketAddr| format!("http://{a}{}", wire::CONTACTS_PATH);

    // Both servers share K_G; each has its own K_S, KEK and registration key.
    let today = UtcDate::of(today_noon());
    let fr_keys = test_keys(today);
    let mut be_keys = test_keys(today);
    be_keys.key_g = fr_keys.key_g.clone();
    let Some(fr) = TestApp::with_keys(backend, "fed-fr", fr_keys, |c| {
        configure(c, FR, &fr_sk, BE, url(be_addr), &be_pk);
    })
    .await
    else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let be = TestApp::with_keys(backend, "fed-be", be_keys, |c| {
        configure(c, BE, &be_sk, FR, url(fr_addr), &fr_pk);
    })
    .await
    .unwrap();
    let _be_server = serve(&be, be_listener);

    // A French visitor meets a Belgian for an hour, who also meets another
    // Belgian; two French phones meet at home.
    let start = today_noon().minus(3 * 3600);
    fr.set_now(start);
    be.set_now(start);
    let mut marie = Phone::register(&fr, "marie").await;
    let mut pierre = Phone::register(&fr, "pierre").await;
    let mut jan = Phone::register(&be, "jan").await;
    let mut lotte = Phone::register(&be, "lotte").await;
    fr.set_now(today_noon());
    be.set_now(today_noon());
    proximity(&be, &mut [&mut jan, &mut marie, &mut lotte], start, 3600);
    proximity(&fr, &mut [&mut marie, &mut pierre], start.plus(7200), 600);
    let jan_contacts = contacts_of(&jan);
    assert_eq!(
        jan_contacts.as_array().unwrap().len(),
        2 * 4,
        "marie's and lotte's EBIDs"
    );

    // Jan reports positive at home.
    let r = jan.report(&be, &valid_code()).await;
    assert_eq!(r.status, 200, "{r:?}");

    // The Belgian batch scores Lotte and moves Marie's contacts to its outbox.
    let report = be.batch().await;
    assert_eq!(report.contacts_forwarded, 4, "{report:?}");
    assert_eq!(report.contacts_rejected.foreign_country, 0, "{report:?}");
    assert!(report.contacts_scored >= 4, "{report:?}");
    assert_eq!(be.state.store.outbox_counts().await.unwrap(), vec![(FR, 4)]);
    assert_eq!(
        lotte.risk(&be).await,
        4,
        "lotte is alerted by her own server"
    );

    // The French server is not listening yet: the delivery fails and the
    // contacts stay in the outbox.
    let d = deliver(
        be.state.store.as_ref(),
        &be.state.federation,
        be.state.clock.now_unix(),
        true,
    )
    .await
    .unwrap();
    assert_eq!((d.batches_sent, d.failures), (0, 1), "{d:?}");
    assert_eq!(d.pending, vec![(FR, 4)]);

    // Once it is, the batch is delivered and removed from the outbox.
    let _fr_server = serve(&fr, fr_listener);
    let d = deliver(
        be.state.store.as_ref(),
        &be.state.federation,
        be.state.clock.now_unix(),
        true,
    )
    .await
    .unwrap();
    assert_eq!(
        (d.batches_sent, d.contacts_sent, d.failures),
        (2, 4, 0),
        "{d:?}"
    );
    assert!(d.pending.is_empty(), "{d:?}");
    assert_eq!(pending(&fr).await, 4);

    // The French batch scores them as its own: Marie is at risk at home.
    // Nothing of France's own phones goes anywhere.
    let report = fr.batch().await;
    assert_eq!(report.contacts_scored, 4, "{report:?}");
    assert_eq!(report.contacts_forwarded, 0, "{report:?}");
    assert_eq!(
        marie.risk(&fr).await,
        4,
        "marie is alerted by the French server"
    );
    assert_eq!(pierre.risk(&fr).await, 0);
    assert_eq!(jan.risk(&be).await, 0);
    let r = pierre.report(&fr, &valid_code()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let report = fr.batch().await;
    assert_eq!(report.contacts_forwarded, 0, "{report:?}");
    assert!(fr.state.store.outbox_counts().await.unwrap().is_empty());
    let d = deliver(
        fr.state.store.as_ref(),
        &fr.state.federation,
        fr.state.clock.now_unix(),
        true,
    )
    .await
    .unwrap();
    assert_eq!(d.batches_sent, 0, "{d:?}");

    // Hand-made batches to the French server.
    let client = reqwest::Client::new();
    let now = fr.state.clock.now_unix();
    let t = today_noon().minus(600);
    let french_contact = contact(&pierre, &fr.state.start, t);
    let belgian = contact(&lotte, &be.state.start, t);
    let before = pending(&fr).await;

    // A batch signed by Belgium: stored once; its repeat is acknowledged, not stored.
    let (h, b) = signed(&be_key, BE, &body("repeat-1", BE, FR, now, &french_contact));
    let (status, json) = post(&client, fr_addr, &h, b.clone()).await;
    assert_eq!(
        (status, json["status"].as_str()),
        (200, Some("stored")),
        "{json}"
    );
    assert_eq!(pending(&fr).await, before + 1);
    let (h2, b2) = signed(
        &be_key,
        BE,
        &body("repeat-1", BE, FR, now + 5, &french_contact),
    );
    let (status, json) = post(&client, fr_addr, &h2, b2).await;
    assert_eq!(
        (status, json["status"].as_str()),
        (200, Some("duplicate")),
        "{json}"
    );
    let (status, _) = post(&client, fr_addr, &h, b).await;
    assert_eq!(status, 200);
    assert_eq!(
        pending(&fr).await,
        before + 1,
        "a repeated batch is not stored twice"
    );
    // The same id with other contacts: refused.
    let (h, b) = signed(&be_key, BE, &body("repeat-1", BE, FR, now, &json!([])));
    assert_eq!(post(&client, fr_addr, &h, b).await.0, 409);

    // Forged and tampered batches: refused, nothing stored.
    let forger = SigningKey::from_slice(&[9u8; 32]).unwrap();
    let (h, b) = signed(&forger, BE, &body("forged-1", BE, FR, now, &french_contact));
    assert_eq!(
        post(&client, fr_addr, &h, b).await.0,
        401,
        "forged signature"
    );
    let (h, mut b) = signed(&be_key, BE, &body("tamper-1", BE, FR, now, &french_contact));
    let at = b.len() - 10;
    b[at] = if b[at] == b'1' { b'2' } else { b'1' };
    assert_eq!(post(&client, fr_addr, &h, b).await.0, 401, "tampered body");
    let (mut h, b) = signed(&be_key, BE, &body("nosig-1", BE, FR, now, &french_contact));
    h.retain(|(k, _)| *k != wire::SIGNATURE_HEADER);
    assert_eq!(post(&client, fr_addr, &h, b).await.0, 401, "no signature");
    let (h, b) = signed(
        &be_key,
        49,
        &body("stranger-1", 49, FR, now, &french_contact),
    );
    assert_eq!(post(&client, fr_addr, &h, b).await.0, 403, "not a partner");
    // France's own key, claiming to be Belgium.
    let (h, b) = signed(&fr_key, BE, &body("self-1", BE, FR, now, &french_contact));
    assert_eq!(
        post(&client, fr_addr, &h, b).await.0,
        401,
        "signed by another key"
    );
    let (h, b) = signed(&be_key, BE, &body("origin-1", FR, FR, now, &french_contact));
    assert_eq!(post(&client, fr_addr, &h, b).await.0, 403, "origin differs");
    let (h, b) = signed(&be_key, BE, &body("dest-1", BE, 49, now, &french_contact));
    assert_eq!(
        post(&client, fr_addr, &h, b).await.0,
        403,
        "addressed to another country"
    );
    let (h, b) = signed(
        &be_key,
        BE,
        &body("stale-1", BE, FR, now - 3600, &french_contact),
    );
    assert_eq!(post(&client, fr_addr, &h, b).await.0, 401, "stale");
    let (h, b) = signed(&be_key, BE, &body("belgian-1", BE, FR, now, &belgian));
    let (status, json) = post(&client, fr_addr, &h, b).await;
    assert_eq!(
        status, 400,
        "a Belgian phone's contact sent to France: {json}"
    );
    let (h, b) = signed(&be_key, BE, &body("bad id!", BE, FR, now, &french_contact));
    assert_eq!(post(&client, fr_addr, &h, b).await.0, 400, "batch id");
    let (h, _) = signed(&be_key, BE, &json!({}));
    let garbage = b"{\"version\":1,\"contacts\":[{\"ebid\":7}]}".to_vec();
    let sig = wire::sign(&be_key, &garbage);
    let mut h = h;
    h.retain(|(k, _)| *k != wire::SIGNATURE_HEADER);
    h.push((wire::SIGNATURE_HEADER, sig));
    assert_eq!(post(&client, fr_addr, &h, garbage).await.0, 400, "bad body");
    let huge = vec![b' '; fr.state.config.federation.max_body_bytes + 1];
    let (h, _) = signed(&be_key, BE, &json!({}));
    assert_eq!(post(&client, fr_addr, &h, huge).await.0, 413, "too large");
    assert_eq!(pending(&fr).await, before + 1, "nothing refused was stored");

    // The counters.
    assert_eq!(
        counter(&fr, "robert_federation_batches_received_total").await,
        3
    );
    // The failed delivery's request may be answered too once the server
    // listens (it waited in the listen backlog): then as a duplicate.
    assert!((2..=3).contains(&counter(&fr, "robert_federation_batches_duplicate_total").await));
    assert_eq!(
        counter(&fr, "robert_federation_batches_refused_total").await,
        12
    );

    fr.cleanup().await;
    be.cleanup().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
