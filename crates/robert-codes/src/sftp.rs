//! SFTP upload of lot files (codes-and-push.md §2.5): public-key
//! authentication only, the server's host key pinned in the configuration,
//! files written under a temporary name and renamed once complete (or, for
//! drop folders that forbid rename, straight under their final name).
//!
//! Key exchange: russh's defaults (ML-KEM/X25519 hybrid, Curve25519,
//! DH group exchange and DH groups 14–18) plus the three
//! `ecdh-sha2-nistp256/384/521` exchanges, which were the only ones the
//! reference's JSch client offered, so the laboratories' server (SI-DEP)
//! is known to accept at least one of them. Ciphers, MACs and host-key
//! algorithms are russh's defaults, which include the reference's pinned
//! `aes256-ctr`, `hmac-sha2-256` and `ecdsa-sha2-nistp256`.

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

/// The key exchanges offered, most preferred first: russh's defaults with
/// `ecdh-sha2-nistp256/384/521` inserted before the protocol extension
/// markers (`ext-info-c`, strict kex), which must stay in the list.
pub fn kex_algorithms() -> Vec<russh::kex::Name> {
    let defaults = russh::Preferred::DEFAULT.kex;
    let nistp = [
        russh::kex::ECDH_SHA2_NISTP256,
        russh::kex::ECDH_SHA2_NISTP384,
        russh::kex::ECDH_SHA2_NISTP521,
    ];
    let is_marker = |n: &russh::kex::Name| {
        let n = n.as_ref();
        n.starts_with("ext-info-") || n.starts_with("kex-strict-")
    };
    let mut out: Vec<russh::kex::Name> =
        defaults.iter().filter(|n| !is_marker(n)).copied().collect();
    for n in nistp {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out.extend(defaults.iter().filter(|n| is_marker(n)).copied());
    out
}

/// Uploads `files` (name, bytes) into the configured remote directory, in
/// order. With `atomic_rename` (the default) each file is written as
/// `<name>.part` and renamed when complete, so the recipient never sees a
/// partial file; otherwise it is written under its final name (the
/// reference's JSch `put`). On failure the file being written is removed
/// (best effort), so no stale `.part` or truncated file stays behind.
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
        preferred: russh::Preferred {
            kex: kex_algorithms().into(),
            ..russh::Preferred::default()
        },
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
        let target = format!("{dir}/{name}");
        let written = if cfg.atomic_rename {
            format!("{target}.part")
        } else {
            target.clone()
        };
        let result = write_file(&sftp, &written, data, cfg.atomic_rename.then_some(&target)).await;
        if let Err(reason) = result {
            // Leave nothing half-written behind (the drop folder may forbid
            // this too: then there is nothing more we can do).
            if let Err(e) = sftp.remove_file(written.clone()).await {
                tracing::warn!(file = %written, error = %e, "could not remove the partial upload");
            }
            let _ = sftp.close().await;
            let _ = session
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
            return Err(SftpError::Transfer {
                file: (*name).to_owned(),
                reason,
            });
        }
    }
    let _ = sftp.close().await;
    let _ = session
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    Ok(())
}

/// Writes `data` to `path`, then renames it to `rename_to` if given.
async fn write_file(
    sftp: &SftpSession,
    path: &str,
    data: &[u8],
    rename_to: Option<&String>,
) -> Result<(), String> {
    let mut f = sftp
        .create(path.to_owned())
        .await
        .map_err(|e| e.to_string())?;
    f.write_all(data).await.map_err(|e| e.to_string())?;
    f.flush().await.map_err(|e| e.to_string())?;
    f.shutdown().await.map_err(|e| e.to_string())?;
    drop(f);
    if let Some(target) = rename_to {
        sftp.rename(path.to_owned(), target.clone())
            .await
            .map_err(|e| format!("{e} (renaming {path}; if the server forbids rename, set lots.sftp.atomic_rename = false)"))?;
    }
    Ok(())
}
