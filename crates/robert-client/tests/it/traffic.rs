//! What a network observer learns from padded and dummy traffic
//! (docs/traffic-privacy.md), measured on real TCP: the server (with the
//! real code service and batch) listens on 127.0.0.1, SDK phones reach it
//! over HTTP through a relay that records, like an observer on the path,
//! how many bytes go each way and when. Plain HTTP stands in for TLS, which
//! adds a fixed overhead per record and hides nothing more.
//!
//! Two questions, each answered by simple classifiers trained on half of
//! the exchanges and tested on the other half (best threshold on the
//! request size, on the response size, on the time to the first response
//! byte, and a 1-nearest-neighbour on all three):
//!
//! * dummy `/report` or real `/report` (with a valid code, burning it and
//!   storing the contacts)? and dummy or real `/status`?
//! * is the phone asking `/status` at risk?
//!
//! With padding and dummies each must score at most [`BOUND`]; on
//! unpadded traffic the same classifiers tell "at risk" from the response
//! size alone (the control). 400 samples per class give a test half of
//! 400 exchanges, where chance alone stays within ±2.5 points (one
//! standard deviation) of 50 %: 60 % is four of them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::{RngExt as _, SeedableRng as _};
use robert_client::{
    FixedCaptchaAnswer, MemoryStorage, Phone, PhoneConfig, ReportBasis, ReqwestTransport,
};
use robert_codes::CodeKind;
use robert_codes::service::Channel;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::Instant;

use crate::real_server::Real;

/// Highest accuracy allowed to any classifier on protected traffic.
const BOUND: f64 = 0.60;
/// Report pairs (one dummy and one real report per phone).
const REPORT_PAIRS: usize = 400;
/// Real reports before the measurement, so that the server knows real
/// handling times of every size class.
const WARMUP_REPORTS: usize = 60;
/// Phones at risk, and phones not at risk.
const STATUS_PER_CLASS: usize = 400;
/// Unpadded phones of each class in the control.
const CONTROL_PER_CLASS: usize = 40;

type TcpPhone = Phone<ReqwestTransport, MemoryStorage>;
/// Exchanges labelled with their class.
type Labelled = Vec<(Exchange, bool)>;

// ------------------------------------------------------------ the observer

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    Up,
    Down,
}

#[derive(Clone, Copy, Debug)]
struct Event {
    at: Instant,
    dir: Dir,
    bytes: usize,
}

/// One request and its response, as the observer sees them.
#[derive(Clone, Copy, Debug)]
struct Exchange {
    up: usize,
    down: usize,
    /// From the request's last byte to the response's first.
    secs: f64,
    /// When the response's first byte passed (for the dump).
    at: Instant,
}

impl Exchange {
    fn features(&self) -> [f64; 3] {
        [self.up as f64, self.down as f64, self.secs]
    }
}

/// A TCP relay in front of the server that logs every read.
struct Observer {
    addr: SocketAddr,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Observer {
    async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = events.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(target).await.unwrap();
                client.set_nodelay(true).unwrap();
                server.set_nodelay(true).unwrap();
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, Dir::Up, log.clone()));
                tokio::spawn(pump(sr, cw, Dir::Down, log.clone()));
            }
        });
        Self { addr, events }
    }

    fn mark(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    /// The exchange made of the events since `mark`.
    fn since(&self, mark: usize) -> Exchange {
        let events = self.events.lock().unwrap();
        let ev = &events[mark..];
        let up: usize = ev
            .iter()
            .filter(|e| e.dir == Dir::Up)
            .map(|e| e.bytes)
            .sum();
        let down: usize = ev
            .iter()
            .filter(|e| e.dir == Dir::Down)
            .map(|e| e.bytes)
            .sum();
        let first_down = ev.iter().position(|e| e.dir == Dir::Down).unwrap();
        let last_up = ev[..first_down]
            .iter()
            .rev()
            .find(|e| e.dir == Dir::Up)
            .unwrap();
        Exchange {
            up,
            down,
            at: ev[first_down].at,
            secs: ev[first_down]
                .at
                .saturating_duration_since(last_up.at)
                .as_secs_f64(),
        }
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    dir: Dir,
    log: Arc<Mutex<Vec<Event>>>,
) {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        log.lock().unwrap().push(Event {
            at: Instant::now(),
            dir,
            bytes: n,
        });
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

// ------------------------------------------------------------ classifiers

/// The best single threshold on one feature, trained on `train`; its
/// accuracy on `test`.
fn threshold_accuracy(train: &[(f64, bool)], test: &[(f64, bool)]) -> f64 {
    let mut values: Vec<f64> = train.iter().map(|s| s.0).collect();
    values.sort_by(f64::total_cmp);
    values.dedup();
    let mut cuts = vec![f64::NEG_INFINITY];
    cuts.extend(values.windows(2).map(|w| (w[0] + w[1]) / 2.0));
    cuts.push(f64::INFINITY);
    let acc = |set: &[(f64, bool)], cut: f64, above_is_true: bool| {
        let right = set
            .iter()
            .filter(|(x, label)| (*x > cut) == (above_is_true == *label))
            .count();
        right as f64 / set.len() as f64
    };
    let (mut best, mut best_cut, mut best_dir) = (-1.0, 0.0, true);
    for &cut in &cuts {
        for dir in [true, false] {
            let a = acc(train, cut, dir);
            if a > best {
                (best, best_cut, best_dir) = (a, cut, dir);
            }
        }
    }
    acc(test, best_cut, best_dir)
}

/// 1-nearest-neighbour on standardized features (train's mean and spread).
fn one_nn_accuracy(train: &[([f64; 3], bool)], test: &[([f64; 3], bool)]) -> f64 {
    let n = train.len() as f64;
    let mut mean = [0.0; 3];
    let mut sd = [0.0; 3];
    for k in 0..3 {
        mean[k] = train.iter().map(|s| s.0[k]).sum::<f64>() / n;
        let var = train
            .iter()
            .map(|s| (s.0[k] - mean[k]).powi(2))
            .sum::<f64>()
            / n;
        sd[k] = var.sqrt();
    }
    let z = |x: &[f64; 3]| {
        let mut o = [0.0; 3];
        for k in 0..3 {
            o[k] = if sd[k] > 0.0 {
                (x[k] - mean[k]) / sd[k]
            } else {
                0.0
            };
        }
        o
    };
    let train_z: Vec<([f64; 3], bool)> = train.iter().map(|(x, l)| (z(x), *l)).collect();
    let right = test
        .iter()
        .filter(|(x, label)| {
            let q = z(x);
            let nearest = train_z
                .iter()
                .min_by(|a, b| dist(&a.0, &q).total_cmp(&dist(&b.0, &q)))
                .unwrap();
            nearest.1 == *label
        })
        .count();
    right as f64 / test.len() as f64
}

fn dist(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

/// The four classifiers' accuracies on (`train`, `test`), labelled `true`
/// for the class to detect.
#[derive(Debug)]
struct Scores {
    request_size: f64,
    response_size: f64,
    time: f64,
    nearest: f64,
}

impl Scores {
    fn of(train: &[(Exchange, bool)], test: &[(Exchange, bool)]) -> Self {
        let feature = |set: &[(Exchange, bool)], k: usize| -> Vec<(f64, bool)> {
            set.iter().map(|(e, l)| (e.features()[k], *l)).collect()
        };
        let all = |set: &[(Exchange, bool)]| -> Vec<([f64; 3], bool)> {
            set.iter().map(|(e, l)| (e.features(), *l)).collect()
        };
        Self {
            request_size: threshold_accuracy(&feature(train, 0), &feature(test, 0)),
            response_size: threshold_accuracy(&feature(train, 1), &feature(test, 1)),
            time: threshold_accuracy(&feature(train, 2), &feature(test, 2)),
            nearest: one_nn_accuracy(&all(train), &all(test)),
        }
    }

    fn max(&self) -> f64 {
        self.request_size
            .max(self.response_size)
            .max(self.time)
            .max(self.nearest)
    }
}

/// Splits `groups` (each a set of labelled exchanges kept together) in two
/// halves at random.
fn split(mut groups: Vec<Vec<(Exchange, bool)>>, rng: &mut StdRng) -> (Labelled, Labelled) {
    groups.shuffle(rng);
    let half = groups.len() / 2;
    let test = groups.split_off(half);
    (
        groups.into_iter().flatten().collect(),
        test.into_iter().flatten().collect(),
    )
}

/// Appends `samples` (in the order they were sent) to the file named by
/// `ROBERT_TRAFFIC_DUMP`, if set: `series,label,secs,at_ns` per line, for
/// looking at the timing by hand.
fn dump(series: &str, samples: &[(Exchange, bool)], origin: Instant) {
    use std::io::Write as _;
    let Some(path) = std::env::var_os("ROBERT_TRAFFIC_DUMP") else {
        return;
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for (e, label) in samples {
        writeln!(
            f,
            "{series},{},{:.9},{}",
            u8::from(*label),
            e.secs,
            e.at.saturating_duration_since(origin).as_nanos()
        )
        .unwrap();
    }
}

fn summary(name: &str, samples: &[(Exchange, bool)]) -> String {
    let stats = |label: bool| {
        let xs: Vec<&Exchange> = samples
            .iter()
            .filter(|s| s.1 == label)
            .map(|s| &s.0)
            .collect();
        let n = xs.len() as f64;
        let mut t: Vec<f64> = xs.iter().map(|e| e.secs * 1e3).collect();
        t.sort_by(f64::total_cmp);
        format!(
            "n={} up={:.0} down={:.0} time median {:.2} ms, p10 {:.2}, p90 {:.2}",
            xs.len(),
            xs.iter().map(|e| e.up as f64).sum::<f64>() / n,
            xs.iter().map(|e| e.down as f64).sum::<f64>() / n,
            t[t.len() / 2],
            t[t.len() / 10],
            t[t.len() * 9 / 10],
        )
    };
    format!("{name}: true {} | false {}", stats(true), stats(false))
}

// ------------------------------------------------------------ the world

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

async fn tcp_phone(
    w: &Real,
    config: &Arc<PhoneConfig>,
    transport: &ReqwestTransport,
    seed: u64,
) -> TcpPhone {
    let mut p = Phone::open(
        config.clone(),
        transport.clone(),
        MemoryStorage::new(),
        Arc::new(w.phone_clock.clone()),
        StdRng::seed_from_u64(seed),
    )
    .unwrap();
    p.register(&mut FixedCaptchaAnswer("any".into()))
        .await
        .unwrap();
    p
}

async fn a_code(w: &Real) -> String {
    w.codes
        .issue(CodeKind::Short, &Channel::Cli)
        .await
        .unwrap()
        .code
        .to_string()
}

// Timing: every marked answer, real or dummy, leaves at a release deadline
// drawn when the request arrives, released by the server's own timer thread
// rather than tokio's millisecond timer (docs/traffic-privacy.md,
// "Measured"; `ROBERT_TRAFFIC_DUMP=file` writes every exchange's time for a
// closer look).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_tells_neither_dummies_nor_risk_from_sizes_and_timing() {
    tokio::time::timeout(Duration::from_secs(300), run())
        .await
        .expect("the traffic-privacy measurement took over 5 minutes");
}

async fn run() {
    let started = Instant::now();
    // Hundreds of reports from one address: no per-client code limit. A
    // deadline floor and jitter below the defaults (20 ms each): the
    // deadline follows the real handling times (2 × their 90th percentile)
    // rather than the floor, the demanding case, and the test is faster.
    let w = Real::new_with("client_traffic", |c| {
        c.limits.code_checks_per_minute = 0;
        c.privacy.deadline_min_ms = 5;
        c.privacy.deadline_jitter_ms = 10;
    })
    .await;
    let observer = Observer::start(serve(w.router.clone()).await).await;
    let transport = ReqwestTransport::new(Duration::from_secs(60)).unwrap();
    let url = format!("http://{}", observer.addr);
    let padded = {
        let mut c = (*w.config).clone();
        c.server_url = url.clone();
        Arc::new(c)
    };
    let plain = {
        let mut c = (*padded).clone();
        c.follow_server_privacy = false;
        Arc::new(c)
    };
    let mut rng = StdRng::seed_from_u64(2026);
    let mut seed = 0u64;
    let mut next_seed = || {
        seed += 1;
        seed
    };

    // Phones. Reporters hear a neighbour for 5 to 40 minutes (reports of
    // a few size classes); spreaders meet the phones that will be at risk
    // for an hour; the others meet no one.
    let mut neighbours = Vec::new();
    for _ in 0..4 {
        neighbours.push(tcp_phone(&w, &padded, &transport, next_seed()).await);
    }
    let mut reporters = Vec::new();
    for _ in 0..WARMUP_REPORTS + REPORT_PAIRS {
        let p = tcp_phone(&w, &padded, &transport, next_seed()).await;
        let minutes: u64 = rng.random_range(5..=40);
        reporters.push((p, minutes));
    }
    assert!(
        reporters[0].0.privacy_settings().padding,
        "the server announces padding"
    );
    let mut spreaders = Vec::new();
    for _ in 0..8 {
        spreaders.push(tcp_phone(&w, &padded, &transport, next_seed()).await);
    }
    // (phone, meets a spreader, padded)
    let mut askers: Vec<(TcpPhone, bool, bool)> = Vec::new();
    for i in 0..2 * (STATUS_PER_CLASS + CONTROL_PER_CLASS) {
        let meets = i % 2 == 0;
        let pads = i < 2 * STATUS_PER_CLASS;
        let config = if pads { &padded } else { &plain };
        askers.push((
            tcp_phone(&w, config, &transport, next_seed()).await,
            meets,
            pads,
        ));
    }

    // An hour of HELLOs, every 10 s.
    for step in 0..360u64 {
        let heard: Vec<[u8; 18]> = neighbours
            .iter()
            .map(|n| n.ble_payload().unwrap())
            .collect();
        for (i, (p, minutes)) in reporters.iter_mut().enumerate() {
            if step < *minutes * 6 {
                p.receive_ble_payload(&heard[i % heard.len()], -60).unwrap();
            }
        }
        let mut at_risk = askers.iter_mut().filter(|a| a.1);
        let per_spreader = (STATUS_PER_CLASS + CONTROL_PER_CLASS).div_ceil(spreaders.len());
        for s in spreaders.iter_mut() {
            let ps = s.ble_payload().unwrap();
            for a in at_risk.by_ref().take(per_spreader) {
                let pa = a.0.ble_payload().unwrap();
                a.0.receive_ble_payload(&ps, -60).unwrap();
                s.receive_ble_payload(&pa, -60).unwrap();
            }
        }
        w.advance(10);
    }

    // ---- Reports: warm-up, then a dummy and a real report per phone.
    for (p, _) in reporters.iter_mut().take(WARMUP_REPORTS) {
        let code = a_code(&w).await;
        p.report(&code, ReportBasis::Unknown).await.unwrap();
    }
    let stored_before = w
        .state
        .store
        .next_contacts(None, usize::MAX, u64::MAX)
        .await
        .unwrap()
        .len();
    let mut pairs: Vec<Vec<(Exchange, bool)>> = Vec::new();
    let mut sent_contacts = 0;
    for (p, _) in reporters.iter_mut().skip(WARMUP_REPORTS) {
        let code = a_code(&w).await;
        let m = observer.mark();
        p.send_dummy_report().await.unwrap();
        let dummy = observer.since(m);
        let m = observer.mark();
        let out = p.report(&code, ReportBasis::Unknown).await.unwrap();
        let real = observer.since(m);
        sent_contacts += out.contacts_sent;
        // The same size on the wire, both ways.
        assert_eq!((dummy.up, dummy.down), (real.up, real.down));
        pairs.push(vec![(real, true), (dummy, false)]);
    }
    // The real reports were stored, the dummies were not.
    let stored = w
        .state
        .store
        .next_contacts(None, usize::MAX, u64::MAX)
        .await
        .unwrap()
        .len();
    assert_eq!(stored - stored_before, sent_contacts);
    assert_eq!(
        w.state
            .privacy
            .dummies(robert_server::privacy::PrivateRoute::Report),
        REPORT_PAIRS as u64
    );
    let all: Vec<(Exchange, bool)> = pairs.iter().flatten().copied().collect();
    dump("report", &all, started);
    eprintln!("{}", summary("report real/dummy", &all));
    let (train, test) = split(pairs, &mut rng);
    let report_scores = Scores::of(&train, &test);
    eprintln!("report real vs dummy: {report_scores:?}");

    // ---- Status: the spreaders report, the batch runs, everyone asks.
    for s in spreaders.iter_mut() {
        let code = a_code(&w).await;
        s.report(&code, ReportBasis::Unknown).await.unwrap();
    }
    w.state.run_batch().await.unwrap();
    w.advance(3600);
    askers.shuffle(&mut rng);
    let mut risk: Vec<Vec<(Exchange, bool)>> = Vec::new();
    let mut control: Vec<Vec<(Exchange, bool)>> = Vec::new();
    let mut real_or_dummy: Vec<Vec<(Exchange, bool)>> = Vec::new();
    for (p, meets, pads) in askers.iter_mut() {
        if *pads {
            let m = observer.mark();
            p.send_dummy_status().await.unwrap();
            real_or_dummy.push(vec![(observer.since(m), false)]);
        }
        let m = observer.mark();
        let out = p.status().await.unwrap();
        let ex = observer.since(m);
        let at_risk = out.risk_level > 0.0;
        assert_eq!(
            at_risk, *meets,
            "an hour at close range is at risk, no contact is not"
        );
        if *pads {
            risk.push(vec![(ex, at_risk)]);
            real_or_dummy.push(vec![(ex, true)]);
        } else {
            control.push(vec![(ex, at_risk)]);
        }
    }
    let all: Vec<(Exchange, bool)> = risk.iter().flatten().copied().collect();
    eprintln!("{}", summary("status at risk/not", &all));
    let (train, test) = split(risk, &mut rng);
    let risk_scores = Scores::of(&train, &test);
    eprintln!("status at risk vs not (padded): {risk_scores:?}");
    let all: Vec<(Exchange, bool)> = real_or_dummy.iter().flatten().copied().collect();
    dump("status", &all, started);
    let (train, test) = split(real_or_dummy, &mut rng);
    let dummy_status_scores = Scores::of(&train, &test);
    eprintln!("status real vs dummy: {dummy_status_scores:?}");
    let (train, test) = split(control, &mut rng);
    let control_scores = Scores::of(&train, &test);
    eprintln!("status at risk vs not (unpadded control): {control_scores:?}");

    {
        use robert_server::privacy::PrivateRoute;
        let p = &w.state.privacy;
        eprintln!(
            "deadline overruns: report {}, status {}; {:.1} s",
            p.overruns(PrivateRoute::Report),
            p.overruns(PrivateRoute::Status),
            started.elapsed().as_secs_f64()
        );
    }
    // The control shows the classifiers work: unpadded, the response
    // size gives the risk away.
    assert!(control_scores.response_size >= 0.95, "{control_scores:?}");
    for (name, s) in [
        ("report real vs dummy", &report_scores),
        ("status at risk vs not", &risk_scores),
        ("status real vs dummy", &dummy_status_scores),
    ] {
        assert!(s.max() <= BOUND, "{name}: {s:?}");
    }
    w.finish().await;
}

// ------------------------------------------------------------ the SDK's schedule

/// The phone's dummy schedule: rates from the server's `config` list,
/// seeded randomness, dummies the server counts and drops, nothing after
/// unregistration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dummy_schedule_follows_the_server_rates_and_stops_after_unregister() {
    use robert_client::DummyKind;
    use robert_server::privacy::PrivateRoute;

    let w = Real::new("client_dummy_schedule").await;
    // 12 dummy reports and 24 dummy status requests a day.
    w.state
        .store
        .set_app_config("privacy.dummyReportsPerDay", &serde_json::json!(12))
        .await
        .unwrap();
    w.state
        .store
        .set_app_config("privacy.dummyStatusPerDay", &serde_json::json!("24"))
        .await
        .unwrap();
    w.state.invalidate_app_config();
    let mut phone = w.registered(5).await;
    let twin = w.registered(5).await;
    let s = phone.privacy_settings();
    assert!(s.padding);
    assert_eq!(
        (s.dummy_reports_per_day, s.dummy_status_per_day),
        (12.0, 24.0)
    );

    // The schedule starts at the first call after registration.
    assert_eq!(phone.next_dummy_due(), None);
    assert_eq!(phone.dummy_traffic_if_due().await.unwrap(), None);
    let first = phone.next_dummy_due().unwrap();
    assert!(first >= w.now());
    // Seeded: a phone with the same seed draws the same times.
    let mut twin = twin;
    twin.dummy_traffic_if_due().await.unwrap();
    assert_eq!(twin.next_dummy_due(), Some(first));

    // Two simulated days, one minute at a time.
    let mut sent = [0u64; 2];
    for _ in 0..2 * 24 * 60 {
        w.advance(60);
        while let Some(kind) = phone.dummy_traffic_if_due().await.unwrap() {
            sent[usize::from(kind == DummyKind::Status)] += 1;
        }
    }
    // Poisson means 24 and 48: within four standard deviations.
    assert!((24 - 19..=24 + 19).contains(&sent[0]), "{sent:?}");
    assert!((48 - 28..=48 + 28).contains(&sent[1]), "{sent:?}");
    assert_eq!(w.state.privacy.dummies(PrivateRoute::Report), sent[0]);
    assert_eq!(w.state.privacy.dummies(PrivateRoute::Status), sent[1]);
    // Nothing stored by the dummy reports, and the real status still works.
    let queued = w
        .state
        .store
        .next_contacts(None, usize::MAX, u64::MAX)
        .await
        .unwrap();
    assert!(queued.is_empty());
    phone.status().await.unwrap();

    // After unregistration: no dummy, ever.
    phone.unregister().await.unwrap();
    assert_eq!(phone.dummy_traffic_if_due().await.unwrap(), None);
    assert_eq!(phone.next_dummy_due(), None);
    for _ in 0..24 * 60 {
        w.advance(60);
        assert_eq!(phone.dummy_traffic_if_due().await.unwrap(), None);
    }
    assert_eq!(w.state.privacy.dummies(PrivateRoute::Report), sent[0]);
    assert_eq!(w.state.privacy.dummies(PrivateRoute::Status), sent[1]);
    w.finish().await;
}

/// A server that announces no traffic privacy (the reference's) gets no
/// padding, no mark and no dummy.
#[tokio::test]
async fn no_dummy_for_a_server_that_announces_none() {
    let w = crate::support::World::new();
    let mut phone = w.registered(3).await;
    assert_eq!(
        phone.privacy_settings(),
        robert_client::PrivacySettings::OFF
    );
    for _ in 0..3 {
        assert_eq!(phone.dummy_traffic_if_due().await.unwrap(), None);
        w.clock.advance_secs(86_400);
    }
    assert_eq!(phone.next_dummy_due(), None);
    assert!(matches!(
        phone.send_dummy_report().await,
        Err(robert_client::ClientError::Config(_))
    ));
    assert!(matches!(
        phone.send_dummy_status().await,
        Err(robert_client::ClientError::Config(_))
    ));
}
