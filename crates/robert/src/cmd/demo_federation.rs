//! The federation part of `robert demo`: a border town, two servers.
//!
//! Menen (Belgium) and Halluin (France) face each other across the Lys.
//! Two ROBERT servers run on 127.0.0.1, assembled by
//! [`robert_server::serve::ServerBuilder`] and served by
//! [`robert_server::serve::run`] as `robert serve` does, each with its
//! embedded SQLite store in a temporary directory: Belgium (country code
//! 32) and France (33), one shared K_G, each with its own federation
//! signing key and the other configured as its partner
//! (docs/federation.md). Belgium's code service runs inside its server, as
//! with `robert serve --codes-config`.
//!
//! A handful of real SDK phones ([`robert_client::Phone`]) register over
//! HTTP with their country's server. The encounters are **scripted** (who
//! meets whom, when, how long, at which signal strength), not the town's
//! radio model: each phone builds its BLE payload on its own clock and the
//! others record it. A Belgian tests positive and reports with a doctor's
//! short code to the Belgian server; the Belgian batch scores its own
//! phones' contacts and moves the French phones' ones to its outbox; the
//! delivery posts them, signed, to the French server; the French batch
//! scores them; every phone asks its status. The alerts are compared with
//! the script's ground truth, and a forged batch (signed with a key France
//! does not know) must be refused and store nothing.
//!
//! Everything runs on one manual clock (servers and code service) and one
//! manual clock per phone, set to the scripted instants.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::http;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use robert_client::{
    DeviceModel, FixedCaptchaAnswer, ManualClock, NullStorage, Phone, PhoneConfig, ReportBasis,
    ReqwestTransport, RetryPolicy, Transport as _,
};
use robert_core::hello::Hello;
use robert_core::time::{NtpSeconds, UtcDate};
use robert_server::config::{CaptchaMode, Config, JwtAlgorithm};
use robert_server::federation::outbound::deliver;
use robert_server::federation::{PartnerConfig, generate_key_pair, read_signing_key, wire};
use robert_server::keystore::KeySet;
use robert_server::serve::ServerBuilder;
use robert_server::state::AppState;
use serde_json::json;
use tokio::sync::oneshot;

/// Belgium's country code (0x20).
const BE: u8 = 32;
/// France's country code (0x21).
const FR: u8 = 33;

/// Monday 16 March 2026, 00:00 UTC: the first day of the script.
const MONDAY_UNIX: i64 = 1_773_619_200;

/// Seconds between two HELLOs a phone records of another during an
/// encounter (both directions).
const HELLO_EVERY_SECS: u64 = 5;

/// Ground truth: at risk after at least this long with the positive case
/// at close range (the "15 minutes, close contact" definition).
const TRUTH_MINUTES: u64 = 15;

/// The people of the script: (name, country). Jan is the positive case.
const PEOPLE: [(&str, u8); 8] = [
    ("Jan", BE),
    ("Lotte", BE),
    ("Wout", BE),
    ("Fien", BE),
    ("Marie", FR),
    ("Pierre", FR),
    ("Chloé", FR),
    ("Hugo", FR),
];

/// Index of the positive case in [`PEOPLE`].
const POSITIVE: usize = 0;

/// One scripted encounter: everyone in `who` hears everyone else.
struct Encounter {
    /// What happened, for the report.
    what: &'static str,
    /// Indices in [`PEOPLE`].
    who: &'static [usize],
    /// Start, in minutes after Monday 00:00 UTC.
    at_min: u64,
    /// Duration in minutes.
    minutes: u64,
    /// Raw RSSI every phone measures (dBm).
    rssi: i16,
    /// Close range (counts for the ground truth).
    close: bool,
}

/// Monday, in Menen and Halluin.
const SCRIPT: [Encounter; 4] = [
    Encounter {
        what: "Jan drives Marie and Pierre to the factory in Halluin (08:00, 30 min, in the car)",
        who: &[0, 4, 5],
        at_min: 8 * 60,
        minutes: 30,
        rssi: -62,
        close: true,
    },
    Encounter {
        what: "Jan buys bread at Chloé's bakery (12:00, 2 min, across the counter)",
        who: &[0, 6],
        at_min: 12 * 60,
        minutes: 2,
        rssi: -72,
        close: true,
    },
    Encounter {
        what: "Wout and Hugo have lunch together in Menen (12:30, 40 min)",
        who: &[2, 7],
        at_min: 12 * 60 + 30,
        minutes: 40,
        rssi: -60,
        close: true,
    },
    Encounter {
        what: "Jan spends the evening at home with Lotte (18:30, 60 min)",
        who: &[0, 1],
        at_min: 18 * 60 + 30,
        minutes: 60,
        rssi: -58,
        close: true,
    },
];

/// Alerts against the ground truth in one country.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Confusion {
    /// Phones (the positive case excluded).
    pub phones: usize,
    /// At risk and alerted.
    pub tp: usize,
    /// Alerted, not at risk.
    pub fp: usize,
    /// At risk, not alerted.
    pub fn_: usize,
}

/// What one phone ended with.
#[derive(Clone, Debug)]
pub(crate) struct PhoneOutcome {
    /// The person.
    pub name: &'static str,
    /// Country of its server.
    pub country: u8,
    /// Ground truth: at risk.
    pub at_risk: bool,
    /// The risk level its server answered (4: at risk).
    pub risk_level: f64,
}

/// What the federation part did.
#[derive(Debug)]
pub(crate) struct FederationDemo {
    /// Contacts (EBID groups) the positive case uploaded, by country of
    /// the phone heard.
    pub uploaded: BTreeMap<u8, u64>,
    /// The Belgian batch: contacts moved to the outbox for France.
    pub forwarded: u64,
    /// The Belgian batch: contacts scored at home.
    pub scored_at_home: u64,
    /// Contacts left in the Belgian outbox for Belgium itself (must be none).
    pub outbox_own_country: u64,
    /// Signed batches delivered to France, and their contacts.
    pub batches_sent: u64,
    /// Contacts delivered to France.
    pub contacts_sent: u64,
    /// Delivery failures.
    pub delivery_failures: u64,
    /// Contacts the French server queued from the delivery.
    pub received: u64,
    /// The French batch: contacts scored.
    pub scored_in_france: u64,
    /// Every phone's status.
    pub phones: Vec<PhoneOutcome>,
    /// HTTP status of the forged batch (expected 401).
    pub forged_status: u16,
    /// Contacts the French server stored because of the forged batch.
    pub forged_stored: u64,
    /// HTTP status of the same body signed with Belgium's key (expected 200).
    pub control_status: u16,
}

impl FederationDemo {
    /// Alerts against the ground truth for `country`'s phones.
    pub(crate) fn confusion(&self, country: u8) -> Confusion {
        let mut c = Confusion::default();
        for p in self
            .phones
            .iter()
            .filter(|p| p.country == country && p.name != PEOPLE[POSITIVE].0)
        {
            let alerted = p.risk_level >= 4.0;
            c.phones += 1;
            match (p.at_risk, alerted) {
                (true, true) => c.tp += 1,
                (false, true) => c.fp += 1,
                (true, false) => c.fn_ += 1,
                (false, false) => {}
            }
        }
        c
    }

    /// Whether every check held: alerts equal the ground truth, exactly the
    /// French contacts forwarded and delivered, none of the Belgian ones,
    /// the forged batch refused with nothing stored.
    pub(crate) fn all_ok(&self) -> bool {
        let french = self.uploaded.get(&FR).copied().unwrap_or(0);
        let exact = |c: Confusion| c.fp == 0 && c.fn_ == 0;
        exact(self.confusion(BE))
            && exact(self.confusion(FR))
            && self.forwarded == french
            && french > 0
            && self.outbox_own_country == 0
            && self.contacts_sent == french
            && self.received == french
            && self.delivery_failures == 0
            && self.forged_status == 401
            && self.forged_stored == 0
            && self.control_status == 200
    }

    /// The part's section, for the terminal and report.md.
    pub(crate) fn text(&self) -> String {
        let french = self.uploaded.get(&FR).copied().unwrap_or(0);
        let belgian = self.uploaded.get(&BE).copied().unwrap_or(0);
        let mut t = String::from(
            "Federation: a border town, two servers\n\n\
             Menen (Belgium, country code 32) and Halluin (France, 33): two ROBERT servers on \
             127.0.0.1 (the robert serve code, SQLite), one shared K_G, each with its own \
             signing key and the other as partner. 4 SDK phones registered over HTTP with each. \
             The encounters are scripted (who meets whom, how long, at which RSSI), not the \
             town's radio model:\n\n",
        );
        for e in &SCRIPT {
            t.push_str(&format!("- {}\n", e.what));
        }
        t.push_str(&format!(
            "\nTuesday 09:00: Jan tests positive and reports to the Belgian server with a \
             doctor's short code: {} contacts (EBID groups), {belgian} of Belgian phones, \
             {french} of French phones.\n\n",
            belgian + french
        ));
        t.push_str(&format!(
            "- Belgian batch: {} contacts scored at home, {} moved to the outbox for France; \
             contacts of Belgian phones forwarded: {}\n",
            self.scored_at_home, self.forwarded, self.outbox_own_country
        ));
        t.push_str(&format!(
            "- delivery to France: {} signed batch(es), {} contacts, {} failure(s); the French \
             server queued {}\n",
            self.batches_sent, self.contacts_sent, self.delivery_failures, self.received
        ));
        t.push_str(&format!(
            "- French batch: {} contacts scored\n\n",
            self.scored_in_france
        ));
        t.push_str(&format!(
            "Every phone asks its server its status (ground truth: at risk after ≥ {TRUTH_MINUTES} \
             min at close range with Jan):\n\n"
        ));
        for p in &self.phones {
            let truth = if p.name == PEOPLE[POSITIVE].0 {
                "positive case"
            } else if p.at_risk {
                "at risk"
            } else {
                "not at risk"
            };
            t.push_str(&format!(
                "- {:<7} {}  {:<14} risk level {}\n",
                p.name,
                country_name(p.country),
                truth,
                p.risk_level
            ));
        }
        t.push('\n');
        for (country, name) in [(BE, "Belgium"), (FR, "France ")] {
            let c = self.confusion(country);
            t.push_str(&format!(
                "- {name}: {} phones, TP {} FP {} FN {}\n",
                c.phones, c.tp, c.fp, c.fn_
            ));
        }
        t.push_str(&format!(
            "- forged batch (origin Belgium, signed with a key France does not know): HTTP {}, \
             contacts stored {}; the same body signed with Belgium's key: HTTP {}\n",
            self.forged_status, self.forged_stored, self.control_status
        ));
        t.push_str(&format!(
            "\nFederation checks: {}\n",
            if self.all_ok() {
                "all passed"
            } else {
                "FAILED"
            }
        ));
        t
    }
}

fn country_name(code: u8) -> &'static str {
    match code {
        BE => "BE",
        FR => "FR",
        _ => "??",
    }
}

/// Runs the federation part on its own runtime.
pub(crate) fn run() -> anyhow::Result<FederationDemo> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let dir = TempDir::new()?;
    let result = runtime.block_on(run_async(dir.path()));
    // The servers' tasks end with the runtime; then the directory goes.
    drop(runtime);
    drop(dir);
    result
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "robert-demo-federation-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One country's server, listening on 127.0.0.1.
struct Server {
    state: AppState,
    /// `http://127.0.0.1:port`.
    url: String,
    /// Stops the listener when sent or dropped.
    _shutdown: oneshot::Sender<()>,
}

/// What a server needs to know of itself and its partner.
struct Setup<'a> {
    country: u8,
    keys: KeySet,
    dir: &'a Path,
    listener: tokio::net::TcpListener,
    signing_key: &'a Path,
    partner: u8,
    partner_url: String,
    partner_public_key: &'a Path,
}

/// Builds a server as `robert serve` does and serves it on its listener.
async fn start_server(s: Setup<'_>, clock: &ManualClock) -> anyhow::Result<Server> {
    let data_dir = s.dir.join(format!("server-{}", s.country));
    std::fs::create_dir_all(&data_dir)?;
    let mut config = Config::default();
    config.server.data_dir = data_dir;
    config.protocol.country_code = s.country;
    config.batch.country_code = s.country;
    config.captcha.mode = CaptchaMode::AcceptAny;
    config.store.sqlite_full_sync = false;
    // No RSA key generation (about a second): ES256 signs the tokens.
    config.jwt.algorithm = JwtAlgorithm::ES256;
    config.federation.signing_key_file = s.signing_key.to_owned();
    config.federation.timeout_secs = 10;
    config.federation.partners = vec![PartnerConfig {
        country_code: s.partner,
        url: s.partner_url,
        public_key_file: s.partner_public_key.to_owned(),
    }];
    let state = ServerBuilder::new(config, Arc::new(clock.clone()))
        .keys(s.keys)
        .build()
        .await
        .with_context(|| format!("the server of country {}", s.country))?;
    let addr = s.listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let st = state.clone();
    let listener = s.listener;
    tokio::spawn(async move {
        // A failing listener shows up as failed requests.
        let _ = robert_server::serve::run(st, listener, None, async {
            let _ = rx.await;
        })
        .await;
    });
    Ok(Server {
        state,
        url: format!("http://{addr}"),
        _shutdown: tx,
    })
}

/// A person's SDK phone on its own clock.
struct Person {
    name: &'static str,
    country: u8,
    phone: Phone<ReqwestTransport, NullStorage>,
    clock: ManualClock,
}

impl Person {
    fn at(&mut self, t: NtpSeconds) -> &mut Phone<ReqwestTransport, NullStorage> {
        self.clock.set_ntp(t);
        &mut self.phone
    }
}

/// A signing key pair written to `dir`: (private key file, public key file).
fn key_pair(dir: &Path, name: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (private, public) = generate_key_pair(&mut rand::rng())?;
    let sk = dir.join(format!("{name}.pem"));
    let pk = dir.join(format!("{name}.pub.pem"));
    std::fs::write(&sk, private.as_bytes())?;
    std::fs::write(&pk, public.as_bytes())?;
    Ok((sk, pk))
}

/// Contacts waiting for the server's batch.
async fn pending(server: &Server) -> anyhow::Result<u64> {
    Ok(server.state.store.pending_contacts().await?.contacts)
}

async fn run_async(dir: &Path) -> anyhow::Result<FederationDemo> {
    let monday = NtpSeconds::from_unix(MONDAY_UNIX);
    let start = monday.plus(7 * 3600);
    let clock = ManualClock::at_ntp(start);
    let mut rng = StdRng::seed_from_u64(0xB0_2D_E2);

    // --- Keys: one K_G for both, each its own K_S, KEK, registration key
    // and federation signing key.
    let today = UtcDate::of(start);
    let mut be_keys = KeySet::default();
    be_keys.fill_missing(today.add_days(-20), today.add_days(5), true, &mut rng);
    let mut fr_keys = KeySet::default();
    fr_keys.fill_missing(today.add_days(-20), today.add_days(5), true, &mut rng);
    fr_keys.key_g = be_keys.key_g.clone();
    let (be_sk, be_pk) = key_pair(dir, "be")?;
    let (fr_sk, fr_pk) = key_pair(dir, "fr")?;
    let (forger_sk, _) = key_pair(dir, "forger")?;

    // --- The two servers, each the other's partner.
    let be_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let fr_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let contacts_url = |l: &tokio::net::TcpListener| -> anyhow::Result<String> {
        let a: SocketAddr = l.local_addr()?;
        Ok(format!("http://{a}{}", wire::CONTACTS_PATH))
    };
    let be_url = contacts_url(&be_listener)?;
    let fr_url = contacts_url(&fr_listener)?;
    let be = start_server(
        Setup {
            country: BE,
            keys: be_keys,
            dir,
            listener: be_listener,
            signing_key: &be_sk,
            partner: FR,
            partner_url: fr_url,
            partner_public_key: &fr_pk,
        },
        &clock,
    )
    .await?;
    let fr = start_server(
        Setup {
            country: FR,
            keys: fr_keys,
            dir,
            listener: fr_listener,
            signing_key: &fr_sk,
            partner: BE,
            partner_url: be_url,
            partner_public_key: &be_pk,
        },
        &clock,
    )
    .await?;

    // --- Belgium's code service, inside its server (robert serve --codes-config).
    let codes = start_codes(dir, &clock, &mut rng).await?;
    be.state
        .codes
        .use_local(Arc::new(super::embedded_codes::InProcess(codes.clone())));

    // --- The phones, registered over HTTP with their country's server.
    let transport = ReqwestTransport::new(Duration::from_secs(30))?;
    let mut people = Vec::with_capacity(PEOPLE.len());
    for (i, (name, country)) in PEOPLE.iter().enumerate() {
        let server = if *country == BE { &be } else { &fr };
        let device = if i % 2 == 0 {
            DeviceModel::android("SM-G973F")
        } else {
            DeviceModel::ios("iPhone12,1")
        };
        let mut config = PhoneConfig::with_key_base64(
            &server.url,
            &server.state.keys.get().registration().public_key_base64(),
            device,
        )?;
        config.retry = RetryPolicy::none();
        let phone_clock = ManualClock::at_ntp(start);
        let phone = Phone::open(
            Arc::new(config),
            transport.clone(),
            NullStorage,
            Arc::new(phone_clock.clone()),
            StdRng::seed_from_u64(0xF0_0D + i as u64),
        )?;
        let mut person = Person {
            name,
            country: *country,
            phone,
            clock: phone_clock,
        };
        person
            .at(start)
            .register(&mut FixedCaptchaAnswer("any".into()))
            .await
            .with_context(|| format!("{name} registers"))?;
        people.push(person);
    }

    // --- The scripted encounters; who sent which EBID.
    let mut ebid_country: BTreeMap<String, u8> = BTreeMap::new();
    for e in &SCRIPT {
        let from = monday.plus(e.at_min * 60);
        clock.set_ntp(from.plus(e.minutes * 60));
        for k in (0..e.minutes * 60).step_by(HELLO_EVERY_SECS as usize) {
            let t = from.plus(k);
            for &s in e.who {
                let sender = people.get_mut(s).context("script: unknown person")?;
                let payload = sender
                    .at(t)
                    .ble_payload()
                    .with_context(|| format!("{}'s HELLO", sender.name))?;
                let hello = Hello::from_bytes(&payload[..Hello::LEN])?;
                ebid_country.insert(hello.ebid.to_base64(), sender.country);
                for &r in e.who.iter().filter(|&&r| r != s) {
                    let receiver = people.get_mut(r).context("script: unknown person")?;
                    receiver
                        .at(t)
                        .receive_ble_payload(&payload, e.rssi)
                        .with_context(|| format!("{} hears a HELLO", receiver.name))?;
                }
            }
        }
    }

    // --- Tuesday 09:00: Jan tests positive and reports at home.
    let tuesday = monday.plus(86_400);
    let report_at = tuesday.plus(9 * 3600);
    clock.set_ntp(report_at);
    let code = codes
        .issue(
            robert_codes::CodeKind::Short,
            &robert_codes::service::Channel::Cli,
        )
        .await
        .context("a doctor's short code")?
        .code;
    let jan = people.get_mut(POSITIVE).context("the positive case")?;
    let basis = ReportBasis::PositiveTest(report_at);
    let mut uploaded: BTreeMap<u8, u64> = BTreeMap::new();
    for c in &jan.at(report_at).prepare_report(basis).contacts {
        let country = ebid_country.get(&c.key.ebid.to_base64()).copied();
        *uploaded.entry(country.unwrap_or(0)).or_default() += 1;
    }
    jan.at(report_at)
        .report(&code, basis)
        .await
        .context("Jan's report")?;
    drop(code);

    // --- The Belgian batch, then the delivery to France.
    clock.set_ntp(report_at.plus(3600));
    let be_report = be.state.run_batch().await.context("the Belgian batch")?;
    let outbox = be.state.store.outbox_counts().await?;
    let outbox_own_country = outbox
        .iter()
        .filter(|(c, _)| *c != FR)
        .map(|(_, n)| n)
        .sum();
    let before = pending(&fr).await?;
    let d = deliver(
        be.state.store.as_ref(),
        &be.state.federation,
        be.state.clock.now_unix(),
        true,
    )
    .await?;
    if let Some((country, e)) = d.errors.first() {
        bail!("delivery to country {country} failed: {e}");
    }
    let received = pending(&fr).await?.saturating_sub(before);

    // --- The French batch; every phone asks its status.
    clock.set_ntp(report_at.plus(2 * 3600));
    let fr_report = fr.state.run_batch().await.context("the French batch")?;
    let status_at = report_at.plus(3 * 3600);
    clock.set_ntp(status_at);
    let mut phones = Vec::with_capacity(people.len());
    for (i, p) in people.iter_mut().enumerate() {
        let risk_level = if i == POSITIVE {
            0.0
        } else {
            p.at(status_at)
                .status()
                .await
                .with_context(|| format!("{}'s status", p.name))?
                .risk_level
        };
        phones.push(PhoneOutcome {
            name: p.name,
            country: p.country,
            at_risk: i != POSITIVE && exposed(i),
            risk_level,
        });
    }

    // --- A forged batch to France: a French phone's contact, "from
    // Belgium", signed with a key France does not know.
    let hugo = people.get_mut(7).context("Hugo")?;
    let heard_at = status_at;
    let payload = hugo.at(heard_at).ble_payload()?;
    let hello = Hello::from_bytes(&payload[..Hello::LEN])?;
    let contacts = json!([{
        "ebid": hello.ebid.to_base64(),
        "ecc": hello.ecc.to_base64(),
        "ids": [{
            "timeCollectedOnDevice": heard_at.get(),
            "timeFromHelloMessage": hello.time.0,
            "mac": hello.mac.to_base64(),
            "rssiCalibrated": -50,
        }],
    }]);
    let body = |id: &str| -> anyhow::Result<Vec<u8>> {
        Ok(serde_json::to_vec(&json!({
            "version": wire::VERSION, "origin": BE, "destination": FR, "batchId": id,
            "createdAt": robert_client::Clock::now_unix(&clock), "contacts": contacts,
        }))?)
    };
    let before = pending(&fr).await?;
    let forged = body("forged-1")?;
    let signature = wire::sign(&read_signing_key(&forger_sk)?, &forged);
    let forged_status = post_batch(&transport, &fr, forged, signature).await?;
    let forged_stored = pending(&fr).await?.saturating_sub(before);
    let control = body("control-1")?;
    let signature = wire::sign(&read_signing_key(&be_sk)?, &control);
    let control_status = post_batch(&transport, &fr, control, signature).await?;

    be.state.store.close().await;
    fr.state.store.close().await;
    Ok(FederationDemo {
        uploaded,
        forwarded: be_report.contacts_forwarded,
        scored_at_home: be_report.contacts_scored,
        outbox_own_country,
        batches_sent: d.batches_sent,
        contacts_sent: d.contacts_sent,
        delivery_failures: d.failures,
        received,
        scored_in_france: fr_report.contacts_scored,
        phones,
        forged_status,
        forged_stored,
        control_status,
    })
}

/// Ground truth: person `i` spent at least [`TRUTH_MINUTES`] at close
/// range with the positive case.
fn exposed(i: usize) -> bool {
    let minutes: u64 = SCRIPT
        .iter()
        .filter(|e| e.close && e.who.contains(&POSITIVE) && e.who.contains(&i))
        .map(|e| e.minutes)
        .sum();
    minutes >= TRUTH_MINUTES
}

/// Posts a signed federation batch claiming Belgium as origin; returns the
/// HTTP status.
async fn post_batch(
    transport: &ReqwestTransport,
    to: &Server,
    body: Vec<u8>,
    signature: String,
) -> anyhow::Result<u16> {
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("{}{}", to.url, wire::CONTACTS_PATH))
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(wire::ORIGIN_HEADER, BE.to_string())
        .header(wire::SIGNATURE_HEADER, signature)
        .body(body)?;
    let response = transport.send(request).await?;
    Ok(response.status().as_u16())
}

/// Belgium's code service on the shared clock, its own SQLite store.
async fn start_codes(
    dir: &Path,
    clock: &ManualClock,
    rng: &mut StdRng,
) -> anyhow::Result<robert_codes::CodesService> {
    let mut pepper = [0u8; 32];
    rand::Rng::fill_bytes(rng, &mut pepper);
    let mut config = robert_codes::Config::from_toml(&format!(
        "[[peppers]]\nid = \"demo\"\nsecret = \"{}\"\n",
        robert_core::b64::encode(pepper)
    ))?;
    config.database_url = format!("sqlite://{}?mode=rwc", dir.join("codes.db").display());
    config.max_connections = 2;
    config.lots.output_dir = dir.join("lots");
    robert_codes::CodesService::open(config, Arc::new(clock.clone()))
        .await
        .context("Belgium's code service")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_match_the_ground_truth_and_a_forged_batch_is_refused() {
        let d = run().unwrap();
        assert!(d.all_ok(), "{}", d.text());
        assert_eq!(
            d.confusion(BE),
            Confusion {
                phones: 3,
                tp: 1,
                fp: 0,
                fn_: 0
            }
        );
        assert_eq!(
            d.confusion(FR),
            Confusion {
                phones: 4,
                tp: 2,
                fp: 0,
                fn_: 0
            }
        );
        assert!(d.forwarded > 0 && d.forwarded == d.received, "{d:?}");
        assert_eq!((d.forged_status, d.forged_stored), (401, 0), "{d:?}");
        assert_eq!(d.control_status, 200, "{d:?}");
    }
}
