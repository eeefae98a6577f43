//! `robert phone`: a phone in a terminal, talking to a running server.
//!
//! ```text
//! robert phone --dir DIR --server URL --server-public-key KEY register [--captcha ANSWER]
//! robert phone --dir DIR status
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

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use robert_client::rand;
use robert_client::{
    CaptchaChallenge, CaptchaSolver, ClientError, DeviceModel, EncryptedFileStorage,
    FileKeyProvider, Os, Phone, PhoneConfig, ReportBasis, ReqwestTransport, Storage as _,
    SystemClock,
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
    #[command(subcommand)]
    command: PhoneCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PhoneCommand {
    /// Register with the server (captcha, key agreement, first EBIDs).
    Register {
        /// The captcha answer; without it the captcha is saved to
        /// DIR/captcha.png and the answer read from standard input.
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

fn open_phone(args: &PhoneArgs) -> anyhow::Result<CliPhone> {
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
        Arc::new(SystemClock::default()),
        rand::make_rng(),
    )?;
    Ok(phone)
}

/// Asks on the terminal, after saving the captcha media to a file.
struct TerminalCaptcha {
    dir: PathBuf,
}

impl CaptchaSolver for TerminalCaptcha {
    async fn solve(&mut self, challenge: &CaptchaChallenge) -> Option<String> {
        if let Some(media) = &challenge.media {
            let ext = match challenge.kind {
                robert_client::CaptchaKind::Image => "png",
                robert_client::CaptchaKind::Audio => "wav",
            };
            let path = self.dir.join(format!("captcha.{ext}"));
            if std::fs::write(&path, media).is_ok() {
                eprintln!("captcha saved to {}", path.display());
            }
        } else {
            eprintln!("the server sent no captcha image (id {})", challenge.id);
        }
        eprint!("captcha answer: ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).ok()?;
        let answer = line.trim().to_owned();
        (!answer.is_empty()).then_some(answer)
    }
}

fn parse_date(what: &str, s: &str) -> anyhow::Result<NtpSeconds> {
    let d: UtcDate = s
        .parse()
        .map_err(|_| anyhow::anyhow!("{what}: expected YYYY-MM-DD, got {s:?}"))?;
    Ok(d.midnight())
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
fn when(t: NtpSeconds) -> String {
    let secs = t.seconds_into_utc_day();
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        UtcDate::of(t),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
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
            PhoneCommand::Show => println!("no phone state in {}", args.dir.display()),
            _ => println!("nothing to wipe in {}", args.dir.display()),
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
    if let PhoneCommand::Show = args.command {
        return show(&args);
    }
    let mut phone = open_phone(&args)?;
    match &args.command {
        PhoneCommand::Register { captcha } => {
            match captcha {
                Some(answer) => {
                    phone
                        .register(&mut robert_client::FixedCaptchaAnswer(answer.clone()))
                        .await?;
                }
                None => {
                    phone
                        .register(&mut TerminalCaptcha {
                            dir: args.dir.clone(),
                        })
                        .await?;
                }
            }
            let s = phone.summary();
            println!("registered: {} EBIDs", s.ebids_left);
        }
        PhoneCommand::Status => match phone.status().await {
            Ok(out) => {
                println!(
                    "risk level {} ({}), {} new EBIDs",
                    out.risk_level,
                    risk_text(out.risk_level),
                    out.tuples_received
                );
                if let Some(d) = phone.status_info().last_contact_date {
                    println!("last contact: {}", UtcDate::of(d));
                }
                if let Some(n) = out.notification {
                    println!("notification due at {}", when(n.deliver_at));
                }
            }
            Err(ClientError::RegistrationDropped) => {
                bail!(
                    "the server dropped this registration (HTTP 430); local registration deleted: register again"
                )
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
            println!(
                "reported: {} contacts ({} HELLOs) sent, {} kept back by the proximity filter",
                out.contacts_sent, out.hellos_sent, out.rejected_groups
            );
        }
        PhoneCommand::Unregister => {
            phone.unregister().await?;
            println!("unregistered; local state deleted");
        }
        PhoneCommand::DeleteHistory { local_only } => {
            if *local_only {
                phone.delete_local_history()?;
                println!("local history deleted");
            } else {
                phone.delete_exposure_history().await?;
                println!("exposure history deleted on the server and here");
            }
        }
        PhoneCommand::Wipe => {
            phone.wipe()?;
            let _ = std::fs::remove_dir(args.dir.join("data"));
            println!("wiped {}", args.dir.display());
            return Ok(ExitCode::SUCCESS);
        }
        PhoneCommand::Hello => {
            let payload = phone.ble_payload()?;
            println!("{}", hex(&payload));
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
            println!("recorded");
        }
        PhoneCommand::Show => unreachable!("handled above"),
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
    println!(
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
        Arc::new(SystemClock::default()),
        rand::make_rng(),
    )?;
    let s = phone.summary();
    match s.registered_since {
        Some(t) => println!("registered since: {}", when(t)),
        None => println!("registered: no"),
    }
    println!("EBIDs left: {}", s.ebids_left);
    if let Some(t) = s.ebids_until {
        println!("EBIDs until: {}", when(t));
    }
    println!("risk level: {} ({})", s.risk_level, risk_text(s.risk_level));
    if let Some(d) = s.last_contact_date {
        println!("last contact: {}", UtcDate::of(d));
    }
    match s.last_status_at {
        Some(t) => println!("last status: {}", when(t)),
        None => println!("last status: never"),
    }
    if let Some(t) = s.next_status_due {
        println!("next status due: {}", when(t));
    }
    if let Some(t) = s.reported_at {
        println!("reported positive: {}", when(t));
    }
    if let Some(n) = s.pending_notification {
        println!("pending notification at {}", when(n.deliver_at));
    }
    if s.contacts_per_day.is_empty() {
        println!("contacts stored: none");
    } else {
        println!("contacts stored:");
        for (day, c) in &s.contacts_per_day {
            println!("  {day}: {} EBIDs, {} HELLOs", c.ebids, c.records);
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
