//! SFTP upload of lot files (codes-and-push.md §2.5): public-key
//! authentication only, the server's host key pinned in the configuration,
//! files written under a temporary name and renamed once complete.

use std::sync::Arc;
use std::time::Duration;

use russh::client;
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh_sftp::client::SftpSession;
use tokio::io::AsyncWriteExt as _;

use crate::config::SftpConfig;

/// SFTP failures. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SftpError {
    /// The client key could not be loaded.
    #[error("cannot load SFTP client key {path}: {reason}")]
    ClientKey {
        /// Key file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The pinned host key in the configuration is not an OpenSSH public key.
    #[error("sftp.host_key is not an OpenSSH public key")]
    PinnedKey,
    /// The server presented another host key.
    #[error("SFTP server {0} presented a host key that does not match the pinned key")]
    HostKeyMismatch(String),
    /// Connection or SSH protocol failure.
    #[error("SFTP connection to {host} failed: {reason}")]
    Connect {
        /// Server.
        host: String,
        /// Why.
        reason: String,
    },
    /// The server refused our key.
    #[error("SFTP server refused public-key authentication for user {0}")]
    Auth(String),
    /// A transfer step failed.
    #[error("SFTP transfer of {file} failed: {reason}")]
    Transfer {
        /// File name.
        file: String,
        /// Why.
        reason: String,
    },
    /// The whole upload exceeded its timeout.
    #[error("SFTP upload timed out")]
    Timeout,
}

struct PinnedHostKey {
    expected: PublicKey,
    mismatch: Arc<std::sync::atomic::AtomicBool>,
}

impl client::Handler for PinnedHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let ok = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                key.key_data() == self.expected.key_data()
            }
            PublicKeyOrCertificate::Certificate(_) => false,
        };
        if !ok {
            self.mismatch
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(ok)
    }
}

/// Uploads `files` (name, bytes) into the configured remote directory.
/// Each file is written as `<name>.part` and renamed when complete, so the
/// recipient never sees a partial file.
pub async fn upload(cfg: &SftpConfig, files: &[(&str, &[u8])]) -> Result<(), SftpError> {
    let timeout = Duration::from_secs(cfg.timeout_seconds.max(1));
    tokio::time::timeout(timeout, upload_inner(cfg, files))
        .await
        .map_err(|_| SftpError::Timeout)?
}

async fn upload_inner(cfg: &SftpConfig, files: &[(&str, &[u8])]) -> Result<(), SftpError> {
    let host = format!("{}:{}", cfg.host, cfg.port);
    let passphrase = match &cfg.key_passphrase_env {
        Some(var) => Some(zeroize::Zeroizing::new(std::env::var(var).map_err(
            |_| SftpError::ClientKey {
                path: cfg.key_file.display().to_string(),
                reason: format!("passphrase variable {var} is not set"),
            },
        )?)),
        None => None,
    };
    let key = russh::keys::load_secret_key(&cfg.key_file, passphrase.as_ref().map(|p| p.as_str()))
        .map_err(|e| SftpError::ClientKey {
            path: cfg.key_file.display().to_string(),
            reason: e.to_string(),
        })?;
    let expected =
        PublicKey::from_openssh(cfg.host_key.trim()).map_err(|_| SftpError::PinnedKey)?;
    let mismatch = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handler = PinnedHostKey {
        expected,
        mismatch: mismatch.clone(),
    };
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(Duration::from_secs(cfg.timeout_seconds.max(1))),
        ..client::Config::default()
    });
    let connect_err = |reason: String| SftpError::Connect {
        host: host.clone(),
        reason,
    };
    let mut session = match client::connect(config, (cfg.host.as_str(), cfg.port), handler).await {
        Ok(s) => s,
        Err(e) => {
            if mismatch.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(SftpError::HostKeyMismatch(host));
            }
            return Err(connect_err(e.to_string()));
        }
    };
    let auth = session
        .authenticate_publickey(
            cfg.user.clone(),
            PrivateKeyWithHashAlg::new(Arc::new(key), None),
        )
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    if !auth.success() {
        return Err(SftpError::Auth(cfg.user.clone()));
    }
    let channel = session
        .channel_open_session()
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    let sftp = SftpSession::new(channel.into_stream())
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    let dir = cfg.remote_dir.trim_end_matches('/');
    for (name, data) in files {
        let xfer = |reason: String| SftpError::Transfer {
            file: (*name).to_owned(),
            reason,
        };
        let part = format!("{dir}/{name}.part");
        let target = format!("{dir}/{name}");
        let mut f = sftp
            .create(part.clone())
            .await
            .map_err(|e| xfer(e.to_string()))?;
        f.write_all(data).await.map_err(|e| xfer(e.to_string()))?;
        f.flush().await.map_err(|e| xfer(e.to_string()))?;
        f.shutdown().await.map_err(|e| xfer(e.to_string()))?;
        drop(f);
        sftp.rename(part, target)
            .await
            .map_err(|e| xfer(e.to_string()))?;
    }
    let _ = sftp.close().await;
    let _ = session
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    Ok(())
}
