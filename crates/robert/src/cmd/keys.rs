//! `robert keys`: provisioning of the server keys (protocol.md §3).
//!
//! ```text
//! robert keys init          K_G, KEK, registration key pair, JWT keys, K_S today..today+N
//! robert keys import        keys from a key ceremony or another site (hex or base64; @file)
//! robert keys rotate        K_S up to today+N; deletes K_S older than the retention
//! robert keys show-public   the registration public key apps embed (--jwt: token keys)
//! robert keys migrate       copy the file key store into the configured store (a PKCS#11 token)
//! robert keys federation-keygen   an ECDSA P-256 key pair signing federation batches
//! ```
//!
//! Reports are JSON on stdout and never contain key material. The key store
//! is the server's (`[keys]`): the file store with its passphrase
//! (`ROBERT_KEYSTORE_PASSPHRASE` or the passphrase file), or a PKCS#11 token
//! (`keys.store = "pkcs11"`, PIN in `ROBERT_PKCS11_PIN` or
//! `keys.pkcs11.pin_file`). Exit status: 0 on success, 2 on error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use robert_core::time::UtcDate;
use robert_server::config::KeyStoreKind;
use robert_server::keystore::admin::{self, ImportItem};
use robert_server::keystore::{KeyRing, SecretSource};
use robert_server::serve;
use zeroize::Zeroizing;

use super::serve::{ConfigArgs, clock};

/// Arguments of `robert keys`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Create the key store, or add whatever it lacks: K_G, KEK, the
    /// registration key pair, the JWT keys of `jwt.algorithm` (RSA-2048 for
    /// RS256, the default; P-256 for ES256) unless they come from files,
    /// and K_S for today and the next days.
    Init {
        #[command(flatten)]
        common: ConfigArgs,
        /// Days of K_S after today (default: `keys.future_days`).
        #[arg(long)]
        future_days: Option<u32>,
    },
    /// Import keys given in hex or base64 (`@path` reads a value from a file).
    Import {
        #[command(flatten)]
        common: ConfigArgs,
        /// K_S of one day: `YYYY-MM-DD=KEY` (24 bytes). Repeatable.
        #[arg(long = "server-key", value_name = "DATE=KEY")]
        server_keys: Vec<String>,
        /// A file of K_S: lines `YYYY-MM-DD KEY`, or bare keys for
        /// consecutive days from `--from`.
        #[arg(long = "server-keys", value_name = "FILE")]
        server_keys_file: Option<PathBuf>,
        /// First day of a file of bare K_S.
        #[arg(long)]
        from: Option<String>,
        /// Last day of a file of bare K_S (checks the count).
        #[arg(long)]
        to: Option<String>,
        /// K_G, the federation key (16, 24 or 32 bytes).
        #[arg(long)]
        federation_key: Option<String>,
        /// The KEK (32 bytes).
        #[arg(long)]
        kek: Option<String>,
        /// The registration private key: a 32-byte scalar, base64 PKCS#8 DER,
        /// or a PKCS#8/SEC1 PEM document (use `@file.pem`).
        #[arg(long)]
        registration_key: Option<String>,
        /// Replace keys already present with other values.
        #[arg(long)]
        force: bool,
    },
    /// Add K_S up to today + N days and delete K_S older than the retention.
    Rotate {
        #[command(flatten)]
        common: ConfigArgs,
        /// Days of K_S after today (default: `keys.future_days`).
        #[arg(long)]
        future_days: Option<u32>,
        /// Past days of K_S kept (default: `keys.retention_days`).
        #[arg(long)]
        retention_days: Option<u32>,
    },
    /// Copy every key of the file key store (`keys.keystore`, its
    /// passphrase as usual) into the configured store, normally a PKCS#11
    /// token (`keys.store = "pkcs11"`). The KEK and the registration key
    /// become non-extractable token objects; registrations made with the
    /// file store keep working. Delete the file (and its backups) afterwards.
    Migrate {
        #[command(flatten)]
        common: ConfigArgs,
        /// Replace keys the target holds with other values.
        #[arg(long)]
        force: bool,
    },
    /// Generate the ECDSA P-256 key pair that signs this server's federation
    /// batches (docs/federation.md): the private key (PKCS#8 PEM, mode 0600)
    /// for `federation.signing_key_file`, the public key (PEM) for partners.
    FederationKeygen {
        /// Where to write the private key (refused if it exists).
        #[arg(long)]
        private: PathBuf,
        /// Where to write the public key.
        #[arg(long)]
        public: PathBuf,
    },
    /// Print the registration public key (base64 SubjectPublicKeyInfo), the
    /// form apps embed.
    ShowPublic {
        #[command(flatten)]
        common: ConfigArgs,
        /// Also print the JWT verification keys (PEM), for token consumers.
        #[arg(long)]
        jwt: bool,
    },
}

fn parse_date(s: &str) -> anyhow::Result<UtcDate> {
    s.parse()
        .map_err(|_| anyhow::anyhow!("invalid date {s:?} (expected YYYY-MM-DD)"))
}

fn print_passphrase_note(source: &SecretSource) {
    if let SecretSource::Generated(p) = source {
        eprintln!(
            "robert: generated a random key store passphrase in {} (mode 0600); protect it and back it \
             up apart from the key store, or pass it as ROBERT_KEYSTORE_PASSPHRASE",
            p.display()
        );
    }
}

pub(crate) fn run(args: KeysArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        KeysCommand::Init {
            common,
            future_days,
        } => {
            let config = common.load()?;
            std::fs::create_dir_all(&config.server.data_dir)
                .with_context(|| format!("cannot create {}", config.server.data_dir.display()))?;
            let (ks, source) = serve::open_keystore(&config, true)?;
            print_passphrase_note(&source);
            let today = UtcDate::of(clock(&config).now_ntp());
            let report = admin::init(
                ks.as_ref(),
                today,
                future_days.unwrap_or(config.keys.future_days),
                serve::needs_generated_jwt_keys(&config),
            )?;
            outln!("{}", serde_json::to_string_pretty(&report)?);
        }
        KeysCommand::Import {
            common,
            server_keys,
            server_keys_file,
            from,
            to,
            federation_key,
            kek,
            registration_key,
            force,
        } => {
            let config = common.load()?;
            let mut items = Vec::new();
            for arg in &server_keys {
                let Some((date, value)) = arg.split_once('=') else {
                    bail!("--server-key expects DATE=KEY");
                };
                items.push(ImportItem::ServerKey(
                    parse_date(date)?,
                    admin::resolve_value(value)?,
                ));
            }
            if let Some(file) = &server_keys_file {
                let text = Zeroizing::new(
                    std::fs::read_to_string(file)
                        .with_context(|| format!("cannot read {}", file.display()))?,
                );
                let from = from.as_deref().map(parse_date).transpose()?;
                let list = admin::parse_server_keys(&text, from)?;
                if let (Some(from), Some(to)) = (from, to.as_deref().map(parse_date).transpose()?) {
                    let expected = to.days_since_unix_epoch() - from.days_since_unix_epoch() + 1;
                    if i64::try_from(list.len()).unwrap_or(-1) != expected {
                        bail!(
                            "{} holds {} keys but {from}..{to} is {expected} days",
                            file.display(),
                            list.len()
                        );
                    }
                }
                items.extend(list.into_iter().map(|(d, k)| ImportItem::ServerKey(d, k)));
            } else if from.is_some() || to.is_some() {
                bail!("--from and --to go with --server-keys FILE");
            }
            if let Some(v) = &federation_key {
                items.push(ImportItem::FederationKey(admin::resolve_value(v)?));
            }
            if let Some(v) = &kek {
                items.push(ImportItem::Kek(admin::resolve_value(v)?));
            }
            if let Some(v) = &registration_key {
                items.push(ImportItem::RegistrationKey(admin::resolve_value(v)?));
            }
            if items.is_empty() {
                bail!("nothing to import (see `robert keys import --help`)");
            }
            std::fs::create_dir_all(&config.server.data_dir)
                .with_context(|| format!("cannot create {}", config.server.data_dir.display()))?;
            let (ks, source) = serve::open_keystore(&config, true)?;
            print_passphrase_note(&source);
            let report = admin::import(ks.as_ref(), items, force)?;
            outln!("{}", serde_json::to_string_pretty(&report)?);
        }
        KeysCommand::Rotate {
            common,
            future_days,
            retention_days,
        } => {
            let config = common.load()?;
            let (ks, _) = serve::open_keystore(&config, false)?;
            let today = UtcDate::of(clock(&config).now_ntp());
            let report = admin::rotate(
                ks.as_ref(),
                today,
                future_days.unwrap_or(config.keys.future_days),
                retention_days.unwrap_or(config.keys.retention_days),
            )?;
            outln!("{}", serde_json::to_string_pretty(&report)?);
        }
        KeysCommand::FederationKeygen { private, public } => {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let (sk, pk) = robert_server::federation::generate_key_pair(&mut rand::rng())?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&private)
                .with_context(|| format!("cannot create {}", private.display()))?;
            f.write_all(sk.as_bytes())?;
            f.sync_all()?;
            std::fs::write(&public, pk.as_bytes())
                .with_context(|| format!("cannot write {}", public.display()))?;
            outln!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "private_key_file": private.display().to_string(),
                    "public_key_file": public.display().to_string(),
                }))?
            );
        }
        KeysCommand::Migrate { common, force } => {
            let config = common.load()?;
            if config.keys.store == KeyStoreKind::File {
                bail!(
                    "keys.store is \"file\": set keys.store = \"pkcs11\" (and [keys.pkcs11]) to migrate the file \
                     key store into a token"
                );
            }
            let (from, _) = serve::open_file_keystore(&config, false)?;
            let (to, _) = serve::open_keystore(&config, false)?;
            let report = admin::migrate(&from, to.as_ref(), force)?;
            outln!("{}", serde_json::to_string_pretty(&report)?);
        }
        KeysCommand::ShowPublic { common, jwt } => {
            let config = common.load()?;
            let (ks, _) = serve::open_keystore(&config, false)?;
            outln!("{}", admin::show_public(ks.as_ref())?);
            if jwt {
                let set = ks.load()?;
                let tokens = robert_server::jwt::Tokens::from_config(&config.jwt, &set.jwt)?;
                let _ = KeyRing::from_set(set)?;
                for (name, signer) in tokens.signers() {
                    outln!("# {name} token ({:?})", signer.algorithm());
                    out!("{}", signer.public_key_pem());
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
