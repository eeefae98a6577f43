//! `robert phone`: a phone in a terminal, talking to a running server.
//!
//! ```text
//! robert phone --dir DIR --server URL --server-public-key KEY register [--captcha ANSWER]
//! robert phone --dir DIR status
//! robert phone --dir DIR meet --with OTHER_DIR [--minutes 30] [--rssi DBM]
//! robert phone --dir DIR report CODE [--onset YYYY-MM-DD | --test-date YYYY-MM-DD]
//! robert phone --dir DIR unregister | delete-history [--local-only] | wipe | show
//! robert phone --dir DIR hello | receive PAYLOAD_HEX --rssi DBM
//! ```
//!
//! The phone's state is encrypted in `DIR/data/` under the device key
//! `DIR/device.key` (mode 0600). The server URL, public key and device model
//! given once are kept (encrypted) for the next commands. `--server-public-key`
//! takes the base64 key printed by `robert keys show-public`, or `@FILE`
//! holding that output. Exit status: 0 on success, 2 on error.
//!
//! `--clock-offset` (or `ROBERT_CLOCK_OFFSET`, which `robert serve` also
//! reads) shifts the phone's clock for local demonstrations: see the README's
//! "A phone at risk in one minute".

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use robert_client::rand;
use robert_client::{
    CaptchaChallenge, CaptchaSolver, ClientError, Clock, DeviceModel, EncryptedFileStorage,
    FileKeyProvider, ManualClock, OffsetClock, Os, Phone, PhoneConfig, ReportBasis,
    ReqwestTransport, Storage as _,
};
use robert_core::time::{NtpSeconds, UtcDate};
use serde::{Deserialize, Serialize};

/// Arguments of `robert phone`.
#[derive(Debug, clap::Args)]
pub(crate) struct PhoneArgs {
    /// Directory holding this phone's encrypted state.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Server base URL, e.g. `http://127.0.0.1:8086` (kept for later commands).
    #[arg(long, value_name = "URL", env = "ROBERT_PHONE_SERVER")]
    server: Option<String>,
    /// The server's registration public key: base64 SPKI as printed by
    /// `robert keys show-public`, or `@FILE` containing it (kept).
    #[arg(long, value_name = "KEY|@FILE", env = "ROBERT_PHONE_SERVER_KEY")]
    server_public_key: Option<String>,
    /// Device model for the calibration table, e.g. `SM-G973F` or `iPhone12,1` (kept).
    #[arg(long)]
    model: Option<String>,
    /// Operating system: android or ios (kept).
    #[arg(long, value_parser = parse_os)]
    os: Option<Os>,
    /// Shift this phone's clock, e.g. `-1h` (not kept): local demonstrations
    /// only, with a server shifted the same way (`robert serve` reads the
    /// same variable), since the server refuses a phone whose clock is off.
    #[arg(
        long,
        value_name = "DURATION",
        env = "ROBERT_CLOCK_OFFSET",
        value_parser = super::serve::parse_offset,
        allow_hyphen_values = true
    )]
    clock_offset: Option<i64>,
    #[command(subcommand)]
    command: PhoneCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PhoneCommand {
    /// Register with the server (captcha, key agreement, first EBIDs).
    ///
    /// The captcha image is saved to DIR/captcha.png and the answer read
    /// from standard input (a terminal, or a script that reads the path on
    /// standard error first). A wrong answer brings a new image; an empty
    /// line asks for another image.
    Register {
        /// Answer without asking: only useful against a server whose captcha
        /// check is off (`captcha.mode = "accept-any"`, local tests), since
        /// the built-in captcha draws a new image at each attempt.
        #[arg(long)]
        captcha: Option<String>,
    },
    /// Ask the server for the exposure status (and fresh EBIDs).
    Status,
    /// Report positive with a code: 6 or 12 characters, a UUID, a JWT, or a
    /// QR deep link.
    Report {
        /// The code or link.
        code: String,
        /// Symptom onset date (YYYY-MM-DD).
        #[arg(long, conflicts_with = "test_date")]
        onset: Option<String>,
        /// Positive test date, without symptoms (YYYY-MM-DD).
        #[arg(long)]
        test_date: Option<String>,
    },
    /// Unregister from the server and delete the local state (the device key stays).
    Unregister,
    /// Delete the exposure history on the server and the received HELLOs here.
    DeleteHistory {
        /// Only delete the HELLOs stored on this phone.
        #[arg(long)]
        local_only: bool,
    },
    /// Delete everything here, device key included (nothing is sent).
    Wipe,
    /// Print the state without secrets.
    Show,
    /// Print the current 18-byte BLE payload (HELLO, version, TX gain) in hex.
    Hello,
    /// Two registered phones side by side for a while, from now on (this
    /// phone's clock): each records the other's HELLOs every few seconds,
    /// without waiting real time. Nothing is sent.
    Meet {
        /// The other phone's directory.
        #[arg(long = "with", value_name = "OTHER_DIR")]
        other: PathBuf,
        /// How long they stay together, in minutes.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=1440))]
        minutes: u64,
        /// Seconds between two HELLOs heard.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
        every: u64,
        /// Raw RSSI both phones measure, in dBm (−60: about 1 m).
        #[arg(long, allow_hyphen_values = true, default_value_t = -60)]
        rssi: i16,
    },
    /// Record a BLE payload received from another phone (hex from `hello`).
    Receive {
        /// The payload in hex (≥ 18 bytes) or a bare 16-byte HELLO.
        payload: String,
        /// Raw RSSI in dBm.
        #[arg(long, allow_hyphen_values = true, default_value_t = -60)]
        rssi: i16,
        /// Sender TX gain for a bare HELLO.
        #[arg(long, allow_hyphen_values = true, default_value_t = -30)]
        tx_gain: i8,
    },
}

fn parse_os(s: &str) -> Result<Os, String> {
    Os::parse(s).ok_or_else(|| format!("unknown OS {s:?} (expected android or ios)"))
}

/// Settings kept between commands (inside the encrypted storage).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Settings {
    server: Option<String>,
    server_public_key: Option<String>,
    model: Option<String>,
    ios: Option<bool>,
}

const SETTINGS_RECORD: &str = "cli-settings";

type CliStorage = EncryptedFileStorage<FileKeyProvider>;
type CliPhone = Phone<ReqwestTransport, CliStorage>;

fn key_path(dir: &Path) -> PathBuf {
    dir.join("device.key")
}

fn open_storage(dir: &Path) -> anyhow::Result<CliStorage> {
    EncryptedFileStorage::open(
        dir.join("data"),
        FileKeyProvider::new(key_path(dir)),
        |buf: &mut [u8]| rand::fill(buf),
    )
    .with_context(|| format!("cannot open the phone state in {}", dir.display()))
}

/// Reads `@FILE` values; picks the base64 SPKI out of `keys show-public` output.
fn resolve_key(arg: &str) -> anyhow::Result<String> {
    let text = match arg.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
        }
        None => arg.to_owned(),
    };
    text.split(|c: char| c.is_whitespace() || c == '"' || c == ',')
        .find(|tok| robert_core::registration::parse_public_key(tok).is_ok())
        .map(str::to_owned)
        .context("no base64 P-256 public key (SubjectPublicKeyInfo) found in --server-public-key")
}

fn merge_settings(args: &PhoneArgs, mut s: Settings) -> anyhow::Result<Settings> {
    if let Some(url) = &args.server {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("--server must be an http:// or https:// URL");
        }
        s.server = Some(url.trim_end_matches('/').to_owned());
    }
    if let Some(k) = &args.server_public_key {
        s.server_public_key = Some(resolve_key(k)?);
    }
    if let Some(m) = &args.model {
        s.model = Some(m.clone());
    }
    if let Some(os) = args.os {
        s.ios = Some(os == Os::Ios);
    }
    Ok(s)
}

/// This phone's clock: the system clock, shifted by `--clock-offset`.
fn clock(args: &PhoneArgs) -> Arc<dyn Clock> {
    Arc::new(OffsetClock::new(args.clock_offset.unwrap_or(0)))
}

fn open_phone(args: &PhoneArgs, clock: Arc<dyn Clock>) -> anyhow::Result<CliPhone> {
    let mut storage = open_storage(&args.dir)?;
    let saved: Settings = match storage.read(SETTINGS_RECORD)? {
        Some(bytes) => serde_json::from_slice(&bytes).context("corrupt phone settings")?,
        None => Settings::default(),
    };
    let settings = merge_settings(args, saved.clone())?;
    if settings != saved {
        storage.write(SETTINGS_RECORD, &serde_json::to_vec(&settings)?)?;
    }
    let server = settings
        .server
        .clone()
        .context("no server URL: give --server URL (kept for later commands)")?;
    let key = settings.server_public_key.clone().context(
        "no server public key: give --server-public-key (see `robert keys show-public`)",
    )?;
    let model = settings
        .model
        .clone()
        .unwrap_or_else(|| "DEFAULT".to_owned());
    let device = if settings.ios == Some(true) {
        DeviceModel::ios(&model)
    } else {
        DeviceModel::android(&model)
    };
    let config = PhoneConfig::with_key_base64(&server, &key, device)?;
    let transport = ReqwestTransport::new(Duration::from_secs(30))?;
    let phone = Phone::open(
        Arc::new(config),
        transport,
        storage,
        clock,
        rand::make_rng(),
    )?;
    Ok(phone)
}

/// Another phone's state, opened to record HELLOs only (`meet`).
fn open_other(dir: &Path, clock: Arc<dyn Clock>) -> anyhow::Result<CliPhone> {
    if !key_path(dir).exists() {
        bail!("no phone in {}: register it first", dir.display());
    }
    let storage = open_storage(dir)?;
    let settings: Settings = match storage.read(SETTINGS_RECORD)? {
        Some(bytes) => serde_json::from_slice(&bytes).context("corrupt phone settings")?,
        None => Settings::default(),
    };
    let key = settings
        .server_public_key
        .clone()
        .unwrap_or_else(|| PLACEHOLDER_KEY.to_owned());
    let model = settings.model.as_deref().unwrap_or("DEFAULT");
    let device = if settings.ios == Some(true) {
        DeviceModel::ios(model)
    } else {
        DeviceModel::android(model)
    };
    let server = settings.server.as_deref().unwrap_or("http://localhost");
    let config = PhoneConfig::with_key_base64(server, &key, device)?;
    let phone = Phone::open(
        Arc::new(config),
        ReqwestTransport::new(Duration::from_secs(30))?,
        storage,
        clock,
        rand::make_rng(),
    )?;
    Ok(phone)
}

/// Asks on standard input, after saving the captcha media to a file.
struct TerminalCaptcha {
    dir: PathBuf,
    /// Standard input ended: no answer will ever come.
    eof: bool,
}

impl CaptchaSolver for TerminalCaptcha {
    async fn solve(&mut self, challenge: &CaptchaChallenge) -> Option<String> {
        if let Some(media) = &challenge.media {
            let (ext, what) = match challenge.kind {
                robert_client::CaptchaKind::Image => ("png", "image"),
                robert_client::CaptchaKind::Audio => ("wav", "recording"),
            };
            let path = self.dir.join(format!("captcha.{ext}"));
            match std::fs::write(&path, media) {
                Ok(()) => eprintln!(
                    "captcha {what} saved to {}: open it and type its characters \
                     (an empty line asks for another {what})",
                    path.display()
                ),
                Err(e) => eprintln!("cannot save the captcha to {}: {e}", path.display()),
            }
        } else {
            eprintln!("the server sent no captcha image: type any answer");
        }
        eprint!("captcha answer: ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => {
                self.eof = true;
                eprintln!();
                None
            }
            Ok(_) => {
                let answer = line.trim().to_owned();
                (!answer.is_empty()).then_some(answer)
            }
        }
    }
}

/// Captcha attempts (wrong answers and new images) before giving up.
const CAPTCHA_ATTEMPTS: u32 = 10;

/// Registers, asking again on a wrong captcha answer (each attempt brings
/// a new image).
async fn register(phone: &mut CliPhone, dir: &Path, answer: Option<&str>) -> anyhow::Result<()> {
    if let Some(answer) = answer {
        return match phone
            .register(&mut robert_client::FixedCaptchaAnswer(answer.to_owned()))
            .await
        {
            Err(ClientError::CaptchaRejected) => bail!(
                "captcha answer refused: --captcha works only against a server whose captcha \
                 check is off (captcha.mode = \"accept-any\"); leave it out to answer the image"
            ),
            other => Ok(other?),
        };
    }
    let mut solver = TerminalCaptcha {
        dir: dir.to_owned(),
        eof: false,
    };
    for _ in 0..CAPTCHA_ATTEMPTS {
        match phone.register(&mut solver).await {
            Ok(()) => return Ok(()),
            Err(ClientError::CaptchaRejected) => {
                eprintln!("wrong answer (or too late): here is a new captcha");
            }
            Err(ClientError::CaptchaCancelled) if solver.eof => {
                bail!("no captcha answer: standard input ended")
            }
            Err(ClientError::CaptchaCancelled) => eprintln!("a new captcha"),
            Err(e) => return Err(e.into()),
        }
    }
    bail!("no right captcha answer after {CAPTCHA_ATTEMPTS} attempts")
}

/// Words for people instead of the SDK's terse ones, where the CLI knows more.
fn explain(e: ClientError, dir: &Path) -> anyhow::Error {
    match e {
        ClientError::NotRegistered => anyhow::anyhow!(
            "this phone is not registered: run `robert phone --dir {} register` first",
            dir.display()
        ),
        ClientError::RegistrationDropped => anyhow::anyhow!(
            "the server no longer knows this phone (deleted, or inactive too long): the local \
             registration was deleted; register again"
        ),
        ClientError::ClockMisaligned { drift_secs } => anyhow::anyhow!(
            "this phone's clock is {} s {} the server's: set the clock (or use the same \
             --clock-offset / ROBERT_CLOCK_OFFSET as the server)",
            drift_secs.unsigned_abs(),
            if drift_secs > 0 { "behind" } else { "ahead of" }
        ),
        other => other.into(),
    }
}

/// `meet`: this phone and the other one side by side for `minutes`.
async fn meet(
    args: &PhoneArgs,
    other: &Path,
    minutes: u64,
    every: u64,
    rssi: i16,
) -> anyhow::Result<ExitCode> {
    if std::fs::canonicalize(&args.dir).ok() == std::fs::canonicalize(other).ok() {
        bail!("a phone cannot meet itself: give another directory to --with");
    }
    let start = clock(args).now_ntp();
    let manual = ManualClock::at_ntp(start);
    let shared: Arc<dyn Clock> = Arc::new(manual.clone());
    let mut a = open_phone(args, shared.clone())?;
    let mut b = open_other(other, shared)?;
    for (p, dir) in [(&a, args.dir.as_path()), (&b, other)] {
        if !p.is_registered() {
            return Err(explain(ClientError::NotRegistered, dir));
        }
    }
    let steps = minutes * 60 / every;
    let mut heard = 0usize;
    for i in 0..steps {
        manual.set_ntp(start.plus(i * every));
        let pa = a.ble_payload().map_err(|e| no_ebid(e, &args.dir))?;
        let pb = b.ble_payload().map_err(|e| no_ebid(e, other))?;
        let ok_a = a.receive_ble_payload(&pb, rssi).is_ok();
        let ok_b = b.receive_ble_payload(&pa, rssi).is_ok();
        heard += usize::from(ok_a && ok_b);
    }
    let end = start.plus(steps * every);
    manual.set_ntp(end);
    a.persist()?;
    b.persist()?;
    outln!(
        "met for {minutes} minutes, {} to {}: each phone recorded {heard} HELLOs from the other",
        when(start),
        when(end)
    );
    outln!(
        "(the contacts are dated by the phones' clock: a report includes them once that clock has passed {})",
        when(end)
    );
    Ok(ExitCode::SUCCESS)
}

fn no_ebid(e: ClientError, dir: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{} has no pseudonym (EBID) for that time ({e}): ask its status to get more, or meet for less time",
        dir.display()
    )
}

fn parse_date(what: &str, s: &str) -> anyhow::Result<NtpSeconds> {
    let d: UtcDate = s
        .parse()
        .map_err(|_| anyhow::anyhow!("{what}: expected YYYY-MM-DD, got {s:?}"))?;
    Ok(d.midnight())
}

/// `YYYY-MM-DD HH:MM:SS UTC`, as the SDK's messages write instants.
fn when(t: NtpSeconds) -> String {
    robert_client::error::fmt_utc(t)
}

fn risk_text(level: f64) -> &'static str {
    if level > 0.0 {
        "AT RISK"
    } else {
        "not at risk"
    }
}

pub(crate) fn run(args: PhoneArgs) -> anyhow::Result<ExitCode> {
    // Commands that must not create a state where there is none.
    if matches!(args.command, PhoneCommand::Show | PhoneCommand::Wipe)
        && !key_path(&args.dir).exists()
    {
        match args.command {
            PhoneCommand::Show => outln!("no phone state in {}", args.dir.display()),
            _ => outln!("nothing to wipe in {}", args.dir.display()),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: PhoneArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        PhoneCommand::Show => return show(&args),
        PhoneCommand::Meet {
            other,
            minutes,
            every,
            rssi,
        } => return meet(&args, other, *minutes, *every, *rssi).await,
        _ => {}
    }
    let mut phone = open_phone(&args, clock(&args))?;
    if let PhoneCommand::Wipe = args.command {
        phone.wipe()?;
        let _ = std::fs::remove_dir(args.dir.join("data"));
        outln!("wiped {}", args.dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let dir = args.dir.clone();
    run_command(&args, &mut phone)
        .await
        .map_err(|e| match e.downcast::<ClientError>() {
            Ok(e) => explain(e, &dir),
            Err(e) => e,
        })
}

async fn run_command(args: &PhoneArgs, phone: &mut CliPhone) -> anyhow::Result<ExitCode> {
    match &args.command {
        PhoneCommand::Register { captcha } => {
            register(phone, &args.dir, captcha.as_deref()).await?;
            let s = phone.summary();
            match s.ebids_until {
                Some(t) => outln!(
                    "registered: {} EBIDs (Bluetooth pseudonyms, one per 15 minutes) until {}",
                    s.ebids_left,
                    when(t)
                ),
                None => outln!("registered: {} EBIDs", s.ebids_left),
            }
        }
        PhoneCommand::Status => match phone.status().await {
            Ok(out) => {
                outln!(
                    "risk level {} ({}), {} new EBIDs",
                    out.risk_level,
                    risk_text(out.risk_level),
                    out.tuples_received
                );
                if let Some(d) = phone.status_info().last_contact_date {
                    outln!("last contact: {}", UtcDate::of(d));
                }
                if let Some(n) = out.notification {
                    outln!("notification due at {}", when(n.deliver_at));
                }
            }
            Err(e) => return Err(e.into()),
        },
        PhoneCommand::Report {
            code,
            onset,
            test_date,
        } => {
            let basis = match (onset, test_date) {
                (Some(d), _) => ReportBasis::SymptomOnset(parse_date("--onset", d)?),
                (None, Some(d)) => ReportBasis::PositiveTest(parse_date("--test-date", d)?),
                (None, None) => ReportBasis::Unknown,
            };
            let out = phone.report(code, basis).await?;
            outln!(
                "reported: {} contacts ({} HELLOs) sent, {} kept back by the proximity filter",
                out.contacts_sent,
                out.hellos_sent,
                out.rejected_groups
            );
        }
        PhoneCommand::Unregister => {
            phone.unregister().await?;
            outln!("unregistered; local state deleted");
        }
        PhoneCommand::DeleteHistory { local_only } => {
            if *local_only {
                phone.delete_local_history()?;
                outln!("local history deleted");
            } else {
                phone.delete_exposure_history().await?;
                outln!("exposure history deleted on the server and here");
            }
        }
        PhoneCommand::Hello => {
            let payload = phone.ble_payload()?;
            outln!("{}", hex(&payload));
        }
        PhoneCommand::Receive {
            payload,
            rssi,
            tx_gain,
        } => {
            let bytes = unhex(payload).context("payload: expected hex")?;
            let result = if bytes.len() == 16 {
                phone.receive_hello(&bytes, *rssi, *tx_gain)
            } else {
                phone.receive_ble_payload(&bytes, *rssi)
            };
            result.map_err(|e| anyhow::anyhow!("HELLO not recorded: {e}"))?;
            outln!("recorded");
        }
        PhoneCommand::Show | PhoneCommand::Meet { .. } | PhoneCommand::Wipe => {
            unreachable!("handled above")
        }
    }
    phone.persist()?;
    Ok(ExitCode::SUCCESS)
}

fn show(args: &PhoneArgs) -> anyhow::Result<ExitCode> {
    let storage = open_storage(&args.dir)?;
    let settings: Settings = match storage.read(SETTINGS_RECORD)? {
        Some(bytes) => serde_json::from_slice(&bytes).context("corrupt phone settings")?,
        None => Settings::default(),
    };
    outln!(
        "server: {}",
        settings.server.as_deref().unwrap_or("(not set)")
    );
    // `show` works without a configured server: a placeholder key is enough
    // to read the state (nothing is sent).
    let key = settings
        .server_public_key
        .clone()
        .unwrap_or_else(|| PLACEHOLDER_KEY.to_owned());
    let device = DeviceModel::android(settings.model.as_deref().unwrap_or("DEFAULT"));
    let config = PhoneConfig::with_key_base64("http://localhost", &key, device)?;
    let phone = Phone::open(
        Arc::new(config),
        ReqwestTransport::new(Duration::from_secs(1))?,
        storage,
        clock(args),
        rand::make_rng(),
    )?;
    let s = phone.summary();
    match s.registered_since {
        Some(t) => outln!("registered since: {}", when(t)),
        None => outln!("registered: no"),
    }
    outln!("EBIDs left: {}", s.ebids_left);
    if let Some(t) = s.ebids_until {
        outln!("EBIDs until: {}", when(t));
    }
    outln!("risk level: {} ({})", s.risk_level, risk_text(s.risk_level));
    if let Some(d) = s.last_contact_date {
        outln!("last contact: {}", UtcDate::of(d));
    }
    match s.last_status_at {
        Some(t) => outln!("last status: {}", when(t)),
        None => outln!("last status: never"),
    }
    if let Some(t) = s.next_status_due {
        outln!("next status due: {}", when(t));
    }
    if let Some(t) = s.reported_at {
        outln!("reported positive: {}", when(t));
    }
    if let Some(n) = s.pending_notification {
        outln!("pending notification at {}", when(n.deliver_at));
    }
    if s.contacts_per_day.is_empty() {
        outln!("contacts stored: none");
    } else {
        outln!("contacts stored:");
        for (day, c) in &s.contacts_per_day {
            outln!("  {day}: {} EBIDs, {} HELLOs", c.ebids, c.records);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The reference's development key, used by `show` only to open the state.
const PLACEHOLDER_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7fAxfrLtG5tXyjomCOg9r1wNnr9len4m9sTflJUHDdkwubKyidTtFkVfNLrM91yuffdrpJZe9XOkof8P+zPGDg==";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || s.len() > 200 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_resolution_finds_the_spki_in_show_public_output() {
        assert_eq!(resolve_key(PLACEHOLDER_KEY).unwrap(), PLACEHOLDER_KEY);
        let path = std::env::temp_dir().join(format!("robert-phone-key-{}", std::process::id()));
        std::fs::write(&path, format!("{PLACEHOLDER_KEY}\n")).unwrap();
        assert_eq!(
            resolve_key(&format!("@{}", path.display())).unwrap(),
            PLACEHOLDER_KEY
        );
        std::fs::remove_file(&path).unwrap();
        assert!(resolve_key("not a key").is_err());
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(unhex("00ff10").unwrap(), vec![0, 255, 16]);
        assert_eq!(hex(&[0, 255, 16]), "00ff10");
        assert!(unhex("0").is_none());
        assert!(unhex("zz").is_none());
    }
}
