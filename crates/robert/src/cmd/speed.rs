//! `robert speed`: protocol hot paths in ns/op and ops/s, in the spirit of
//! `openssl speed`.
//!
//! Each operation runs for a fixed wall-clock budget after a short warm-up;
//! the figure is the mean over all iterations. Criterion benchmarks
//! (`cargo bench -p robert-core`, `cargo bench -p skinny`) give the same
//! measurements with confidence intervals.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use robert_core::contact::{ContactValidator, HelloPolicy, UploadedHello};
use robert_core::ebid::{self, Ebid};
use robert_core::ecc::{CountryCode, Ecc};
use robert_core::hello::Hello;
use robert_core::id_a::IdA;
use robert_core::keys::{KeyA, KeyATuples, KeyG, KeyS};
use robert_core::time::{Epoch, ServiceStart};
use robert_core::tuples::{self, BundleSpan};
use serde::Serialize;

mod instructions;

/// Arguments of `robert speed`.
#[derive(Debug, clap::Args)]
pub(crate) struct SpeedArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Measurement time per operation, in milliseconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    millis: u64,
    /// Count instructions per operation under `valgrind --tool=callgrind`
    /// instead of timing: the same figure on every run, whatever the load.
    #[arg(long)]
    instructions: bool,
    /// With --instructions: fail (exit 1) when an operation takes more than
    /// 10 % more instructions than in this baseline file.
    #[arg(long, value_name = "FILE", requires = "instructions")]
    check: Option<std::path::PathBuf>,
    /// With --instructions: write the counts to this baseline file, in place of
    /// its entry for the same build profile and back end (others are kept).
    #[arg(long, value_name = "FILE", requires = "instructions")]
    write: Option<std::path::PathBuf>,
    /// Internal (the instruction counter's child run): run only this operation.
    #[arg(long, hide = true)]
    only: Option<String>,
    /// Internal: run the operation exactly this many calls, untimed.
    #[arg(long, hide = true, requires = "only")]
    calls: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Measurement {
    name: &'static str,
    what: &'static str,
    ns_per_op: f64,
    ops_per_sec: f64,
    /// Thread CPU time per operation (Linux): on a loaded machine, the time
    /// the thread actually ran, without the waits for a core.
    cpu_ns_per_op: Option<f64>,
}

/// This thread's CPU time so far in nanoseconds: the first field of
/// `/proc/thread-self/schedstat` (Linux; `None` elsewhere).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[derive(Debug, Serialize)]
struct Report {
    skinny_backend: &'static str,
    crypto_backends: String,
    cpu_threads: usize,
    results: Vec<Measurement>,
}

/// Runs `f` (which performs `per_call` operations) until `budget` elapses.
fn measure(
    name: &'static str,
    what: &'static str,
    budget: Duration,
    per_call: u64,
    mut f: impl FnMut(),
) -> Measurement {
    let warm = Instant::now();
    while warm.elapsed() < budget / 10 {
        f();
    }
    let mut calls: u64 = 0;
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    let mut elapsed = Duration::ZERO;
    while elapsed < budget {
        for _ in 0..16 {
            f();
        }
        calls += 16;
        elapsed = start.elapsed();
    }
    let cpu = cpu_start
        .zip(thread_cpu_ns())
        .map(|(a, b)| b.saturating_sub(a));
    let ops = (calls * per_call) as f64;
    let ns = elapsed.as_nanos() as f64 / ops;
    Measurement {
        name,
        what,
        ns_per_op: ns,
        ops_per_sec: 1e9 / ns,
        cpu_ns_per_op: cpu.map(|c| c as f64 / ops),
    }
}

/// One hot path: `f` performs `per_call` operations.
struct Op<'a> {
    name: &'static str,
    what: &'static str,
    per_call: u64,
    f: Box<dyn FnMut() + 'a>,
}

fn op<'a>(name: &'static str, what: &'static str, per_call: u64, f: impl FnMut() + 'a) -> Op<'a> {
    Op {
        name,
        what,
        per_call,
        f: Box::new(f),
    }
}

/// Runs `robert speed`.
pub(crate) fn run(args: SpeedArgs) -> anyhow::Result<ExitCode> {
    let budget = Duration::from_millis(args.millis);
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let k_s = KeyS::generate(&mut rng);
    let k_g = KeyG::generate(&mut rng);
    let k_a = KeyA::from_bytes([0x42; 32]);
    let k_t = KeyATuples::from_bytes([0x24; 32]);
    let start = ServiceStart::REFERENCE;
    let epoch = Epoch(66_855);
    let now = start.epoch_start(epoch).plus(321);
    let id_a = IdA([1, 2, 3, 4, 5]);
    let cipher = k_s.cipher();

    let ebid = Ebid::encrypt(&k_s, epoch, id_a)?;
    let ecc = Ecc::encrypt(&k_g, &ebid, CountryCode::FRANCE);
    let hello = Hello::new(&k_a, ecc, ebid, now.time16()).to_bytes();
    let batch: Vec<Ebid> = (0..1024u32)
        .map(|i| Ebid::encrypt(&k_s, Epoch(epoch.0 + i % 96), IdA::from_u64(u64::from(i))))
        .collect::<Result<_, _>>()?;
    let mut blocks: Vec<u64> = batch.iter().map(|e| u64::from_be_bytes(e.0)).collect();
    let span = BundleSpan {
        from: epoch,
        days: 4,
    };
    // A contact of 10 HELLOs from one sender, as the batch checks it.
    let validator = ContactValidator {
        key_g: k_g.clone(),
        country: CountryCode::FRANCE,
        start,
        policy: HelloPolicy::default(),
    };
    let t0 = start.epoch_start(epoch);
    let contact: Vec<UploadedHello> = (0..10u64)
        .map(|i| UploadedHello::received(&k_a, ecc, &ebid, t0.plus(i * 6), t0.plus(i * 6), -50))
        .collect();
    let sender = validator
        .identify(&ebid, ecc, &contact, |_| Some(ebid.decrypt(&k_s)))
        .map_err(|e| anyhow::anyhow!("benchmark contact: {e}"))?;
    // The 4 days from 00:00 of the benchmarked bundles: 384 tuples.
    let day_span = BundleSpan {
        from: Epoch(epoch.0 - epoch.index_in_day()),
        days: 4,
    };
    let bundle = tuples::generate(id_a, day_span, &start, &k_g, CountryCode::FRANCE, |_| {
        Some(&k_s)
    });
    let mut rng_seal = StdRng::seed_from_u64(0x5ea1);
    let n_tuples = tuples::generate(id_a, span, &start, &k_g, CountryCode::FRANCE, |_| {
        Some(&k_s)
    })
    .tuples
    .len();

    let mut ops = [
        op("skinny-decrypt", "SKINNY-64-192, one block", 1, || {
            black_box(cipher.decrypt_u64(black_box(0x0123_4567_89ab_cdef)));
        }),
        op(
            "skinny-decrypt-batch",
            "SKINNY-64-192, per block in batches of 1024",
            1024,
            || {
                cipher.decrypt_batch(black_box(&mut blocks));
            },
        ),
        op(
            "ebid-generate",
            "EBID = SKINNY(K_S, epoch ‖ ID_A)",
            1,
            || {
                black_box(Ebid::encrypt(&k_s, black_box(epoch), black_box(id_a)).ok());
            },
        ),
        op(
            "ebid-decrypt-batch",
            "EBID → (epoch, ID_A), per EBID in batches of 1024",
            1024,
            || {
                black_box(ebid::decrypt_batch(&k_s, black_box(&batch)));
            },
        ),
        op(
            "ecc-encode",
            "ECC = AES-256(K_G, EBID ‖ 0)[0] ⊕ CC",
            1,
            || {
                black_box(Ecc::encrypt(&k_g, black_box(&ebid), CountryCode::FRANCE));
            },
        ),
        op(
            "hello-verify",
            "parse HELLO + ECC decode + EBID decrypt + MAC check (keyed K_A)",
            1,
            || {
                let h = Hello::from_bytes(black_box(&hello)).ok();
                if let Some(h) = h {
                    let cc = h.ecc.decrypt(&k_g, &h.ebid);
                    let content = h.ebid.decrypt(&k_s);
                    let ok =
                        cc == CountryCode::FRANCE && content.epoch == epoch && h.verify_mac(&k_a);
                    black_box(ok);
                }
            },
        ),
        op(
            "hello-check",
            "the same through Hello::check (one kernel interleaving ECC, EBID and MAC with SHA-NI)",
            1,
            || {
                if let Ok(h) = Hello::from_bytes(black_box(&hello)) {
                    let c = h.check(&k_g, &k_s, &k_a);
                    black_box(
                        c.country == CountryCode::FRANCE && c.content.epoch == epoch && c.mac_valid,
                    );
                }
            },
        ),
        op(
            "contact-hellos",
            "batch HELLO checks (MAC in lanes, Time16, epoch), per HELLO of a 10-HELLO contact",
            10,
            || {
                let ok = validator
                    .verify_hellos(&sender, &ebid, ecc, &k_a, black_box(&contact))
                    .iter()
                    .filter(|r| r.is_ok())
                    .count();
                black_box(ok);
            },
        ),
        op(
            "hello-verify-cold-key",
            "hello-verify with K_A set up per HELLO (HMAC key schedule included)",
            1,
            || {
                if let Ok(h) = Hello::from_bytes(black_box(&hello)) {
                    let key = KeyA::from_bytes(black_box([0x42; 32]));
                    let cc = h.ecc.decrypt(&k_g, &h.ebid);
                    let content = h.ebid.decrypt(&k_s);
                    black_box(
                        cc == CountryCode::FRANCE && content.epoch == epoch && h.verify_mac(&key),
                    );
                }
            },
        ),
        op(
            "bundle-generate",
            "the bundle's 384 tuples alone: EBIDs (batch SKINNY) + ECCs (AES)",
            1,
            || {
                black_box(tuples::generate(
                    id_a,
                    day_span,
                    &start,
                    &k_g,
                    CountryCode::FRANCE,
                    |_| Some(&k_s),
                ));
            },
        ),
        op(
            "bundle-seal",
            "the bundle's sealing alone: JSON (23 kB) + AES-256-GCM",
            1,
            || {
                black_box(bundle.seal(&k_t, &mut rng_seal));
            },
        ),
        op(
            "bundle-4-days",
            "tuple bundle, 4 days from 00:00 (384 tuples): EBIDs + ECCs + JSON + AES-256-GCM",
            1,
            || {
                let b = tuples::generate(id_a, day_span, &start, &k_g, CountryCode::FRANCE, |_| {
                    Some(&k_s)
                });
                black_box(b.seal(&k_t, &mut rng));
            },
        ),
    ];

    if let Some(only) = &args.only {
        if only == "skinny-backend" {
            // What the instruction counter's children run on.
            println!("{}", skinny::backend_name());
            return Ok(ExitCode::SUCCESS);
        }
        // A child run of --instructions: exactly `calls` calls, untimed.
        let Some(o) = ops.iter_mut().find(|o| o.name == only.as_str()) else {
            anyhow::bail!("no operation named {only}");
        };
        for _ in 0..args.calls.unwrap_or(1) {
            (o.f)();
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.instructions {
        let names: Vec<(&'static str, &'static str, u64)> =
            ops.iter().map(|o| (o.name, o.what, o.per_call)).collect();
        return instructions::run(&names, &args);
    }

    let results: Vec<Measurement> = ops
        .iter_mut()
        .map(|o| measure(o.name, o.what, budget, o.per_call, &mut o.f))
        .collect();
    let report = Report {
        skinny_backend: skinny::backend_name(),
        crypto_backends: robert_core::crypto::backends(),
        cpu_threads: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        results,
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!(
            "SKINNY backend: {}   SHA-256, AES: {}   (bundle at epoch {epoch}: {n_tuples} tuples)",
            report.skinny_backend,
            report.crypto_backends
        );
        outln!(
            "{:<24} {:>12} {:>14} {:>12}  what",
            "operation",
            "ns/op",
            "ops/s",
            "cpu ns/op"
        );
        for m in &report.results {
            let cpu = m
                .cpu_ns_per_op
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.1}"));
            outln!(
                "{:<24} {:>12.1} {:>14.0} {:>12}  {}",
                m.name,
                m.ns_per_op,
                m.ops_per_sec,
                cpu,
                m.what
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
