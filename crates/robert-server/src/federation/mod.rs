//! Federation between countries' servers (protocol.md §9.4; operators'
//! guide: docs/federation.md).
//!
//! The ECC of a HELLO says which country's server issued its EBID. A phone
//! abroad records the HELLOs of local phones; when its owner reports at
//! home, those contacts reach the home server, which cannot identify them
//! (their EBIDs were made with another country's K_S). This module sends
//! them to the server that can:
//!
//! ```text
//!  home server                                          partner server
//!  batch: contact's ECC → partner country
//!    move to federation_outbox (one transaction) ┐
//!  delivery (robert serve, robert batch)         │
//!    batch of ≤ N contacts, fixed id, signed ────┼──▶ POST /federation/v1/contacts
//!                                                │     signature (partner's key), clock, size,
//!                                                │     every ECC → own country
//!    ◀──── 200 {"status":"stored"|"duplicate"} ──┘     record (origin, id) + queue contacts
//!    delete the batch from the outbox                 its batch scores them as its own
//! ```
//!
//! * [`wire`]: the body, its signature (ECDSA P-256 over the exact body
//!   bytes), the headers.
//! * [`inbound`]: the receiving endpoint.
//! * [`outbound`]: delivery with retries and exponential backoff.
//! * `crate::batch::federate`: the batch step that fills the outbox.
//!
//! Only contacts travel: never the report, its time or anything about the
//! reporter. A partner learns the contacts of its own phones with a foreign
//! positive case, which its batch would have learnt had the phones' owners
//! met at home.

pub mod inbound;
pub mod outbound;
pub mod wire;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use p256::ecdsa::{SigningKey, VerifyingKey};
use serde::Deserialize;

use crate::http_client::ClientBuildError;

/// `[federation]`: this server's signing key and its partners. With no
/// partner, federation is off: foreign contacts are dropped and counted,
/// as the reference did, and the endpoint answers 404.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    /// This server's ECDSA P-256 private key (PKCS#8 PEM), which signs the
    /// batches it sends (`robert keys federation-keygen` makes one).
    /// Required when a partner has a `url`.
    pub signing_key_file: PathBuf,
    /// The partner countries.
    pub partners: Vec<PartnerConfig>,
    /// Most contacts per batch sent (2 000).
    pub max_contacts_per_batch: usize,
    /// A batch sent stops once it holds this many HELLOs (50 000, about
    /// 5 MB of JSON: below the partner's `max_body_bytes`); a single
    /// larger contact goes alone.
    pub max_hellos_per_batch: u64,
    /// Largest body accepted from a partner, in bytes (16 MiB).
    pub max_body_bytes: usize,
    /// Largest accepted difference between a batch's `createdAt` and this
    /// server's clock, in seconds (300).
    pub max_clock_skew_secs: u64,
    /// Timeout of one delivery request, in seconds (30).
    pub timeout_secs: u64,
    /// `robert serve` delivers the outbox every this many seconds (60).
    pub deliver_every_secs: u64,
    /// First wait after a failed delivery to a partner, in seconds (10);
    /// it doubles at each failure in a row.
    pub retry_initial_secs: u64,
    /// Longest wait between attempts, in seconds (3 600).
    pub retry_max_secs: u64,
    /// Days the (origin, batch id) of received batches are remembered (14).
    pub inbox_retention_days: u32,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            signing_key_file: PathBuf::new(),
            partners: Vec::new(),
            max_contacts_per_batch: 2_000,
            max_hellos_per_batch: 50_000,
            max_body_bytes: 16 * 1024 * 1024,
            max_clock_skew_secs: 300,
            timeout_secs: 30,
            deliver_every_secs: 60,
            retry_initial_secs: 10,
            retry_max_secs: 3_600,
            inbox_retention_days: 14,
        }
    }
}

/// `[[federation.partners]]`: one partner country.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerConfig {
    /// Its country code (telephone prefix, e.g. 32 for Belgium).
    pub country_code: u8,
    /// Its endpoint, e.g. `https://robert.example.be/federation/v1/contacts`.
    /// Empty: this server accepts the partner's batches but sends none (its
    /// contacts are dropped and counted as foreign).
    #[serde(default)]
    pub url: String,
    /// Its ECDSA P-256 public key (PEM SubjectPublicKeyInfo), which verifies
    /// the batches it sends.
    pub public_key_file: PathBuf,
}

impl FederationConfig {
    /// The countries whose contacts the batch moves to the outbox: the
    /// partners with an endpoint.
    pub fn forwarded_countries(&self) -> Vec<u8> {
        let mut v: Vec<u8> = self
            .partners
            .iter()
            .filter(|p| !p.url.trim().is_empty())
            .map(|p| p.country_code)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Checks what can be checked without reading files.
    pub fn validate(&self, own_country: u8) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.partners {
            if p.country_code == own_country {
                return Err(format!(
                    "federation.partners: country {} is this server's own country",
                    p.country_code
                ));
            }
            if !seen.insert(p.country_code) {
                return Err(format!(
                    "federation.partners: country {} is listed twice",
                    p.country_code
                ));
            }
            if p.public_key_file.as_os_str().is_empty() {
                return Err(format!(
                    "federation.partners: country {} has no public_key_file",
                    p.country_code
                ));
            }
            let url = p.url.trim();
            if !url.is_empty() {
                match reqwest::Url::parse(url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                    _ => {
                        return Err(format!(
                            "federation.partners: country {}: url {url:?} is not an http(s) URL",
                            p.country_code
                        ));
                    }
                }
            }
        }
        if !self.forwarded_countries().is_empty() && self.signing_key_file.as_os_str().is_empty() {
            return Err("federation.signing_key_file is required when a partner has a url".into());
        }
        if self.max_contacts_per_batch == 0 || self.max_hellos_per_batch == 0 {
            return Err(
                "federation.max_contacts_per_batch and max_hellos_per_batch must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Why the federation could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FederationError {
    /// The configuration is inconsistent.
    #[error("invalid federation configuration: {0}")]
    Config(String),
    /// A key file could not be read.
    #[error("cannot read federation key file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A key file does not hold a P-256 key of the expected form.
    #[error(
        "federation key file {0} does not hold a P-256 key (PKCS#8 PEM private key, or PEM public key)"
    )]
    InvalidKey(PathBuf),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] ClientBuildError),
}

/// A configured partner, keys loaded.
#[derive(Debug)]
pub struct Partner {
    /// Its country code.
    pub country: u8,
    /// Its endpoint (`None`: receive only).
    pub url: Option<reqwest::Url>,
    /// Verifies its batches.
    pub key: VerifyingKey,
}

/// Counters of the federation, rendered at `/metrics`.
#[derive(Debug, Default)]
pub struct FederationMetrics {
    /// Batches a partner acknowledged.
    pub batches_sent: AtomicU64,
    /// Contacts in those batches.
    pub contacts_sent: AtomicU64,
    /// Delivery attempts that failed (network, timeout, refusal).
    pub delivery_failures: AtomicU64,
    /// Batches received and stored.
    pub batches_received: AtomicU64,
    /// Contacts queued from those batches.
    pub contacts_received: AtomicU64,
    /// Repeated batches acknowledged without storing.
    pub batches_duplicate: AtomicU64,
    /// Batches refused (signature, clock, size, content).
    pub batches_refused: AtomicU64,
}

/// The federation at run time: keys, partners, HTTP client, backoff state
/// and counters. [`FederationRuntime::disabled`] without partners.
pub struct FederationRuntime {
    own_country: u8,
    config: FederationConfig,
    signing: Option<SigningKey>,
    partners: BTreeMap<u8, Partner>,
    client: Option<reqwest::Client>,
    /// Counters.
    pub metrics: FederationMetrics,
    backoff: Mutex<BTreeMap<u8, outbound::Backoff>>,
}

impl std::fmt::Debug for FederationRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederationRuntime")
            .field("own_country", &self.own_country)
            .field("partners", &self.partners.keys().collect::<Vec<_>>())
            .field("signing", &self.signing.is_some())
            .finish_non_exhaustive()
    }
}

impl FederationRuntime {
    /// Federation off.
    pub fn disabled(own_country: u8) -> Self {
        Self {
            own_country,
            config: FederationConfig::default(),
            signing: None,
            partners: BTreeMap::new(),
            client: None,
            metrics: FederationMetrics::default(),
            backoff: Mutex::new(BTreeMap::new()),
        }
    }

    /// Loads the keys of `[federation]`.
    pub fn from_config(
        config: &FederationConfig,
        own_country: u8,
    ) -> Result<Self, FederationError> {
        if config.partners.is_empty() {
            return Ok(Self::disabled(own_country));
        }
        config
            .validate(own_country)
            .map_err(FederationError::Config)?;
        let signing = if config.signing_key_file.as_os_str().is_empty() {
            None
        } else {
            Some(read_signing_key(&config.signing_key_file)?)
        };
        let mut partners = BTreeMap::new();
        for p in &config.partners {
            let url = p.url.trim();
            partners.insert(
                p.country_code,
                Partner {
                    country: p.country_code,
                    url: if url.is_empty() {
                        None
                    } else {
                        Some(reqwest::Url::parse(url).map_err(|e| {
                            FederationError::Config(format!("partner {}: {e}", p.country_code))
                        })?)
                    },
                    key: read_public_key(&p.public_key_file)?,
                },
            );
        }
        let client =
            crate::http_client::client(std::time::Duration::from_secs(config.timeout_secs.max(1)))?;
        Ok(Self {
            own_country,
            config: config.clone(),
            signing,
            partners,
            client: Some(client),
            metrics: FederationMetrics::default(),
            backoff: Mutex::new(BTreeMap::new()),
        })
    }

    /// Whether any partner is configured.
    pub fn enabled(&self) -> bool {
        !self.partners.is_empty()
    }

    /// This server's country code.
    pub fn own_country(&self) -> u8 {
        self.own_country
    }

    /// The configuration.
    pub fn config(&self) -> &FederationConfig {
        &self.config
    }

    /// A partner by country code.
    pub fn partner(&self, country: u8) -> Option<&Partner> {
        self.partners.get(&country)
    }

    /// The partners.
    pub fn partners(&self) -> impl Iterator<Item = &Partner> {
        self.partners.values()
    }

    /// The counters in the Prometheus text format (empty when disabled).
    pub fn render_metrics(&self) -> String {
        use std::fmt::Write as _;
        if !self.enabled() {
            return String::new();
        }
        let m = &self.metrics;
        let mut out = String::new();
        for (name, help, v) in [
            (
                "robert_federation_batches_sent_total",
                "Batches of contacts a partner acknowledged.",
                &m.batches_sent,
            ),
            (
                "robert_federation_contacts_sent_total",
                "Contacts in the batches partners acknowledged.",
                &m.contacts_sent,
            ),
            (
                "robert_federation_delivery_failures_total",
                "Delivery attempts that failed (network, timeout, refusal).",
                &m.delivery_failures,
            ),
            (
                "robert_federation_batches_received_total",
                "Batches received from partners and stored.",
                &m.batches_received,
            ),
            (
                "robert_federation_contacts_received_total",
                "Contacts queued from partners' batches.",
                &m.contacts_received,
            ),
            (
                "robert_federation_batches_duplicate_total",
                "Repeated batches acknowledged without storing.",
                &m.batches_duplicate,
            ),
            (
                "robert_federation_batches_refused_total",
                "Batches refused (signature, clock, size, content).",
                &m.batches_refused,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        out
    }
}

/// The inbound route, when partners are configured (else no route: 404).
pub fn routes(state: &crate::state::AppState) -> axum::Router<crate::state::AppState> {
    let router = axum::Router::new();
    if !state.federation.enabled() {
        return router;
    }
    router
        .route(wire::CONTACTS_PATH, axum::routing::post(inbound::receive))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.federation.max_body_bytes,
        ))
}

fn read_file(path: &Path) -> Result<zeroize::Zeroizing<String>, FederationError> {
    std::fs::read_to_string(path)
        .map(zeroize::Zeroizing::new)
        .map_err(|source| FederationError::Read {
            path: path.to_owned(),
            source,
        })
}

/// Reads a PKCS#8 PEM P-256 private key.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, FederationError> {
    use p256::pkcs8::DecodePrivateKey as _;
    let text = read_file(path)?;
    SigningKey::from_pkcs8_pem(text.trim()).map_err(|_| FederationError::InvalidKey(path.into()))
}

/// Reads a PEM SubjectPublicKeyInfo P-256 public key.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, FederationError> {
    use p256::pkcs8::DecodePublicKey as _;
    let text = read_file(path)?;
    VerifyingKey::from_public_key_pem(text.trim())
        .map_err(|_| FederationError::InvalidKey(path.into()))
}

/// A new signing key pair: (PKCS#8 PEM private key, PEM public key).
pub fn generate_key_pair(
    rng: &mut impl rand::CryptoRng,
) -> Result<(zeroize::Zeroizing<String>, String), FederationError> {
    use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
    let invalid = || FederationError::InvalidKey(PathBuf::from("<generated>"));
    let secret = loop {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(bytes.as_mut());
        // Out of range (probability ~2^-32): draw again.
        if let Ok(k) = p256::SecretKey::from_slice(bytes.as_ref()) {
            break k;
        }
    };
    let private = secret.to_pkcs8_pem(LineEnding::LF).map_err(|_| invalid())?;
    let public = secret
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|_| invalid())?;
    Ok((zeroize::Zeroizing::new(private.to_string()), public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_files() {
        let dir = std::env::temp_dir().join(format!("robert-fed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (private, public) = generate_key_pair(&mut rand::rng()).unwrap();
        std::fs::write(dir.join("k.pem"), private.as_bytes()).unwrap();
        std::fs::write(dir.join("k.pub.pem"), public.as_bytes()).unwrap();
        let sk = read_signing_key(&dir.join("k.pem")).unwrap();
        let pk = read_public_key(&dir.join("k.pub.pem")).unwrap();
        assert_eq!(sk.verifying_key(), &pk);
        let sig = wire::sign(&sk, b"body");
        assert!(wire::verify(&pk, b"body", &sig));
        assert!(matches!(
            read_signing_key(&dir.join("k.pub.pem")),
            Err(FederationError::InvalidKey(_))
        ));
        assert!(matches!(
            read_public_key(&dir.join("missing")),
            Err(FederationError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn validation() {
        let partner = |cc: u8, url: &str| PartnerConfig {
            country_code: cc,
            url: url.into(),
            public_key_file: "be.pub.pem".into(),
        };
        let mut c = FederationConfig {
            signing_key_file: "fr.pem".into(),
            partners: vec![partner(32, "https://be.example/federation/v1/contacts")],
            ..FederationConfig::default()
        };
        assert_eq!(c.validate(33), Ok(()));
        assert_eq!(c.forwarded_countries(), vec![32]);
        assert!(c.validate(32).unwrap_err().contains("own country"));
        c.partners.push(partner(32, ""));
        assert!(c.validate(33).unwrap_err().contains("twice"));
        c.partners = vec![partner(32, "ftp://x")];
        assert!(c.validate(33).unwrap_err().contains("http"));
        c.partners = vec![partner(49, "")];
        c.signing_key_file = PathBuf::new();
        assert_eq!(c.validate(33), Ok(()), "receive-only needs no signing key");
        assert!(c.forwarded_countries().is_empty());
        c.partners = vec![partner(49, "http://de.example/x")];
        assert!(c.validate(33).unwrap_err().contains("signing_key_file"));
    }
}
