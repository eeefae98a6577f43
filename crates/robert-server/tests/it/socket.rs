//! The server on a real socket, and its start-up (key store bootstrap,
//! reload, separate internal listener).

use std::sync::Arc;
use std::time::Duration;

use robert_core::time::UtcDate;
use robert_server::clock::{ManualClock, SharedClock};
use robert_server::config::{CaptchaMode, Config};

use robert_server::keystore::admin;
use robert_server::serve;
use serde_json::json;

use super::support::{TestApp, today_noon};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("robert-server-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.server.data_dir = dir.to_path_buf();
    c.server.bind = "127.0.0.1:0".into();
    c.keys.argon2_memory_kib = 64;
    c.keys.argon2_iterations = 1;
    c.captcha.mode = CaptchaMode::AcceptAny;
    c
}

/// `serve::run` on its listeners in a task, until [`Running::stop`].
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), serve::ServeError>>,
}

impl Running {
    fn start(
        state: &robert_server::state::AppState,
        main: tokio::net::TcpListener,
        internal: Option<tokio::net::TcpListener>,
    ) -> Self {
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve::run(state.clone(), main, internal, async {
            let _ = rx.await;
        }));
        Self { stop, task }
    }

    /// Asks for a graceful shutdown and waits for it (5 s at most).
    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn real_socket_round_trip_and_graceful_shutdown() {
    let app = TestApp::new(robert_store::Backend::Sqlite, "socket")
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Running::start(&app.state, listener, None);
    let client = robert_server::http_client::client(Duration::from_secs(5)).unwrap();
    let clock: serde_json::Value = client
        .get(format!("http://{addr}/api/v6/clock"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(clock["serviceStartDate"], "2020-06-01");
    let key =
        robert_core::registration::ClientKeyAgreement::new(&mut rand::rng()).public_key_base64();
    let r = client
        .post(format!("http://{addr}/api/v6/register"))
        .json(&json!({"captcha": "a", "captchaId": "b", "clientPublicECDHKey": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let r = client
        .post(format!("http://{addr}/api/v6/status"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    server.stop().await;
    app.cleanup().await;
}

#[tokio::test]
async fn first_start_creates_keys_and_later_starts_reuse_them() {
    let dir = temp_dir("bootstrap");
    let cfg = config(&dir);
    let clock: SharedClock = Arc::new(ManualClock::at_ntp(today_noon()));
    let s = serve::prepare(cfg.clone(), clock.clone()).await.unwrap();
    let pass = dir.join("keystore.pass");
    assert!(dir.join("keystore.robert").exists());
    assert!(dir.join("robert.db").exists());
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("generated a random key store passphrase")
                && w.contains("keystore.pass")),
        "{:?}",
        s.warnings
    );
    assert!(
        s.warnings.iter().any(|w| w.contains("accept-any")),
        "{:?}",
        s.warnings
    );
    assert!(
        s.notes.iter().any(|n| n.contains("created key store")),
        "{:?}",
        s.notes
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&pass).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let ring = s.state.keys.get();
    let today = UtcDate::of(today_noon());
    assert!(ring.server_key(today).is_some() && ring.server_key(today.add_days(5)).is_some());
    assert!(ring.server_key(today.add_days(6)).is_none());
    let pk = ring.registration().public_key_base64();
    s.state.store.close().await;
    drop(s);
    // Nothing secret in the notes and warnings.
    let s = serve::prepare(cfg.clone(), clock.clone()).await.unwrap();
    assert_eq!(s.state.keys.get().registration().public_key_base64(), pk);
    assert!(!s.warnings.iter().any(|w| w.contains("generated")));
    let secret = std::fs::read_to_string(&pass).unwrap();
    for line in s.notes.iter().chain(&s.warnings) {
        assert!(!line.contains(secret.trim()), "passphrase leaked: {line}");
    }
    s.state.store.close().await;
    drop(s);
    // A wrong passphrase file is a clear error, not a new key store.
    std::fs::write(&pass, "wrong\n").unwrap();
    let err = serve::prepare(cfg, clock).await.unwrap_err().to_string();
    assert!(err.contains("wrong passphrase"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_server_reloads_a_rotated_key_store() {
    let dir = temp_dir("reload");
    let mut cfg = config(&dir);
    cfg.keys.auto_rotate = false;
    cfg.keys.reload_secs = 1;
    let clock: SharedClock = Arc::new(ManualClock::at_ntp(today_noon()));
    let s = serve::prepare(cfg, clock.clone()).await.unwrap();
    let today = UtcDate::of(clock.now_ntp());
    let later = today.add_days(9);
    assert!(s.state.keys.get().server_key(later).is_none());
    let task =
        serve::spawn_key_maintenance(s.state.clone(), s.keystore.clone(), s.keystore_generation);
    // `robert keys rotate` from another process, a few days later.
    let r = admin::rotate(s.keystore.as_ref(), today.add_days(4), 5, 30).unwrap();
    assert_eq!(r.added.len(), 4);
    let mut reloaded = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if s.state.keys.get().server_key(later).is_some() {
            reloaded = true;
            break;
        }
    }
    assert!(reloaded, "the server picked up the new K_S");
    task.abort();
    assert!(s.keystore.exists());
    s.state.store.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The default configuration serves KPIs and metrics on a loopback listener
/// of their own: the public port answers 404 for them, the internal one 200.
#[tokio::test]
async fn internal_endpoints_on_their_own_listener_by_default() {
    let default = Config::default();
    let internal: std::net::SocketAddr = default
        .server
        .internal_address()
        .expect("an internal listener by default")
        .parse()
        .unwrap();
    assert!(internal.ip().is_loopback(), "{internal}");
    assert_ne!(default.server.internal_bind, default.server.bind);
    let dir = temp_dir("internal");
    let mut cfg = config(&dir);
    // The default address with a free port, so tests run side by side.
    cfg.server.internal_bind = std::net::SocketAddr::new(internal.ip(), 0).to_string();
    let clock: SharedClock = Arc::new(ManualClock::at_ntp(today_noon()));
    let s = serve::prepare(cfg, clock).await.unwrap();
    let (main, internal) = serve::bind(&s.state.config).await.unwrap();
    let internal = internal.unwrap();
    let (a, b) = (main.local_addr().unwrap(), internal.local_addr().unwrap());
    let server = Running::start(&s.state, main, Some(internal));
    let client = robert_server::http_client::client(Duration::from_secs(5)).unwrap();
    let get = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get(format!("http://{a}/internal/api/v2/kpis")).await, 404);
    assert_eq!(get(format!("http://{a}/metrics")).await, 404);
    assert_eq!(get(format!("http://{a}/api/v6/clock")).await, 200);
    assert_eq!(get(format!("http://{b}/internal/api/v2/kpis")).await, 200);
    assert_eq!(get(format!("http://{b}/metrics")).await, 200);
    assert_eq!(get(format!("http://{b}/api/v6/clock")).await, 404);
    server.stop().await;
    s.state.store.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `internal_bind = "public"` (the opt-in to the old behaviour): one
/// listener serves everything, and start-up warns about it.
#[tokio::test]
async fn internal_endpoints_on_the_public_listener_when_asked() {
    let dir = temp_dir("internal-public");
    let mut cfg = config(&dir);
    cfg.server.internal_bind = "public".into();
    cfg.validate().unwrap();
    let clock: SharedClock = Arc::new(ManualClock::at_ntp(today_noon()));
    let s = serve::prepare(cfg, clock).await.unwrap();
    assert!(
        s.warnings.iter().any(|w| w.contains("internal_bind")),
        "{:?}",
        s.warnings
    );
    let (main, internal) = serve::bind(&s.state.config).await.unwrap();
    assert!(internal.is_none());
    let a = main.local_addr().unwrap();
    let server = Running::start(&s.state, main, None);
    let client = robert_server::http_client::client(Duration::from_secs(5)).unwrap();
    for path in ["/internal/api/v2/kpis", "/metrics", "/api/v6/clock"] {
        let status = client
            .get(format!("http://{a}{path}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 200, "{path}");
    }
    server.stop().await;
    s.state.store.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An empty `internal_bind` (e.g. an unset variable in a compose file) is an
/// error, not a silent exposure; so is the public address itself.
#[test]
fn internal_bind_must_be_an_address_or_public() {
    let mut cfg = Config::default();
    cfg.server.internal_bind = " ".into();
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("server.internal_bind is empty"), "{e}");
    cfg.server.internal_bind = cfg.server.bind.clone();
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("\"public\""), "{e}");
    cfg.server.internal_bind = "PUBLIC".into();
    cfg.validate().unwrap();
    assert_eq!(cfg.server.internal_address(), None);
}

/// A key store replaced by one with another KEK would fail every /status of
/// the existing registrations: the server refuses to start instead, and
/// starts again once the old KEK is imported.
#[tokio::test]
async fn a_key_store_without_the_registrations_kek_is_refused_at_start() {
    let dir = temp_dir("kek-switch");
    let cfg = config(&dir);
    let clock: SharedClock = Arc::new(ManualClock::at_ntp(today_noon()));
    let s = serve::prepare(cfg.clone(), clock.clone()).await.unwrap();
    let ring = s.state.keys.get();
    let old_kek = hex::encode(ring.kek().in_memory().unwrap().expose_secret());
    s.state
        .store
        .insert_registration(&robert_store::NewRegistration {
            id_a: robert_core::id_a::IdA::from_u64(42),
            key_a: ring.kek().wrap(&[1; 32]).unwrap(),
            key_a_tuples: ring.kek().wrap(&[2; 32]).unwrap(),
            created_at: today_noon(),
        })
        .await
        .unwrap();
    s.state.store.close().await;
    drop(s);
    // A new key store (new KEK) on the same database.
    std::fs::remove_file(dir.join("keystore.robert")).unwrap();
    let err = serve::prepare(cfg.clone(), clock.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not unwrap the registrations") && err.contains("keys migrate"),
        "{err}"
    );
    let (ks, _) = serve::open_keystore(&cfg, false).unwrap();
    admin::import(
        ks.as_ref(),
        vec![admin::ImportItem::Kek(zeroize::Zeroizing::new(old_kek))],
        true,
    )
    .unwrap();
    let s = serve::prepare(cfg, clock).await.unwrap();
    assert!(
        s.notes
            .iter()
            .any(|n| n.contains("KEK opens the registrations")),
        "{:?}",
        s.notes
    );
    s.state.store.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
