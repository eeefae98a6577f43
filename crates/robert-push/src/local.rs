//! A push service's APNs side on 127.0.0.1: a mock APNs, a fresh provider
//! key it trusts, and a [`Config`] pointing at it, with the database in a
//! throwaway directory. What `robert push bench` and `robert demo` run
//! against; a real deployment configures `[apns]` instead (docs/push.md).

use std::path::PathBuf;

use rand::Rng as _;
use robert_clock::SharedClock;

use crate::config::Config;
use crate::jwt::{JwtError, ProviderToken, generate_p8};
use crate::mock_apns::{MockApns, MockApnsConfig, MockError};

/// Team id of the local provider key.
pub const TEAM_ID: &str = "TEAM123456";
/// Key id of the local provider key.
pub const KEY_ID: &str = "KEY1234567";
/// The app's topic (bundle id).
pub const TOPIC: &str = "fr.gouv.stopcovid.ios";

/// Why the local set-up failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// The mock.
    #[error(transparent)]
    Mock(#[from] MockError),
    /// The provider key.
    #[error(transparent)]
    Key(#[from] JwtError),
    /// Files.
    #[error("local push files: {0}")]
    Io(#[from] std::io::Error),
}

/// A mock APNs with the configuration that reaches it; the directory
/// (database, the mock's certificate) is removed on drop.
#[derive(Debug)]
pub struct LocalApns {
    /// The mock APNs (what it received, its answers).
    pub mock: MockApns,
    /// The provider key the mock trusts (.p8, PKCS#8 PEM).
    p8: zeroize::Zeroizing<String>,
    /// `[apns]` at the mock (the key written to `token.p8` in the
    /// directory), `database_url` an SQLite file there:
    /// [`PushService::open`](crate::PushService::open) takes it as is.
    pub config: Config,
    dir: TempDir,
}

impl LocalApns {
    /// Starts the mock on `clock` (it checks the provider token's age).
    pub async fn start(clock: SharedClock) -> Result<Self, LocalError> {
        let dir = TempDir::new()?;
        let p8 = generate_p8();
        let provider = ProviderToken::from_p8(&p8, KEY_ID, TEAM_ID, 2400)?;
        let mock = MockApns::start(MockApnsConfig {
            team_id: TEAM_ID.into(),
            key_id: KEY_ID.into(),
            topic: TOPIC.into(),
            public_key_pem: provider.public_key_pem(),
            clock,
        })
        .await?;
        let ca = dir.0.join("mock-apns.pem");
        std::fs::write(&ca, mock.cert_pem())?;
        let mut config = Config::default();
        config.apns.urls = vec![mock.url()];
        config.apns.team_id = TEAM_ID.into();
        config.apns.key_id = KEY_ID.into();
        config.apns.topic = TOPIC.into();
        config.apns.ca_file = Some(ca);
        let key_file = dir.0.join("token.p8");
        std::fs::write(&key_file, p8.as_bytes())?;
        config.apns.key_file = key_file;
        config.database_url = format!("sqlite://{}?mode=rwc", dir.0.join("push.db").display());
        Ok(Self {
            mock,
            p8,
            config,
            dir,
        })
    }

    /// A signer with the key the mock trusts (for
    /// [`PushService::with_parts`](crate::PushService::with_parts)).
    pub fn provider_token(&self) -> Result<ProviderToken, LocalError> {
        Ok(ProviderToken::from_p8(
            &self.p8,
            KEY_ID,
            TEAM_ID,
            self.config.apns.token_refresh_secs,
        )?)
    }

    /// The throwaway directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir.0
    }
}

/// A temporary directory removed on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        let mut b = [0u8; 8];
        rand::rng().fill_bytes(&mut b);
        let p = std::env::temp_dir().join(format!("robert-push-{}", hex::encode(b)));
        std::fs::create_dir_all(&p)?;
        Ok(Self(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
