//! Load-test tooling for the ROBERT server (README "Performance").
//!
//! ```text
//! loadgen seed     --config C --count N [--seed S]      N registrations with known keys, via the store's bulk path
//! loadgen bodies   --config C --count N --out FILE      one valid /status body per line (valid ±60 s), for wrk
//! loadgen status   --config C --url U --count N ...     a built-in closed-loop /status load generator
//! loadgen register --url U --requests N ...             /register throughput (needs captcha mode accept-any)
//! ```
//!
//! Seeded registration `i` has ID_A = 0x10_0000_0000 + i and K_A, K_A_Tuples
//! derived from (seed, i), so a generator that can read the key store (for
//! K_S, to build EBIDs) can authenticate as any of them. `seed` and `bodies`
//! read the server's key store and database through its configuration.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test tool")]

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use robert_core::b64;
use robert_core::ebid::Ebid;
use robert_core::id_a::IdA;
use robert_core::keys::KeyA;
use robert_core::mac::{RequestMac, Salt};
use robert_core::time::NtpSeconds;
use robert_server::clock::{Clock as _, SystemClock};
use robert_server::config::Config;
use robert_server::keystore::KeyRing;
use robert_store::NewRegistration;
use sha2::{Digest as _, Sha256};

/// First ID_A of the seeded registrations.
const ID_BASE: u64 = 0x10_0000_0000;

#[derive(Parser)]
#[command(about = "ROBERT server load-test tooling")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Insert `count` registrations with known keys through the store's bulk path.
    Seed {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value = "robert-loadgen")]
        seed: String,
        #[arg(long, default_value_t = 10_000)]
        chunk: usize,
    },
    /// Write `count` /status bodies (one per seeded registration, valid now ±60 s).
    Bodies {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        count: u64,
        /// Spread the bodies over the first `of` seeded registrations
        /// (default: `count`), so the database sees scattered keys.
        #[arg(long)]
        of: Option<u64>,
        #[arg(long, default_value = "robert-loadgen")]
        seed: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Closed-loop /status load: `concurrency` workers for `secs` seconds.
    Status {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value = "http://127.0.0.1:8086")]
        url: String,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value = "robert-loadgen")]
        seed: String,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 20)]
        secs: u64,
    },
    /// /register throughput: `requests` registrations by `concurrency` workers.
    Register {
        #[arg(long, default_value = "http://127.0.0.1:8086")]
        url: String,
        #[arg(long, default_value_t = 2000)]
        requests: u64,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
}

fn derive(seed: &str, i: u64, label: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed.as_bytes());
    h.update(i.to_be_bytes());
    h.update(label);
    h.finalize().into()
}

fn key_a(seed: &str, i: u64) -> KeyA {
    KeyA::from_bytes(derive(seed, i, b"mac"))
}

fn load(config: Option<&std::path::Path>) -> (Config, KeyRing) {
    let config = Config::from_env_and_file(config).unwrap();
    let (ks, _) = robert_server::serve::open_keystore(&config, false).unwrap();
    let ring = KeyRing::from_set(ks.load().unwrap()).unwrap();
    (config, ring)
}

/// The /status body of seeded registration `i` at `now`.
fn status_body(config: &Config, ring: &KeyRing, seed: &str, i: u64, now: NtpSeconds) -> String {
    let start = config.protocol.start();
    let epoch = start.epoch_at(now);
    let ks = ring.server_key(start.day_of(epoch)).expect("K_S for today");
    let ebid = Ebid::encrypt(ks, epoch, IdA::from_u64(ID_BASE + i)).unwrap();
    let mac = RequestMac::compute(
        &key_a(seed, i),
        Salt::Status,
        &ebid,
        epoch.get(),
        now.time32(),
    );
    format!(
        r#"{{"ebid":"{}","epochId":{},"time":"{}","mac":"{}"}}"#,
        ebid.to_base64(),
        epoch.get(),
        b64::encode(now.time32().to_bytes()),
        mac.to_base64()
    )
}

/// Posts the JSON `body` to `url`: whether the answer had status
/// `expected`, and the latency in microseconds.
async fn post_timed(
    client: &reqwest::Client,
    url: &str,
    body: String,
    expected: u16,
) -> (bool, u64) {
    let t = Instant::now();
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let ok = match r {
        Ok(r) => {
            let s = r.status().as_u16();
            let _ = r.bytes().await;
            s == expected
        }
        Err(_) => false,
    };
    (ok, t.elapsed().as_micros() as u64)
}

/// Waits for the workers (each returns its latencies) and prints one JSON
/// line: requests, failures (as `failures_key`), rate and percentiles.
async fn print_summary(
    tasks: Vec<tokio::task::JoinHandle<Vec<u64>>>,
    started: Instant,
    errors: &AtomicU64,
    failures_key: &str,
) {
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let rps = all.len() as f64 / elapsed;
    println!(
        "{{\"requests\":{},\"{failures_key}\":{},\"seconds\":{elapsed:.1},\"per_second\":{rps:.0},\"p50_ms\":{:.2},\"p99_ms\":{:.2}}}",
        all.len(),
        errors.load(Ordering::Relaxed),
        percentile(&all, 0.5),
        percentile(&all, 0.99)
    );
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Index arithmetic on small counts.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    match Cli::parse().cmd {
        Cmd::Seed {
            config,
            count,
            seed,
            chunk,
        } => {
            let (config, ring) = load(config.as_deref());
            let store = robert_store::open(&config.server.database_url(), &config.store)
                .await
                .unwrap();
            let now = SystemClock.now_ntp();
            let started = Instant::now();
            let mut inserted = 0;
            let mut i = 0;
            while i < count {
                let n = (count - i).min(chunk as u64);
                let batch: Vec<NewRegistration> = (i..i + n)
                    .map(|j| NewRegistration {
                        id_a: IdA::from_u64(ID_BASE + j),
                        key_a: ring.kek().wrap(&derive(&seed, j, b"mac")).unwrap(),
                        key_a_tuples: ring.kek().wrap(&derive(&seed, j, b"tuples")).unwrap(),
                        created_at: now,
                    })
                    .collect();
                inserted += store.insert_registrations_bulk(&batch).await.unwrap();
                i += n;
            }
            let secs = started.elapsed().as_secs_f64();
            store.close().await;
            let rate = inserted as f64 / secs;
            println!("{{\"inserted\":{inserted},\"seconds\":{secs:.2},\"per_second\":{rate:.0}}}");
        }
        Cmd::Bodies {
            config,
            count,
            of,
            seed,
            out,
        } => {
            let (config, ring) = load(config.as_deref());
            let now = SystemClock.now_ntp();
            let total = of.unwrap_or(count).max(1);
            let mut f = std::io::BufWriter::new(std::fs::File::create(&out).unwrap());
            for k in 0..count {
                // A stride coprime with most totals scatters the picks.
                let i = if total == count {
                    k
                } else {
                    (k * 1_000_003) % total
                };
                writeln!(f, "{}", status_body(&config, &ring, &seed, i, now)).unwrap();
            }
            f.flush().unwrap();
            eprintln!("{count} bodies valid until {}", now.plus(60).to_unix());
        }
        Cmd::Status {
            config,
            url,
            count,
            seed,
            concurrency,
            secs,
        } => {
            let (config, ring) = load(config.as_deref());
            let (config, ring) = (Arc::new(config), Arc::new(ring));
            let client = robert_server::http_client::client(Duration::from_secs(30)).unwrap();
            let next = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let errors = Arc::new(AtomicU64::new(0));
            let started = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..concurrency {
                let (client, next, stop, errors) =
                    (client.clone(), next.clone(), stop.clone(), errors.clone());
                let (config, ring, seed, url) = (
                    config.clone(),
                    ring.clone(),
                    seed.clone(),
                    format!("{url}/api/v6/status"),
                );
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed) % count;
                        let body = status_body(&config, &ring, &seed, i, SystemClock.now_ntp());
                        let (ok, micros) = post_timed(&client, &url, body, 200).await;
                        lat.push(micros);
                        if !ok {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    lat
                }));
            }
            tokio::time::sleep(Duration::from_secs(secs)).await;
            stop.store(true, Ordering::Relaxed);
            print_summary(tasks, started, &errors, "non_200").await;
        }
        Cmd::Register {
            url,
            requests,
            concurrency,
        } => {
            let client = robert_server::http_client::client(Duration::from_secs(30)).unwrap();
            let next = Arc::new(AtomicU64::new(0));
            let errors = Arc::new(AtomicU64::new(0));
            let started = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..concurrency {
                let (client, next, errors, url) = (
                    client.clone(),
                    next.clone(),
                    errors.clone(),
                    format!("{url}/api/v6/register"),
                );
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    while next.fetch_add(1, Ordering::Relaxed) < requests {
                        let key =
                            robert_core::registration::ClientKeyAgreement::new(&mut rand::rng())
                                .public_key_base64();
                        let body = format!(
                            r#"{{"captcha":"x","captchaId":"y","clientPublicECDHKey":"{key}"}}"#
                        );
                        let (ok, micros) = post_timed(&client, &url, body, 201).await;
                        lat.push(micros);
                        if !ok {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    lat
                }));
            }
            print_summary(tasks, started, &errors, "non_201").await;
        }
    }
}
